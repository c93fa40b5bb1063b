"""Figure 5: resident memory of the service watching 50 keys over a simulated day, nothing lost.

Three processes, as in production: the simulated exchange with the scenario's bots and attacker
(`bench.soakworld`, scenario built by `bench.soakscene`: 5 accounts x 10 keys, 45 real bots
through the tap, one leaked-key pump), the real service (`bench.svcproc`: config file + env,
`Service` + `Collector` with tap, user-data stream and poller, shipped rules and model, alerts
through Apprise to a local receiver in this process), and this process, which only samples the
service process's RSS (psutil) every simulated hour. All three share one AcceleratedClock.

Events stored == emitted, exactly: the set of order/fill/reject ids in the store (source
`stream`, with an execution type) must equal the ids of every `executionReport` the exchange's
control plane (`order_events`) says it emitted, mapped by the collector's own `order_fact_id`;
and the tap events stored must equal the requests the bots sent through the tap (the runner's
per-actor call counts).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from bench import soakscene
from bench.common import MIB, Row, RssSampler, proc_rss
from bench.world import REPO, SimProcess, write_config
from monitor.binance.parse import order_fact_id
from monitor.core.clock import AcceleratedClock
from monitor.store import SQLiteStore
from monitor.world.demo.receiver import AlertReceiver

HOUR_MS = 3_600_000
MB = 1e6
BARE = "import monitor.service.pipeline, monitor.collect.collector"
WEIGHT_PCT = 5.0  # 1 % of the host's 6,000/min per account, for five accounts on one host
GUARD_WALL_MS = 40.0  # budget guard in wall ms above 233x (loopback round trips: ~5 ms)


@dataclass
class _Urls:
    """What `write_config` reads of a simulator: its URLs and its clock."""

    rest_url: str
    ws_api_url: str
    clock: AcceleratedClock


def import_rss(statement: str) -> float:
    """RSS (MiB) of a fresh interpreter after `statement`: what imports alone cost."""
    code = f"import psutil\n{statement}\nprint(psutil.Process().memory_info().rss)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    return int(out.stdout.strip()) / MIB


async def _line(proc: asyncio.subprocess.Process, what: str) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the {what} process ended early (exit {await proc.wait()})")
    return dict(json.loads(line))


async def _send(proc: asyncio.subprocess.Process, obj: dict[str, Any] | None) -> None:
    assert proc.stdin is not None
    if obj is None:
        proc.stdin.close()
        return
    proc.stdin.write((json.dumps(obj) + "\n").encode())
    await proc.stdin.drain()


async def _end(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def emitted_ids(reports: dict[str, list[dict[str, Any]]]) -> tuple[set[str], int]:
    """Ids the collector must store for the exchange's executionReports; and how many."""
    ids, n = set(), 0
    for acct, evs in reports.items():
        for ev in evs:
            n += 1
            x = str(ev["x"])
            ids.add(order_fact_id(acct, str(ev["s"]), int(ev["i"]), x,
                                  trade_id=int(ev["t"]) if x == "TRADE" else None,
                                  tx_time=int(ev["T"])))
    return ids, n


def stored_facts(db: Path) -> tuple[set[str], int]:
    """(order/fill/reject ids from the stream source, tap events) in the service's store."""
    store = SQLiteStore(db)
    try:
        df = store.load_events()
    finally:
        store.close()
    facts = df[(df["source"] == "stream") & df["exec_type"].notna()]
    return set(facts["event_id"]), int((df["source"] == "tap").sum())


async def _run(hours: int, speed: float, tracemalloc_n: int, say: Callable[[str], None],
               keep: str | None = None) -> dict[str, Any]:
    clock = AcceleratedClock(speed)
    start_ms, anchor = clock.anchor
    base = ["--speed", str(speed), "--start-ms", str(start_ms), "--anchor", repr(anchor)]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        yaml_path, sc = soakscene.write(run_dir, hours)
        receiver = await AlertReceiver(clock).start()
        world = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.soakworld", "--scenario", str(yaml_path),
            "--out", str(run_dir), *base, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, cwd=REPO)
        svc: asyncio.subprocess.Process | None = None
        errlog = (run_dir / "service.stderr").open("wb")
        try:
            ready = (await _line(world, "simulator"))["ready"]
            env: dict[str, str] = {}
            sim = cast(SimProcess, _Urls(ready["rest_url"], ready["ws_api_url"], clock))
            write_config(run_dir, sim, soakscene.key_specs(sc, ready["keys"], ready["monitor"]),
                         receiver_url=receiver.url, tap_account=next(iter(sc.accounts)),
                         env_out=env, weight_budget_pct=WEIGHT_PCT)
            extra = ["--tracemalloc", str(tracemalloc_n)] if tracemalloc_n else []
            if 5_000 + 150 * speed > 40_000:
                extra += ["--guard-wall-ms", str(GUARD_WALL_MS)]
            svc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.svcproc", "--config",
                str(run_dir / "keywatch.toml"), *base, *extra, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=errlog, cwd=REPO,
                env={**os.environ, **env})
            sready = (await _line(svc, "service"))["ready"]
            idle = proc_rss(sready["pid"])[0]
            meter = RssSampler(sready["pid"])
            t0 = clock.now_ms()
            await _send(world, {"tap_url": sready["tap_url"]})
            rss = meter.samples

            async def sample() -> None:
                for h in range(1, hours + 1):
                    await clock.sleep(max(0.0, (t0 + h * HOUR_MS - clock.now_ms()) / 1000))
                    meter.sample()

            sampler = asyncio.create_task(sample())
            while True:
                msg = await _line(world, "simulator")
                if "done" in msg:
                    calls = msg["done"]["calls"]
                    break
            await sampler
            await clock.sleep(600)  # let the last stream frames and polls land
            async with httpx.AsyncClient(timeout=60) as http:
                reports = {}
                for acct in sc.accounts:
                    r = await http.post(f"{ready['control_url']}/control/order_events",
                                        json={"account": acct})
                    r.raise_for_status()
                    reports[acct] = r.json()["result"]
            await _send(svc, {"stop": True})
            done = (await _line(svc, "service"))["done"]
            await _end(svc)
            want, n_reports = emitted_ids(reports)
            got, tap_stored = stored_facts(run_dir / "keywatch.db")
            errlog.flush()
            if want != got:
                say("service stderr (tail): "
                    + (run_dir / "service.stderr").read_text()[-2000:])
            if keep:  # the store, the config and the service's log, to look into a mismatch
                shutil.copytree(run_dir, keep, dirs_exist_ok=True)
        except BaseException:
            errlog.flush()
            sys.stderr.write((run_dir / "service.stderr").read_text()[-3000:])
            raise
        finally:
            errlog.close()
            await _send(world, None)
            await _end(world)
            if svc is not None and svc.returncode is None:
                svc.kill()
                await svc.wait()
            await receiver.stop()
    bot_calls = sum(n for tag, n in calls.items() if tag.startswith(tuple(sc.accounts)))
    return {"rss": rss, "idle": idle, "reports": n_reports, "want": len(want),
            "got": len(got), "missing": len(want - got), "extra": len(got - want),
            "samples": sorted(want ^ got)[:4],
            "tap_stored": tap_stored, "bot_calls": bot_calls, "calls": calls, "done": done,
            "alerts": len(receiver.received)}


def run(hours: int = 24, speed: float = 480, tracemalloc_n: int = 0,
        say: Callable[[str], None] = print, keep: str | None = None) -> list[Row]:
    bare = import_rss(BARE)
    parts = {m: import_rss(f"import {m}") for m in ("pandas", "sklearn", "apprise")}
    r = asyncio.run(_run(hours, speed, tracemalloc_n, say, keep))
    rss, svc = r["rss"], r["done"]["service"]
    peak = max(rss)
    growth = (max(rss[1:]) - rss[0]) / rss[0] if len(rss) > 1 else 0.0
    equal = r["missing"] == r["extra"] == 0  # the order facts' row; the tap's row its own
    say(f"soak: service RSS idle {r['idle']:.0f} -> max {peak:.0f} MiB; order facts stored "
        f"{r['got']:,} of {r['want']:,} emitted; tap events {r['tap_stored']:,} of "
        f"{r['bot_calls']:,} bot calls")
    col = r["done"]["collector"]
    note = (f"5 accounts x 10 keys (45 bots through the tap + monitor keys), {hours} simulated h "
            f"at {speed:g}x; simulator+bots, service and this sampler in three processes; "
            f"service RSS MiB per hour: {', '.join(f'{v:.0f}' for v in rss)}; idle before "
            f"traffic {r['idle']:.0f} MiB; a bare `{BARE}` is {bare:.0f} MiB (pandas "
            f"{parts['pandas']:.0f}, sklearn {parts['sklearn']:.0f}, apprise "
            f"{parts['apprise']:.0f} MiB each alone), so imports bound the figure; "
            f"{svc['events_in']:,} events in, {svc['findings']} findings, {r['alerts']} alerts "
            f"received, detection queue dropped {svc['events_dropped']:,}, ingest dropped "
            f"{col['drops']:,}; stored == emitted compares order/fill/reject ids "
            f"({r['got']:,} stored, {r['want']:,} from {r['reports']:,} executionReports in the "
            f"control plane's order_events, {r['missing']} missing, {r['extra']} extra"
            f"{' e.g. ' + ', '.join(r['samples']) if r['samples'] else ''}) and tap "
            f"events ({r['tap_stored']:,}) with the bots' calls through the tap "
            f"({r['bot_calls']:,})")
    if "tracemalloc" in r["done"]:
        note += "; tracemalloc (KiB): " + ", ".join(f"{k} {v:,}" for k, v in
                                                     r["done"]["tracemalloc"])
    return [
        Row("service RSS, max over the day (own process)", peak, "MiB", bare,
            "bare import of the service", "< 200 MB", peak * MIB < 200 * MB, note),
        Row("RSS growth after the first hour", growth * 100, "%", None, "", "< 10 %",
            growth < 0.10, note),
        Row("order facts stored / emitted", float(r["got"]), "events", float(r["want"]),
            "executionReports emitted", "equal", equal, note),
        Row("tap events stored / bot calls", float(r["tap_stored"]), "events",
            float(r["bot_calls"]), "bot calls through the tap", "equal",
            r["tap_stored"] == r["bot_calls"], note),
    ]


if __name__ == "__main__":
    import argparse

    from bench.common import show
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hours", type=int, default=24)
    p.add_argument("--speed", type=float, default=480)
    p.add_argument("--tracemalloc", type=int, default=0,
                   help="report the service's N largest allocation sites (slow)")
    p.add_argument("--keep", default=None, help="copy the run's folder (store, log) here")
    a = p.parse_args()
    rows = run(a.hours, a.speed, a.tracemalloc, keep=a.keep)
    show(rows)
    print(rows[0].note)
