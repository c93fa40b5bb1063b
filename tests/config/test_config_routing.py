"""Alert routing is checked at load: a typo'd severity or a paging severity that reaches no
channel is refused by check-config (and run), so a critical alert is never silently undelivered.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from monitor.alert.channels import load_channels, severity_channels
from monitor.cli import app
from monitor.config import SEVERITIES, ConfigError, load_config
from monitor.core.findings import Severity
from tests.factories import fake_secret

BASE = """
store_path = "kw.db"
[[accounts]]
name = "main"
monitor_key = "monitor"
  [[accounts.keys]]
  label = "monitor"
  use_case = "monitoring"
  api_key_env = "KW_TEST_KEY"
  api_secret_env = "KW_TEST_SECRET"
[[alerts.channels]]
name = "pager"
url = "json://127.0.0.1:9999/"
tags = ["critical"]
[[alerts.channels]]
name = "mail"
url = "json://127.0.0.1:9998/"
tags = ["digest"]
"""
ENV = {"KW_TEST_KEY": fake_secret("key"), "KW_TEST_SECRET": fake_secret("secret")}


def write(tmp_path: Path, routing: str) -> Path:
    p = tmp_path / "keywatch.toml"
    p.write_text(textwrap.dedent(BASE) + "[alerts.routing]\n" + textwrap.dedent(routing))
    return p


def test_severity_names_are_the_findings_severities() -> None:
    assert set(SEVERITIES) == {s.value for s in Severity}


def test_a_typo_in_a_routing_key_is_refused_with_the_right_name(tmp_path: Path) -> None:
    path = write(tmp_path, 'critcal = ["critical"]\nhigh = ["critical"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, env=ENV)
    text = str(err.value)
    assert "alerts.routing" in text and "'critcal' is not a severity" in text
    assert "did you mean 'critical'?" in text


def test_check_config_exits_non_zero_on_the_typo(tmp_path: Path, monkeypatch) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = write(tmp_path, 'critcal = ["critical"]\n')
    result = CliRunner().invoke(app, ["check-config", "-c", str(path)])
    assert result.exit_code == 1
    assert "did you mean 'critical'?" in result.output
    assert "Traceback" not in result.output


def test_a_paging_severity_that_reaches_no_channel_is_refused_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, 'critical = ["pagr"]\nhigh = ["critical"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, env=ENV)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith("alerts.routing.critical: critical alerts go to "
                                            "channels tagged ['pagr']")


def test_a_severity_left_out_takes_the_default_and_is_delivered(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, 'high = ["critical"]\n'), env=ENV)
    channels = load_channels(cfg.alerts)
    assert severity_channels(channels, cfg.alerts, Severity.CRITICAL) == ["pager"]


def test_an_untagged_channel_is_a_catch_all_for_routing(tmp_path: Path) -> None:
    text = textwrap.dedent(BASE).replace('tags = ["critical"]\n', "")
    p = tmp_path / "keywatch.toml"
    p.write_text(text + '[alerts.routing]\ncritical = ["nowhere"]\n')
    cfg = load_config(p, env=ENV)
    assert severity_channels(load_channels(cfg.alerts), cfg.alerts, Severity.CRITICAL) == [
        "pager"]


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1,
                               max_size=10),
                       st.lists(st.sampled_from(["critical", "digest"]), max_size=2),
                       max_size=5))
def test_any_table_is_refused_or_routes_every_paging_severity(table) -> None:
    from monitor.config import AlertsConfig, ChannelConfig

    channels = [ChannelConfig(name="pager", url="json://127.0.0.1:1/", tags=["critical"])]
    try:
        cfg = AlertsConfig(channels=channels, routing=table)
    except ValueError as exc:
        assert any(k not in SEVERITIES for k in table)
        assert "is not a severity" in str(exc)
        return
    assert set(cfg.routing) == set(SEVERITIES)
    for sev in ("critical", "high"):
        if sev not in table:
            assert cfg.routing[sev] == ["critical"]
