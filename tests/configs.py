"""One builder for the Keywatch configs tests write: TOML from data, so each test states only
what differs (a tap, a channel, a key's whitelist) and every config has the same shape.

    text = config_toml(accounts=[Account("main", "mon", [Key("mon", "monitoring", "A", "B")])],
                       channels=[{"name": "pager", "url": "json://127.0.0.1:1/"}])

`sim_config` is the common case: a service watching account "main" of a running simulator
with its monitor key `keywatch` and a bot key `bot` (the keys `setup_sim` functions create),
their secrets in the `.env` beside the config, as `keywatch run` reads them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "rules"
MODEL = REPO / "models" / "default.skops"

Table = Mapping[str, object]


@dataclass
class Key:
    label: str
    use_case: str
    api_key_env: str | None = None
    api_secret_env: str | None = None
    ip_whitelist: Sequence[str] | None = None
    client_order_prefixes: Sequence[str] | None = None


@dataclass
class Account:
    name: str
    monitor_key: str
    keys: Sequence[Key]
    symbols: Sequence[str] | None = None


@dataclass
class Sections:
    """The tables between the top-level keys and the accounts, in TOML order."""

    binance: Table = field(default_factory=dict)
    sources: Table = field(default_factory=dict)
    tap: Table | None = None  # [sources.tap]
    logs: Sequence[Table] = ()  # [[sources.logs]]
    alerts: Table = field(default_factory=dict)
    channels: Sequence[Table] = ()  # [[alerts.channels]]


def value(v: object) -> str:
    """One TOML value: strings, numbers, booleans and lists of them."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str | Path):
        return json.dumps(str(v))
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def _pairs(table: Table, indent: str = "") -> list[str]:
    return [f"{indent}{k} = {value(v)}" for k, v in table.items() if v is not None]


def config_toml(top: Table | None = None, sections: Sections | None = None,
                accounts: Sequence[Account] = ()) -> str:
    s = sections or Sections()
    lines = _pairs(top or {})
    for name, table in (("binance", s.binance), ("sources", s.sources)):
        if table:
            lines += [f"[{name}]", *_pairs(table)]
    if s.tap is not None:
        lines += ["[sources.tap]", *_pairs(s.tap)]
    for log in s.logs:
        lines += ["[[sources.logs]]", *_pairs(log)]
    if s.alerts:
        lines += ["[alerts]", *_pairs(s.alerts)]
    for ch in s.channels:
        lines += ["[[alerts.channels]]", *_pairs(ch)]
    for acct in accounts:
        lines += ["[[accounts]]", *_pairs({"name": acct.name, "monitor_key": acct.monitor_key,
                                           "symbols": acct.symbols})]
        for k in acct.keys:
            lines += ["  [[accounts.keys]]", *_pairs({
                "label": k.label, "use_case": k.use_case, "api_key_env": k.api_key_env,
                "api_secret_env": k.api_secret_env, "ip_whitelist": k.ip_whitelist,
                "client_order_prefixes": k.client_order_prefixes}, "  ")]
    return "\n".join(lines) + "\n"


class SimUrls(Protocol):
    rest_url: str
    ws_api_url: str


MONITOR = Key("keywatch", "monitoring", "KW_MON_KEY", "KW_MON_SECRET", ["127.0.0.1"])


def sim_config(tmp: Path, sim: SimUrls, keys: Mapping[str, tuple[str, str]], *, bot: Key,
               sources: Table, tap: Table | None = None, channel: Table,
               binance: Table | None = None, symbols: Sequence[str] = ("BTCUSDT",)) -> Path:
    """`tmp/keywatch.toml` (store `tmp/kw.db`, shipped rules and model) watching account
    "main" of `sim`, and the `.env` with the `keywatch` and `bot` keys from `keys`."""
    (tmp / ".env").write_text(
        f"KW_MON_KEY={keys['keywatch'][0]}\nKW_MON_SECRET={keys['keywatch'][1]}\n"
        f"KW_BOT_KEY={keys['bot'][0]}\n")
    path = tmp / "keywatch.toml"
    path.write_text(config_toml(
        {"store_path": tmp / "kw.db", "rules_dir": RULES, "model_path": MODEL},
        Sections(binance={"rest_url": sim.rest_url, "ws_api_url": sim.ws_api_url,
                          **(binance or {})},
                 sources=sources, tap=tap, alerts={"group_wait_s": 0}, channels=[channel]),
        [Account("main", "keywatch", [MONITOR, bot], symbols)]))
    return path
