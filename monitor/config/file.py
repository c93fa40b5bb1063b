"""Reading the config's files: the TOML and the `.env` beside it, each refused in one line.

`ConfigError` is the config's `KeywatchError`: the file, then every problem with its fix.
"""

from __future__ import annotations

import io
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from monitor.core.errors import KeywatchError


class ConfigError(KeywatchError):
    """Bad config: every problem, each with the file, the key path and the fix."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.path = str(path)
        super().__init__(
            f"{self.path}: {len(problems)} problem(s) in the config:\n"
            + "\n".join(f"  - {p}" for p in problems),
            where=self.path, problems=problems,
        )


# A config is a few KiB; anything past this is not one (or is /dev/zero behind a symlink).
MAX_CONFIG_BYTES = 1 << 20


def read_text(path: Path, what: str, fix: str) -> str:
    """A small regular UTF-8 file's text, or `ConfigError` in one line.

    The file is checked to be a regular file before it is opened: opening a FIFO blocks until
    a writer comes, and a device or /proc file may never end."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(path, [f"cannot read {what} ({exc.strerror}); {fix}"]) from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else
                "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or socket")
        raise ConfigError(path, [f"{what} is {kind}, not a regular file; give the path of the "
                                 "file itself"])
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(path, [f"cannot read {what} ({exc.strerror}); make it readable by "
                                 "the user Keywatch runs as (mode 0600, owned by it)"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(path, [f"{what} is larger than {MAX_CONFIG_BYTES >> 20} MiB; this is "
                                 "not a Keywatch config"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        binary = b"\0" in data
        raise ConfigError(path, [
            f"{what} is {'a binary file' if binary else 'not UTF-8 text'} (line {line}, byte "
            f"{exc.start}); " + ("give the path of the text file" if binary else
                                 "save it as UTF-8")]) from None


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML, or `ConfigError` saying why not (never a traceback, never a hang)."""
    text = read_text(path, "the config", "create one with `keywatch init`")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise ConfigError(path, ["not valid TOML for Keywatch: values nested thousands of "
                                 "levels deep; a config nests a few levels"]) from None


def environment(
    path: Path, env: dict[str, str] | None, env_file: str | Path | None
) -> dict[str, str]:
    """The `.env` beside the config (or `env_file`), overlaid by the process environment."""
    environ: dict[str, str] = {}
    dotenv = Path(env_file) if env_file is not None else path.parent / ".env"
    if os.path.lexists(dotenv):
        text = read_text(dotenv, f"the .env next to {path.name}",
                         "make it readable by the user Keywatch runs as (mode 0600)")
        values = dotenv_values(stream=io.StringIO(text))
        environ.update({k: v for k, v in values.items() if v is not None})
    environ.update(os.environ if env is None else env)
    return environ
