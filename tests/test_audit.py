"""`keywatch audit` against simulator keys flags exactly the planted problems."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from monitor.cli import app
from monitor.sim import SimulatorThread

DAY_MS = 86_400_000
HERE = "127.0.0.1"


def test_audit_flags_exactly_the_planted_problems(tmp_path, monkeypatch):
    runner = CliRunner()
    st = SimulatorThread()
    with st as sim:
        c = sim.control
        st.call(c.create_account, "main", {"USDT": 1000})
        now = st.call(c.server_time_ms)
        trade = {"enableReading": True, "enableSpotAndMarginTrading": True}
        planted = {
            # label: (permissions, real whitelist, declared whitelist, use case, created)
            "monitor": ({"enableReading": True}, [HERE], [HERE], "monitoring", None),
            "bot-wd": ({**trade, "enableWithdrawals": True}, [HERE], [HERE], "spot-bot", None),
            "bot-open": (trade, None, [], "spot-bot", None),
            "old-tax": ({"enableReading": True}, [HERE], [HERE], "tax", now - 400 * DAY_MS),
            "wide": ({"enableReading": True}, [HERE], [HERE, "0.0.0.0/0"], "monitoring", None),
        }
        env, keys_toml = [], []
        for label, (perms, real, declared, use_case, created) in planted.items():
            key, secret = st.call(c.create_key, "main", label, permissions=perms,
                                  ip_whitelist=real, create_time_ms=created)
            var = label.upper().replace("-", "_")
            env.append(f"{var}_KEY={key}\n{var}_SECRET={secret}\n")
            keys_toml.append(f"""
  [[accounts.keys]]
  label = "{label}"
  use_case = "{use_case}"
  api_key_env = "{var}_KEY"
  api_secret_env = "{var}_SECRET"
  ip_whitelist = {json.dumps(declared)}
""")
        (tmp_path / ".env").write_text("".join(env))
        cfg = tmp_path / "keywatch.toml"
        cfg.write_text(f"""
rules_dir = "{Path('rules').resolve()}"
[binance]
rest_url = "{sim.rest_url}"
ws_api_url = "{sim.ws_api_url}"
[[accounts]]
name = "main"
monitor_key = "monitor"
{''.join(keys_toml)}
""")
        result = runner.invoke(app, ["audit", "-c", str(cfg), "--json"])
    report = json.loads(result.stdout)
    found = {(k["key"], i["check"]) for k in report["keys"] for i in k["items"]}
    assert found == {
        ("bot-wd", "posture.withdrawals_enabled"),
        ("bot-open", "unknown_ip.restriction_off"),
        ("bot-open", "declared_whitelist_empty"),
        ("old-tax", "posture.key_age"),
        ("wide", "catch_all_whitelist"),
    }
    assert all(k["verified"] for k in report["keys"])
    assert result.exit_code == 1  # critical problems (withdrawals, catch-all) fail the cron job
    old = next(k for k in report["keys"] if k["key"] == "old-tax")
    assert old["due"] is not None
    for _, secret_line in (line.split("=", 1) for line in "".join(env).split()):
        assert secret_line not in result.stdout
