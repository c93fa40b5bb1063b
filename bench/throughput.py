"""Figure 2: events/s through features + rules + forest, replay and live, against baselines.

(a) Replay: a month of generated traffic (`monitor.world.evaluate.generator`, vectorised), one day
    per chunk (16 bot keys, a fresh seed per day) until >= 10 M events, each chunk through
    `DetectionEngine.replay` (enrich, event rules, posture, windows, windowed rules, forest).
    Generation time is excluded; chunking drops cross-day state, which replay would not need.
(b) Live, two rows. The service's detector loop (`Service._next_batch`) waits for an event,
    then gathers whatever arrives within `batch_wait_s` (the Service default, 50 ms): under
    load a batch is what arrived while the previous one was processed, plus that wait.
    (i) Sustained: 100 keys' traffic offered at 50,000 events/s on a virtual arrival clock,
    batches cut by exactly that policy, each batch processed for real (`engine.process` +
    `engine.tick` at minute boundaries);
    value = events / detector busy time, and whether it kept up (utilisation < 1, final lag).
    (ii) Small batches: 50 keys in batches of one second of traffic (~16 events, what a quiet
    service sees); the same events in batches of 1,000 as its baseline.
Baselines in the same run, on the same one-minute windows (our forest's features, same
transform): river's HalfSpaceTrees (MinMaxScaler | HST, learn_one + score_one per window, in
time order) and PyOD's IForest (fit + decision_function). AUC of each against window labels from
the GroundTruth episodes of labelled synthetic scenarios (the non-persistent traffic attacks).
"""

from __future__ import annotations

import cProfile
import inspect
import io
import pstats
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from bench.common import Row
from monitor.detect.engine import DetectionEngine
from monitor.detect.forest import ForestModel, transform
from monitor.detect.rules import load_rules
from monitor.features import FeatureContext, windows
from monitor.service.pipeline import Service
from monitor.store import events_from_frame
from monitor.world.evaluate.generator import DAY_MS, MINUTE_MS, START_MS, generate
from monitor.world.groundtruth import AttackType, GroundTruth

REPO_RULES = "rules"
BATCH_WAIT_S = inspect.signature(Service).parameters["batch_wait_s"].default
OFFERED = 50_000.0  # events/s offered to the sustained run (the goal)
MODEL = "models/default.skops"
TRAFFIC_ATTACKS = [AttackType.LEAKED_KEY_PUMP, AttackType.PERMISSION_PROBE,
                   AttackType.OVERSIZED_ORDERS, AttackType.RUNAWAY_BOT, AttackType.SLOW_MISUSE]


def _engine(cfg: object, rules: list, forest: ForestModel) -> DetectionEngine:
    return DetectionEngine(FeatureContext.from_config(cfg), rules, forest)  # type: ignore[arg-type]


def profile_top(fn: Callable[[], object], n: int = 6) -> str:
    """cProfile the call; Keywatch's own functions by cumulative share, as one line for notes."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    s = pstats.Stats(prof, stream=io.StringIO())
    stats = s.stats  # type: ignore[attr-defined]
    total = max(v[3] for v in stats.values()) or 1.0
    ours = [(f, v) for f, v in stats.items() if "/monitor/" in f[0] and "bench" not in f[0]]
    rows = sorted(ours, key=lambda kv: kv[1][3], reverse=True)[:n]
    return "; ".join(f"{f[2]} ({f[0].rsplit('/', 1)[-1]}) {v[3] / total:.0%}" for f, v in rows)


def replay(target: int, rules: list, forest: ForestModel) -> tuple[float, int, str]:
    n = spent = 0
    day = 0
    sample = None
    while n < target:
        s = generate(keys=16, days=1, seed=100 + day, start_ms=START_MS + day * DAY_MS)
        eng = _engine(s.config, rules, forest)
        t = time.perf_counter()
        eng.replay(s.events)
        spent += time.perf_counter() - t
        n += len(s.events)
        sample = sample or s
        day += 1
    assert sample is not None
    prof = profile_top(lambda: _engine(sample.config, rules, forest).replay(sample.events))
    return n / spent, n, prof


def live(batch_ms: int | None, batch_n: int | None, rules: list, forest: ForestModel,
         minutes: int = 6) -> tuple[float, int, float, str]:
    s = generate(keys=50, days=minutes / 1440, seed=5)
    evs = events_from_frame(s.events.sort_values("received_ts", kind="stable"))
    eng = _engine(s.config, rules, forest)
    batches: list[list] = []
    if batch_ms is not None:
        cur: list = []
        edge = evs[0].received_ts + batch_ms
        for ev in evs:
            if ev.received_ts >= edge and cur:
                batches.append(cur)
                cur, edge = [], ev.received_ts + batch_ms
            cur.append(ev)
        batches.append(cur)
    else:
        assert batch_n is not None
        batches = [evs[i:i + batch_n] for i in range(0, len(evs), batch_n)]

    def go() -> None:
        next_min = (batches[0][0].received_ts // MINUTE_MS + 1) * MINUTE_MS
        for b in batches:
            eng.process(b)
            if b[-1].received_ts >= next_min:
                eng.tick(b[-1].received_ts)
                next_min = (b[-1].received_ts // MINUTE_MS + 1) * MINUTE_MS
        eng.tick(batches[-1][-1].received_ts + 2 * MINUTE_MS)

    t = time.perf_counter()
    go()
    rate = len(evs) / (time.perf_counter() - t)
    prof = ""
    if batch_ms is not None:
        eng.reset()
        prof = profile_top(go)
    return rate, len(evs), len(evs) / len(batches), prof


def sustained(rules: list, forest: ForestModel, rate: float = OFFERED, keys: int = 100,
              minutes: int = 30) -> dict[str, float]:
    """The service's batching policy on a virtual arrival clock (see the module docstring)."""
    s = generate(keys=keys, days=minutes / 1440, seed=6)
    evs = events_from_frame(s.events.sort_values("received_ts", kind="stable"))
    arrival = np.arange(len(evs)) / rate
    eng = _engine(s.config, rules, forest)
    t = busy = 0.0
    i = batches = 0
    next_min = (evs[0].received_ts // MINUTE_MS + 1) * MINUTE_MS
    while i < len(evs):
        t = max(t, float(arrival[i]))  # idle: wait for the first event
        close = t + BATCH_WAIT_S  # then gather for batch_wait_s
        j = max(i + 1, int(np.searchsorted(arrival, close, "right")))
        batch = evs[i:j]
        t0 = time.perf_counter()
        eng.process(batch)
        if batch[-1].received_ts >= next_min:
            eng.tick(batch[-1].received_ts)
            next_min = (batch[-1].received_ts // MINUTE_MS + 1) * MINUTE_MS
        dt = time.perf_counter() - t0
        busy += dt
        t = close + dt
        i, batches = j, batches + 1
    t0 = time.perf_counter()
    eng.tick(evs[-1].received_ts + 2 * MINUTE_MS)
    busy += time.perf_counter() - t0
    return {"rate": len(evs) / busy, "events": len(evs), "batch": len(evs) / batches,
            "util": busy / t, "lag": t - float(arrival[-1])}


def labels(w: pd.DataFrame, truth: GroundTruth) -> np.ndarray:
    y = np.zeros(len(w), dtype=bool)
    for ep in truth.episodes:
        m = np.asarray(w["account"] == ep.account, dtype=bool)
        if ep.key is not None:
            m = m & np.asarray(w["key"] == ep.key, dtype=bool)
        m = m & (w["minute"].to_numpy() + MINUTE_MS > ep.start_ms) & (
            w["minute"].to_numpy() <= ep.end_ms)
        y |= m
    return y


def baselines(forest: ForestModel, seeds: tuple[int, ...] = (11, 12, 13)) -> dict[str, dict]:
    from pyod.models.iforest import IForest
    from river import anomaly, compose, preprocessing

    res: dict[str, dict[str, float]] = {k: {"t": 0.0, "ev": 0, "w": 0, "auc": 0.0}
                                        for k in ("forest", "river", "pyod")}
    for seed in seeds:
        s = generate(keys=8, days=3, seed=seed, attacks=TRAFFIC_ATTACKS)
        w = windows(s.events, FeatureContext.from_config(s.config)).sort_values(
            "minute", kind="stable").reset_index(drop=True)
        y = labels(w, s.truth)
        evn = len(s.events)
        x = transform(w)
        t = time.perf_counter()
        ours = forest.score(w)
        res["forest"]["t"] += time.perf_counter() - t
        model = compose.Pipeline(preprocessing.MinMaxScaler(),
                                 anomaly.HalfSpaceTrees(seed=seed, n_trees=25, height=8))
        names = [f"f{i}" for i in range(x.shape[1])]
        riv = np.empty(len(x))
        t = time.perf_counter()
        for i, row in enumerate(x):
            d = dict(zip(names, row.tolist(), strict=True))
            riv[i] = model.score_one(d)
            model.learn_one(d)
        res["river"]["t"] += time.perf_counter() - t
        t = time.perf_counter()
        pyod = IForest(n_estimators=150, max_samples=min(1024, len(x)), random_state=seed)
        pyod.fit(x)
        po = pyod.decision_function(x)
        res["pyod"]["t"] += time.perf_counter() - t
        for k, sc in (("forest", ours), ("river", riv), ("pyod", po)):
            res[k]["ev"] += evn
            res[k]["w"] += len(w)
            res[k]["auc"] += roc_auc_score(y, sc) / len(seeds)
        res["forest"].setdefault("pos", 0)
        res["forest"]["pos"] += int(y.sum())
    return res


def run(target: int = 10_000_000, say: Callable[[str], None] = print) -> list[Row]:
    rules = load_rules(REPO_RULES)
    forest = ForestModel.load(MODEL)
    rrate, rn, rprof = replay(target, rules, forest)
    say(f"throughput: replay {rn:,} events at {rrate:,.0f}/s")
    sus = sustained(rules, forest)
    say(f"throughput: live at the service's batching, {OFFERED:,.0f}/s offered: "
        f"{sus['rate']:,.0f}/s, mean batch {sus['batch']:,.0f}, utilisation {sus['util']:.0%}")
    lrate, ln, lbatch, lprof = live(1000, None, rules, forest, minutes=6)
    brate, _, bbatch, _ = live(None, 1000, rules, forest, minutes=6)
    say(f"throughput: live {lrate:,.0f}/s at ~{lbatch:.0f} events/batch, {brate:,.0f}/s at 1000")
    b = baselines(forest)
    ours, riv, po = b["forest"], b["river"], b["pyod"]
    ev = ours["ev"]
    bnote = (f"{int(ours['w']):,} windows of {int(ev):,} events, 3 labelled scenarios (8 keys, "
             f"3 days, {', '.join(a.value for a in TRAFFIC_ATTACKS)}), {int(ours['pos'])} "
             f"attack windows; AUC forest {ours['auc']:.3f}, river HST {riv['auc']:.3f}, "
             f"PyOD IForest {po['auc']:.3f}")
    return [
        Row(f"replay throughput ({rn / 1e6:.1f} M events)", rrate, "events/s",
            ev / riv["t"], "river HST over the windows", ">= 1,000,000/s", rrate >= 1e6,
            (f"short of goal by {1e6 / rrate:.1f}x; " if rrate < 1e6 else "")
            + f"profile of one day, our functions by cumulative share: {rprof}"),
        Row("live throughput, service batching (50,000/s offered)", sus["rate"], "events/s",
            lrate, f"same engine, batches of ~{lbatch:.0f} events", ">= 50,000/s",
            sus["rate"] >= 50_000 and sus["util"] < 1,
            f"{int(sus['events']):,} events, 100 keys, 30 min of traffic offered at "
            f"{OFFERED:,.0f}/s; batch = what arrived during the previous batch's processing "
            f"+ {BATCH_WAIT_S} s (Service._next_batch); mean batch {sus['batch']:,.0f} events; "
            f"detector busy {sus['util']:.0%} of the time; lag at the end {sus['lag']:.2f} s"),
        Row(f"live throughput, small batches (~{lbatch:.0f} events = 1 s)", lrate, "events/s",
            brate, "same, batch 1000", ">= 50,000/s", lrate >= 50_000,
            f"{ln:,} events, 50 keys, 6 min, one batch per second of traffic; "
            + (f"short of goal by {50_000 / lrate:.1f}x; " if lrate < 50_000 else "")
            + f"profile, our functions by cumulative share: {lprof}"),
        Row("forest scoring over windows", ev / ours["t"], "events/s", ev / po["t"],
            "PyOD IForest fit+score", "", None, bnote),
        Row("river HST learn+score over windows", ev / riv["t"], "events/s", ev / ours["t"],
            "our forest", "", None, bnote),
        Row("AUC forest (labelled windows)", ours["auc"], "AUC", riv["auc"], "river HST", "",
            None, bnote),
        Row("AUC PyOD IForest (fit on same windows)", po["auc"], "AUC", ours["auc"],
            "our forest", "", None, bnote),
    ]


if __name__ == "__main__":
    from bench.common import show
    show(run(2_000_000))
