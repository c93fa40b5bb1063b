"""`keywatch scan`: planted keys in files, in git history after deletion, .env files, hooks.

Every key here is generated at run time (no 64-character literal is ever committed); each test
also checks that the full value never reaches the output.
"""

from __future__ import annotations

import json
import secrets
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from monitor.cli.commands import scan as scan_command
from monitor.tools.scan import (
    MAX_FILE_BYTES,
    RULE_CREDENTIAL,
    RULE_ENV,
    is_env_file,
    is_placeholder,
    mask,
    scan_text,
)

ROOT = Path(__file__).resolve().parents[2]
ALNUM = string.ascii_letters + string.digits
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def fake_key() -> str:
    """A fresh random 64-character value, the shape of a Binance key or secret."""
    while True:
        value = "".join(secrets.choice(ALNUM) for _ in range(64))
        if not is_placeholder(value):
            return value


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The user's git config (hooks, excludes, signing) must not change what the tests see."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig-none"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{var}_NAME", "Keywatch Test")
        monkeypatch.setenv(f"GIT_{var}_EMAIL", "test@example.invalid")


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def cli() -> typer.Typer:
    """Only this area's command: other areas' work in progress cannot break these tests."""
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """keywatch"""

    scan_command.register(app)
    return app


def run_scan(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli(), ["scan", *args])
    return result.exit_code, result.output


# ---- the line rule, table-driven ------------------------------------------------------------

def _cases(k: str, h: str) -> list[tuple[str, list[str]]]:
    return [
        (f'BINANCE_API_KEY = "{k}"\n', ["BINANCE_API_KEY"]),
        (f"api_secret: {k}\n", ["api_secret"]),
        (f'{{"apiKey": "{k}", "secretKey": "{h}"}}\n', ["apiKey", "secretKey"]),
        (f'{{\n  "binance": {{\n    "key": "{k}"\n  }}\n}}\n', ["key"]),
        (f'headers = {{"X-MBX-APIKEY": "{k}"}}\n', ["X-MBX-APIKEY"]),
        (f'# binance\ncreds = dict(\n    main="{k}")\n', ["binance"]),
        (f'# binance\n\n\nvalue = "{k}"\n', []),  # the name is too far above
        (f'value = "{k}"\n', []),  # no Binance-ish name anywhere near
        (f'api_key = "{k}x"\n', []),  # 65 characters: not a key's shape
        (f'api_key = "{"test" * 16}"\n', []),  # placeholder: one unit repeated
        (f'api_key_sha256 = "{h}"\n', []),  # a fingerprint, not a credential
        (f"apiKey={k}&signature={h}\n", ["apiKey"]),  # the signature is not reported
        (f'params = {{"apiKey": KEY}}\nexpected = "{h}"\n', []),  # hex digest near a name
        (f'api_secret = "{h}"\n', ["api_secret"]),  # but hex assigned to a secret name is not
        (f'# binance\nexpected = "{h.upper()}"\n', []),
        (f'api_key = "{k}"  # keywatch: allow\n', []),
        (f'API_SECRET = "{k}"  // keywatch: allow (docs sample)\n', []),
        # sha256 digests under key-like names are not credentials (issue 15)
        (f'cache_key = "{h}"\n', []),
        (f'{{"etag": "{h}", "digest": "{h}", "checksum": "{h}"}}\n', []),
        (f'row_key = "{h}"\nsha256 = "{h}"\n', []),
        (f'RESULT_CACHE_KEY: {h}\n', []),
        # ... while a real-looking key beside them is still found, on the same line or next
        (f'cache_key = "{h}"\napi_key = "{k}"\n', ["api_key"]),
        (f'{{"cache_key": "{h}", "apiKey": "{k}"}}\n', ["apiKey"]),
        (f'private_key = "{h}"\n', ["private_key"]),  # hex under a secret's name still counts
    ]


def test_line_rule_table() -> None:
    k, h = fake_key(), secrets.token_hex(32)
    for text, names in _cases(k, h):
        leaks = scan_text(text, "f.txt")
        assert [leak.name for leak in leaks] == names, text
        assert all(leak.rule == RULE_CREDENTIAL for leak in leaks)


def test_line_numbers_and_masking() -> None:
    k = fake_key()
    (leak,) = scan_text(f"x = 1\n\nBINANCE_SECRET={k}\n", "bot.env.example")
    assert (leak.line, leak.masked) == (3, k[:4] + "****")
    assert k not in json.dumps(leak.to_dict())
    assert mask(k) == k[:4] + "****"


def test_placeholders_and_env_names() -> None:
    assert is_placeholder("test" * 16) and is_placeholder("x" * 64)
    assert not is_placeholder("ab1" * 21 + "a")  # almost a repetition is not one
    assert not is_placeholder(fake_key())
    table = {".env": True, ".env.local": True, "prod.env": True, ".env.example": False,
             ".env.sample": False, "environment.py": False, "env": False}
    assert {name: is_env_file(name) for name in table} == table


# ---- files on disk --------------------------------------------------------------------------

def test_planted_key_in_a_file_is_found_and_masked(tmp_path: Path) -> None:
    k = fake_key()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "bot.py").write_text(f'import os\n\nBINANCE_API_KEY = "{k}"\n')
    (tmp_path / "config.json").write_text(json.dumps({"exchange": {"key": k}}, indent=2))
    code, out = run_scan(str(tmp_path))
    assert code == 1
    assert "bot.py:3" in out and "config.json:3" in out
    assert k[:4] + "****" in out and k not in out


def test_clean_tree_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "bot.py").write_text('API_KEY = os.environ["BINANCE_API_KEY"]\n')
    (tmp_path / "fixture.py").write_text('BINANCE_API_KEY = "test" * 16\n')
    code, out = run_scan(str(tmp_path))
    assert (code, "No Binance keys found in 2 file(s)" in out) == (0, True)


def test_binary_big_and_venv_files_are_skipped(tmp_path: Path) -> None:
    k = fake_key()
    (tmp_path / "blob.bin").write_bytes(b"\0\1binance " + k.encode())
    (tmp_path / "big.txt").write_text(f"api_key={k}\n" + "#" * MAX_FILE_BYTES)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "site.py").write_text(f"api_key = '{k}'\n")
    code, out = run_scan(str(tmp_path), "--json")
    report = json.loads(out)
    assert code == 0 and report["findings"] == []
    assert report["skipped"] == {"binary": 1, "larger than 2 MB": 1}


def test_usage_errors_exit_two(tmp_path: Path) -> None:
    assert run_scan(str(tmp_path / "missing"))[0] == 2
    assert run_scan(str(tmp_path), "--git-history")[0] == 2  # not a git repository


def test_json_output_and_several_paths(tmp_path: Path) -> None:
    k1, k2 = fake_key(), fake_key()
    a, b = tmp_path / "a.yaml", tmp_path / "b.py"
    a.write_text(f"binance:\n  api_key: {k1}\n")
    b.write_text(f"SECRET = '{k2}'\n")
    code, out = run_scan(str(a), str(b), "--json")
    report = json.loads(out)
    assert code == 1 and report["files_scanned"] == 2
    assert [(Path(f["path"]).name, f["line"], f["masked"]) for f in report["findings"]] == [
        ("a.yaml", 2, k1[:4] + "****"), ("b.py", 1, k2[:4] + "****")]
    assert k1 not in out and k2 not in out


# ---- git ------------------------------------------------------------------------------------

@needs_git
def test_key_deleted_from_the_tree_is_still_found_in_history(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    k = fake_key()
    (repo / "README.md").write_text("# bot\n")
    (repo / "settings.py").write_text(f'DEBUG = False\nBINANCE_API_SECRET = "{k}"\n')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "add settings")
    added = git(repo, "rev-parse", "HEAD")
    git(repo, "rm", "-q", "settings.py")
    git(repo, "commit", "-qm", "oops, remove the key")

    assert run_scan(str(repo))[0] == 0  # the tree is clean now
    code, out = run_scan(str(repo), "--git-history", "--json")
    report = json.loads(out)
    assert code == 1 and report["commits_scanned"] == 2
    (finding,) = report["findings"]
    assert (finding["commit"], finding["path"], finding["line"]) == (added, "settings.py", 2)
    assert finding["location"] == f"{added[:12]}:settings.py:2"
    assert k not in out
    code, text = run_scan(str(repo), "--git-history")
    assert code == 1 and f"{added[:12]}:settings.py:2" in text and k not in text


@needs_git
def test_history_sees_the_unchanged_name_above_an_added_value(tmp_path: Path) -> None:
    """The Binance-ish name was committed earlier; the value arrives later under it."""
    repo = make_repo(tmp_path / "repo")
    (repo / "creds.py").write_text("# binance accounts\nACCOUNTS = dict(\n)\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "skeleton")
    k = fake_key()
    (repo / "creds.py").write_text(f"# binance accounts\nACCOUNTS = dict(\n    main='{k}',\n)\n")
    git(repo, "commit", "-qam", "fill in")
    filled = git(repo, "rev-parse", "HEAD")
    code, out = run_scan(str(repo), "--git-history", "--json")
    history = [f for f in json.loads(out)["findings"] if f["commit"]]
    assert code == 1 and [(f["commit"], f["line"], f["name"]) for f in history] == [
        (filled, 3, "binance")]


@needs_git
def test_a_key_in_a_commit_message_is_found(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    k = fake_key()
    (repo / "bot.py").write_text('KEY = os.environ["BINANCE_API_KEY"]\n')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", f"rotate the key\n\nnew binance api key: {k}\n")
    sha = git(repo, "rev-parse", "HEAD")
    assert run_scan(str(repo))[0] == 0  # nothing in the tree
    code, out = run_scan(str(repo), "--git-history", "--json")
    (finding,) = json.loads(out)["findings"]
    assert code == 1 and k not in out
    assert finding["location"] == f"{sha[:12]}:(commit message):3"
    # a message naming a digest is no finding (the same line rule as files)
    clean = make_repo(tmp_path / "clean")
    (clean / "a.txt").write_text("a\n")
    git(clean, "add", ".")
    git(clean, "commit", "-qm", f"bump cache_key = {secrets.token_hex(32)}")
    assert run_scan(str(clean), "--git-history")[0] == 0


@needs_git
def test_git_history_of_a_clean_repo(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "bot.py").write_text('KEY = os.environ["BINANCE_API_KEY"]\n')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "clean")
    assert run_scan(str(repo), "--git-history")[0] == 0


@needs_git
def test_env_file_flagged_unless_git_ignores_it(tmp_path: Path) -> None:
    k = fake_key()
    exposed = make_repo(tmp_path / "exposed")
    (exposed / ".env").write_text(f"BINANCE_API_KEY={k}\n")
    (exposed / ".env.example").write_text("BINANCE_API_KEY=\n")
    code, out = run_scan(str(exposed), "--json")
    rules = sorted((f["rule"], Path(f["path"]).name) for f in json.loads(out)["findings"])
    assert code == 1 and rules == [(RULE_CREDENTIAL, ".env"), (RULE_ENV, ".env")]

    safe = make_repo(tmp_path / "safe")
    (safe / ".gitignore").write_text(".env\n")
    (safe / ".env").write_text(f"BINANCE_API_KEY={k}\n")
    code, out = run_scan(str(safe), "--json")
    assert code == 0 and json.loads(out)["skipped"] == {".env ignored by git": 1}
    # the user can still ask for its content (e.g. before copying the directory somewhere)
    code, out = run_scan(str(safe), "--include-ignored", "--json")
    assert code == 1 and [f["rule"] for f in json.loads(out)["findings"]] == [RULE_CREDENTIAL]
    assert k not in out


@needs_git
def test_committed_env_file_is_reported_from_history(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / ".env").write_text("BINANCE_API_KEY=\n")
    git(repo, "add", ".env")
    git(repo, "commit", "-qm", "env")
    git(repo, "rm", "-q", "--cached", ".env")
    (repo / ".gitignore").write_text(".env\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-qm", "ignore env")
    assert run_scan(str(repo))[0] == 0
    code, out = run_scan(str(repo), "--git-history", "--json")
    assert code == 1 and [f["rule"] for f in json.loads(out)["findings"]] == [RULE_ENV]


@needs_git
def test_staged_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    k = fake_key()
    (repo / "conf.toml").write_text(f'[binance]\nsecret = "{k}"\n')
    monkeypatch.chdir(repo)
    assert run_scan("--staged")[0] == 0  # written but not staged: not what a commit records
    git(repo, "add", "conf.toml")
    code, out = run_scan("--staged", "--json")
    (finding,) = json.loads(out)["findings"]
    assert code == 1 and (finding["path"], finding["line"], finding["commit"]) == (
        "conf.toml", 2, None)
    assert k not in out


# ---- as a pre-commit hook and as the installed command -------------------------------------

def test_pre_commit_hook_definition() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "keywatch-scan" and hook["entry"] == "hooks/keywatch-scan"
    # a script hook: pre-commit installs nothing (a python hook would pip-install Keywatch
    # with pandas, scikit-learn and Apprise for a scan that needs only the standard library)
    assert hook["language"] == "script" and hook.get("pass_filenames", True) is True
    assert (ROOT / hook["entry"]).stat().st_mode & 0o111  # executable
    example = yaml.safe_load((ROOT / ".pre-commit-config.example.yaml").read_text())
    ids = [h["id"] for repo in example["repos"] for h in repo["hooks"]]
    assert "keywatch-scan" in ids


def test_the_scan_imports_only_the_standard_library() -> None:
    """What the hook runs must not need anything pre-commit did not install (nothing)."""
    code = ("import sys; import monitor.tools.scan; "
            "print(sorted(m.split('.')[0] for m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    mods = set(json.loads(out.replace("'", '"')))
    third_party = mods - set(sys.stdlib_module_names) - {"monitor", "__main__"}
    assert not third_party, third_party


@needs_git
def test_hook_script_without_site_packages_as_pre_commit_calls_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    k = fake_key()
    (repo / "ok.py").write_text("print('hello')\n")
    (repo / "leak.py").write_text(f"client = Spot(api_key='{k}')\n")
    cmd = [sys.executable, "-S", str(ROOT / "hooks" / "keywatch-scan")]
    clean = subprocess.run([*cmd, "ok.py"], cwd=repo, capture_output=True, text=True)
    dirty = subprocess.run([*cmd, "ok.py", "leak.py"], cwd=repo, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    assert "No Binance keys found in 1 file(s)." in clean.stdout
    assert dirty.returncode == 1 and "leak.py:1" in dirty.stdout and k not in dirty.stdout


def test_a_file_reached_twice_is_counted_and_reported_once(tmp_path: Path) -> None:
    k = fake_key()
    (tmp_path / "bot.py").write_text(f"API_SECRET = '{k}'\n")
    (tmp_path / "link.py").symlink_to(tmp_path / "bot.py")
    code, out = run_scan(str(tmp_path), str(tmp_path / "bot.py"), "--json")
    report = json.loads(out)
    assert code == 1 and report["files_scanned"] == 1 and len(report["findings"]) == 1


@needs_git
def test_staged_files_are_counted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    for name in ("a.py", "b.py"):
        (repo / name).write_text("x = 1\n")
    git(repo, "add", "a.py", "b.py")
    code, out = run_scan("--staged", str(repo), "--json")
    report = json.loads(out)
    assert code == 0 and report["staged_files_scanned"] == 2
    code, text = run_scan("--staged", str(repo))
    assert "2 staged file(s)" in text


@needs_git
def test_installed_command_as_pre_commit_calls_it(tmp_path: Path) -> None:
    """The real entry point in a subprocess, with filenames as arguments, like pre-commit."""
    repo = make_repo(tmp_path / "repo")
    k = fake_key()
    (repo / "ok.py").write_text("print('hello')\n")
    (repo / "leak.py").write_text(f"client = Spot(api_key='{k}')\n")
    cmd = [sys.executable, "-m", "monitor.cli", "scan"]
    clean = subprocess.run([*cmd, "ok.py"], cwd=repo, capture_output=True, text=True)
    dirty = subprocess.run([*cmd, "ok.py", "leak.py"], cwd=repo, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    assert dirty.returncode == 1 and "leak.py:1" in dirty.stdout
    assert k not in dirty.stdout + dirty.stderr
    assert "\x1b[" not in dirty.stdout  # no colour codes when stdout is not a terminal
