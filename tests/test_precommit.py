"""The pre-commit hooks, run the way pre-commit runs them (pre-commit itself is not installed).

Both definitions are parsed from the shipped files, and each hook's command is built from its
own `entry` and `language` exactly as pre-commit builds it: `repo: local` + `language: system`
runs the entry's words as they are, found on PATH (the venv's `keywatch`); `language: script`
runs the entry as a path inside the hook repository's checkout (here: this one). pre-commit then
appends the staged file names and runs it in the repository being committed, where a staged
key must make the hook fail and a clean commit pass.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / ".pre-commit-config.example.yaml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def fake_key() -> str:
    """Binance-key shaped (64 letters and digits) and plainly a test value: FAKE...TEST."""
    middle = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48))
    return f"FAKE0KEY{middle}0FORTEST"


def local_hook() -> dict[str, Any]:
    (repo,) = yaml.safe_load(EXAMPLE.read_text())["repos"]
    (hook,) = repo["hooks"]
    assert repo["repo"] == "local" and "rev" not in repo  # no revision to go stale
    return dict(hook)


def remote_hook() -> dict[str, Any]:
    (hook,) = yaml.safe_load(HOOKS.read_text())
    return dict(hook)


def test_the_local_hook_installs_nothing() -> None:
    hook = local_hook()
    assert hook["id"] == "keywatch-scan" and hook["language"] == "system"
    assert shlex.split(str(hook["entry"]))[:2] == ["keywatch", "scan"]
    assert "additional_dependencies" not in hook and hook.get("pass_filenames", True) is True


def test_the_remote_hook_is_a_script_in_this_repository() -> None:
    hook = remote_hook()
    assert hook["id"] == local_hook()["id"] and hook["language"] == "script"
    script = ROOT / shlex.split(str(hook["entry"]))[0]
    assert script.is_file() and script.stat().st_mode & 0o111


def test_the_readme_snippet_names_the_remote_hook() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Scan before you commit (pre-commit)", 1)[1].split("\n### ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    (repo,) = yaml.safe_load(block)["repos"]
    assert repo["rev"] and [h["id"] for h in repo["hooks"]] == [remote_hook()["id"]]


def _command(hook: dict[str, Any]) -> list[str]:
    """What pre-commit runs before it appends the file names."""
    words = shlex.split(str(hook["entry"])) + [str(a) for a in hook.get("args") or []]
    if hook["language"] == "script":
        return [str(ROOT / words[0]), *words[1:]]
    assert hook["language"] == "system"
    return words


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout


def _staged(repo: Path) -> list[str]:
    """The file names pre-commit passes: the index's added/changed files (git diff --staged)."""
    out = _git(repo, "diff", "--staged", "--name-only", "--no-ext-diff", "-z",
               "--diff-filter=ACMRTUXB")
    return [n for n in out.split("\0") if n]


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig-none"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    path = tmp_path / "bot"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    (path / "bot.py").write_text("import ccxt\nexchange = ccxt.binance()\n")
    _git(path, "add", "bot.py")
    return path


@pytest.mark.parametrize("which", ["local", "remote"])
def test_the_hook_blocks_a_staged_key_and_passes_a_clean_commit(repo: Path, which: str) -> None:
    hook = local_hook() if which == "local" else remote_hook()
    # `keywatch` on PATH, as the example asks: the one installed beside this interpreter
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"}
    cmd = _command(hook)

    clean = subprocess.run([*cmd, *_staged(repo)], cwd=repo, env=env, capture_output=True,
                           text=True, timeout=60)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    key = fake_key()
    (repo / "config.py").write_text(f'API_KEY = "{key}"\n')
    _git(repo, "add", "config.py")
    files = _staged(repo)
    assert files == ["bot.py", "config.py"]
    dirty = subprocess.run([*cmd, *files], cwd=repo, env=env, capture_output=True, text=True,
                           timeout=60)
    assert dirty.returncode != 0 and "config.py:1" in dirty.stdout, dirty.stdout + dirty.stderr
    assert key not in dirty.stdout + dirty.stderr  # only the first characters are shown
