"""Build a small, real Keywatch database from labelled synthetic traffic.

Used by the notebook tests and to render an example incident before a demo database exists:
synthetic events go into a `SQLiteStore`, the detection engine replays them, and the alert
manager turns the findings into alerts, stepping an injected clock through the findings in time
order so each episode becomes its own alert, as it would live. The config is written next to
the database as TOML, so the notebooks and `keywatch notebook` read it like a user's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from monitor.alert.manager import AlertManager
from monitor.config import Config
from monitor.core import resources
from monitor.core.clock import ManualClock
from monitor.detect.engine import DetectionEngine
from monitor.store import SQLiteStore, StoredAlert, events_from_frame
from monitor.tools.investigate.incident import DEFAULT_MODEL
from monitor.world.evaluate.generator import generate
from monitor.world.groundtruth import AttackType, GroundTruth

RULES_DIR = resources.rules_dir()


@dataclass
class BuiltDB:
    db: Path
    config: Path
    truth: GroundTruth
    alerts: list[StoredAlert]

    def alert_for(self, attack: AttackType) -> str:
        """The id of the first alert whose findings fall inside the episode of `attack`."""
        ep = next(e for e in self.truth.episodes if e.type is attack)
        store = SQLiteStore(self.db)
        try:
            findings = {f.finding_id: f.ts for f in store.load_findings()}
        finally:
            store.close()
        for a in self.alerts:
            if a.kind == "resolved":
                continue
            ts = [findings[i.finding_id] for i in a.payload.items if i.finding_id in findings]
            if any(ep.start_ms <= t <= ep.end_ms + 5 * 60_000 for t in ts):
                return a.alert_id
        raise LookupError(f"no alert caught the {attack.value} episode")


def config_toml(cfg: Config) -> str:
    """The parts of a config the notebooks read, as TOML (JSON strings are valid TOML)."""
    lines = [f"store_path = {json.dumps(cfg.store_path)}",
             f"rules_dir = {json.dumps(str(RULES_DIR))}",
             f"model_path = {json.dumps(str(DEFAULT_MODEL))}"]
    if cfg.egress_ip:
        lines.append(f"egress_ip = {json.dumps(cfg.egress_ip)}")
    for a in cfg.accounts:
        lines += ["", "[[accounts]]", f"name = {json.dumps(a.name)}",
                  f"monitor_key = {json.dumps(a.monitor_key)}"]
        for k in a.keys:
            lines += ["", "  [[accounts.keys]]", f"  label = {json.dumps(k.label)}",
                      f"  use_case = {json.dumps(k.use_case.value)}",
                      f"  ip_whitelist = {json.dumps(k.ip_whitelist)}",
                      f"  client_order_prefixes = {json.dumps(k.client_order_prefixes)}"]
    return "\n".join(lines) + "\n"


def _as_store_frame(df: pd.DataFrame) -> pd.DataFrame:
    # the generator keeps times as int ms; events_from_frame reads timestamps
    return df.assign(ts=pd.to_datetime(df["ts"], unit="ms", utc=True),
                     received_ts=pd.to_datetime(df["received_ts"], unit="ms", utc=True))


def replay_alerts(store: SQLiteStore, cfg: Config, df: pd.DataFrame,
                  model_path: str | Path | None = DEFAULT_MODEL,
                  rules_dir: str | Path = RULES_DIR) -> list[str]:
    """Detect over `df` and feed the alert manager in time order, as the live service would
    (each finding submitted at its own time, groups flushed as their wait ends); return the
    alert ids written to `store`."""
    engine = DetectionEngine.from_config(cfg, rules_dir, model_path)
    findings = sorted(engine.replay(df), key=lambda f: f.ts)
    if not findings:
        return []
    clock = ManualClock(findings[0].ts)
    manager = AlertManager(store, clock, cfg.alerts, channels=[])
    wait = int(cfg.alerts.group_wait_s * 1000) + 1
    ids: list[str] = []
    for f in findings:
        now = clock.now_ms()
        if f.ts > now:
            if now + wait < f.ts:  # the service's timer flushes once the group wait is over
                clock.advance(wait)
                ids += manager.flush()
            clock.advance(f.ts - clock.now_ms())
            ids += manager.flush()
        manager.submit([f])
    clock.advance(wait)
    ids += manager.flush(final=True)
    return ids


def build_db(path: str | Path, *, keys: int = 2, days: float = 0.4, seed: int = 3,
             attacks: list[AttackType] | None = None) -> BuiltDB:
    """Generate, store, detect and alert; write `<path>` and `<path stem>.toml`."""
    path = Path(path)
    attacks = [AttackType.LEAKED_KEY_PUMP] if attacks is None else attacks
    syn = generate(keys=keys, days=days, seed=seed, attacks=attacks)
    cfg = syn.config.model_copy(update={"store_path": str(path)})
    cfg_path = path.with_suffix(".toml")
    cfg_path.write_text(config_toml(cfg))
    store = SQLiteStore(path)
    try:
        store.insert_events(events_from_frame(_as_store_frame(syn.events)))
        replay_alerts(store, cfg, syn.events)
        alerts = [a for a in store.load_alerts() if a.kind != "digest"]
    finally:
        store.close()
    return BuiltDB(path, cfg_path, syn.truth, alerts)
