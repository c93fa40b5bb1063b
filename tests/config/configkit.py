"""A small valid config for the hostile-config tests, and a way to run `keywatch` on it."""

from __future__ import annotations

import textwrap
from pathlib import Path

from typer.testing import CliRunner, Result

from monitor.cli import app
from tests.factories import fake_secret

BASE = """
store_path = "kw.db"
{top}
[sources.tap]
{tap}
[[accounts]]
name = "main"
monitor_key = "monitor"
  [[accounts.keys]]
  label = "monitor"
  use_case = "monitoring"
  api_key_env = "KW_TEST_KEY"
  api_secret_env = "KW_TEST_SECRET"
[[alerts.channels]]
name = "pager"
url = "json://127.0.0.1:9999/"
"""
ENV = {"KW_TEST_KEY": fake_secret("key"), "KW_TEST_SECRET": fake_secret("secret")}


def write_config(tmp_path: Path, *, top: str = "", tap: str = "", tail: str = "") -> Path:
    """keywatch.toml in tmp_path: BASE with lines added at the top level, in [sources.tap],
    and at the end."""
    p = tmp_path / "keywatch.toml"
    p.write_text(textwrap.dedent(BASE).format(top=top, tap=tap) + textwrap.dedent(tail))
    return p


def check_config(path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """`keywatch check-config -c PATH` in-process, with ENV (or `env`) as the environment."""
    return CliRunner().invoke(app, ["check-config", "-c", str(path), *args],
                              env=ENV if env is None else env)


def toml_str(v: str) -> str:
    """`v` as a TOML basic string: anything but printable ASCII escaped, so any text fits."""
    out = []
    for ch in v:
        if ch in '"\\' or not (" " <= ch <= "~"):
            out.append(f"\\U{ord(ch):08X}" if ord(ch) > 0xFFFF else f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
