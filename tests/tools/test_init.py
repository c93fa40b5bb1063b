"""`keywatch init`: config copied from the one template, .env naming every variable, .gitignore."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from monitor.cli.commands import init as init_command
from monitor.config import ConfigError, load_config
from monitor.tools.initcmd import (
    InitError,
    ensure_gitignored,
    env_vars,
    find_template,
    init_project,
)
from monitor.tools.scan import scan_paths

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "keywatch.example.toml"


def template_env_names() -> list[str]:
    """Independent of the code under test: every uncommented `*_env = "NAME"` in the template."""
    names: list[str] = []
    for line in TEMPLATE.read_text().splitlines():
        m = re.match(r'\s*\w+_env\s*=\s*"([^"]+)"', line)
        if m and m.group(1) not in names:
            names.append(m.group(1))
    return names


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """keywatch"""

    init_command.register(app)
    return app


def test_template_is_the_repository_example() -> None:
    assert find_template() == TEMPLATE


def test_writes_config_env_and_gitignore(tmp_path: Path) -> None:
    target = tmp_path / "deploy"  # created on demand
    result = init_project(target)
    assert (target / "keywatch.toml").read_text() == TEMPLATE.read_text()
    env = target / ".env"
    assert mode(env) == 0o600
    written = re.findall(r"^([A-Z0-9_]+)=$", env.read_text(), flags=re.MULTILINE)
    assert written == template_env_names() == result.env_vars
    assert len(written) >= 4
    assert (target / ".gitignore").read_text().splitlines()[-1] == ".env"
    assert result.gitignore_updated


def test_env_template_names_everything_the_config_needs(tmp_path: Path) -> None:
    """Filling in the .env's variables is exactly what makes the config load."""
    init_project(tmp_path)
    fill = {name: "json://127.0.0.1:9/" if name.endswith("_URL") else "test" * 16
            for name, _ in env_vars((tmp_path / "keywatch.toml").read_text())}
    cfg = load_config(tmp_path / "keywatch.toml", env=fill)
    assert cfg.accounts[0].key("monitor").api_secret is not None
    missing = dict(list(fill.items())[1:])  # leave one variable out: the config must refuse
    with pytest.raises(ConfigError, match=next(iter(fill))):
        load_config(tmp_path / "keywatch.toml", env=missing)


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KEYWATCH_MAIN_MONITOR_API_KEY=mine\n")
    with pytest.raises(InitError, match="--force"):
        init_project(tmp_path)
    assert not (tmp_path / "keywatch.toml").exists()  # nothing at all was written
    assert (tmp_path / ".env").read_text() == "KEYWATCH_MAIN_MONITOR_API_KEY=mine\n"


def test_force_overwrites_and_tightens_the_env_mode(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "keywatch.toml").write_text("# edited\n")
    (tmp_path / ".env").chmod(0o644)
    init_project(tmp_path, force=True)
    assert (tmp_path / "keywatch.toml").read_text() == TEMPLATE.read_text()
    assert mode(tmp_path / ".env") == 0o600
    assert (tmp_path / ".gitignore").read_text().count(".env") == 1  # idempotent


@pytest.mark.parametrize(
    ("before", "changed", "after"),
    [
        ("*.pyc", True, "*.pyc\n# secrets for keywatch.toml (keywatch init)\n.env\n"),
        ("*.pyc\n.env\n", False, "*.pyc\n.env\n"),
        ("/.env\n", False, "/.env\n"),
    ],
)
def test_gitignore_entry(tmp_path: Path, before: str, changed: bool, after: str) -> None:
    (tmp_path / ".gitignore").write_text(before)
    assert ensure_gitignored(tmp_path) is changed
    assert (tmp_path / ".gitignore").read_text() == after
    assert ensure_gitignored(tmp_path) is False


def test_missing_template_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InitError, match="does not exist"):
        init_project(tmp_path, template=tmp_path / "nope.toml")
    assert list(tmp_path.iterdir()) == []


def test_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(cli(), ["init", str(tmp_path), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["env_vars"] == template_env_names()
    again = runner.invoke(cli(), ["init", str(tmp_path)])
    assert again.exit_code == 1 and "--force" in again.output
    forced = runner.invoke(cli(), ["init", str(tmp_path), "--force"])
    assert forced.exit_code == 0 and "wrote" in forced.output and "\x1b[" not in forced.output


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_scan_agrees_with_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After `init` in a git repository, the .env it wrote is ignored, so a scan is clean."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "none"))
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    init_project(tmp_path)
    report = scan_paths([tmp_path])
    assert report.leaks == [] and report.skipped == {".env ignored by git": 1}


@pytest.mark.parametrize("key_type", ["ed25519", "rsa"])
def test_an_asymmetric_monitor_key_template(tmp_path: Path, key_type: str) -> None:
    """`--key-type ed25519|rsa`: the monitor key names its PEM file's variable, the .env asks
    for that path, and filling it with a real key file makes the config load."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    runner = CliRunner()
    res = runner.invoke(cli(), ["init", str(tmp_path), "--key-type", key_type, "--json"])
    assert res.exit_code == 0, res.output
    names = json.loads(res.output)["env_vars"]
    assert "KEYWATCH_MAIN_MONITOR_PRIVATE_KEY" in names
    assert "KEYWATCH_MAIN_MONITOR_API_SECRET" not in names
    key = (ed25519.Ed25519PrivateKey.generate() if key_type == "ed25519"
           else rsa.generate_private_key(65537, 2048))
    pem = tmp_path / "monitor.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    pem.chmod(0o600)
    fill = {n: "json://127.0.0.1:9/" if n.endswith("_URL") else "test" * 16 for n in names}
    fill["KEYWATCH_MAIN_MONITOR_PRIVATE_KEY"] = str(pem)
    k = load_config(tmp_path / "keywatch.toml", env=fill).accounts[0].key("monitor")
    assert k.type.value == key_type and k.signer() is not None
    bad = runner.invoke(cli(), ["init", str(tmp_path / "x"), "--key-type", "dsa"])
    assert bad.exit_code == 1 and "not one of hmac, ed25519, rsa" in bad.output
