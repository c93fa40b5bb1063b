"""Leak scan: find Binance API keys and secrets in files and in git history.

Binance's own numbers: almost every drained account lost its key on the user side, most often a
`config.json` or `.env` pushed to a public repository, where crawlers find it within hours, and
deleting the commit does not help because the key stays in history. This module is the check a
developer runs (by hand, in CI or as a pre-commit hook) before that happens.

What counts as a suspect, and why:
- a 64-character alphanumeric value (the shape of both a Binance API key and its secret) that is
  assigned to a name holding "key" or "secret", or that sits within two lines of a Binance-ish
  name (binance, api_key, apikey, secret, X-MBX-APIKEY ...). A scanner cannot tell a real key from
  a fake one, so every such value is reported, with one documented exception: a value made of one
  short unit repeated (`"test" * 16`, `"x" * 64`) is a placeholder and is skipped, because no
  generated key looks like that;
- a value assigned to a hash-like name (sha256, digest, fingerprint, signature ...) is not a
  credential: Keywatch's own config holds `api_key_sha256`, and a signed query string carries a
  64-hex `signature` next to `apiKey=`. Likewise a single-case hex value that is only *near* a
  name (not assigned to a key/secret name) is taken for a digest: Binance keys are mixed-case, and
  a random mixed-case key is all-hex with odds of about (16/62)^64;
- a `.env` file that git does not ignore (it will be committed sooner or later). A `.env` file
  that git ignores, or one outside any git repository, is where secrets belong: it is skipped.
- a line carrying `keywatch: allow` (in any comment syntax) is never reported.

Values are never printed: only the first four characters followed by `****`.
Plain functions and one subprocess seam (`git`); no network, no state between calls, and only
the standard library: the pre-commit hook (`hooks/keywatch-scan`) runs this module's `main`
without installing Keywatch or any of its dependencies.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 2 * 1024 * 1024
CONTEXT_LINES = 2  # a Binance-ish name up to this many lines above a value still counts
SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache",
    ".ruff_cache", ".pytest_cache", ".tox", ".nox", ".hypothesis",
})
ENV_TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist", ".tpl")

VALUE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{64}(?![A-Za-z0-9])")
NAMES = re.compile(r"binance|api[_\-. ]?key|api[_\-. ]?secret|secret|x-mbx-apikey", re.IGNORECASE)
KEYISH = re.compile(r"key|secret", re.IGNORECASE)
NOT_A_CREDENTIAL = re.compile(
    r"sha\d*|hash|digest|fingerprint|signature|checksum|integrity|commit", re.IGNORECASE
)
# The name a value is assigned to: `NAME = "v"`, `"NAME": "v"`, `NAME=v`, `NAME: v`, `NAME => v`.
ASSIGNED = re.compile(r"""([A-Za-z_][\w.\-]*)["'\]]?\s*(?::=|=>|[:=])\s*["'(\[]?\s*$""")
ALLOW = re.compile(r"keywatch:\s*allow", re.IGNORECASE)
HEX = re.compile(r"[0-9a-f]{64}|[0-9A-F]{64}")
PLACEHOLDER = re.compile(r"(.{1,16}?)\1+", re.DOTALL)
HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")

RULE_CREDENTIAL = "binance-credential"
RULE_ENV = "env-file"


class ScanError(Exception):
    """A usage problem (missing path, not a git repository, git missing): exit code 2."""


@dataclass(frozen=True)
class Leak:
    """One suspect: where it is and the masked value; never the value itself."""

    rule: str
    path: str
    line: int  # 1-based; 0 for a finding about a whole file
    masked: str = ""
    name: str = ""  # the name that made the value suspicious (safe to print)
    commit: str | None = None  # set for findings from git history

    def location(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{self.commit[:12]}:{where}" if self.commit else where

    def message(self) -> str:
        if self.rule == RULE_ENV:
            if self.commit:
                return "a .env file was committed; revoke every key it held"
            return ".env file is not ignored by git; add it to .gitignore (keywatch init does)"
        return f"64-character key/secret {self.masked} near {self.name!r}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "location": self.location(), "message": self.message()}


@dataclass
class ScanReport:
    leaks: list[Leak] = field(default_factory=list)
    files_scanned: int = 0  # distinct files read from the tree (a symlinked file once)
    commits_scanned: int = 0  # commits whose diff was read (--git-history)
    staged_files_scanned: int = 0  # files with staged changes (--staged)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "findings": [leak.to_dict() for leak in self.leaks],
            "files_scanned": self.files_scanned,
            "commits_scanned": self.commits_scanned,
            "staged_files_scanned": self.staged_files_scanned,
            "skipped": dict(sorted(self.skipped.items())),
        }


def mask(value: str) -> str:
    """First four characters and `****`: enough to recognise a key in the API page, no more."""
    return value[:4] + "****"


def is_placeholder(value: str) -> bool:
    """One short unit repeated (`"test" * 16`): no generated key looks like that."""
    return PLACEHOLDER.fullmatch(value) is not None


def is_env_file(name: str) -> bool:
    """`.env`, `.env.local`, `prod.env`; not the templates meant to be committed."""
    if name.endswith(ENV_TEMPLATE_SUFFIXES):
        return False
    return name == ".env" or name.startswith(".env.") or name.endswith(".env")


def _assigned_name(line: str, start: int) -> str | None:
    m = ASSIGNED.search(line[max(0, start - 80):start])
    return m.group(1) if m else None


class LineScanner:
    """Feeds lines one at a time, keeping the few lines above for the "near a name" test."""

    def __init__(self, path: str, commit: str | None = None) -> None:
        self.path = path
        self.commit = commit
        self._above: deque[str] = deque(maxlen=CONTEXT_LINES)

    def reset(self) -> None:
        self._above.clear()

    def feed(self, lineno: int, line: str, report: bool = True) -> list[Leak]:
        found: list[Leak] = []
        if report and not ALLOW.search(line):
            for m in VALUE.finditer(line):
                name = self._suspicious_name(line, m.start(), m.group())
                if name is not None:
                    found.append(Leak(RULE_CREDENTIAL, self.path, lineno, mask(m.group()),
                                      name, self.commit))
        self._above.append(line)
        return found

    def _suspicious_name(self, line: str, start: int, value: str) -> str | None:
        if is_placeholder(value):
            return None
        assigned = _assigned_name(line, start)
        if assigned is not None:
            if NOT_A_CREDENTIAL.search(assigned):
                return None
            if NAMES.search(assigned) or KEYISH.search(assigned):
                return assigned
        if HEX.fullmatch(value):  # a digest or signature beside a key, e.g. a test vector
            return None
        near = NAMES.search(line) or next(
            (m for m in map(NAMES.search, reversed(self._above)) if m), None
        )
        return near.group() if near else None


def scan_text(text: str, path: str) -> list[Leak]:
    scanner = LineScanner(path)
    leaks: list[Leak] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        leaks.extend(scanner.feed(lineno, line))
    return leaks


# ---- git seam -------------------------------------------------------------------------------

def _git(
    args: Sequence[str], cwd: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-c", "core.quotepath=off", *args], cwd=cwd, input=stdin,
            capture_output=True, check=False,
        )
    except FileNotFoundError:
        raise ScanError("git is not installed; it is needed for git checks") from None


def git_root(path: Path) -> Path | None:
    """Top of the work tree holding `path`, or None outside git (or without git)."""
    cwd = path if path.is_dir() else path.parent
    try:
        proc = _git(["rev-parse", "--show-toplevel"], cwd)
    except ScanError:
        return None
    return Path(os.fsdecode(proc.stdout.strip())).resolve() if proc.returncode == 0 else None


def git_ignored(root: Path, files: Sequence[Path]) -> set[Path]:
    """The files git ignores, in one `git check-ignore --stdin` call (tracked files never are)."""
    if not files:
        return set()
    rel = [os.fsencode(f.relative_to(root)) for f in files if f.is_relative_to(root)]
    proc = _git(["check-ignore", "--stdin", "-z"], root, b"\0".join(rel) + b"\0")
    if proc.returncode not in (0, 1):
        err = proc.stderr.decode(errors="replace").strip()
        raise ScanError(f"git check-ignore failed in {root}: {err}")
    return {(root / os.fsdecode(p)).resolve() for p in proc.stdout.split(b"\0") if p}


# ---- working tree ---------------------------------------------------------------------------

def _walk(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            yield Path(dirpath, name)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _read(path: Path, report: ScanReport) -> str | None:
    """Whole file once, or None for what is skipped: big, binary, unreadable, not a file."""
    try:
        if not path.is_file():
            report.skip("not a regular file")
            return None
        if path.stat().st_size > MAX_FILE_BYTES:
            report.skip("larger than 2 MB")
            return None
        data = path.read_bytes()
    except OSError:
        report.skip("unreadable")
        return None
    if b"\0" in data[:8192]:
        report.skip("binary")
        return None
    return data.decode("utf-8", errors="replace")


def scan_paths(paths: Sequence[Path], include_ignored: bool = False) -> ScanReport:
    """Scan files and directories; in a git work tree, files git ignores are skipped."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ScanError(f"no such file or directory: {', '.join(missing)}")
    report = ScanReport()
    files: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        for f in _walk(p):
            f = f.absolute()
            real = f.resolve()  # a file reached twice (a symlink, two paths) is read once
            if real not in seen:
                seen.add(real)
                files.append(f)
    roots = _roots(files)
    ignored: set[Path] = set()
    pairs = list(zip(files, roots, strict=True))
    for top in {r for r in roots if r is not None}:
        ignored |= git_ignored(top, [f.resolve() for f, r in pairs if r == top])
    for f, root in pairs:
        env = is_env_file(f.name)
        if f.resolve() in ignored and not include_ignored:
            report.skip(".env ignored by git" if env else "ignored by git")
            continue
        if env and root is None and not include_ignored:
            report.skip(".env outside git")
            continue
        text = _read(f, report)
        if text is None:
            continue
        report.files_scanned += 1
        shown = _display(f)
        if env and root is not None and f.resolve() not in ignored:
            report.leaks.append(Leak(RULE_ENV, shown, 0))
        report.leaks.extend(scan_text(text, shown))
    return report


def _roots(files: Sequence[Path]) -> list[Path | None]:
    """Git root per file; git is asked once per directory that is not under a known root."""
    known: list[Path] = []
    by_dir: dict[Path, Path | None] = {}
    for f in files:
        d = f.parent.resolve()
        if d in by_dir:
            continue
        root = next((r for r in known if _under(d, r)), None) or git_root(d)
        by_dir[d] = root
        if root is not None and root not in known:
            known.append(root)
    return [by_dir[f.parent.resolve()] for f in files]


def _under(d: Path, root: Path) -> bool:
    """`d` is in `root`'s work tree and not in a nested repository (a submodule)."""
    inside = [p for p in (d, *d.parents) if p != root and p.is_relative_to(root)]
    return d.is_relative_to(root) and not any((p / ".git").exists() for p in inside)


# ---- git history and the index --------------------------------------------------------------

DIFF_FLAGS = ["-U2", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/",
              "--dst-prefix=b/"]


def scan_diff(lines: Iterable[str], commit: str | None = None) -> Iterator[Leak]:
    """Leaks on the added lines of a unified diff (`git log -p` output with `\\x01<sha>` marks).

    Context lines feed the "near a name" test but are not reported: a value that was only ever
    context was added (and reported) in an earlier commit.
    """
    scanner: LineScanner | None = None
    path: str | None = None
    new_file = False
    lineno = 0
    in_hunk = False
    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith("\x01"):
            commit, scanner, path, in_hunk = line[1:].strip(), None, None, False
        elif line.startswith("diff --git "):
            scanner, path, new_file, in_hunk = None, None, False, False
        elif not in_hunk and line.startswith("new file mode"):
            new_file = True
        elif not in_hunk and line.startswith("+++ "):
            target = line[4:]
            path = target[2:] if target.startswith("b/") else None
            path = path.strip('"') if path else None
            scanner = LineScanner(path, commit) if path else None
            if path and new_file and is_env_file(Path(path).name):
                yield Leak(RULE_ENV, path, 0, commit=commit)
        elif (m := HUNK.match(line)) is not None:
            in_hunk = True
            lineno = int(m.group(1))
            if scanner is not None:
                scanner.reset()
        elif in_hunk and scanner is not None and line[:1] in ("+", " "):
            yield from scanner.feed(lineno, line[1:], report=line.startswith("+"))
            lineno += 1


def _stream_git(args: Sequence[str], cwd: Path) -> Iterator[str]:
    # stderr goes to a file, not a pipe: an unread pipe could fill up and stall git
    with tempfile.TemporaryFile() as errfile:
        try:
            proc = subprocess.Popen(["git", "-c", "core.quotepath=off", *args], cwd=cwd,
                                    stdout=subprocess.PIPE, stderr=errfile)
        except FileNotFoundError:
            raise ScanError("git is not installed; --git-history and --staged need it") from None
        assert proc.stdout is not None
        with proc:
            for raw in proc.stdout:
                yield raw.decode("utf-8", errors="replace")
        if proc.returncode != 0:
            errfile.seek(0)
            err = errfile.read().decode(errors="replace").strip()
            raise ScanError(f"git {args[0]} failed in {cwd}: {err}")


def _require_root(path: Path) -> Path:
    root = git_root(path.absolute())
    if root is None:
        raise ScanError(f"{path} is not inside a git repository (needed for git history)")
    return root


def scan_history(path: Path, report: ScanReport) -> None:
    """Every commit on every ref (`git log -p --all`): a key added then deleted is still found."""
    root = _require_root(path)
    lines = _stream_git(["log", "--all", "-p", "--format=%x01%H", *DIFF_FLAGS], root)

    def counted() -> Iterator[str]:
        for line in lines:
            if line.startswith("\x01"):
                report.commits_scanned += 1
            yield line

    report.leaks.extend(scan_diff(counted()))


def scan_staged(path: Path, report: ScanReport) -> None:
    """What `git commit` would record now (`git diff --cached`): the pre-commit view."""
    root = _require_root(path)
    lines = _stream_git(["diff", "--cached", *DIFF_FLAGS], root)

    def counted() -> Iterator[str]:
        for line in lines:
            if line.startswith("diff --git "):
                report.staged_files_scanned += 1
            yield line

    report.leaks.extend(scan_diff(counted()))


def summary(report: ScanReport) -> str:
    """The last line of a scan: how much was read, what was skipped, what to do."""
    parts = [f"{report.files_scanned} file(s)"]
    if report.staged_files_scanned:
        parts.append(f"{report.staged_files_scanned} staged file(s)")
    if report.commits_scanned:
        parts.append(f"{report.commits_scanned} commit(s)")
    scope = " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items()))
    tail = f" (skipped: {skipped})" if skipped else ""
    if report.leaks:
        return (f"{len(report.leaks)} finding(s) in {scope}{tail}. Revoke every real key found "
                "on Binance now (API Management > Delete); deleting a commit does not remove a "
                "key from history, clones or forks.")
    return f"No Binance keys found in {scope}{tail}."


def main(argv: Sequence[str] | None = None) -> int:
    """`keywatch scan` with the standard library only: what the pre-commit hook runs.

    Same arguments, output and exit codes (0 clean, 1 findings, 2 usage error) as the
    `keywatch scan` command, without colour.
    """
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(prog="keywatch-scan", description=(
        "Find Binance API keys and secrets in files and git history (values are masked)."))
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--git-history", action="store_true")
    ap.add_argument("--staged", action="store_true")
    ap.add_argument("--include-ignored", action="store_true")
    ap.add_argument("--json", action="store_true", dest="as_json")
    args = ap.parse_args(argv)
    try:
        report = run(args.paths, git_history=args.git_history, staged=args.staged,
                     include_ignored=args.include_ignored)
    except ScanError as exc:
        print(f"keywatch scan: {exc}", file=sys.stderr)
        return 2
    if args.as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for leak in report.leaks:
            print(f"{leak.location()}: {leak.rule}: {leak.message()}")
        print(summary(report))
    return 1 if report.leaks else 0


def run(paths: Sequence[Path], *, git_history: bool = False, staged: bool = False,
        include_ignored: bool = False) -> ScanReport:
    """One scan as the command line asks for it; `--staged` alone scans only the index."""
    targets = list(paths) or [Path(".")]
    report = ScanReport() if staged and not paths else scan_paths(targets, include_ignored)
    if git_history:
        scan_history(targets[0], report)
    if staged:
        scan_staged(targets[0], report)
    return report


if __name__ == "__main__":
    raise SystemExit(main())
