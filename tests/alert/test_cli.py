"""`keywatch silence ...`, `keywatch alerts`, `keywatch test-alert` through the real CLI."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.cli.commands.alerts import parse_duration
from monitor.store import AlertPayload, SQLiteStore
from tests.alert.conftest import MONITOR_ACCOUNT_TOML, alerts_cfg, channel, finding, foreign_order
from tests.alert.receivers import SmtpSink, _free_port, mail_text
from tests.factories import fake_secret


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    smtp = SmtpSink().start()
    dead = _free_port()  # nothing listens here: that channel must fail, the other must not
    monkeypatch.setenv("KW_KEY", fake_secret("key"))
    monkeypatch.setenv("KW_SECRET", fake_secret("secret"))
    cfg = tmp_path / "keywatch.toml"
    cfg.write_text(textwrap.dedent(f"""
        store_path = "{tmp_path / 'kw.db'}"
        [[alerts.channels]]
        name = "mail"
        url = "{smtp.url}"
        [[alerts.channels]]
        name = "dead-hook"
        url = "json://127.0.0.1:{dead}/"
    """) + MONITOR_ACCOUNT_TOML)
    yield cfg, smtp, tmp_path / "kw.db"
    smtp.stop()


def test_silence_add_list_expire(setup):
    cfg, _, db = setup
    run = CliRunner().invoke
    r = run(app, ["silence", "add", "--rule", "unknown-ip", "--key", "grid-bot", "--for", "2h",
                  "--reason", "moving servers", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "silence 1 added" in r.output
    store = SQLiteStore(db)
    (s,) = store.silences()
    assert (s.rule_id, s.key, s.account) == ("unknown-ip", "grid-bot", None)
    assert s.expires_ts - s.created_ts == 2 * 3_600_000
    store.close()
    r = run(app, ["silence", "list", "--config", str(cfg)])
    assert "rule=unknown-ip" in r.output and "moving servers" in r.output
    assert run(app, ["silence", "expire", "1", "--config", str(cfg)]).exit_code == 0
    assert "no active silences" in run(app, ["silence", "list", "--config", str(cfg)]).output
    assert run(app, ["silence", "expire", "1", "--config", str(cfg)]).exit_code == 1
    bad = run(app, ["silence", "add", "--for", "2h", "--reason", "x", "--config", str(cfg)])
    assert bad.exit_code == 2 and "refusing to silence everything" in bad.output
    bad = run(app, ["silence", "add", "--key", "k", "--for", "soon", "--reason", "x",
                    "--config", str(cfg)])
    assert bad.exit_code != 0 and "duration" in bad.output


def test_test_alert_reports_each_channel(setup):
    cfg, smtp, _ = setup
    r = CliRunner().invoke(app, ["test-alert", "--config", str(cfg)])
    assert r.exit_code == 1  # one channel is down
    assert "mail: OK" in r.output
    assert "dead-hook: FAILED" in r.output
    (msg,) = smtp.messages
    assert "test alert" in msg["Subject"] and "keywatch test-alert" in mail_text(msg)


def test_alerts_lists_recent_alerts_with_delivery_state(setup):
    cfg, _, db = setup
    store = SQLiteStore(db)
    from monitor.core.clock import SystemClock

    now = SystemClock().now_ms()
    store.enqueue_alert("kw-0123456789", "fp", now, "critical", "main", "grid-bot", "firing",
                        "[CRITICAL] main/grid-bot: test [kw-0123456789]", "body text",
                        AlertPayload(), ["mail", "dead-hook"])
    store.record_attempt("kw-0123456789", "mail", True, now)
    store.close()
    r = CliRunner().invoke(app, ["alerts", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "kw-0123456789" in r.output and "mail=sent" in r.output
    assert "dead-hook=pending" in r.output
    r = CliRunner().invoke(app, ["alerts", "--show", "kw-0123456789", "--config", str(cfg)])
    assert "body text" in r.output


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200),
                                               ("1d", 86400), ("1h30m", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


# (the alert's finding, the next one that must be silenced, one that must still alert)
_PRINTED = {
    "account-wide foreign order (key shown as -)": (
        foreign_order(1), foreign_order(2, cid="x-pump"), foreign_order(3, key="grid-bot")),
    "a key's unknown caller (--ip)": (
        finding(ip="127.66.0.9"), finding(ip="127.66.0.9"), finding(ip="127.66.0.10")),
}


@pytest.mark.parametrize(("first", "silenced", "alerting"), _PRINTED.values(), ids=_PRINTED)
def test_the_silence_command_printed_in_an_alert_silences_that_alert(setup, first, silenced,
                                                                     alerting):
    import shlex

    from monitor.alert.manager import AlertManager
    from monitor.core.clock import ManualClock, SystemClock

    cfg, _, db = setup
    clock = ManualClock(SystemClock().now_ms())  # the CLI stamps its silence with real time
    store = SQLiteStore(db)
    mgr = AlertManager(store, clock, alerts_cfg(channel("hook", "json://127.0.0.1:9/")))

    def fire(f):
        mgr.submit([f.model_copy(update={"ts": clock.now_ms()})])
        clock.advance(10_000)
        return mgr.flush()

    (alert_id,) = fire(first)
    body = store.load_alert(alert_id).body
    (line,) = [x for x in body.splitlines() if x.startswith("Silence: ")]
    argv = shlex.split(line.removeprefix("Silence: "))
    assert argv[:3] == ["keywatch", "silence", "add"]
    r = CliRunner().invoke(app, [*argv[1:], "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    clock.advance(60_000)
    assert fire(silenced) == [] and mgr.counters["silenced"] == 1
    assert len(fire(alerting)) == 1
    store.close()
