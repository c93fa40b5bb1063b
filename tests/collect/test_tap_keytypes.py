"""Bots signing with Ed25519 and RSA keys through the tap: stock binance-connector (its own
`private_key` signing, unmodified), the simulator verifying each type, and the tap naming the
bot from the `X-MBX-APIKEY` header alone (it never needs, or sees, a private key)."""

from __future__ import annotations

import threading

import pytest
from binance.spot import Spot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from monitor.collect.tap import Tap, fingerprint
from monitor.core.clock import SystemClock
from monitor.core.events import Event, Kind
from monitor.world.sim import SimulatorThread

from .test_tap import TapThread

TRADER = {"enableReading": True, "enableSpotAndMarginTrading": True}


def pems(kind: str) -> tuple[str, str]:
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else \
        rsa.generate_private_key(65537, 2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_a_bot_with_an_asymmetric_key_is_recognised_through_the_tap(kind: str) -> None:
    events: list[Event] = []
    lock = threading.Lock()

    def offer(evs: list[Event]) -> int:
        with lock:
            events.extend(evs)
        return 0

    private, public = pems(kind)
    st = SimulatorThread(seed=0)
    with st as sim:
        c = sim.control  # called on the simulator's own thread via st.call
        st.call(c.create_account, "main", {"USDT": 1000, "BTC": 0.5})
        key, secret = st.call(c.create_key, "main", "grid-bot", permissions=TRADER,
                              public_key=public)
        assert secret == ""
        tap = Tap(sim.rest_url, SystemClock(), offer,
                  keys={fingerprint(key): ("main", "grid-bot")}, default_account="main")
        with TapThread(tap) as tap_url:
            bot = Spot(key, private_key=private, base_url=tap_url)
            assert "balances" in bot.account()
            price = st.call(c.price, "BTCUSDT")
            placed = bot.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT",
                                   timeInForce="GTC", quantity="0.01",
                                   price=f"{price * 0.5:.2f}")
            assert placed["status"] == "NEW"
    with lock:
        got = list(events)
    assert [(e.method, e.endpoint, e.status) for e in got] == [
        ("GET", "/api/v3/account", 200), ("POST", "/api/v3/order", 200)]
    assert all(e.key == "grid-bot" and e.kind is Kind.REQUEST for e in got)
    assert got[1].order_id == placed["orderId"]
    body = "".join(private.splitlines()[1:-1])
    for e in got:  # neither the key, the private key nor the signature is recorded
        text = e.model_dump_json()
        assert key not in text and body[:40] not in text and "signature" not in text
