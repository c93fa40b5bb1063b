"""Reading the config's files: the TOML and the `.env` beside it, each refused in one line.

`ConfigError` is the config's `KeywatchError`: the file, then every problem with its fix.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from monitor.errors import KeywatchError


class ConfigError(KeywatchError):
    """Bad config: every problem, each with the file, the key path and the fix."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.path = str(path)
        super().__init__(
            f"{self.path}: {len(problems)} problem(s) in the config:\n"
            + "\n".join(f"  - {p}" for p in problems),
            where=self.path, problems=problems,
        )


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML, or `ConfigError` saying why not."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file ({exc.strerror}); "
                                 "create one with `keywatch init`"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None


def environment(
    path: Path, env: dict[str, str] | None, env_file: str | Path | None
) -> dict[str, str]:
    """The `.env` beside the config (or `env_file`), overlaid by the process environment."""
    environ: dict[str, str] = {}
    dotenv = Path(env_file) if env_file is not None else path.parent / ".env"
    if dotenv.is_file():
        try:
            values = dotenv_values(dotenv)
        except OSError as exc:
            raise ConfigError(path, [f"cannot read {dotenv} ({exc.strerror}); make it readable "
                                     "by the user Keywatch runs as (mode 0600, owned by it)"]
                              ) from None
        environ.update({k: v for k, v in values.items() if v is not None})
    environ.update(os.environ if env is None else env)
    return environ
