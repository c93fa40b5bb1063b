"""monitor.tools.investigate against a real database built from labelled synthetic traffic.

The database holds real findings and alerts (detection engine + alert manager over the
generator's events), so every assertion checks that an injected attack is visible where the
incident notebook shows it, and that a quiet key stays quiet.
"""

from __future__ import annotations

import nbformat
import pandas as pd
import pytest

import monitor.tools.investigate as ki
from monitor.alert.render import DELETE_KEY
from monitor.store import SQLiteStore
from monitor.tools.investigate import baseline as kb
from monitor.tools.investigate.run import inject
from monitor.tools.investigate.synthetic import build_db
from monitor.world.groundtruth import AttackType

ATTACKS = [AttackType.LEAKED_KEY_PUMP, AttackType.OVERSIZED_ORDERS,
           AttackType.IP_RESTRICTION_OFF]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_db(tmp_path_factory.mktemp("inv") / "kw.db", keys=2, days=0.4, seed=3,
                    attacks=ATTACKS)


def _episode(built, attack):
    return next(e for e in built.truth.episodes if e.type is attack)


def _during(df: pd.DataFrame, ep, col: str = "time") -> pd.Series:
    t = df[col] if col != "index" else pd.Series(df.index, index=df.index)
    lo = pd.Timestamp(ep.start_ms, unit="ms", tz="UTC").floor("min")
    return (t >= lo) & (t < pd.Timestamp(ep.end_ms, unit="ms", tz="UTC"))


def test_leaked_key_alert_shows_the_attack(built):
    ep = _episode(built, AttackType.LEAKED_KEY_PUMP)
    inc = ki.load_incident(built.db, built.alert_for(AttackType.LEAKED_KEY_PUMP),
                           config=built.config)
    assert "foreign.order" in set(ki.overview(inc)["rule"])
    t = ki.timeline(inc)
    inside = _during(t, ep, "index")
    before = t.index < pd.Timestamp(ep.start_ms, unit="ms", tz="UTC").floor("min")
    assert t.loc[inside, "orders"].mean() > 4 * max(t.loc[before, "orders"].mean(), 0.5)
    c = ki.callers(inc).set_index("ip")
    assert c.loc[ep.actor_ip, "status"] == "NEW"
    assert c.loc[ep.actor_ip, "key"] == ep.key
    bots = c.drop(index=ep.actor_ip)
    assert len(bots) and set(bots["status"]) <= {"known", "whitelisted"}
    assert bots["known_since"].notna().all()
    steps = ki.what_to_do(inc)
    assert steps[0].startswith(DELETE_KEY.split("'")[0])
    assert len(steps) == len(set(steps))


def test_forest_scores_the_attack_higher_than_before(built):
    ep = _episode(built, AttackType.LEAKED_KEY_PUMP)
    inc = ki.load_incident(built.db, built.alert_for(AttackType.LEAKED_KEY_PUMP),
                           config=built.config)
    s = ki.forest_scores(inc)
    mine = s[s["key"].eq(ep.key)]
    inside = mine[_during(mine, ep, "minute")]["score"]
    before = mine[mine["minute"] < pd.Timestamp(ep.start_ms, unit="ms", tz="UTC")]["score"]
    assert inside.max() > before.quantile(0.99)
    why = ki.forest_reasons(inc, top=3)
    assert len(why) == 3 and why["why"].str.len().gt(0).all()


def test_oversized_rejects_are_compared_with_the_free_balance(built):
    ep = _episode(built, AttackType.OVERSIZED_ORDERS)
    inc = ki.load_incident(built.db, built.alert_for(AttackType.OVERSIZED_ORDERS),
                           config=built.config)
    r = ki.rejected_orders(inc)
    big = r[_during(r, ep)]
    assert len(big) >= 3
    assert (big["code"] == -2010).all()
    assert (big["notional"] > big["free_balance"]).all()
    assert (big["notional"] > 100 * big["usual_order"]).all()
    fails = ki.failure_codes(inc)
    assert fails.loc[_during(fails, ep, "index"), "-2010 order rejected (balance)"].sum() >= 3


def test_restriction_off_shows_drift_and_posture(built):
    ep = _episode(built, AttackType.IP_RESTRICTION_OFF)
    inc = ki.load_incident(built.db, built.alert_for(AttackType.IP_RESTRICTION_OFF),
                           config=built.config)
    d = ki.drift(inc)
    off = d[(d["flag"] == "ipRestrict") & (d["after"] == False)]  # noqa: E712
    assert len(off) == 1 and off["key"].iloc[0] == ep.key
    assert off["time"].iloc[0] >= pd.Timestamp(ep.start_ms, unit="ms", tz="UTC")
    p = ki.key_posture(inc)
    assert p.loc[ep.key, "ipRestrict"] == False  # noqa: E712
    assert "no IP restriction" in p.loc[ep.key, "problems"]


def test_every_chart_is_a_png(built):
    inc = ki.load_incident(built.db, built.alert_for(AttackType.LEAKED_KEY_PUMP),
                           config=built.config)
    for plot in (ki.plot_timeline, ki.plot_callers, ki.plot_failures, ki.plot_rejects,
                 ki.plot_forest):
        assert plot(inc).png().startswith(PNG)


def test_without_config_the_notebook_still_loads_and_says_what_is_missing(built):
    inc = ki.load_incident(built.db, built.alert_for(AttackType.LEAKED_KEY_PUMP))
    assert any("no config" in n for n in inc.notes)
    assert ki.timeline(inc)["calls"].sum() > 0


def test_bad_inputs_give_clear_errors(built, tmp_path):
    with pytest.raises(ki.InvestigateError, match="not in the store"):
        ki.load_incident(built.db, "kw-0000000000")
    missing = tmp_path / "nope.db"
    with pytest.raises(ki.InvestigateError, match="no event store"):
        ki.load_incident(missing)
    assert not missing.exists()


def test_load_window_without_an_alert(built):
    ep = _episode(built, AttackType.LEAKED_KEY_PUMP)
    inc = ki.load_window(built.db, ep.account, ep.key, ep.start_ms - 600_000, ep.end_ms,
                         config=built.config)
    assert ep.actor_ip in set(ki.callers(inc)["ip"])


def test_baseline_replay_agrees_with_the_alerts_in_the_store(built):
    b = kb.load_baseline(built.db, config=built.config)
    assert b.key.startswith("bot")
    assert kb.daily_cycle(b)["calls_mean"].sum() > 0
    assert kb.order_sizes(b).loc["count", "accepted"] > 10
    assert len(kb.ip_history(b)) >= 1
    assert kb.model_card(b).loc["threshold", "value"] > 0
    replay = kb.rule_replay(b)
    store = SQLiteStore(built.db)
    try:
        sent = {i.rule_id for a in store.load_alerts() if a.kind != "digest"
                for i in a.payload.items if i.kind in ("new", "repeat")}
    finally:
        store.close()
    assert set(replay.loc[replay["paged"] > 0, "rule"]) == sent


def test_inject_adds_a_tagged_cell_after_the_parameters():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("x"),
                nbformat.v4.new_code_cell("A = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(A)")]
    out = inject(nb, {"A": 2, "B": "x'y"})
    assert out.cells[2].metadata["tags"] == ["injected-parameters"]
    ns: dict = {}
    exec(out.cells[1].source + "\n" + out.cells[2].source, ns)  # noqa: S102
    assert ns["A"] == 2 and ns["B"] == "x'y"
    assert len(nb.cells) == 3  # the original is untouched
    assert len(inject(out, {"A": 3}).cells) == 4  # re-injecting replaces, never stacks
    with pytest.raises(ValueError, match="not a valid parameter"):
        inject(nb, {"A; import os": 1})
