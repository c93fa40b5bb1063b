"""Figure 8: the service under a hostile upstream, valid traffic mixed with every bad input.

Issue 15's acceptance: every valid fact stored exactly once, every bad input counted, RSS under
200 MiB throughout, the tap answering throughout, and the tap's p99 during the soak next to
its p99 without hostile traffic. Three processes on one clock (speed 1: the bots sign with it):

- `bench.hostile_world`: the simulated exchange behind two `HostileUpstream`s, one for the
  service's poller and stream, one as the tap's upstream;
- the real service (`bench.svcproc`: TOML config, `Service` + `Collector` with the in-process
  tap, the user-data stream, the poller every 2 s and a log tailer, shipped rules and model,
  /metrics on a free port);
- this process: a trading bot and a hostile bot through the tap, a bot writing an access log,
  the tap probe (every 50 ms), the RSS sampler (every 0.5 s, /proc) and the verdict.

Phases: `clean` (valid traffic only: the baseline p99, measured in the same run), `hostile`
(the same valid traffic plus: every REST fault the upstream can give, cycled into the poller's
calls; user-data floods of valid facts, malformed and oversized frames and dropped
connections; CONNECT, Upgrade, hop-by-hop headers, trickled heads and unfinished bodies at the
tap, 300 idle connections held open, spoiled answers (deep, junk gzip, non-object, 64 MiB,
trickled, dropped, 429/418) to tapped calls and an order answer with every integer past int64;
bad, over-long, split and out-of-range log lines and a 20,000-line burst), then `after` (valid
traffic stops, the stream and tailer catch up; then up to `CATCH_UP_S` more until every valid
fact is stored, see `_catch_up`: late is not lost, and the note says how late). The hostile
floods' orders exist only as frames (no order on the exchange, so no backfill can bring one
back), so the soak must not
destroy frames at a cut and count them as lost by the service: a drop waits until the last
flood is stored, and after either cut the next flood waits until the cut socket is gone
(`_drained`, `cut_gone`). The exchange's own orders cross every gap untouched and must come
back by backfill. `judge` (bench/soakverdict.py) decides; a failed verdict raises
`FigureFailed` with the rows, so `bench.run` reports FAIL and exits 1.
Run alone: `python -m bench.hostile_soak [--hostile-s 60]` (exit 1 on a failed verdict).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bench.common import FigureFailed, Row, RssSampler
from bench.hostile_traffic import UPGRADES, HostileBot, LogBot, Tally, TradingBot
from bench.soak import _end, _line, _send, emitted_ids
from bench.soakverdict import BadCheck, FactCheck, SoakResult, judge
from bench.soakwatch import TapProbe, Timeline, scrape, total
from bench.world import HOST_IP, REPO, KeySpec, SimProcess, write_config
from monitor.core.bounded import OUT_OF_RANGE
from monitor.core.clock import AcceleratedClock
from monitor.store import SQLiteStore
from monitor.world.demo.receiver import AlertReceiver

# every fault the REST upstream can give, cycled into the service's calls one a second: the
# next call (any path), or the next to a path whose answer must be an object, so a list, a
# number or a string is one wrong_shape each (a list is a valid answer to allOrders)
OBJECT_PATH = "/sapi/v1/account/apiRestrictions"  # polled every round, answers an object
COUNTS_PATH = "/api/v3/rateLimit/order"  # every round; integers (counts) in every element
# (a trickle is first and only once: its 30 s deadline must pass before the soak ends)
REST_FAULTS: tuple[tuple[str, str | None], ...] = (
    ("trickle", None), ("deep", None), ("junk_gzip", None), ("list", OBJECT_PATH),
    ("number", OBJECT_PATH), ("string", OBJECT_PATH), ("bigint", COUNTS_PATH), ("429", None),
    ("418", None), ("drop", None), ("huge", None))
# REST fault -> (the service's count of it, where, counted may exceed sent)
REST_COUNTED: dict[str, tuple[str, bool]] = {
    "deep": ("not_json", False), "junk_gzip": ("undecodable", False),
    "list": ("wrong_shape", False), "number": ("wrong_shape", False),
    "string": ("wrong_shape", False), "huge": ("too_large", False),
    "trickle": ("deadline", False), "bigint": ("out_of_range", True),
    "429": ("rate_limited", False), "418": ("rate_limited", False), "drop": ("retries", True)}
# spoiled answers to the hostile bot's tapped calls (path-targeted on the tap's upstream)
TAP_FAULTS = ("deep", "junk_gzip", "list", "number", "string", "429", "418", "drop", "huge",
              "trickle")
SPOILED_PATH = "/api/v3/ticker/price"
WEIGHT_PCT = 50.0  # of the host's 6,000/min: a poll round (~70) every 2 s fits
CATCH_UP_S = 90.0  # a minute's /api pause after a tapped 429/418, then reconnect + backfill


@dataclass
class _Urls:
    rest_url: str
    ws_api_url: str
    clock: AcceleratedClock


class _World:
    """The world process's command pipe: one command, one answer line, one at a time."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc, self.lock = proc, asyncio.Lock()

    async def __call__(self, **cmd: Any) -> dict[str, Any]:
        async with self.lock:
            await _send(self.proc, cmd)
            ans = await _line(self.proc, "hostile world")
        if "error" in ans:
            raise RuntimeError(f"hostile world: {cmd['op']}: {ans['error']}")
        return ans


async def _every(stop: asyncio.Event, period_s: float, step: Callable[[int], Any]) -> None:
    """Run `step(i)` every `period_s` until `stop`; a step in flight finishes (tallies stay
    true to what was sent)."""
    i = 0
    while not stop.is_set():
        await step(i)
        i += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period_s)


async def _drained(db: Path, ids: list[str], timeout_s: float = 30.0) -> bool:
    """Wait until the service's store holds every id in `ids` (read-only, beside the writer).

    Why, before a dropped connection: a TCP cut loses whatever the client had not read yet,
    which under backpressure is seconds of flood. Binance would have those orders in allOrders
    and the gap's backfill would bring them; the hostile flood's orders exist nowhere (made up
    by the upstream), so the soak must not count frames it destroyed itself as lost by us."""
    want = set(ids)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while want:
        with contextlib.suppress(sqlite3.Error):  # off the loop: the tap probe runs here
            want = await asyncio.to_thread(_missing, db, want)
        if not want or loop.time() >= deadline:
            break
        await asyncio.sleep(0.25)
    return not want


def _missing(db: Path, want: set[str]) -> set[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
    try:
        ask, left = sorted(want), set(want)
        for k in range(0, len(ask), 500):
            chunk = ask[k:k + 500]
            left -= {r[0] for r in con.execute(
                f"SELECT event_id FROM events WHERE event_id IN ({','.join('?' * len(chunk))})",
                chunk)}
        return left
    finally:
        con.close()


async def _hostile(world: _World, tap: HostileBot, logs: LogBot, tally: Tally,
                   stop: asyncio.Event, burst: int, flood: int, tl: Timeline, db: Path) -> None:
    async def rest(i: int) -> None:
        fault, path = REST_FAULTS[0 if i == 0 else 1 + (i - 1) % (len(REST_FAULTS) - 1)]
        tl.mark(f"rest:{fault}")
        await world(op="inject", up="svc", fault=fault, path=path)

    async def tapped(i: int) -> None:
        await tap.refused()
        await tap.hop_by_hop()
        fault = TAP_FAULTS[i % len(TAP_FAULTS)]
        async with tl.span(f"tap:{fault}"):
            await world(op="inject", up="tap", fault=fault, path=SPOILED_PATH)
            await tap.spoiled(f"{SPOILED_PATH}?symbol=BTCUSDT")
        if i % 3 == 0:  # the bot's next order call is answered with every integer past int64
            await world(op="inject", up="tap", fault="bigint", path="/api/v3/order")

    async def slow(_: int) -> None:
        async with tl.span("tap:slow heads"):
            await tap.slow_heads()

    async def frames(i: int) -> None:
        async with tl.span("ws:flood"):  # a flood of real facts, full speed
            sent = await world(op="frames", fault="valid", n=flood)
        await asyncio.sleep(2)
        tl.mark("ws:malformed")
        await world(op="frames", fault="malformed", n=6)
        await asyncio.sleep(1)
        if i % 2:  # a drop loses what is unread: first let the flood be read (see _drained)
            async with tl.span("ws:drain before drop"):
                if not await _drained(db, sent.get("ids", [])):
                    tl.mark("ws:flood not stored in 30 s; dropping anyway")
        # an oversized frame is read in order, after the flood; then wait until the cut socket
        # is gone, so no later flood is written onto it (bench.hostile_world.cut)
        tl.mark("ws:oversized" if i % 2 == 0 else "ws:drop")
        await world(op="frames", fault="oversized" if i % 2 == 0 else "drop", n=1)
        async with tl.span("ws:cut socket gone"):
            for _ in range(300):  # at most 30 s
                if (await world(op="cut_gone"))["gone"]:
                    break
                await asyncio.sleep(0.1)
        await asyncio.sleep(4)  # reconnect and backfill

    async def lines(i: int) -> None:
        async with tl.span("log:bad" + (f"+burst {burst}" if i == 1 else "")):
            await logs.bad_round(burst if i == 1 else 0)

    tl.mark("tap:300 idle")
    await tap.open_idle(300)
    try:
        await asyncio.gather(_every(stop, 1.0, rest), _every(stop, 2.0, tapped),
                             _every(stop, 20.0, slow), _every(stop, 1.0, frames),
                             _every(stop, 8.0, lines))
    finally:
        tap.close_idle()


async def _catch_up(world: _World, db: Path, tl: Timeline) -> tuple[int, float | None]:
    """Wait (at most `CATCH_UP_S`) until the store holds every valid fact sent; return how
    many it lacked when the `after` phase ended and how long it took to hold them all (None:
    not within the bound; the verdict then says what is missing).

    Why: a 429 or 418 the tap passes on to a bot means the address is over Binance's per-IP
    weight, so the collector stops its own /api calls until that minute ends
    (`SharedWeight.observe`), and the user-data stream's reconnect and the gap's backfill
    spend from the same pool. A stream cut in such a minute is filled only after it, up to
    60 s later; read before that, the store lacks the exchange's orders of the gap (44-50
    "missing" order facts in some runs, depending on where the hostile bot's 429 fell in the
    minute). Late is not lost: the verdict is taken once the service could have caught up."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with tl.span("after:catch-up"):
        rep = (await world(op="report"))["report"]
        want, _ = emitted_ids({"main": rep["order_events"]})
        ids = want | set(rep["valid_ids"])
        late = len(await asyncio.to_thread(_missing, db, ids))
        done = await _drained(db, sorted(ids), timeout_s=CATCH_UP_S)
    return late, (loop.time() - started if done else None)


def _stored(db: Path) -> dict[str, Any]:
    store = SQLiteStore(db)
    try:
        df = store.load_events()
    finally:
        store.close()
    nulled = df["raw"].fillna("").str.contains(f'"{OUT_OF_RANGE}"')
    facts = df[(df["source"] == "stream") & df["exec_type"].notna()]
    tap = df[df["source"] == "tap"]
    errors = tap["raw"].fillna("{}").map(lambda r: json.loads(r).get("error"))
    # refused upgrades by endpoint (the hostile bot asks for each upgrade on its own path)
    upgrades = tap.loc[errors == "refused_upgrade", "endpoint"].map(
        lambda e: f"refused_upgrade {e}")
    log = df[df["source"] == "log"]
    status = log[log["kind"] == "stream_status"]["raw"].map(json.loads)
    return {
        "facts": set(facts[~nulled.loc[facts.index]]["event_id"]),
        "facts_nulled": int(nulled.loc[facts.index].sum()),
        "tap_by_key": tap["key"].fillna("unknown").value_counts().to_dict(),
        "tap_errors": {**errors.fillna("none").value_counts().to_dict(),
                       **upgrades.value_counts().to_dict()},
        "log_ids": set(log[log["kind"] != "stream_status"]["event_id"]),
        "log_bad": int(sum(s.get("count", 0) for s in status if s.get("status") == "bad_lines")),
    }


async def _run(clean_s: float, hostile_s: float, after_s: float, burst: int, flood: int,
               keep: str | None, say: Callable[[str], None]) -> tuple[SoakResult, dict[str, Any]]:
    clock = AcceleratedClock(1.0)
    start_ms, anchor = clock.anchor
    base = ["--speed", "1", "--start-ms", str(start_ms), "--anchor", repr(anchor)]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        receiver = await AlertReceiver(clock).start()
        wproc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.hostile_world", *base, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, cwd=REPO, limit=64 * 2**20)  # the report is long
        world = _World(wproc)
        svc: asyncio.subprocess.Process | None = None
        errlog = (run_dir / "service.stderr").open("wb")
        try:
            ready = (await _line(wproc, "hostile world"))["ready"]
            keys, acct = ready["keys"], ready["account"]
            logfile = run_dir / "bot-access.jsonl"
            specs = [KeySpec("keywatch", keys["keywatch"][0], keys["keywatch"][1],
                             "monitoring", [HOST_IP]),
                     KeySpec("bot", keys["bot"][0], None, "spot-bot", [HOST_IP], ["bot-"]),
                     KeySpec("probe", keys["probe"][0], None, "spot-bot", [HOST_IP]),
                     KeySpec("hostile", keys["hostile"][0], None, "spot-bot", [HOST_IP])]
            extra = "\n".join([
                "[sources]", "poll_interval_s = 2", "[sources.tap]", "enabled = true",
                'listen = "127.0.0.1:0"', f'upstream = "{ready["tap_upstream"]}"',
                f'account = "{acct}"', "[[sources.logs]]", f'path = "{logfile}"',
                f'account = "{acct}"'])
            env: dict[str, str] = {}
            sim = cast(SimProcess, _Urls(ready["rest_url"], ready["ws_api_url"], clock))
            write_config(run_dir, sim, {acct: specs}, receiver_url=receiver.url, extra=extra,
                         env_out=env, weight_budget_pct=WEIGHT_PCT)
            svc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.svcproc", "--config",
                str(run_dir / "keywatch.toml"), *base, "--health-port", "0",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=errlog,
                cwd=REPO, env={**os.environ, **env})
            sready = (await _line(svc, "service"))["ready"]
            metrics_url = f"http://127.0.0.1:{sready['health_port']}/metrics"
            if (await world(op="frames", fault="valid", n=0, wait_s=60)).get(
                    "subscribed") is False:
                raise RuntimeError("the service never subscribed to the user-data stream")
            tally, tl = Tally(), Timeline()
            rss = RssSampler(sready["pid"], tl.now)
            probe = TapProbe(sready["tap_url"], keys["probe"][0], tl)
            bot = TradingBot(sready["tap_url"], keys["bot"][0], keys["bot"][1], clock, tally)
            logs = LogBot(logfile, acct, clock, tally)
            hostile = HostileBot(sready["tap_url"], keys["hostile"][0], tally)
            stop_watch, stop_valid, stop_hostile = (asyncio.Event() for _ in range(3))
            watchers = [asyncio.create_task(t.run(stop_watch)) for t in (rss, probe)]
            valid = [asyncio.create_task(t.run(stop_valid)) for t in (bot, logs)]
            say(f"hostile soak: clean {clean_s:g} s")
            await asyncio.sleep(clean_s)
            probe.phase = "hostile"
            tl.mark("phase:hostile")
            say(f"hostile soak: hostile {hostile_s:g} s")
            attack = asyncio.create_task(_hostile(world, hostile, logs, tally, stop_hostile,
                                                  burst, flood, tl, run_dir / "keywatch.db"))
            await asyncio.sleep(hostile_s)
            stop_hostile.set()
            await attack
            probe.phase = "after"
            tl.mark("phase:after")
            await world(op="mix", faults={})
            stop_valid.set()
            await asyncio.gather(*valid)
            await asyncio.sleep(after_s)
            late, catch_up_s = await _catch_up(world, run_dir / "keywatch.db", tl)
            stop_watch.set()
            await asyncio.gather(*watchers)
            metrics = await scrape(metrics_url)
            report = (await world(op="report"))["report"]
            await _send(svc, {"stop": True})
            done = (await _line(svc, "service"))["done"]
            await _end(svc)
            stored = _stored(run_dir / "keywatch.db")
            errlog.flush()
            if keep:  # the store, the config and the service's log, to look into a failure
                shutil.copytree(run_dir, keep, dirs_exist_ok=True)
        except BaseException:
            errlog.flush()
            sys.stderr.write((run_dir / "service.stderr").read_text()[-3000:])
            raise
        finally:
            errlog.close()
            await _send(wproc, None)
            await _end(wproc)
            if svc is not None and svc.returncode is None:
                svc.kill()
                await svc.wait()
            await receiver.stop()
    return _result(tally, probe, rss, logs.ids, metrics, report, done, stored), {
        "report": report, "done": done, "stored": stored, "tally": tally,
        "alerts": len(receiver.received), "metrics": metrics, "rss": rss, "timeline": tl,
        "catch_up_s": catch_up_s, "late": late,
        "statuses": dict(hostile.statuses), "bot": dict(bot.statuses)}


def _result(tally: Tally, probe: TapProbe, rss: RssSampler, log_ids: list[str],
            metrics: dict[Any, float], report: dict[str, Any], done: dict[str, Any],
            stored: dict[str, Any]) -> SoakResult:
    want, _ = emitted_ids({"main": report["order_events"]})
    by_key = stored["tap_by_key"]
    col = done["collector"]
    stream = {k: sum(s.get(k, 0) for s in col["stream"].values())
              for k in ("malformed", "reconnects")}
    ws, svc_rest = report["ws"], report["svc_rest"]
    rest = {k: sum(c.get(k, 0) for c in col["rest"].values())
            for k in ("rate_limited", "retries")}
    counted = {**{r: int(total(metrics, "keywatch_rest_bad_answers_total", reason=r))
                  for r in ("not_json", "undecodable", "wrong_shape", "too_large", "deadline")},
               **rest,
               "out_of_range": int(total(metrics, "keywatch_events_out_of_range_total",
                                         source="rest"))}
    by_counter: dict[str, list[str]] = {}
    for fault, (where, _) in REST_COUNTED.items():
        by_counter.setdefault(where, []).append(fault)
    rest_checks = [
        BadCheck(f"REST {'/'.join(faults)} to the service",
                 sum(int(svc_rest.get(f, 0)) for f in faults), counted[where],
                 f"rest {where}", at_least=REST_COUNTED[faults[0]][1])
        for where, faults in by_counter.items()]
    errs = stored["tap_errors"]
    facts = [
        FactCheck.by_id("order facts (exchange + hostile stream floods)",
                        want | set(report["valid_ids"]), stored["facts"]),
        *(FactCheck.by_count(f"tap records, key {k}", n, int(by_key.get(k, 0)))
          for k, n in sorted({"probe": probe.answered, **tally.answered}.items())),
        FactCheck.by_id("log lines", log_ids, stored["log_ids"]),
    ]
    t = tally.bad
    bad = [
        BadCheck("CONNECT through the tap", t["CONNECT through the tap"],
                 int(errs.get("refused_method", 0)), "stored records error=refused_method"),
        *(BadCheck(f"Upgrade: {proto} through the tap", t[f"Upgrade: {proto} through the tap"],
                   int(errs.get(f"refused_upgrade {path}", 0)),
                   f"stored records error=refused_upgrade on {path}")
          for proto, path in UPGRADES.items()),
        BadCheck("trickled heads", t["trickled head"], t["trickled head closed by the tap"],
                 "closed by the tap within its deadline"),
        BadCheck("unfinished bodies", t["unfinished body"],
                 t["unfinished body closed by the tap"], "closed by the tap within its deadline"),
        BadCheck("tapped answers past int64", int(report["tap_rest"].get("bigint", 0)),
                 int(total(metrics, "keywatch_events_out_of_range_total", source="tap")),
                 "keywatch_events_out_of_range_total{source=tap}"),
        BadCheck("bad log lines", t["bad log lines"], stored["log_bad"],
                 "stored bad_lines status counts"),
        BadCheck("log order_id past int64", t["log order_id past int64"],
                 int(total(metrics, "keywatch_events_out_of_range_total", source="log")),
                 "keywatch_events_out_of_range_total{source=log}"),
        BadCheck("malformed user-data frames", int(ws.get("malformed", 0)), stream["malformed"],
                 "stream malformed"),
        BadCheck("oversized frames + dropped streams",
                 int(ws.get("oversized", 0)) + int(ws.get("drop", 0)), stream["reconnects"],
                 "stream reconnects", at_least=True),
        *rest_checks,
    ]
    zero = {"component restarts": total(metrics, "keywatch_component_restarts_total"),
            "queue drops": total(metrics, "keywatch_queue_drops_total"),
            "store write errors": total(metrics, "keywatch_store_write_errors_total"),
            "tap record errors": float(col["tap"].get("record_errors", 0))}
    return SoakResult(facts=facts, bad=bad, rss_mib=rss.samples, rss_hwm_mib=rss.hwm,
                      probes=probe.probes, zero=zero)


def run(clean_s: float = 20.0, hostile_s: float = 60.0, after_s: float = 10.0,
        burst: int = 20_000, flood: int = 3_000, keep: str | None = None,
        say: Callable[[str], None] = print) -> list[Row]:
    r, x = asyncio.run(_run(clean_s, hostile_s, after_s, burst, flood, keep, say))
    failures = judge(r)
    clean, hostile = r.p99("clean"), r.p99("hostile")
    rep, col = x["report"], x["done"]["collector"]
    say(f"hostile soak: tap p99 {hostile:.1f} ms hostile vs {clean:.1f} ms clean; RSS peak "
        f"{r.rss_peak_mib:.0f} MiB; {'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}")
    facts = "; ".join(f"{c.family} {c.stored:,}/{c.sent:,}" for c in r.facts)
    bad = "; ".join(f"{b.what} {b.counted:,}/{b.sent:,}" for b in r.bad)
    tl: Timeline = x["timeline"]
    hostile_at = next(t for t, w in tl.marks if w == "phase:hostile")
    clean_rss = max((v for t, v in zip(x["rss"].times, r.rss_mib, strict=True)
                     if t < hostile_at), default=float("nan"))
    gap_at, gap = r.longest_gap()
    peak_at, peak = x["rss"].peak()
    note = (f"clean {clean_s:g} s, hostile {hostile_s:g} s, after {after_s:g} s at clock speed "
            f"1, floods of {flood:,} frames, a {burst:,}-line log burst; {len(r.probes):,} tap "
            f"probes ({r.unanswered()} unanswered, longest gap "
            f"{gap:.2f} s at {gap_at:.1f} s after {tl.before(gap_at)}); RSS sampled "
            f"{len(r.rss_mib)} times from /proc, largest {peak:.0f} MiB at {peak_at:.1f} s after "
            f"{tl.before(peak_at)}, VmHWM {r.rss_hwm_mib:.0f} MiB; tap raw answers "
            f"{x['statuses']}; the bot's answers {x['bot']}; valid facts stored/sent: {facts}; "
            f"bad inputs "
            f"counted/sent: {bad}; REST answers to the service by fault {rep['svc_rest']}; "
            f"tap upstream answers {rep['tap_rest']}; frames {rep['ws']}; "
            f"{x['stored']['facts_nulled']} stream facts stored with an int64-nulled field; "
            f"{x['alerts']} alerts received; {x['late']:,} valid facts not yet stored when "
            f"the after phase ended, all stored "
            + (f"{x['catch_up_s']:.1f} s later" if x["catch_up_s"] is not None
               else f"not within {CATCH_UP_S:g} s")
            + f"; ingest drops {col['drops']}, write errors "
            f"{col['write_errors']}" + (f"; FAILED: {'; '.join(failures)}" if failures else ""))
    n_facts = sum(c.sent for c in r.facts)
    ok_facts = all(c.failure() is None for c in r.facts)
    ok_bad = all(b.failure() is None for b in r.bad)
    rows = [
        Row("hostile soak: tap p99 during the soak", hostile, "ms", clean,
            "tap p99 without hostile traffic", "answering throughout",
            r.unanswered() == 0 and r.longest_gap_s() <= 2.0, note),
        Row("hostile soak: service RSS peak", r.rss_peak_mib, "MiB", clean_rss,
            "RSS peak in the clean phase", "< 200 MiB", r.rss_peak_mib < 200, note),
        Row("hostile soak: valid facts stored exactly once", float(sum(c.stored for c in r.facts)),
            "facts", float(n_facts), "valid facts sent", "equal", ok_facts, note),
        Row("hostile soak: bad inputs counted", float(sum(b.counted for b in r.bad)), "inputs",
            float(sum(b.sent for b in r.bad)), "bad inputs sent", "each counted", ok_bad, note),
    ]
    if failures:
        raise FigureFailed(rows, failures)
    return rows


if __name__ == "__main__":
    import argparse

    from bench.common import show
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--clean-s", type=float, default=20.0)
    p.add_argument("--hostile-s", type=float, default=60.0)
    p.add_argument("--after-s", type=float, default=10.0)
    p.add_argument("--burst", type=int, default=20_000, help="log lines in one write")
    p.add_argument("--flood", type=int, default=3_000, help="valid frames per flood")
    p.add_argument("--keep", default=None, help="copy the run's folder (store, log) here")
    a = p.parse_args()
    try:
        rows = run(a.clean_s, a.hostile_s, a.after_s, a.burst, a.flood, a.keep)
    except FigureFailed as exc:
        show(exc.rows)
        print(exc.rows[0].note)
        raise SystemExit(1) from None
    show(rows)
    print(rows[0].note)
