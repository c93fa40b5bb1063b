"""`keywatch sim`: the help is the control plane's manual, and each key says what it may do."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.cli.commands.sim import CONTROL_HELP, describe_key
from monitor.core.clock import SystemClock
from monitor.world.sim.control import HTTP_METHODS, Control
from monitor.world.sim.exchange import Exchange


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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("scenario", [None, "full"], ids=["serve", "scenario"])
def test_sim_exits_on_signal_when_started_in_the_background(
        sig: signal.Signals, scenario: str | None, tmp_path: Path) -> None:
    """Started as a shell's `keywatch sim &` starts it (SIGINT ignored), it still stops on
    SIGINT and SIGTERM within a few seconds, exit code 0."""
    args = [sys.executable, "-m", "monitor.cli", "sim", "--out-dir", str(tmp_path)]
    if scenario is not None:
        args += ["--scenario", scenario]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        seen = []
        for line in proc.stdout:  # the servers are up once the keys are listed
            seen.append(line)
            if line.startswith("key ") or time.monotonic() > deadline:
                break
        assert any(line.startswith("key ") for line in seen), "".join(seen)
        time.sleep(0.3)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(seen) + out
    assert "stopped" in out
