"""A restart keeps what detection learned (issue 17, "a restart keeps them"): the service
replays the store's last two days into its fresh engine before the sources start. Without it,
a key's learning day began again at every restart, and an attacker's address arriving after one
was only "learned" (a warning) instead of paging as an unfamiliar caller."""

from __future__ import annotations

from pathlib import Path

from monitor.detect.engine import DetectionEngine
from monitor.detect.rules import load_rules
from monitor.features import FeatureContext
from monitor.service.startup import warm_up
from monitor.store import SQLiteStore
from tests.detect.helpers import MIN, T0, ev, make_config

ROOT = Path(__file__).resolve().parents[2]
HOUR = 60 * MIN
NOW = T0 + 30 * HOUR


def engine() -> DetectionEngine:
    return DetectionEngine(FeatureContext.from_config(make_config()), load_rules(ROOT / "rules"))


def history(store: SQLiteStore) -> None:
    """The grid bot (no whitelist declared) calling from its host for the last 30 hours."""
    store.insert_events(ev(ts=T0 + i * 10 * MIN, ip="10.0.0.5") for i in range(30 * 6))


def caller_rules(eng: DetectionEngine, at: int) -> set[str]:
    found = eng.process([ev(ts=at, ip="203.0.113.9")])
    return {f.rule_id for f in found if f.rule_id.startswith("unknown_ip.")}


def test_after_a_restart_a_new_address_still_pages(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kw.db")
    history(store)
    warmed = engine()
    assert warm_up(warmed, store, NOW) > 0
    assert caller_rules(warmed, NOW + 5_000) == {"unknown_ip.new_caller"}
    cold = engine()  # what a restart did before: the key's learning day starts again
    assert caller_rules(cold, NOW + 5_000) == {"unknown_ip.learned_caller"}
    store.close()


def test_the_bot_s_own_address_is_familiar_after_a_restart(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kw.db")
    history(store)
    warmed = engine()
    warm_up(warmed, store, NOW)
    found = warmed.process([ev(ts=NOW + 5_000, ip="10.0.0.5")])
    assert [f.rule_id for f in found] == []
    store.close()


def test_an_empty_store_and_a_stateless_engine_are_fine(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kw.db")
    assert warm_up(engine(), store, NOW) == 0
    assert warm_up(object(), store, NOW) == 0
    store.close()
