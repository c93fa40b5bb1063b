"""Posture reads what the poller builds: events made by `parse_rest.key_config_event` from a
documented `apiRestrictions` answer, never hand-made flat dicts (those hid that the poller
nested its flags under `snapshot` and posture fired on no live poll at all)."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.binance import parse_rest
from monitor.binance.parse import Ctx
from monitor.core.events import Event
from monitor.core.keyrestrictions import KeyConfigPoll, KeyRestrictions
from monitor.detect.engine import DetectionEngine
from monitor.detect.rules import load_rules
from monitor.features import FeatureContext
from tests.detect.helpers import MIN, T0, make_config

ROOT_RULES = Path(__file__).resolve().parents[2] / "rules"
# Binance's documented example answer (GET /sapi/v1/account/apiRestrictions)
ANSWER = {"ipRestrict": True, "createTime": T0 - 5 * 1440 * MIN, "enableReading": True,
          "enableWithdrawals": False, "enableInternalTransfer": False, "enableMargin": False,
          "enableFutures": False, "permitsUniversalTransfer": False,
          "enableVanillaOptions": False, "enableFixApiTrade": False, "enableFixReadOnly": True,
          "enableSpotAndMarginTrading": False, "enablePortfolioMarginTrading": False}


def polls(*answers: dict[str, object], key: str = "mon",
          retired_at: int | None = None) -> list[Event]:
    """key_config events exactly as the poller emits them, one minute apart."""
    out, prev = [], None
    for i, a in enumerate(answers):
        rec = parse_rest.key_restrictions(a)
        ctx = Ctx(account="main", key=key, received_ts=T0 + i * MIN)
        gained = rec.gained(parse_rest.key_restrictions(answers[0])) if i == retired_at else ()
        ev = parse_rest.key_config_event(ctx, T0 + i * MIN, rec, prev, retired_for=gained)
        if ev is not None:
            out.append(ev)
        prev = rec
    return out


def rule_ids(events: list[Event]) -> list[str]:
    eng = DetectionEngine(FeatureContext.from_config(make_config()), load_rules(ROOT_RULES))
    return [f.rule_id for f in eng.process(events)]


def test_withdrawals_on_a_monitoring_key_at_the_first_poll_fire() -> None:
    assert "posture.withdrawals_enabled" in rule_ids(polls({**ANSWER,
                                                            "enableWithdrawals": True}))


def test_gaining_withdrawals_fires_the_critical_check_not_only_drift() -> None:
    ids = rule_ids(polls(ANSWER, ANSWER, {**ANSWER, "enableWithdrawals": True}))
    assert "drift.flags" in ids and "posture.withdrawals_enabled" in ids
    assert "posture.monitor_key_retired" not in ids  # the poller did not say it retired it


def test_the_pollers_retirement_is_what_posture_reports() -> None:
    ids = rule_ids(polls(ANSWER, {**ANSWER, "enableSpotAndMarginTrading": True},
                         retired_at=1))
    assert "posture.monitor_key_retired" in ids


def test_event_raw_is_the_answer_and_reads_back_as_the_record() -> None:
    (ev,) = polls(ANSWER)
    assert json.loads(ev.raw or "") == ANSWER
    assert KeyRestrictions.from_raw(ev.raw) == KeyRestrictions.from_answer(ANSWER)
    # events stored before the record nested the flags under `snapshot`: still read
    legacy = json.dumps({"change": "first_seen", "snapshot": ANSWER})
    assert KeyRestrictions.from_raw(legacy) == KeyRestrictions.from_answer(ANSWER)
    assert KeyConfigPoll.from_raw('{"ipRestrict": "yes"}') is None


def test_privileged_lists_what_a_reader_must_not_have() -> None:
    rec = KeyRestrictions.from_answer({**ANSWER, "enableWithdrawals": True,
                                       "enableNewThing": True})
    assert rec.privileged() == ("enableWithdrawals", "enableNewThing")
    assert rec.gained(KeyRestrictions.from_answer({**ANSWER, "enableWithdrawals": True})) == (
        "enableNewThing",)
