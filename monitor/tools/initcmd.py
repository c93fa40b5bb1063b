"""`keywatch init`: a commented config, a `.env` template for its secrets, `.env` in .gitignore.

One source of truth for the config template: `keywatch.example.toml` at the repository root
(what a reader of the repo sees, and what the docs point at). A wheel carries it as package data
(`monitor/_data/keywatch.example.toml`, see monitor/core/resources.py); a source checkout reads the
root file itself. There is never a second hand-maintained copy of the text in Python;
`--template` overrides. The template names no rules folder or model, so the written config uses
the ones shipped with the installation wherever it is run from.

The `.env` template is derived from the config template, not written by hand: every
`*_env = "NAME"` in the TOML becomes a `NAME=` line, so the two can never disagree.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.core import resources
from monitor.core.errors import KeywatchError

TEMPLATE_NAME = resources.TEMPLATE_NAME
CONFIG_NAME = "keywatch.toml"
ENV_NAME = ".env"
GITIGNORE_ENTRY = ".env"
ENV_HEADER = """\
# Secrets for keywatch.toml, written by `keywatch init`. One line per environment variable the
# config names (`*_env`). Fill in the values; never commit this file (it is in .gitignore) and
# keep it readable only by you (mode 0600). Variables exported in the environment win over it.
"""


class InitError(KeywatchError):
    """Nothing was written: the message says why and what to do."""


@dataclass
class InitResult:
    written: list[Path] = field(default_factory=list)
    gitignore_updated: bool = False
    env_vars: list[str] = field(default_factory=list)


def find_template(override: Path | None = None) -> Path:
    """The config template: `--template`, else the repo root, else the package's copy."""
    if override is not None:
        if not override.is_file():
            raise InitError(f"template {override} does not exist")
        return override
    try:
        candidate = resources.template()
    except resources.ResourceError as exc:
        raise InitError(f"{exc}; or pass --template PATH") from None
    if candidate.is_file():
        return candidate
    raise InitError(
        f"cannot find {TEMPLATE_NAME} (looked for {candidate}); reinstall Keywatch or pass "
        f"--template PATH to a copy from the Keywatch repository"
    )


def env_vars(template_text: str) -> list[tuple[str, str]]:
    """(variable, where the config names it) for every `*_env` string, in file order, once."""
    out: dict[str, str] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                p = f"{path}.{k}" if path else str(k)
                if str(k).endswith("_env") and isinstance(v, str):
                    owner = node.get("label") or node.get("name")
                    out.setdefault(v, f"{p} ({owner})" if isinstance(owner, str) else p)
                else:
                    walk(v, p)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(tomllib.loads(template_text), "")
    return list(out.items())


def render_env(names: list[tuple[str, str]]) -> str:
    lines = [ENV_HEADER]
    for var, where in names:
        lines.append(f"# {where}\n{var}=\n")
    return "\n".join(lines)


def ensure_gitignored(directory: Path) -> bool:
    """Append `.env` to DIR/.gitignore unless a line already says it. True if the file changed."""
    path = directory / ".gitignore"
    text = path.read_text() if path.exists() else ""
    entries = {line.strip() for line in text.splitlines()}
    if GITIGNORE_ENTRY in entries or f"/{GITIGNORE_ENTRY}" in entries:
        return False
    sep = "" if not text or text.endswith("\n") else "\n"
    with path.open("a") as fh:
        fh.write(f"{sep}# secrets for keywatch.toml (keywatch init)\n{GITIGNORE_ENTRY}\n")
    return True


def write_secret_file(path: Path, text: str) -> None:
    """Create or truncate with mode 0600 from the first byte (never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode otherwise
        os.write(fd, text.encode())
    finally:
        os.close(fd)


SECRET_LINE = '  api_secret_env = "KEYWATCH_MAIN_MONITOR_API_SECRET"\n'
KEY_TYPES = ("hmac", "ed25519", "rsa")


def for_key_type(text: str, key_type: str) -> str:
    """The template for a monitor key of `key_type`: an Ed25519/RSA key names its PEM file's
    variable instead of a secret (Binance holds only the public half). The template text is
    the one source; this changes its one secret line."""
    if key_type not in KEY_TYPES:
        raise InitError(f"key type {key_type!r} is not one of {', '.join(KEY_TYPES)}")
    if key_type == "hmac":
        return text
    if SECRET_LINE not in text:
        raise InitError(f"the template has no `{SECRET_LINE.strip()}` line to turn into an "
                        f"{key_type} key; edit the config by hand (README: key types)")
    return text.replace(SECRET_LINE, (
        f'  type = "{key_type}"            # the key pair you registered with Binance\n'
        '  private_key_env = "KEYWATCH_MAIN_MONITOR_PRIVATE_KEY"  # the PEM file\'s path\n'
        '  # private_key_passphrase_env = "KEYWATCH_MAIN_MONITOR_PASSPHRASE"  # if encrypted\n'))


def init_project(
    directory: Path, force: bool = False, template: Path | None = None,
    key_type: str = "hmac",
) -> InitResult:
    """Write DIR/keywatch.toml and DIR/.env; refuse (writing nothing) if either exists."""
    source = find_template(template)
    text = for_key_type(source.read_text(), key_type)
    try:
        names = env_vars(text)
    except tomllib.TOMLDecodeError as exc:
        raise InitError(f"template {source} is not valid TOML: {exc}") from None
    config, env = directory / CONFIG_NAME, directory / ENV_NAME
    existing = [p for p in (config, env) if p.exists()]
    if existing and not force:
        raise InitError(
            f"{', '.join(str(p) for p in existing)} already exist(s); nothing was written. "
            "Pass --force to overwrite."
        )
    directory.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    write_secret_file(env, render_env(names))
    result = InitResult(written=[config, env], env_vars=[n for n, _ in names])
    result.gitignore_updated = ensure_gitignored(directory)
    return result
