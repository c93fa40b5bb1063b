"""`keywatch audit` against simulator keys flags exactly the planted problems, and tells the
truth about the keys it could not read."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.detect.rules import load_rules
from monitor.world.sim import SimulatorThread

DAY_MS = 86_400_000
HERE = "127.0.0.1"
ACTIONS = {r.id: " ".join(r.action.split()) for r in load_rules(Path("rules"))}


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """(json report, table output, json exit code, planted, now) for one run against the sim."""
    tmp = tmp_path_factory.mktemp("audit")
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
            "bot-ut": ({**trade, "permitsUniversalTransfer": True}, [HERE], [HERE], "spot-bot",
                       now - 10 * DAY_MS),
            # Binance refuses this one: its real whitelist does not hold this host
            "refused": ({"enableReading": True}, ["127.0.0.99"], [HERE], "monitoring", None),
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
        # a key Keywatch holds no secret for, created (says the config) years ago
        keys_toml.append("""
  [[accounts.keys]]
  label = "no-secret"
  use_case = "tax"
  api_key_sha256 = "%s"
  ip_whitelist = ["127.0.0.1"]
  created = "2020-01-02"
""" % ("ab" * 32))
        (tmp / ".env").write_text("".join(env))
        cfg = tmp / "keywatch.toml"
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
        as_json = runner.invoke(app, ["audit", "-c", str(cfg), "--json"])
        table = runner.invoke(app, ["audit", "-c", str(cfg)])
    secrets = [line.split("=", 1)[1] for line in "".join(env).split()]
    return json.loads(as_json.stdout), table, as_json, secrets, now


def _keys(report):
    return {k["key"]: k for k in report["keys"]}


def test_audit_flags_exactly_the_planted_problems(audited):
    report, table, result, secrets, _ = audited
    found = {(k["key"], i["check"]) for k in report["keys"] for i in k["items"]}
    assert found == {
        ("bot-wd", "posture.withdrawals_enabled"),
        ("bot-open", "unknown_ip.restriction_off"),
        ("bot-open", "declared_whitelist_empty"),
        ("old-tax", "posture.key_age"),
        ("wide", "catch_all_whitelist"),
        ("bot-ut", "universal_transfer_on_trading_key"),
        ("bot-ut", "posture.extra_permissions"),
        ("no-secret", "posture.key_age"),  # from the config's created date
    }
    assert result.exit_code == 1  # critical problems (withdrawals, catch-all) fail the cron job
    for secret in secrets:
        assert secret not in result.stdout and secret not in table.stdout


def test_keys_it_could_not_read_are_not_checked_never_ok(audited):
    report, table, *_ = audited
    keys = _keys(report)
    assert {k for k, r in keys.items() if not r["verified"]} == {"refused", "no-secret"}
    assert set(report["not_checked"]) == {"main/refused", "main/no-secret"}
    assert keys["refused"]["status"] == "not checked" and keys["monitor"]["status"] == "ok"
    rows = [line for line in table.stdout.splitlines() if "│ refused" in line]
    assert rows and all(" ok " not in r for r in rows) and "not checked" in rows[0]


def test_a_refusal_names_the_refused_key_not_the_monitor(audited, caplog):
    report, table, result, *_ = audited
    note = _keys(report)["refused"]["note"]
    assert "Binance refused key refused" in note and "-2015" in note
    assert "monitor key" not in result.output and "monitor key" not in table.output
    assert _keys(report)["monitor"]["verified"]


def test_rotation_is_due_from_the_keys_creation_date(audited):
    report, *_, now = audited
    keys = _keys(report)
    assert keys["old-tax"]["created"] == _day(now - 400 * DAY_MS)
    assert keys["old-tax"]["due"] == _day(now - 400 * DAY_MS + 365 * DAY_MS)
    assert keys["bot-ut"]["due"] == _day(now - 10 * DAY_MS + 90 * DAY_MS)
    assert keys["no-secret"]["created"] == "2020-01-02" and keys["no-secret"]["due"] == "2021-01-01"
    assert keys["monitor"]["created"] == _day(now)


def test_the_rules_action_is_in_the_json_and_the_table(audited):
    report, table, *_ = audited
    items = {(k["key"], i["check"]): i for k in report["keys"] for i in k["items"]}
    assert items[("bot-wd", "posture.withdrawals_enabled")]["action"] == ACTIONS[
        "posture.withdrawals_enabled"]
    assert all(i["action"] for i in items.values())
    assert "what to do" in table.stdout and "Enable Withdrawals" in table.stdout


def test_universal_transfer_on_a_trading_key_is_high(audited):
    report, *_ = audited
    (item,) = [i for i in _keys(report)["bot-ut"]["items"]
               if i["check"] == "universal_transfer_on_trading_key"]
    assert item["severity"] == "high" and "permitsUniversalTransfer" in item["message"]


def test_no_seed_jargon_in_what_a_person_reads(audited):
    _, table, result, *_ = audited
    for text in (table.stdout, result.stdout):
        assert not re.search(r"\bseed\b", text, re.I)
    help_text = CliRunner().invoke(app, ["audit", "--help"]).stdout
    assert "seed" not in help_text.lower() and "key-security checklist" in help_text


def test_a_key_not_checked_says_how_to_let_keywatch_read_it(audited):
    keys = _keys(audited[0])
    assert "secret" in keys["no-secret"]["fix"]
    assert "IP whitelist" in keys["refused"]["fix"]  # its secret is held: the host is refused
    assert keys["monitor"]["fix"] == ""


def test_the_audit_says_what_judges_a_key_from_when(audited):
    """Issue 17: warm-up is explicit, in the JSON and under the table."""
    report, table, *_ = audited
    whens = [s["when"] for s in report["warm_up"]]
    assert whens[0] == "from the first event" and whens[-1] == "after a day"
    first = report["warm_up"][0]["rules"]
    assert any(r.startswith("posture.withdrawals_enabled:") for r in first)
    assert "Detection warm-up" in table.stdout and "after a day" in table.stdout
