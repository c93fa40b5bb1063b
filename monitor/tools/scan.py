"""Leak scan: find Binance API keys and secrets in files and in git history.

Binance's own numbers: almost every drained account lost its key on the user side, most often a
`config.json` or `.env` pushed to a public repository, where crawlers find it within hours, and
deleting the commit does not help because the key stays in history. This module is the check a
developer runs (by hand, in CI or as a pre-commit hook) before that happens: files here, git
history, commit messages and the index in `scan_git.py`, and what counts as a suspect (and why)
in `scan_patterns.py`. No network, no state between calls, and only the standard library: the
pre-commit hook (`hooks/keywatch-scan`) runs this module's `main` without installing Keywatch or
any of its dependencies.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from monitor.tools.scan_git import git_ignored, git_root, scan_history, scan_staged
from monitor.tools.scan_patterns import (
    RULE_CREDENTIAL,
    RULE_ENV,
    Leak,
    ScanError,
    ScanReport,
    is_env_file,
    is_placeholder,
    mask,
    scan_text,
)

__all__ = ["MAX_FILE_BYTES", "RULE_CREDENTIAL", "RULE_ENV", "Leak", "ScanError", "ScanReport",
           "is_env_file", "is_placeholder", "main", "mask", "run", "scan_paths", "scan_text",
           "summary"]

MAX_FILE_BYTES = 2 * 1024 * 1024
SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache",
    ".ruff_cache", ".pytest_cache", ".tox", ".nox", ".hypothesis",
})


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
