"""Ed25519 and RSA keys at the simulator, over real sockets: REST signed calls, the WebSocket
API's session.logon / status / logout, userDataStream.subscribe after logon, and
subscribe.signature with every type; wrong signatures answer Binance's -1022."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from monitor.binance.signing import sign_rest_query, sign_ws_params
from monitor.core.keys import Ed25519Signer, RsaSigner, Signer
from monitor.world.sim import Simulator

from .conftest import TRADER
from .test_wsapi import events, open_ws, request

ED = ed25519.Ed25519PrivateKey.generate()
RSA = rsa.generate_private_key(65537, 2048)


def public_pem(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def register(sim: Simulator, label: str, key: Any) -> str:
    api_key, secret = sim.control.create_key("main", label, permissions=TRADER,
                                             ip_whitelist=["127.0.0.2"],
                                             public_key=public_pem(key))
    assert secret == ""  # Binance holds only the public half
    return api_key


async def rest(sim: Simulator, api_key: str, signer: Signer, method: str = "GET",
               path: str = "/api/v3/account", params: dict[str, Any] | None = None,
               ) -> httpx.Response:
    q = sign_rest_query(signer, [*(params or {}).items(), ("timestamp", sim.clock.now_ms())])
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(transport=transport) as c:
        return await c.request(method, f"{sim.rest_url}{path}?{q}",
                               headers={"X-MBX-APIKEY": api_key})


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
async def test_rest_signed_call_with_each_key_type(sim: Simulator, kind: str) -> None:
    key = ED if kind == "ed25519" else RSA
    signer: Signer = Ed25519Signer(ED) if kind == "ed25519" else RsaSigner(RSA)
    api_key = register(sim, kind, key)
    ok = await rest(sim, api_key, signer)
    assert ok.status_code == 200 and "balances" in ok.json()
    other: Signer = RsaSigner(RSA) if kind == "ed25519" else Ed25519Signer(ED)
    wrong = await rest(sim, api_key, other)
    assert wrong.status_code == 400 and wrong.json()["code"] == -1022


async def test_an_unencoded_plus_in_the_signature_fails(sim: Simulator) -> None:
    api_key = register(sim, "ed", ED)
    now = sim.clock.now_ms()
    for back in range(200):  # a timestamp whose signature holds a `+` (most do)
        payload = f"recvWindow=10000&timestamp={now - back}"
        sig = Ed25519Signer(ED).sign(payload)
        if "+" in sig:
            break
    assert "+" in sig
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(transport=transport) as c:
        raw = await c.get(f"{sim.rest_url}/api/v3/account?{payload}&signature={sig}",
                          headers={"X-MBX-APIKEY": api_key})
        encoded = await c.get(f"{sim.rest_url}/api/v3/account?"
                              f"{payload}&signature={quote(sig, safe='')}",
                              headers={"X-MBX-APIKEY": api_key})
    assert raw.status_code == 400 and raw.json()["code"] == -1022
    assert encoded.status_code == 200, encoded.text


async def test_ed25519_logon_then_subscribe_then_logout(sim: Simulator) -> None:
    api_key = register(sim, "ed", ED)
    signer = Ed25519Signer(ED)
    ws = await open_ws(sim)
    try:
        none = await request(ws, "userDataStream.subscribe", req_id="s0")
        assert none["status"] == 401 and none["error"]["code"] == -2015
        logon = await request(ws, "session.logon", sign_ws_params(signer, {
            "apiKey": api_key, "timestamp": sim.clock.now_ms()}), req_id="l1")
        assert logon["status"] == 200, logon
        assert set(logon["result"]) == {"apiKey", "authorizedSince", "connectedSince",
                                        "returnRateLimits", "serverTime", "userDataStream"}
        assert logon["result"]["apiKey"] == api_key
        status = await request(ws, "session.status", req_id="st")
        assert status["result"]["apiKey"] == api_key
        assert status["result"]["authorizedSince"] == logon["result"]["authorizedSince"]
        sub = await request(ws, "userDataStream.subscribe", req_id="s1")
        assert sub["status"] == 200 and sub["result"] == {"subscriptionId": 0}
        sim.control.set_price("BTCUSDT", 65000)
        placed = await rest(sim, api_key, signer, "POST", "/api/v3/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.001", "price": "64000.00"})
        assert placed.status_code == 200, placed.text
        (report,) = [f for f in await events(ws, 1)]
        assert report["event"]["e"] in ("executionReport", "outboundAccountPosition")
        # signed requests after logon need no apiKey/signature, only the timestamp
        acct = await request(ws, "account.status", {"timestamp": sim.clock.now_ms()},
                             req_id="a1")
        assert acct["status"] == 200 and "balances" in acct["result"]
        out = await request(ws, "session.logout", req_id="lo")
        assert out["result"]["apiKey"] is None and out["result"]["authorizedSince"] is None
        after = await request(ws, "account.status", {"timestamp": sim.clock.now_ms()},
                              req_id="a2")
        assert after["status"] in (400, 401)  # no key any more: the request must carry one
    finally:
        await ws.close()


@pytest.mark.parametrize("kind", ["rsa", "hmac"])
async def test_only_ed25519_may_log_on(sim: Simulator, kind: str) -> None:
    if kind == "rsa":
        api_key, signer = register(sim, "rsa", RSA), RsaSigner(RSA)
        params = sign_ws_params(signer, {"apiKey": api_key, "timestamp": sim.clock.now_ms()})
    else:
        api_key, secret = sim.control.create_key("main", "h", permissions=TRADER,
                                                 ip_whitelist=["127.0.0.2"])
        params = sign_ws_params(secret, {"apiKey": api_key, "timestamp": sim.clock.now_ms()})
    ws = await open_ws(sim)
    try:
        r = await request(ws, "session.logon", params)
        assert r["status"] == 400 and r["error"]["code"] == -1022
        sub = await request(ws, "userDataStream.subscribe.signature", params, req_id="s")
        assert sub["status"] == 200 and sub["result"] == {"subscriptionId": 0}
    finally:
        await ws.close()


async def test_a_wrong_ws_signature_of_each_asymmetric_type(sim: Simulator) -> None:
    ws = await open_ws(sim)
    try:
        for label, key, other in (("e", ED, RsaSigner(RSA)), ("r", RSA, Ed25519Signer(ED))):
            api_key = register(sim, label, key)
            params = sign_ws_params(other, {"apiKey": api_key, "timestamp": sim.clock.now_ms()})
            r = await request(ws, "userDataStream.subscribe.signature", params, req_id=label)
            assert r["status"] == 400 and r["error"]["code"] == -1022
            junk = {**params, "signature": base64.b64encode(b"x" * 64).decode()[:-1] + "!"}
            r = await request(ws, "userDataStream.subscribe.signature", junk, req_id=label + "j")
            assert r["error"]["code"] == -1022
    finally:
        await ws.close()


def test_the_simulator_refuses_to_register_what_binance_would_not() -> None:
    from monitor.world.sim.auth import public_key_type

    small = rsa.generate_private_key(65537, 1024)
    with pytest.raises(ValueError, match="2048/4096"):
        public_key_type(public_pem(small))
    assert public_key_type(public_pem(ED)) == "ed25519"
    assert public_key_type(public_pem(RSA)) == "rsa"
