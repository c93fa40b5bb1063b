"""Leak scan over git: the `git` subprocess seam, `git log -p` (history and commit messages)
and `git diff --cached` (what a commit would record). Standard library only, like `scan.py`.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from monitor.tools.scan_patterns import (
    RULE_ENV,
    Leak,
    LineScanner,
    ScanError,
    ScanReport,
    is_env_file,
)

COMMIT_MESSAGE = "(commit message)"  # the path a finding in a commit message is reported at
HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


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


# ---- git history and the index --------------------------------------------------------------

DIFF_FLAGS = ["-U2", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/",
              "--dst-prefix=b/"]


def scan_diff(lines: Iterable[str], commit: str | None = None, *,
              commit_messages: bool = False) -> Iterator[Leak]:
    """Leaks on the added lines of a unified diff (`git log -p` output with `\\x01<sha>` marks;
    with `commit_messages`, each mark is followed by the message, ended by `\\x02`).

    Context lines feed the "near a name" test but are not reported: a value that was only ever
    context was added (and reported) in an earlier commit.
    """
    scanner: LineScanner | None = None
    path: str | None = None
    new_file = False
    lineno = 0
    in_hunk = False
    message: LineScanner | None = None  # inside a commit message (`\x01<sha>` .. `\x02`)
    for raw in lines:
        line = raw.rstrip("\n")
        if message is not None:
            text, end, _ = line.partition("\x02")
            lineno += 1
            yield from message.feed(lineno, text)
            if end:
                message = None
        elif line.startswith("\x01"):
            commit, scanner, path, in_hunk = line[1:].strip(), None, None, False
            if commit_messages:
                message, lineno = LineScanner(COMMIT_MESSAGE, commit), 0
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
    # the raw message (%B) too: a key pasted into a commit message is as public as the diff
    lines = _stream_git(["log", "--all", "-p", "--format=%x01%H%n%B%x02", *DIFF_FLAGS], root)

    def counted() -> Iterator[str]:
        for line in lines:
            if line.startswith("\x01"):
                report.commits_scanned += 1
            yield line

    report.leaks.extend(scan_diff(counted(), commit_messages=True))


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
