"""The service's wiring: the key context an alert shows comes from the engine's snapshot of the
addresses each key was seen calling from, readable from another thread while detection runs."""

from __future__ import annotations

import threading
from pathlib import Path

from monitor.alert.wording import KeyContext
from monitor.detect.engine import DetectionEngine
from monitor.service.wiring import key_context_of
from tests.detect.helpers import T0, ev, make_config

RULES = Path(__file__).resolve().parents[2] / "rules"
HOME, MOVED = "10.0.0.5", "10.0.0.9"


def test_the_context_is_the_whitelist_and_the_addresses_seen():
    cfg = make_config(whitelist=[HOME])
    engine = DetectionEngine.from_config(cfg, rules_dir=RULES)
    context = key_context_of(cfg, engine)
    before = engine.seen_ips()
    assert context()[("main", "grid")] == KeyContext((HOME,), ())
    engine.process([ev(ts=T0, ip=HOME), ev(ts=T0 + 1, ip=MOVED)])
    assert context()[("main", "grid")] == KeyContext((HOME,), (HOME, MOVED))
    assert before == frozenset()  # a snapshot handed out never changes
    snap = engine.seen_ips()
    engine.process([ev(ts=T0 + 2, ip=HOME)])
    assert engine.seen_ips() is snap  # no new address: no copy


def test_an_engine_without_a_snapshot_claims_no_known_addresses():
    cfg = make_config(whitelist=[HOME])
    assert key_context_of(cfg, object())()[("main", "grid")] == KeyContext((HOME,), None)


def test_the_context_can_be_read_while_detection_adds_addresses():
    cfg = make_config()
    engine = DetectionEngine.from_config(cfg, rules_dir=RULES)
    context = key_context_of(cfg, engine)
    done = threading.Event()
    errors: list[BaseException] = []

    def detect() -> None:  # the detection thread: a new address in every batch
        try:
            for i in range(400):
                engine.process([ev(ts=T0 + i, ip=f"10.1.{i // 250}.{i % 250}")])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=detect)
    worker.start()
    reads = 0
    while not done.is_set():  # the event loop rendering alerts meanwhile
        known = context()[("main", "grid")].known_ips
        assert known is not None and list(known) == sorted(known)
        reads += 1
    worker.join()
    assert not errors and reads > 0
    assert len(context()[("main", "grid")].known_ips or ()) == 400
