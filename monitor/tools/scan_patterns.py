"""Leak scan, what counts as a suspect: the patterns, the finding record, the line scanner.

What counts as a suspect, and why:
- a 64-character alphanumeric value (the shape of both a Binance API key and its secret) that is
  assigned to a name holding "key" or "secret", or that sits within two lines of a Binance-ish
  name (binance, api_key, apikey, secret, X-MBX-APIKEY ...). A scanner cannot tell a real key from
  a fake one, so every such value is reported, with one documented exception: a value made of one
  short unit repeated (`"test" * 16`, `"x" * 64`) is a placeholder and is skipped, because no
  generated key looks like that;
- a value assigned to a hash-like name (sha256, digest, fingerprint, signature, checksum,
  cache, etag ...) is not a credential, and a 64-hex value counts only when its name says
  secret or API key (`api_key`, `binance_secret`, `private_key`), not for a bare `key`
  (`cache_key`, `row_key`): digests are hex, Binance keys are mixed-case. Keywatch's own
  config holds `api_key_sha256`, and a signed query string carries a 64-hex `signature` next
  to `apiKey=`. Likewise a single-case hex value that is only *near* a
  name (not assigned to a key/secret name) is taken for a digest: Binance keys are mixed-case, and
  a random mixed-case key is all-hex with odds of about (16/62)^64;
- a `.env` file that git does not ignore (it will be committed sooner or later). A `.env` file
  that git ignores, or one outside any git repository, is where secrets belong: it is skipped.
- a line carrying `keywatch: allow` (in any comment syntax) is never reported;
- a PEM private key block (`-----BEGIN [ENCRYPTED |RSA |EC |OPENSSH ]PRIVATE KEY-----`): the
  private half of an Ed25519 or RSA API key signs for it exactly as an HMAC secret does. Its
  type is read from the block's first line (PKCS#8 says Ed25519 or RSA in its first bytes; an
  encrypted one says only that it is encrypted). When the same file also shows a Binance API key,
  the finding names it (masked): the key the PEM probably belongs to;
- with `--git-history`, commit messages are read like file lines ("rotated key: ..." in a
  message is as public as the diff), reported at `<commit>:(commit message):<line>`.

Values are never printed: only the first four characters followed by `****`.
Plain functions over text, standard library only (the pre-commit hook imports this module
without installing anything); files and git history around it are `scan.py` and `scan_git.py`.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TypedDict

CONTEXT_LINES = 2  # a Binance-ish name up to this many lines above a value still counts
ENV_TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist", ".tpl")

VALUE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{64}(?![A-Za-z0-9])")
NAMES = re.compile(r"binance|api[_\-. ]?key|api[_\-. ]?secret|secret|x-mbx-apikey", re.IGNORECASE)
KEYISH = re.compile(r"key|secret", re.IGNORECASE)
NOT_A_CREDENTIAL = re.compile(
    r"sha\d*|hash|digest|fingerprint|signature|checksum|integrity|commit|cache|etag|nonce",
    re.IGNORECASE,
)
# A 64-hex value is a secret only when its name says so: `key` alone (cache_key, row_key) is not
# enough, since digests are what hex values usually are (Binance keys are mixed-case).
HEX_CREDENTIAL = re.compile(
    r"binance|api[_\-. ]?key|api[_\-. ]?secret|secret|private|x-mbx-apikey", re.IGNORECASE
)
# The name a value is assigned to: `NAME = "v"`, `"NAME": "v"`, `NAME=v`, `NAME: v`, `NAME => v`.
ASSIGNED = re.compile(r"""([A-Za-z_][\w.\-]*)["'\]]?\s*(?::=|=>|[:=])\s*["'(\[]?\s*$""")
ALLOW = re.compile(r"keywatch:\s*allow", re.IGNORECASE)
HEX = re.compile(r"[0-9a-f]{64}|[0-9A-F]{64}")
PLACEHOLDER = re.compile(r"(.{1,16}?)\1+", re.DOTALL)

RULE_CREDENTIAL = "binance-credential"
RULE_ENV = "env-file"
RULE_PEM = "private-key"
PEM_BEGIN = re.compile(r"-----BEGIN ((?:ENCRYPTED |RSA |EC |OPENSSH )?)PRIVATE KEY-----")
# the first base64 line of a PKCS#8 body names the algorithm: Ed25519's OID 1.3.101.112
# (DER 06032b6570) right after the version, RSA's rsaEncryption (06092a864886f70d010101)
PEM_KINDS = (("MC4CAQAwBQYDK2Vw", "Ed25519"), ("BgkqhkiG9w0BAQEF", "RSA"))


class ScanError(Exception):
    """A usage problem (missing path, not a git repository, git missing): exit code 2."""


class LeakJson(TypedDict):
    rule: str
    path: str
    line: int
    masked: str
    name: str
    commit: str | None
    location: str
    message: str


class ScanReportJson(TypedDict):
    """`keywatch scan --json`."""

    findings: list[LeakJson]
    files_scanned: int
    commits_scanned: int
    staged_files_scanned: int
    skipped: dict[str, int]


@dataclass(frozen=True)
class Leak:
    """One suspect: where it is and the masked value; never the value itself."""

    rule: str
    path: str
    line: int  # 1-based; 0 for a finding about a whole file
    masked: str = ""
    name: str = ""  # the name that made the value suspicious (safe to print)
    commit: str | None = None  # set for findings from git history
    pairs: str = ""  # a PEM's probable API key, masked, when its file shows one

    def location(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{self.commit[:12]}:{where}" if self.commit else where

    def message(self) -> str:
        if self.rule == RULE_ENV:
            if self.commit:
                return "a .env file was committed; revoke every key it held"
            return ".env file is not ignored by git; add it to .gitignore (keywatch init does)"
        if self.rule == RULE_PEM:
            kind = f"{self.name} private key" if self.name else "private key"
            owner = f", probably for API key {self.pairs}" if self.pairs else ""
            return (f"{kind} (PEM){owner}: it signs for its API key like a secret; delete the "
                    "key in API Management and register a new key pair")
        return f"64-character key/secret {self.masked} near {self.name!r}"

    def to_dict(self) -> LeakJson:
        return LeakJson(rule=self.rule, path=self.path, line=self.line, masked=self.masked,
                        name=self.name, commit=self.commit, location=self.location(),
                        message=self.message())


@dataclass
class ScanReport:
    leaks: list[Leak] = field(default_factory=list)
    files_scanned: int = 0  # distinct files read from the tree (a symlinked file once)
    commits_scanned: int = 0  # commits whose diff was read (--git-history)
    staged_files_scanned: int = 0  # files with staged changes (--staged)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def to_dict(self) -> ScanReportJson:
        return ScanReportJson(
            findings=[leak.to_dict() for leak in self.leaks],
            files_scanned=self.files_scanned,
            commits_scanned=self.commits_scanned,
            staged_files_scanned=self.staged_files_scanned,
            skipped=dict(sorted(self.skipped.items())),
        )


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
        self._pem: tuple[int, str] | None = None  # a BEGIN line waiting for its first body line
        self._in_pem = False  # inside a key block: its base64 lines are the key, reported once
        self._last_key = ""  # the last API key shown above (masked), for a PEM's owner

    def reset(self) -> None:
        self._above.clear()
        self._pem = None
        self._in_pem = False

    def feed(self, lineno: int, line: str, report: bool = True) -> list[Leak]:
        found: list[Leak] = []
        if self._pem is not None:  # the line after BEGIN says which algorithm
            at, header = self._pem
            self._pem = None
            kind = "encrypted" if header == "ENCRYPTED " else header.strip() or next(
                (k for prefix, k in PEM_KINDS if prefix in line), "")
            found.append(Leak(RULE_PEM, self.path, at, "", kind, self.commit, self._last_key))
        if self._in_pem:
            self._in_pem = "-----END " not in line
        elif report and not ALLOW.search(line):
            for m in VALUE.finditer(line):
                name = self._suspicious_name(line, m.start(), m.group())
                if name is not None:
                    found.append(Leak(RULE_CREDENTIAL, self.path, lineno, mask(m.group()),
                                      name, self.commit))
                    self._last_key = mask(m.group())
            pem = PEM_BEGIN.search(line)
            if pem is not None:
                self._pem, self._in_pem = (lineno, pem.group(1)), True
        self._above.append(line)
        return found

    def finish(self) -> list[Leak]:
        """A BEGIN line on the last line of the text (no body line came)."""
        if self._pem is None:
            return []
        at, header = self._pem
        self._pem = None
        return [Leak(RULE_PEM, self.path, at, "", header.strip(), self.commit, self._last_key)]

    def _suspicious_name(self, line: str, start: int, value: str) -> str | None:
        if is_placeholder(value):
            return None
        assigned = _assigned_name(line, start)
        if assigned is not None:
            if NOT_A_CREDENTIAL.search(assigned):
                return None
            if HEX.fullmatch(value):
                return assigned if HEX_CREDENTIAL.search(assigned) else None
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
    leaks.extend(scanner.finish())
    return pair_keys(leaks)


def pair_keys(leaks: list[Leak]) -> list[Leak]:
    """Each PEM with no API key above it names the file's nearest one (below), if any."""
    keys = [(leak.line, leak.masked) for leak in leaks if leak.rule == RULE_CREDENTIAL]
    if not keys:
        return leaks
    return [replace(leak, pairs=min(keys, key=lambda k: abs(k[0] - leak.line))[1])
            if leak.rule == RULE_PEM and not leak.pairs else leak for leak in leaks]
