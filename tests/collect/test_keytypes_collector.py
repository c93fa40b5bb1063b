"""Issue 18 acceptance: the real collector with an HMAC, an RSA and an Ed25519 monitor key
against the simulator over loopback: each polls, subscribes (the Ed25519 key through
`session.logon` + `userDataStream.subscribe`), stores the execution reports of a bot's orders,
and survives a dropped stream; a wrong key of each type is refused with Binance's -1022 and
the collector says so. No private key material reaches the store."""

from __future__ import annotations

import logging

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from pydantic import SecretBytes, SecretStr

from monitor.binance.rest import BinanceError, BinanceRest
from monitor.collect.collector import Collector
from monitor.config import KeyConfig, UseCase
from monitor.core.clock import SystemClock
from monitor.core.keys import KeyType
from monitor.store import SQLiteStore
from monitor.world.sim import Simulator
from tests.collect.simkit import COLLECTOR_IP, Bot, collector_config, until

BOT_IP = "127.0.0.6"


def key_pair(kind: str) -> tuple[bytes, str]:
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else \
        rsa.generate_private_key(65537, 2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, public.decode()


def monitor_key(kind: str, api_key: str, secret: str, pem: bytes | None) -> KeyConfig:
    if kind == "hmac":
        return KeyConfig(label="monitor", use_case=UseCase.MONITORING, api_key_env="KW_K",
                         api_secret_env="KW_S", api_key=SecretStr(api_key),
                         api_secret=SecretStr(secret))
    assert pem is not None
    return KeyConfig(label="monitor", use_case=UseCase.MONITORING, type=KeyType(kind),
                     api_key_env="KW_K", private_key_env="KW_PEM", api_key=SecretStr(api_key),
                     private_key_pem=SecretBytes(pem))


@pytest.mark.parametrize("kind", ["hmac", "rsa", "ed25519"])
async def test_the_collector_with_each_monitor_key_type(kind: str, tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)  # websockets logs whole frames at DEBUG: logon included
    async with Simulator(clock=SystemClock(), seed=1) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 100_000, "BTC": 1, "ETH": 10})
        pem, public = key_pair(kind) if kind != "hmac" else (None, None)
        mk, ms = c.create_key("main", "monitor", permissions={"enableReading": True},
                              ip_whitelist=[COLLECTOR_IP], public_key=public)
        bk, bs = c.create_key("main", "bot", permissions={
            "enableReading": True, "enableSpotAndMarginTrading": True}, ip_whitelist=[BOT_IP])
        # polls far apart: the poller's weight must not hold back the reconnect's own
        cfg = collector_config(sim, mk, ms or "unused", poll_interval_s=30.0)
        acct = cfg.accounts[0].model_copy(update={"keys": [monitor_key(kind, mk, ms, pem)]})
        # the default budget (1 % of the IP's 6000/min) holds a reconnect back for up to a
        # minute after the start-up backfill: give this short test room (as test_gap_after_cut)
        cfg = cfg.model_copy(update={"accounts": [acct], "binance": cfg.binance.model_copy(
            update={"weight_budget_pct": 25.0})})
        store = SQLiteStore(tmp_path / "kw.db")
        col = Collector(cfg, store, SystemClock(), local_host=COLLECTOR_IP)
        await col.start()
        bot = Bot(sim, bk, bs, BOT_IP)
        try:
            stream = col.streams["main"]
            assert await until(stream.connected.is_set)
            logged_on = [conn.session_key for conn in sim.exchange.hub.connections]
            assert logged_on == ([mk] if kind == "ed25519" else [None])
            for round_ in range(2):
                r = await bot.call("POST", "/api/v3/order", [
                    ("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"),
                    ("quantity", "0.01")])
                assert r.status_code == 200, r.text
                oid = r.json()["orderId"]
                assert await until(lambda oid=oid: any(
                    e.order_id == oid for e in store.load_events().itertuples()
                    if e.kind == "order")), f"{kind}: no execution report (round {round_})"
                if round_ == 0:  # the socket drops: the collector reconnects (and logs on)
                    stream.connected.clear()
                    c.drop_streams()
                    assert await until(stream.connected.is_set), (
                        stream.counters, [(x.session_key, x.subs) for x in
                                          sim.exchange.hub.connections])
            assert await until(lambda: (store.load_events()["source"] == "rest").any())
        finally:
            await bot.aclose()
            await col.stop()
        store.close()
        stored = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.is_file())
        secrets = [ms.encode()] if kind == "hmac" else [
            ln for ln in pem.splitlines()[1:-1] if len(ln) >= 40]  # type: ignore[union-attr]
        assert secrets and not any(s in stored for s in secrets)
        logged = caplog.text.encode()
        assert "session.logon" in caplog.text or kind != "ed25519"  # the frames were logged
        assert not any(s in logged for s in secrets) and b"PRIVATE KEY" not in logged


@pytest.mark.parametrize("kind", ["hmac", "rsa", "ed25519"])
async def test_a_wrong_key_of_each_type_is_refused_with_binance_code(kind: str, caplog) -> None:
    async with Simulator(clock=SystemClock(), seed=1) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 1})
        registered, _ = key_pair(kind) if kind != "hmac" else (None, None)
        _, public = key_pair(kind) if kind != "hmac" else (None, None)
        mk, ms = c.create_key("main", "monitor", permissions={"enableReading": True},
                              public_key=public)
        wrong = monitor_key(kind, mk, (ms or "x")[::-1] + "0", registered)
        signer = wrong.signer()
        assert signer is not None
        import httpx

        async with httpx.AsyncClient() as http:
            rest = BinanceRest(http, sim.rest_url, SecretStr(mk), signer, SystemClock(),
                               account="main", key_label="monitor", max_retries=0)
            await rest.sync_time()
            with caplog.at_level(logging.WARNING), pytest.raises(BinanceError) as err:
                await rest.get("/api/v3/account", weight=20)
        assert err.value.code == -1022
        print(str(err.value))
        assert "-1022" in str(err.value)


async def test_an_ed25519_session_the_server_lost_is_logged_on_again(tmp_path) -> None:
    """The server forgets the logon (its session.status answers apiKey null): the probe sees
    it, the collector reconnects and logs on again, and reports keep arriving."""
    async with Simulator(clock=SystemClock(), seed=1) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 100_000, "BTC": 1})
        pem, public = key_pair("ed25519")
        mk, _ = c.create_key("main", "monitor", permissions={"enableReading": True},
                             ip_whitelist=[COLLECTOR_IP], public_key=public)
        bk, bs = c.create_key("main", "bot", permissions={
            "enableReading": True, "enableSpotAndMarginTrading": True}, ip_whitelist=[BOT_IP])
        cfg = collector_config(sim, mk, "unused", poll_interval_s=60.0)
        acct = cfg.accounts[0].model_copy(update={"keys": [monitor_key("ed25519", mk, "", pem)]})
        store = SQLiteStore(tmp_path / "kw.db")
        cfg = cfg.model_copy(update={"accounts": [acct], "binance": cfg.binance.model_copy(
            update={"weight_budget_pct": 25.0})})
        col = Collector(cfg, store, SystemClock(),
                        local_host=COLLECTOR_IP,
                        stream_options={"probe_after_s": 0.5, "dead_after_s": 2.0})
        await col.start()
        bot = Bot(sim, bk, bs, BOT_IP)
        try:
            stream = col.streams["main"]
            assert await until(stream.connected.is_set)
            (conn,) = sim.exchange.hub.connections
            conn.session_key = conn.authorized_since = None  # the server lost the session
            assert await until(lambda: any(
                x is not conn and x.session_key == mk for x in sim.exchange.hub.connections))
            r = await bot.call("POST", "/api/v3/order", [
                ("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.01")])
            oid = r.json()["orderId"]
            assert await until(lambda: any(e.kind == "order" and e.order_id == oid
                                           for e in store.load_events().itertuples()))
        finally:
            await bot.aclose()
            await col.stop()


async def test_posture_polls_a_bot_key_of_each_asymmetric_type(tmp_path) -> None:
    """The collector reads apiRestrictions with every key whose private key it was given, of
    any type: the bot keys' key_config events arrive under their labels."""
    async with Simulator(clock=SystemClock(), seed=1) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 1000})
        mk, ms = c.create_key("main", "monitor", permissions={"enableReading": True},
                              ip_whitelist=[COLLECTOR_IP])
        keys = [monitor_key("hmac", mk, ms, None)]
        for kind in ("ed25519", "rsa"):
            pem, public = key_pair(kind)
            ak, _ = c.create_key("main", f"bot-{kind}", permissions={
                "enableReading": True, "enableSpotAndMarginTrading": True},
                ip_whitelist=[COLLECTOR_IP], public_key=public)
            keys.append(KeyConfig(label=f"bot-{kind}", use_case=UseCase.SPOT_BOT,
                                  type=KeyType(kind), api_key_env="KW_B", private_key_env="KW_P",
                                  api_key=SecretStr(ak), private_key_pem=SecretBytes(pem)))
        cfg = collector_config(sim, mk, ms, poll_interval_s=30.0)
        cfg = cfg.model_copy(update={
            "accounts": [cfg.accounts[0].model_copy(update={"keys": keys})],
            "binance": cfg.binance.model_copy(update={"weight_budget_pct": 25.0})})
        store = SQLiteStore(tmp_path / "kw.db")
        col = Collector(cfg, store, SystemClock(), local_host=COLLECTOR_IP)
        await col.start()
        try:
            assert await until(lambda: {"bot-ed25519", "bot-rsa"} <= set(
                store.load_events().query("kind == 'key_config'")["key"].dropna()), 15)
        finally:
            await col.stop()
