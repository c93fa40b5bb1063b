"""The demo end to end: every injected attack caught by an alert that names it."""

from __future__ import annotations

import pytest

from monitor.world.demo.run import run_demo


@pytest.mark.slow  # the whole demo, ~95 s on 2 cores: `make test-slow`
async def test_demo_catches_every_attack_with_all_four_seed_signals(tmp_path):
    received = []
    result = await run_demo(out=tmp_path, say=lambda _m: None, on_alert=received.append)
    missed = [c.episode.type.value for c in result.catches if c.alert_id is None]
    assert not missed, missed
    assert len(result.catches) == 4
    assert {"call_rate_spike", "unknown_ip", "failure_rate_jump",
            "oversized_rejected_order"} <= result.signals_alerted
    assert received and result.db_path.exists()
    # the run directory keeps the simulator keys only in its 0600 .env, never in the config
    cfg_text = result.config_path.read_text()
    env = (result.run_dir / ".env").read_text()
    assert (result.run_dir / ".env").stat().st_mode & 0o077 == 0
    for line in env.split():
        assert line.split("=", 1)[1] not in cfg_text
