"""`keywatch sim`: the help is the control plane's manual, and each key says what it may do."""

from __future__ import annotations

from typer.testing import CliRunner

from monitor.cli import app
from monitor.clock import SystemClock
from monitor.commands.sim import CONTROL_HELP, describe_key
from monitor.sim.control import HTTP_METHODS, Control
from monitor.sim.exchange import Exchange


def test_help_names_every_control_method() -> None:
    missing = [m for m in sorted(HTTP_METHODS) if m not in CONTROL_HELP]
    assert missing == []
    out = CliRunner().invoke(app, ["sim", "--help"], terminal_width=200).output
    assert "POST /control/<method>" in out and "create_key" in out


def test_each_key_says_what_it_can_do_and_from_where() -> None:
    control = Control(Exchange(SystemClock()))
    control.create_account("me", {"USDT": 10})
    control.create_key("me", "bot", permissions={"enableReading": True,
                                                 "enableSpotAndMarginTrading": True},
                       ip_whitelist=["127.0.0.5"])
    control.create_key("me", "reader")
    lines = [describe_key(k) for k in control.list_keys()]
    assert lines == [
        "key me/bot: enableReading, enableSpotAndMarginTrading; from 127.0.0.5",
        "key me/reader: enableReading; from any IP",
    ]
    assert all("secret" not in line for line in lines)
