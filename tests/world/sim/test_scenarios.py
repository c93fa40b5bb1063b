"""Scenario engine: shipped files load, and a run injects and labels every attack for real."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path

import pytest

from monitor.core.clock import AcceleratedClock
from monitor.world.groundtruth import AttackType, GroundTruth
from monitor.world.sim import Simulator, list_scenarios, load_scenario, run_scenario
from monitor.world.sim.market import SYMBOLS, PricePath
from monitor.world.sim.scenario import Scenario

SEED_SIGNALS = {AttackType.LEAKED_KEY_PUMP, AttackType.PERMISSION_PROBE,
                AttackType.OVERSIZED_ORDERS, AttackType.IP_RESTRICTION_OFF}


def test_shipped_scenarios_load_and_cover_the_attack_types() -> None:
    assert {"demo", "full", "normal", "one_hour"} <= set(list_scenarios())
    assert {a.type for a in load_scenario("full").attacks} == set(AttackType)
    assert {a.type for a in load_scenario("one_hour").attacks} == set(AttackType)
    assert {a.type for a in load_scenario("demo").attacks} == SEED_SIGNALS
    assert load_scenario("normal").attacks == []
    assert load_scenario("one_hour").duration == 3600


def test_bad_scenario_names_file_and_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nduration: 1h\naccounts: {a: {balances: {}, keys: {}}}\n"
                   "attacks: [{type: runaway_bot, at: 1m, account: nope}]\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*unknown account 'nope'"):
        load_scenario(str(bad))
    with pytest.raises(FileNotFoundError, match="shipped"):
        load_scenario("no-such-scenario")


def test_price_path_is_deterministic_per_seed() -> None:
    spec = SYMBOLS["BTCUSDT"]
    a, b, c = (PricePath(spec, s, 0) for s in (7, 7, 8))
    steps = [a.at(t * 60_000) for t in range(1, 50)]
    assert steps == [b.at(t * 60_000) for t in range(1, 50)]
    assert steps != [c.at(t * 60_000) for t in range(1, 50)]
    assert all(p > Decimal(0) for p in steps)


async def _run(name: str | Scenario, speed: float, tmp_path: Path) -> tuple[GroundTruth,
                                                                            Simulator, float]:
    async with Simulator(clock=AcceleratedClock(speed), seed=5) as sim:
        t0 = time.monotonic()
        truth = await run_scenario(sim, name, seed=5, out_dir=tmp_path)
        return truth, sim, time.monotonic() - t0


def _check_one_hour(truth: GroundTruth, sim: Simulator, tmp_path: Path) -> None:
    assert [e.type for e in truth.episodes] == [
        AttackType.LEAKED_KEY_PUMP, AttackType.PERMISSION_PROBE, AttackType.OVERSIZED_ORDERS,
        AttackType.RUNAWAY_BOT, AttackType.IP_RESTRICTION_OFF, AttackType.WITHDRAWAL_ENABLED,
        AttackType.HOST_IP_CHANGED, AttackType.SLOW_MISUSE]
    by_type = {e.type: e for e in truth.episodes}
    assert by_type[AttackType.LEAKED_KEY_PUMP].actor_ip == "127.66.0.9"
    assert all(truth.start_ms <= e.start_ms <= e.end_ms <= truth.end_ms for e in truth.episodes)
    assert GroundTruth.load(tmp_path / "one_hour-seed5.groundtruth.json") == truth
    # The attacks happened on the exchange, not just in the labels:
    orders = sim.exchange.books.accounts["main"].orders.values()
    pump = [o for o in orders if o.caller_ip == "127.66.0.9" and o.symbol == "DOGEUSDT"]
    assert len(pump) == 12 and all(o.status == "FILLED" for o in pump)
    assert not any(o.client_order_id.startswith(("grid1-", "dca-")) for o in pump)
    assert any(o.client_order_id.startswith("grid1-") for o in orders)
    assert any(o.client_order_id.startswith("dca-") for o in orders)
    assert any(o.caller_ip == "127.0.0.12" for o in orders)
    log = sim.control.weight_log()
    assert any(ip == "127.0.0.9" for _t, ip, _p, _w in log)  # the moved bot kept calling
    assert any(ip == "127.66.0.10" for _t, ip, _p, _w in log)
    wds = sim.exchange.books.accounts["main"].withdrawals
    assert len(wds) == 1 and wds[0].address.startswith("0x5f1c")
    assert sim.control.list_keys()[2].ip_whitelist is None  # tracker restriction removed
    assert "-2015" in by_type[AttackType.PERMISSION_PROBE].note
    assert "-2014" in by_type[AttackType.PERMISSION_PROBE].note
    assert "5/5" in by_type[AttackType.OVERSIZED_ORDERS].note


async def test_one_hour_at_600x_labels_every_episode(tmp_path: Path) -> None:
    # no wall-time bound here (speed is bench's business): on a loaded runner it only flaked
    truth, sim, _wall = await _run("one_hour", 600, tmp_path)
    _check_one_hour(truth, sim, tmp_path)


async def test_runaway_bot_floods_into_429_then_418(tmp_path: Path) -> None:
    base = load_scenario("one_hour").model_dump()
    sc = Scenario.model_validate({
        **base, "name": "runaway", "duration": 150, "bots": [],
        "attacks": [{"type": "runaway_bot", "at": 0, "account": "main", "key": "grid",
                     "ip": "127.0.0.3", "count": 300}]})
    truth, sim, _wall = await _run(sc, 60, tmp_path)
    (episode,) = truth.episodes
    statuses = dict(x.split("x") for x in episode.note.removeprefix("statuses: ").split(", "))
    assert statuses["200"] == "75"  # 75 x 80 weight = 6000 exactly, then 429s, then the ban
    assert int(statuses["429"]) == 10 and int(statuses["418"]) >= 3
    assert episode.actor_ip == "127.0.0.3"


@pytest.mark.slow
async def test_one_hour_at_60x_takes_about_a_minute(request: pytest.FixtureRequest,
                                                    tmp_path: Path) -> None:
    if "slow" not in (request.config.getoption("-m") or "") and not os.environ.get(
            "KEYWATCH_SLOW"):
        pytest.skip("~62 s: run with -m slow or KEYWATCH_SLOW=1")
    truth, sim, wall = await _run("one_hour", 60, tmp_path)
    assert 55 < wall < 80
    _check_one_hour(truth, sim, tmp_path)
    assert "429x" in truth.episodes[3].note and "418x" in truth.episodes[3].note


def test_cli_lists_scenarios() -> None:
    import typer
    from typer.testing import CliRunner

    from monitor.cli.commands import sim as sim_command

    app = typer.Typer()
    sim_command.register(app)
    app.command("noop")(lambda: None)  # keep typer in multi-command mode
    result = CliRunner().invoke(app, ["sim", "--list"])
    assert result.exit_code == 0 and "one_hour:" in result.output
    result = CliRunner().invoke(app, ["sim", "--scenario", "nope"])
    assert result.exit_code != 0 and "shipped" in result.output
