"""`keywatch demo --*-port`: every server the demo starts listens where it was told.

The real CLI runs in a subprocess with a fixed port for each server; once its start-up lines
are out, each port is asked something only that server answers (the simulator's ping, the tap
forwarding it, /metrics, the webhook printing an alert, a market-data stream subscription).
Ctrl-C then stops the demo well before its simulated day is over: exit 130, every port freed
(the simulator's own process too). Bad ports are refused in one line before anything starts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner
from websockets.sync.client import connect

from monitor.cli import app
from monitor.config import load_config
from monitor.core.clock import AcceleratedClock, SystemClock
from monitor.world.demo.receiver import AlertReceiver
from monitor.world.demo.run import write_config
from monitor.world.sim import load_scenario

NAMES = ("sim", "stream", "tap", "health", "receiver")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def refuses(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture()
def held_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("args, says", [
    (["--tap-port", "70000"], "--tap-port 70000: a port is 0-65535"),
    (["--sim-port", "-1"], "--sim-port -1: a port is 0-65535"),
    (["--health-port", "metrics"], "--health-port 'metrics': not a port number"),
    (["--tap-port", "18765", "--health-port", "18765"],
     "--health-port 18765: --tap-port has it already"),
])
def test_a_bad_port_is_one_line_before_anything_starts(args: list[str], says: str) -> None:
    result = CliRunner().invoke(app, ["demo", *args])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and says in result.output, result.output


def test_a_port_in_use_is_one_line(held_port: int) -> None:
    result = CliRunner().invoke(app, ["demo", "--receiver-port", str(held_port)])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0, result.output
    assert f"--receiver-port {held_port}: cannot listen on 127.0.0.1:{held_port}" in result.output


def _world(tmp_path: Path, sim: int, stream: int) -> subprocess.Popen[str]:
    start_ms, anchor = AcceleratedClock(120).anchor
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.world.demo.world", "--scenario", "demo", "--speed", "120",
         "--start-ms", str(start_ms), "--anchor", repr(anchor), "--out", str(tmp_path),
         "--port", str(sim), "--stream-port", str(stream)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _say(proc: subprocess.Popen[str], msg: dict[str, object]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(msg) + "\n")
    proc.stdin.flush()


def test_the_simulator_process_binds_its_two_ports_and_stops_mid_day(tmp_path: Path) -> None:
    """The demo's world (simulator + scenario) on the ports it is given; told to stop while
    the day runs (what Ctrl-C on the demo sends), it stops at once and frees them."""
    sim, stream = free_ports(2)
    proc = _world(tmp_path, sim, stream)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())["ready"]
        assert ready["rest_url"] == f"http://127.0.0.1:{sim}"
        assert ready["stream_url"] == f"ws://127.0.0.1:{stream}"
        assert httpx.get(f"{ready['rest_url']}/api/v3/ping", timeout=10).json() == {}
        with connect(f"ws://127.0.0.1:{stream}/ws/btcusdt@trade", open_timeout=10):
            pass
        _say(proc, {"tap_url": ready["rest_url"]})  # the bots call the simulator directly
        progress = json.loads(proc.stdout.readline())
        assert "scenario demo" in str(progress.get("progress")), progress  # the day runs
        began = time.monotonic()
        _say(proc, {"stop": True})
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - began < 5  # not the 90 s day, nor the parent's 10 s kill
        assert refuses(sim) and refuses(stream)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_the_webhook_and_the_tap_config_take_their_ports(tmp_path: Path) -> None:
    rport, tport = free_ports(2)
    receiver = await AlertReceiver(SystemClock(), port=rport).start()
    try:
        assert receiver.url == f"json://127.0.0.1:{rport}/" and not refuses(rport)
    finally:
        await receiver.stop()
    sc = load_scenario("demo")
    keys = {(a, label): (f"FAKEKEY{label}", f"FAKESECRET{label}")
            for a, spec in sc.accounts.items() for label in spec.keys}
    path = write_config(tmp_path, ("http://127.0.0.1:1", "ws://127.0.0.1:1/ws-api/v3"), sc,
                        receiver.url, keys, ("FAKEKEYmon", "FAKESECRETmon"), 120, tap_port=tport)
    assert load_config(path).sources.tap.listen == f"127.0.0.1:{tport}"


@pytest.mark.slow  # the real CLI up to its start-up lines: about 5 s (the model loader, two
# processes); the fast tests above check each server's port one by one
def test_the_demo_listens_on_the_ports_it_is_given(tmp_path: Path) -> None:
    ports = dict(zip(NAMES, free_ports(len(NAMES)), strict=True))
    args = [a for name, port in ports.items() for a in (f"--{name}-port", str(port))]
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "demo", "--out", str(tmp_path), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    out, err = proc.stdout, proc.stderr
    assert out is not None and err is not None
    lines: list[str] = []

    def read() -> None:
        for line in out:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while not any("service up" in ln for ln in lines):
            assert proc.poll() is None, (lines, err.read())
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)
        startup = " ".join("".join(lines).split())  # rich wraps long lines
        for name, where in [("sim", "simulator on http://127.0.0.1:{}"),
                            ("stream", "market streams on ws://127.0.0.1:{}"),
                            ("receiver", "alert webhook on http://127.0.0.1:{}/"),
                            ("tap", "tap http://127.0.0.1:{}"),
                            ("health", "metrics on http://127.0.0.1:{}")]:
            assert where.format(ports[name]) in startup, (name, startup)

        base = "http://127.0.0.1"
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{base}:{ports['sim']}/api/v3/ping").json() == {}
            assert client.get(f"{base}:{ports['tap']}/api/v3/ping").json() == {}  # forwarded
            metrics = client.get(f"{base}:{ports['health']}/metrics").text
            assert "keywatch_tap_requests_total" in metrics
            posted = client.post(f"{base}:{ports['receiver']}/",
                                 json={"title": "port check", "message": "-", "type": "info"})
            assert posted.status_code == 200
        with connect(f"ws://127.0.0.1:{ports['stream']}/ws/btcusdt@trade", open_timeout=10):
            pass
        deadline = time.monotonic() + 10
        while not any("ALERT port check" in ln for ln in lines):
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130, err.read()
        assert "demo stopped (Ctrl-C)" in "".join(lines)
        assert all(refuses(p) for p in ports.values()), ports
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
