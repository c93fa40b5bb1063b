"""Run a scenario against a live `Simulator` and write its ground truth.

Everything is scheduled on the simulator's clock, so the scenario's duration is simulated time
and the caller's AcceleratedClock(speed) decides how fast it runs. For a given seed the bots'
choices and the attack timeline are the same on every run; absolute timestamps follow the
clock's start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from monitor.world.groundtruth import AttackType, Episode, GroundTruth, OwnCaller
from monitor.world.sim.attacks import ATTACKS
from monitor.world.sim.bots import BOT_KINDS, Bot, RunCtx
from monitor.world.sim.clientbots import ClientBot
from monitor.world.sim.scenario import AttackSpec, Scenario, load_scenario
from monitor.world.sim.server import Simulator

# Attacks that change state which then persists: their episode lasts to the scenario's end.
KINDS: dict[str, type[Bot]] = {**BOT_KINDS, "client": ClientBot}
PERSISTENT = {AttackType.IP_RESTRICTION_OFF, AttackType.WITHDRAWAL_ENABLED,
              AttackType.HOST_IP_CHANGED}


def prepare(sim: Simulator, scenario: Scenario | str) -> dict[tuple[str, str], tuple[str, str]]:
    """Create the scenario's accounts and keys (idempotent); returns (account, label) -> keys.

    Call it before `run_scenario` when something (the demo's collector) needs the keys first.
    """
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    existing = {(k.account, k.label) for k in sim.control.list_keys()}
    accounts = set(sim.exchange.books.accounts)
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for name, acct in sc.accounts.items():
        if name not in accounts:
            sim.control.create_account(name, acct.balances)
        for label, spec in acct.keys.items():
            if (name, label) not in existing:
                sim.control.create_key(name, label,
                                       permissions={p: True for p in spec.permissions},
                                       ip_whitelist=spec.ip_whitelist)
            out[(name, label)] = sim.control.key_for(name, label)
    return out


async def run_scenario(sim: Simulator, scenario: Scenario | str, *, seed: int = 0,
                       tap_url: str | None = None, out_dir: Path | None = None,
                       on_progress: Callable[[str], None] | None = None) -> GroundTruth:
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    say = on_progress or (lambda _msg: None)
    keys = prepare(sim, sc)
    clock = sim.clock
    start_ms = clock.now_ms()
    end_ms = start_ms + int(sc.duration * 1000)
    ctx = RunCtx(clock=clock, control=sim.control, rest_url=sim.rest_url, tap_url=tap_url,
                 seed=seed, end_ms=end_ms, recv_window=5000 if clock.speed <= 20 else 60000,
                 keys=keys, progress=say)
    bots: dict[str, Bot] = {b.name: KINDS[b.kind](b, ctx) for b in sc.bots}
    episodes: list[Episode] = []
    say(f"scenario {sc.name}: {len(bots)} bots, {len(sc.attacks)} attacks, "
        f"{sc.duration / 3600:.2f} h simulated at {clock.speed:g}x")

    async def attack(spec: AttackSpec) -> None:
        await clock.sleep(max(0.0, (start_ms + spec.at * 1000 - clock.now_ms()) / 1000))
        begin = clock.now_ms()
        say(f"attack {spec.type.value} starts ({spec.ip or 'control plane'})")
        note = await ATTACKS[spec.type](spec, ctx, bots)
        end = end_ms if spec.type in PERSISTENT else max(clock.now_ms(), begin + 1)
        episodes.append(Episode(type=spec.type, account=spec.account, key=spec.key,
                                actor_ip=spec.ip, start_ms=begin, end_ms=end,
                                note="; ".join(x for x in (spec.note, note) if x)))
        say(f"attack {spec.type.value} done: {note}")

    tasks = [asyncio.create_task(b.run(), name=f"bot:{n}") for n, b in bots.items()]
    attack_tasks = [asyncio.create_task(attack(a), name=f"attack:{a.type}") for a in sc.attacks]
    try:
        await asyncio.gather(*attack_tasks)
        await clock.sleep(max(0.0, (end_ms - clock.now_ms()) / 1000))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    finally:
        for task in [*tasks, *attack_tasks]:
            task.cancel()
        for task in [*tasks, *attack_tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    truth = GroundTruth(scenario=sc.name, seed=seed, speed=float(clock.speed),
                        start_ms=start_ms, end_ms=max(end_ms, clock.now_ms()),
                        episodes=sorted(episodes, key=lambda e: (e.start_ms, e.type.value)),
                        own_callers=sorted({OwnCaller(account=b.account, key=b.key, ip=b.ip)
                                            for b in sc.bots if b.ip},
                                           key=lambda c: (c.account, c.key, c.ip)))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        truth.save(out_dir / f"{sc.name}-seed{seed}.groundtruth.json")
    say("calls by actor and status: " + ", ".join(f"{k}={v}"
                                                  for k, v in sorted(ctx.stats.items())))
    return truth
