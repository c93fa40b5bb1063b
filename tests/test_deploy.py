"""deploy/keywatch.service: the hardening is present, and systemd itself accepts the unit."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "keywatch.service"
EXEC = "/opt/keywatch/.venv/bin/keywatch"
has_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's format: sections, `Key=value`, repeated keys accumulate, `#`/`;` comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{UNIT}:{n}: not `Key=value` inside a section"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_unit_has_the_hardening() -> None:
    svc = parse_unit(UNIT.read_text())["Service"]
    expected = {
        "User": "keywatch",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "read-only",
        "ReadWritePaths": "/var/lib/keywatch",
        "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "EnvironmentFile": "/etc/keywatch/.env",
        "ExecStart": f"{EXEC} run --config /etc/keywatch/keywatch.toml",
        "Restart": "on-failure",
        "TimeoutStopSec": "15",
        "KillSignal": "SIGTERM",
        "CapabilityBoundingSet": "",
    }
    assert {k: svc.get(k, ["<missing>"])[-1] for k in expected} == expected
    # the service's own data dir is the only writable path
    assert svc["StateDirectory"] == ["keywatch"]


@has_analyze
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` with ExecStart pointed at a stand-in (the venv is not here).

    verify exits 0 even for unknown keys or bad values (it only warns), so any line it prints
    about the unit file fails the test.
    """
    stand_in = tmp_path / "keywatch"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "keywatch.service"
    unit.write_text(UNIT.read_text().replace(EXEC, str(stand_in)))
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
        timeout=60,
    )
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines()
                  if "keywatch.service" in line]
    assert proc.returncode == 0 and complaints == [], proc.stderr


@has_analyze
def test_systemd_rates_the_unit_well_hardened(tmp_path: Path) -> None:
    unit = tmp_path / "keywatch.service"
    unit.write_text(UNIT.read_text())
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60,
    )
    if proc.returncode != 0 and "offline" in proc.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    m = re.search(r"Overall exposure level for keywatch\.service: ([\d.]+)", proc.stdout)
    assert m is not None, proc.stdout + proc.stderr
    assert float(m.group(1)) <= 2.0  # systemd's scale: 0 safe .. 10 exposed; <= 2 is "OK"
