"""freqtrade in LIVE mode (dry_run false) against the simulator, REST through the tap.

`python -m bench.freqtrade_live` (or `make freqtrade-live`): starts the simulator and a tap
in this process, writes a freqtrade config and a one-trade strategy into a private temp dir,
and runs `freqtrade trade` from `.venv-freqtrade` (`make freqtrade-venv`) as a subprocess at
real speed until the simulator's books hold a FILLED buy and a later FILLED sell placed by
freqtrade's key; then stops it with SIGINT, as a user would, and reads its sqlite db.

Where each call goes: every REST base URL ccxt's binance knows (`urls.api.public`, `private`,
`sapi`, `fapiPublic`, ... read from the installed ccxt, so a ccxt upgrade cannot add one that
slips past) is rewritten to the tap with its path kept; ccxt.pro's `urls.api.ws.*` point at
the simulator's market-data streams (`Simulator.stream_url`) and `urls.api.ws.ws-api.*` at its
WebSocket API. The tap records each call; a thin wrapper around it also keeps the request
and body of every answer that was not a success, which is the list of what the simulator
still answers wrongly when the run cannot complete.

Report: calls through the tap by method and path, stream evidence (the simulator's stream
connections and kline subscriptions, and whether freqtrade kept re-polling klines over REST),
the trade (orders in the books, the db row), failures, and elapsed wall time.
`run(say)` returns `bench.common.Row`s, so bench.run can list it as a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import uvicorn

from bench.common import Row
from monitor.collect.tap import Tap, fingerprint
from monitor.core.clock import SystemClock
from monitor.core.events import Event
from monitor.world.sim import Simulator, SimulatorThread

ROOT = Path(__file__).resolve().parent.parent
FT_VENV = ROOT / ".venv-freqtrade"
ACCOUNT, LABEL = "ft", "freqtrade"
PAIR, SYMBOL = "BTC/USDT", "BTCUSDT"
REDACT = {"signature"}

STRATEGY = '''
"""Buys at once when flat, sells after two minutes whatever the price (ROI -1 at 2 min):
two candle closes, so the second candle must come from the stream, not a REST poll."""
from pandas import DataFrame

from freqtrade.strategy import IStrategy


class KeywatchOneTrade(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1m"
    minimal_roi = {"0": 0.01, "2": -1}
    stoploss = -0.05
    process_only_new_candles = True
    startup_candle_count = 0
    use_exit_signal = False

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["exit_long"] = 0
        return dataframe
'''


# -- the tap, wrapped to keep what went wrong ------------------------------------------------
class Failures:
    """Each answer that was not a success: method, path, params, status, body (deduplicated)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str, int, str], dict[str, Any]] = {}
        self.by_path: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self.lock = threading.Lock()

    def add(self, method: str, path: str, query: bytes, body: bytes, status: int,
            answer: bytes) -> None:
        params = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
        params.update(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
        params = {k: ("<redacted>" if k in REDACT else v) for k, v in params.items()
                  if k not in ("timestamp", "recvWindow")}
        text = answer.decode("utf-8", "replace")[:300]
        with self.lock:
            self.by_path[(method, path, status)] += 1
            key = (method, path, status, text)
            if key not in self.seen:
                self.seen[key] = {"method": method, "path": path, "params": params,
                                  "status": status, "body": text, "count": 0}
            self.seen[key]["count"] += 1

    def rows(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(v) for v in self.seen.values()]


def _failed(status: int, answer: bytes) -> bool:
    if status >= 400:
        return True
    if answer[:1] == b"{" and b'"code"' in answer[:200]:
        with contextlib.suppress(ValueError):
            code = json.loads(answer).get("code")
            return isinstance(code, int) and code < 0
    return False


class Recording:
    """ASGI wrapper around the tap: passes everything through, keeps failed answers."""

    def __init__(self, app: Tap, failures: Failures) -> None:
        self.app, self.failures = app, failures

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = bytearray()
        answer = bytearray()
        status = 0

        async def rx() -> Any:
            msg = await receive()
            body.extend(msg.get("body", b""))
            return msg

        async def tx(msg: dict[str, Any]) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            elif msg["type"] == "http.response.body" and len(answer) < 4096:
                answer.extend(msg.get("body", b""))
            await send(msg)

        await self.app(scope, rx, tx)
        if _failed(status, bytes(answer)):
            self.failures.add(scope["method"], scope["path"], scope.get("query_string", b""),
                              bytes(body), status, bytes(answer))


class TapServer:
    """The tap on uvicorn in a thread of its own (as tests/collect/test_tap.py runs it)."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", server_header=False,
            date_header=False, lifespan="off", access_log=False))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()),
                                       name="keywatch-tap", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(1000):
            if self.server.started:
                break
            time.sleep(0.01)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


# -- freqtrade's config ----------------------------------------------------------------------
def ccxt_urls() -> dict[str, Any]:
    """`urls['api']` of the installed ccxt's binance (REST) and ccxt.pro's binance (ws)."""
    code = ("import json, ccxt, ccxt.pro; print(json.dumps({'rest': ccxt.binance().urls['api'],"
            " 'ws': ccxt.pro.binance().urls['api']['ws']}))")
    out = subprocess.run([str(FT_VENV / "bin" / "python"), "-c", code], check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


def stream_base(sim: Simulator) -> str:
    """Where ccxt.pro's `urls.api.ws.spot` points: the simulator's raw `/ws` path.

    ccxt.pro's binance tells a spot frame from a futures one by the connection's URL alone
    (`is_spot_url`: '/stream' in it, true of stream.binance.com, false of fstream's /ws
    paths), and BTCUSDT is both a spot and a linear-swap id. A loopback URL without
    '/stream' makes every kline resolve to BTC/USDT:USDT, so freqtrade's spot watch never
    returns and it polls klines over REST. Hence `/ws/stream`: ccxt appends `/<slot>`
    (`/ws/stream/0`), and the simulator, like Binance, accepts any `/ws/...` and waits for
    SUBSCRIBE."""
    url = (getattr(sim, "stream_url", "") or f"ws://{sim.host}:{sim.port}").rstrip("/")
    if url.endswith("/ws"):
        url = url[:-3]
    return url + "/ws/stream"


def url_overrides(urls: dict[str, Any], tap_url: str, ws_url: str, ws_api_url: str
                  ) -> tuple[dict[str, str], dict[str, Any]]:
    """(REST urls -> the tap, path kept; ws urls -> the simulator's streams / WS API)."""
    rest = {}
    for name, url in urls["rest"].items():
        if isinstance(url, str):
            rest[name] = tap_url + urlsplit(url).path
    ws: dict[str, Any] = {}
    for name, url in urls["ws"].items():
        if name == "ws-api" and isinstance(url, dict):
            ws[name] = {k: ws_api_url for k in url}
        elif isinstance(url, str):
            ws[name] = ws_url
    return rest, ws


# --lenient: ccxt options that skip the start-up calls a stock binance makes beyond spot markets
# (coin config, margin pairs, futures exchangeInfo); a diagnostic, to see what fails next.
LENIENT = {"fetchCurrencies": False, "fetchMargins": False, "fetchMarkets": {"types": ["spot"]}}
FATAL = ("therefore cannot start", "Fatal exception", "Cleaning up modules")


def write_config(tmp: Path, tap_url: str, rest: dict[str, str], ws: dict[str, Any],
                 api_key: str, secret: str, enable_ws: bool, lenient: bool = False,
                 orders: str = "market", stoploss_on_exchange: bool = False) -> list[Path]:
    options = {"options": LENIENT} if lenient else {}
    if orders == "market":  # fills at once: the shortest honest round trip
        pricing = {"price_side": "other", "use_order_book": False}
    else:  # freqtrade's sample config: limit orders at the book's own side, they rest
        pricing = {"price_side": "same", "use_order_book": True, "order_book_top": 1}
    (tmp / "user_data").mkdir()
    strategies = tmp / "strategies"
    strategies.mkdir()
    (strategies / "keywatch_one_trade.py").write_text(textwrap.dedent(STRATEGY))
    config = {
        "bot_name": "keywatch-freqtrade-live",
        "dry_run": False,
        "trading_mode": "spot",
        "margin_mode": "",
        "max_open_trades": 1,
        "stake_currency": "USDT",
        "stake_amount": 50,
        "tradable_balance_ratio": 0.99,
        "timeframe": "1m",
        "initial_state": "running",
        "cancel_open_orders_on_exit": False,
        "unfilledtimeout": {"entry": 2, "exit": 2, "unit": "minutes"},
        "entry_pricing": {**pricing, "price_last_balance": 0.0,
                          "check_depth_of_market": {"enabled": False}},
        "exit_pricing": pricing,
        "order_types": {"entry": orders, "exit": orders, "stoploss": "market",
                        "stoploss_on_exchange": stoploss_on_exchange},
        "exchange": {
            "name": "binance",
            "enable_ws": enable_ws, "lenient": lenient, "order_type": orders,
            "stoploss_on_exchange": stoploss_on_exchange,
            "ccxt_config": {"urls": {"api": rest}, **options},
            "ccxt_async_config": {"urls": {"api": {**rest, "ws": ws}}},
            "pair_whitelist": [PAIR],
            "pair_blacklist": [],
        },
        "pairlists": [{"method": "StaticPairList"}],
        "internals": {"process_throttle_secs": 2, "heartbeat_interval": 60},
        "strategy": "KeywatchOneTrade",
        "strategy_path": str(strategies),
        "db_url": f"sqlite:///{tmp / 'trades.sqlite'}",
        "user_data_dir": str(tmp / "user_data"),
    }
    main = tmp / "config.json"
    main.write_text(json.dumps(config, indent=2))
    keys = tmp / "keys.json"  # the secret lives only here, 0600 in a 0700 dir, deleted at exit
    fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"exchange": {"key": api_key, "secret": secret}}, fh)
    return [main, keys]


# -- the run -----------------------------------------------------------------------------------
def _orders(thread: SimulatorThread) -> list[dict[str, Any]]:
    def read() -> list[dict[str, Any]]:
        assert thread.sim is not None
        acct = thread.sim.exchange.books.accounts[ACCOUNT]
        return [{"orderId": o.order_id, "side": o.side, "type": o.type, "status": o.status,
                 "qty": str(o.executed_qty), "quote": str(o.cum_quote), "time_ms": o.time_ms,
                 "label": o.api_key_label}
                for o in sorted(acct.orders.values(), key=lambda o: o.order_id)]
    return thread.call(read)


def _round_trip(orders: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    mine = [o for o in orders if o["label"] == LABEL and o["status"] == "FILLED"]
    for buy in (o for o in mine if o["side"] == "BUY"):
        for sell in mine:
            if sell["side"] == "SELL" and sell["orderId"] > buy["orderId"]:
                return buy, sell
    return None


class StreamWatch:
    """The simulator's side of the market-data streams, sampled while freqtrade runs: its
    connections, their subscriptions, how often a kline stream advanced (a push) and which
    candles it opened."""

    def __init__(self) -> None:
        self.max_connections = 0
        self.subscriptions: set[str] = set()
        self.pushes: collections.Counter[str] = collections.Counter()
        self.candles: dict[str, set[int]] = collections.defaultdict(set)
        self._due: dict[tuple[int, str], int] = {}

    def sample(self, thread: SimulatorThread) -> None:
        def read() -> list[tuple[int, str, int, int | None]]:
            assert thread.sim is not None
            hub = getattr(thread.sim, "streams", None)
            return [(id(c), name, st.next_due, st.kline_open)
                    for c in list(getattr(hub, "connections", []))
                    for name, st in list(c.streams.items())]
        rows = thread.call(read)
        self.max_connections = max(self.max_connections, len({r[0] for r in rows}))
        for conn, name, due, kline_open in rows:
            self.subscriptions.add(name)
            if self._due.get((conn, name), due) != due:
                self.pushes[name] += 1
            self._due[(conn, name)] = due
            if kline_open is not None:
                self.candles[name].add(kline_open)

    def facts(self) -> dict[str, Any]:
        return {"max_connections": self.max_connections,
                "subscriptions": sorted(self.subscriptions),
                "pushes_seen": dict(self.pushes),
                "candles_opened": {k: len(v) for k, v in self.candles.items()}}


def _db_trades(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        rows = con.execute("SELECT id, pair, is_open, open_date, close_date, open_rate, "
                           "close_rate, amount, close_profit, exit_reason FROM trades").fetchall()
        return [dict(r) for r in rows]
    except sqlite3.Error:
        return []
    finally:
        con.close()


def _log_problems(log: Path, limit: int = 40) -> list[str]:
    if not log.exists():
        return []
    seen: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if any(f" - {lv} - " in line for lv in ("WARNING", "ERROR", "CRITICAL")):
            text = line.split(" - ", 3)[-1][:400]
            seen[text] = seen.get(text, 0) + 1
    return [f"{n}x {t}" for t, n in list(seen.items())[:limit]]


def _ccxt_errors(log: Path) -> dict[str, int]:
    """ccxt's exceptions in freqtrade's log (the ws side: handshake status and url), counted."""
    seen: collections.Counter[str] = collections.Counter()
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("ccxt.base.errors."):
                seen[line.removeprefix("ccxt.base.errors.")[:300]] += 1
    return dict(seen)


def _log_count(log: Path, text: str) -> int:
    return log.read_text(errors="replace").count(text) if log.exists() else 0


def _stop(proc: subprocess.Popen[bytes], say: Callable[[str], None], grace_s: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # freqtrade's own clean shutdown
        try:
            return proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            say(f"freqtrade still running {grace_s:.0f} s after SIGINT; terminating")
            proc.terminate()
            try:
                return proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait()
    return proc.returncode


def _fatal(log: Path) -> str | None:
    """freqtrade's own word that it gave up (it may then hang on its ws thread at exit)."""
    if not log.exists():
        return None
    text = log.read_text(errors="replace")
    return next((m for m in FATAL if m in text), None)


def live(timeout_s: float = 300.0, enable_ws: bool = True, keep: Path | None = None,
         say: Callable[[str], None] = print, lenient: bool = False,
         orders: str = "market", stoploss_on_exchange: bool = False) -> dict[str, Any]:
    freqtrade = FT_VENV / "bin" / "freqtrade"
    if not freqtrade.exists():
        raise SystemExit(f"{freqtrade} missing: run `make freqtrade-venv` first")
    t0 = time.perf_counter()
    events: list[Event] = []
    events_lock = threading.Lock()
    failures = Failures()

    def offer(evs: list[Event]) -> int:
        with events_lock:
            events.extend(evs)
        return len(evs)

    urls = ccxt_urls()
    result: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        thread = SimulatorThread(seed=7)
        sim = stack.enter_context(thread)
        thread.call(sim.control.create_account, ACCOUNT, {"USDT": 1000.0})
        api_key, secret = thread.call(
            sim.control.create_key, ACCOUNT, LABEL,
            permissions={"enableReading": True, "enableSpotAndMarginTrading": True})
        tap = Tap(sim.rest_url, SystemClock(), offer,
                  keys={fingerprint(api_key): (ACCOUNT, LABEL)}, default_account=ACCOUNT)
        tap_url = stack.enter_context(TapServer(Recording(tap, failures)))
        ws_url = stream_base(sim)
        rest, ws = url_overrides(urls, tap_url, ws_url, sim.ws_api_url)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kw-freqtrade-")))
        os.chmod(tmp, 0o700)
        configs = write_config(tmp, tap_url, rest, ws, api_key, secret, enable_ws, lenient,
                               orders, stoploss_on_exchange)
        log = tmp / "freqtrade.log"
        say(f"simulator {sim.rest_url}, tap {tap_url}, streams {ws_url}"
            + ("" if getattr(sim, "stream_url", None) else " (the simulator has no stream_url)"))
        cmd = [str(freqtrade), "trade", "--logfile", str(log)]
        for c in configs:
            cmd += ["--config", str(c)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FREQTRADE__")}
        out = open(tmp / "stdout.txt", "wb")
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)
        say(f"freqtrade {proc.pid} started; waiting up to {timeout_s:.0f} s for a round trip")
        trip = None
        opened_s = None
        fatal = None
        last_note = 0.0
        watch = StreamWatch()
        try:
            while time.perf_counter() - started < timeout_s:
                if proc.poll() is not None:
                    say(f"freqtrade exited early with {proc.returncode}")
                    break
                if (fatal := _fatal(log)) is not None:
                    say(f"freqtrade gave up: {fatal!r}")
                    break
                orders = _orders(thread)
                watch.sample(thread)
                if opened_s is None and any(o["label"] == LABEL and o["side"] == "BUY"
                                            and o["status"] == "FILLED" for o in orders):
                    opened_s = time.perf_counter() - started
                    say(f"buy filled after {opened_s:.0f} s")
                trip = _round_trip(orders)
                if trip:
                    say(f"sell filled after {time.perf_counter() - started:.0f} s")
                    time.sleep(3)  # let freqtrade record the exit before it is stopped
                    break
                if time.perf_counter() - last_note > 30:
                    last_note = time.perf_counter()
                    say(f"  {time.perf_counter() - started:.0f} s: {len(events)} tap calls, "
                        f"{len(orders)} orders, {sum(failures.by_path.values())} failed")
                time.sleep(2)
        finally:
            # after a fatal start-up error freqtrade hangs on its ws thread at exit
            rc = _stop(proc, say, 10 if fatal else 60)
            out.close()
        trade_s = time.perf_counter() - started
        with events_lock:
            calls = collections.Counter(f"{e.method} {e.endpoint} {e.status}" for e in events)
        klines = [e for e in events if e.endpoint == "/api/v3/klines"]
        result = {
            "round_trip": bool(trip),
            "buy": trip[0] if trip else None, "sell": trip[1] if trip else None,
            "orders": _orders(thread),
            "db_trades": _db_trades(tmp / "trades.sqlite"),
            "tap_calls": dict(sorted(calls.items())),
            "tap_calls_total": sum(calls.values()),
            "rest_klines_calls": len(klines),
            # REST klines after the first candle freqtrade saw close: 0 when the stream's
            # candles were used (freqtrade polls REST again whenever the watch is unusable)
            "rest_klines_after_first_candle": sum(
                1 for e in klines if e.ts >= (klines[0].ts // 60_000 + 2) * 60_000
            ) if klines else 0,
            "streams": watch.facts(),
            "failures": failures.rows(),
            "freqtrade_log_problems": _log_problems(log),
            "ccxt_errors": _ccxt_errors(log),
            # freqtrade's INFO line each time the ws candles were not usable and it polled REST
            "ws_fallbacks_to_rest": _log_count(log, "Couldn't reuse watch"),
            "freqtrade_rc": rc,
            "seconds_to_buy": opened_s,
            "seconds_freqtrade": trade_s,
            "seconds_total": time.perf_counter() - t0,
            "tap_counters": dict(tap.counters),
            "enable_ws": enable_ws, "lenient": lenient, "order_type": orders,
            "stoploss_on_exchange": stoploss_on_exchange,
            "config_urls": {"rest": rest, "ws": ws},
        }
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for name in ("freqtrade.log", "stdout.txt", "config.json", "trades.sqlite"):
                if (tmp / name).exists():
                    (keep / name).write_bytes((tmp / name).read_bytes())
    return result


def report(r: dict[str, Any], say: Callable[[str], None] = print) -> None:
    say(f"round trip: {'YES' if r['round_trip'] else 'no'}   freqtrade rc {r['freqtrade_rc']}"
        f"   {r['seconds_freqtrade']:.0f} s freqtrade, {r['seconds_total']:.0f} s total")
    if r["round_trip"]:
        b, s = r["buy"], r["sell"]
        say(f"  buy  #{b['orderId']} {b['type']} {b['qty']} BTC for {b['quote']} USDT")
        say(f"  sell #{s['orderId']} {s['type']} {s['qty']} BTC for {s['quote']} USDT")
    for t in r["db_trades"]:
        say(f"  db trade {t}")
    say(f"tap calls ({r['tap_calls_total']}):")
    for k, n in r["tap_calls"].items():
        say(f"  {n:5d}  {k}")
    say(f"REST klines calls {r['rest_klines_calls']} ({r['rest_klines_after_first_candle']} after "
        f"the first closed candle); {r['ws_fallbacks_to_rest']} ws->REST fallbacks")
    say(f"simulator streams: {r['streams']}")
    if r["ccxt_errors"]:
        say("ccxt errors in freqtrade's log:")
        for line, n in r["ccxt_errors"].items():
            say(f"  {n}x {line}")
    if r["failures"]:
        say("answers that were not a success:")
        for f in r["failures"]:
            say(f"  {f['count']}x {f['method']} {f['path']} {json.dumps(f['params'])} -> "
                f"{f['status']} {f['body']}")
    if r["freqtrade_log_problems"]:
        say("freqtrade's warnings and errors:")
        for line in r["freqtrade_log_problems"]:
            say(f"  {line}")


def run(say: Callable[[str], None] = print) -> list[Row]:
    """One figure for bench.run: a live round trip, its wall time, and the failed answers."""
    r = live(say=say)
    report(r, say)
    note = "; ".join(f"{f['method']} {f['path']} -> {f['status']}" for f in r["failures"])[:500]
    return [
        Row("freqtrade live round trip", float(r["round_trip"]), "trade", None, "",
            goal="1 opened+closed", met=r["round_trip"], note=note),
        Row("freqtrade REST klines after 1st candle", float(r["rest_klines_after_first_candle"]),
            "calls", None, "", goal="0 (candles over the stream)", met=streamed(r),
            note=f"ws->REST fallbacks {r['ws_fallbacks_to_rest']}; streams {r['streams']}"),
        Row("freqtrade live wall time", r["seconds_total"], "s", None, "",
            note=f"{r['tap_calls_total']} REST calls via the tap"),
    ]


def streamed(r: dict[str, Any]) -> bool:
    """freqtrade's candles after its first REST history came from the simulator's stream."""
    subs = r["streams"].get("subscriptions", [])
    return (r["rest_klines_after_first_candle"] == 0 and r["ws_fallbacks_to_rest"] == 0
            and any("@kline_" in s for s in subs))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--timeout", type=float, default=300.0, help="wall seconds for the trade")
    p.add_argument("--no-ws", action="store_true", help="freqtrade's enable_ws false (REST)")
    p.add_argument("--lenient", action="store_true",
                   help="diagnostic: ccxt skips coin config, margin pairs, futures markets")
    p.add_argument("--orders", choices=("market", "limit"), default="market",
                   help="limit: resting limit orders priced from the order book")
    p.add_argument("--stoploss-on-exchange", action="store_true",
                   help="a STOP_LOSS_LIMIT rests on the exchange while the trade is open")
    p.add_argument("--keep", type=Path, help="copy freqtrade's log, config and db here")
    p.add_argument("--json", type=Path, help="write the full result here")
    args = p.parse_args(argv)
    r = live(args.timeout, not args.no_ws, args.keep, lenient=args.lenient, orders=args.orders,
             stoploss_on_exchange=args.stoploss_on_exchange)
    report(r)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2, default=str) + "\n")
    return 0 if r["round_trip"] and (args.no_ws or streamed(r)) else 1


if __name__ == "__main__":
    sys.exit(main())
