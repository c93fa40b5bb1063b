"""deploy/keywatch-tap.service: the service's sandbox, but it never gives up and needs nothing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from monitor.collect.serverlimits import FD_TARGET, HEALTH_LIMITS, TAP_LIMITS
from tests.test_deploy import EXEC, UNIT, has_analyze, parse_unit

TAP_UNIT = UNIT.with_name("keywatch-tap.service")
SANDBOX = ("User", "Group", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "ReadWritePaths",
           "StateDirectory", "UMask", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
           "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
           "RestrictAddressFamilies", "CapabilityBoundingSet", "SystemCallFilter",
           "MemoryDenyWriteExecute", "KillSignal", "TimeoutStopSec")


def test_tap_unit_runs_the_tap_fails_open_and_keeps_the_services_sandbox() -> None:
    tap = parse_unit(TAP_UNIT.read_text())
    svc = parse_unit(UNIT.read_text())["Service"]
    ts = tap["Service"]
    assert {k: ts.get(k) for k in SANDBOX} == {k: svc.get(k) for k in SANDBOX}
    assert ts["ExecStart"] == [f"{EXEC} tap --config /etc/keywatch/keywatch.toml"]
    assert ts["Restart"] == ["always"]
    assert tap["Unit"]["StartLimitIntervalSec"] == ["0"]  # never stays failed
    assert "EnvironmentFile" not in ts  # needs no secret (test_the_docs_and_the_units_agree)
    # independent of the service: no ordering or requirement on it
    for dep in ("Requires", "BindsTo", "After", "Wants", "PartOf", "Requisite"):
        assert not any("keywatch.service" in v for v in tap["Unit"].get(dep, []))


@has_analyze
def test_systemd_accepts_the_tap_unit_and_rates_it_well_hardened(tmp_path: Path) -> None:
    stand_in = tmp_path / "keywatch"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "keywatch-tap.service"
    unit.write_text(TAP_UNIT.read_text().replace(EXEC, str(stand_in)))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines()
                  if "keywatch-tap.service" in line]
    assert proc.returncode == 0 and complaints == [], proc.stderr
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 and "offline" in proc.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    m = re.search(r"Overall exposure level for keywatch-tap\.service: ([\d.]+)", proc.stdout)
    assert m is not None, proc.stdout + proc.stderr
    assert float(m.group(1)) <= 2.0


def test_both_units_raise_the_open_files_limit_to_what_the_servers_expect() -> None:
    """systemd's default soft limit of 1024 let ~1,100 idle connections stop the tap and
    health; both units set LimitNOFILE to the number serverlimits sizes its servers for."""
    for unit in (UNIT, TAP_UNIT):
        (value,) = parse_unit(unit.read_text())["Service"]["LimitNOFILE"]
        assert int(value) == FD_TARGET, unit.name
    assert FD_TARGET > TAP_LIMITS.limit_concurrency + HEALTH_LIMITS.limit_concurrency


ENV_ROW = re.compile(r"^\| `(keywatch[-a-z]*\.service)` \| ([^|]+) \|", re.M)


def env_statement(doc: Path) -> dict[str, list[str]]:
    """The 'who reads .env' table of a doc, as each unit's expected EnvironmentFile= lines."""
    out = {}
    for unit, cell in ENV_ROW.findall(doc.read_text()):
        cell = cell.strip()
        if cell == "none":
            out[unit] = []
        else:
            m = re.fullmatch(r"`(/[^`]+)` \((required|optional)\)", cell)
            assert m is not None, f"{doc.name}: {unit}: cannot read {cell!r}"
            out[unit] = [("" if m.group(2) == "required" else "-") + m.group(1)]
    return out


def test_the_docs_and_the_units_agree_on_who_reads_the_env_file() -> None:
    """Issue 14: deploy/README.md, README.md and the units say the same about `.env`: the
    service loads it, the tap (which needs no secret) does not."""
    root = UNIT.parents[1]
    units = {u.name: parse_unit(u.read_text())["Service"].get("EnvironmentFile", [])
             for u in (UNIT, TAP_UNIT)}
    for doc in (root / "deploy" / "README.md", root / "README.md"):
        assert env_statement(doc) == units, doc
    assert units["keywatch-tap.service"] == []  # no secret in the tap's environment
