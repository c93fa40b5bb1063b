"""The user's config: a TOML file for what is safe to commit, the environment for secrets.

A key's secret, a key itself and a channel token never live in the TOML: the file names the
environment variable (or `.env` entry) that holds each one. A secret pasted into the TOML is
refused with a message that says where to move it. Secrets are `SecretStr`, so a `repr`, a log
line or a traceback shows `'**********'` instead of the value.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import shlex
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor import resources

SECRET_NAME = re.compile(r"(secret|api_?key|token|password|passwd)$", re.IGNORECASE)
# URL schemes that can be written in the TOML because they carry no credential by design.
SAFE_URL_SCHEMES = {"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos"}


class UseCase(StrEnum):
    """The seed's use cases: each fixes the minimum permissions and a rotation cycle."""

    MONITORING = "monitoring"
    TAX = "tax"
    MARKET_DATA = "market-data"
    SPOT_BOT = "spot-bot"
    FUTURES_BOT = "futures-bot"
    ALERT_EXECUTION = "alert-execution"
    WITHDRAWAL = "withdrawal"
    INSTITUTIONAL = "institutional"


# Seed tables: (permissions the use case needs, rotation cycle in days, IP restriction mandatory)
USE_CASE_POLICY: dict[UseCase, tuple[frozenset[str], int, bool]] = {
    UseCase.MONITORING: (frozenset({"enableReading"}), 180, False),
    UseCase.TAX: (frozenset({"enableReading"}), 365, False),
    UseCase.MARKET_DATA: (frozenset({"enableReading"}), 180, False),
    UseCase.SPOT_BOT: (frozenset({"enableReading", "enableSpotAndMarginTrading"}), 90, True),
    UseCase.FUTURES_BOT: (frozenset({"enableReading", "enableFutures"}), 60, True),
    UseCase.ALERT_EXECUTION: (
        frozenset({"enableReading", "enableSpotAndMarginTrading"}), 90, True
    ),
    UseCase.WITHDRAWAL: (frozenset({"enableReading", "enableWithdrawals"}), 30, True),
    UseCase.INSTITUTIONAL: (
        frozenset({"enableReading", "enableSpotAndMarginTrading"}), 30, True
    ),
}


class ConfigError(Exception):
    """Bad config: every problem, each with the file, the key path and the fix."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(
            f"{self.path}: {len(problems)} problem(s) in the config:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyConfig(_Model):
    """One Binance API key, known by its label. Only env var *names* are in the file."""

    label: str
    use_case: UseCase
    api_key_env: str | None = None
    api_secret_env: str | None = None
    # sha256 of the API key, for mapping tapped calls to this label without holding the key
    api_key_sha256: str | None = None
    ip_whitelist: list[str] = Field(default_factory=list)
    client_order_prefixes: list[str] = Field(default_factory=list)
    created: str | None = None  # ISO date; else taken from apiRestrictions.createTime
    # resolved from the environment at load time, never from the file
    api_key: SecretStr | None = Field(default=None, exclude=True)
    api_secret: SecretStr | None = Field(default=None, exclude=True)

    @field_validator("label")
    @classmethod
    def _label(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", v):
            raise ValueError("use letters, digits, '_', '.' or '-' (at most 64)")
        return v

    @field_validator("ip_whitelist")
    @classmethod
    def _ips(cls, v: list[str]) -> list[str]:
        out = []
        for item in v:
            try:
                out.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return out

    def fingerprint(self) -> str | None:
        """sha256 hex of the API key: how the tap recognises this key without storing it."""
        if self.api_key is not None:
            return hashlib.sha256(self.api_key.get_secret_value().encode()).hexdigest()
        return self.api_key_sha256

    def whitelist_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.ip_whitelist]


class AccountConfig(_Model):
    name: str
    monitor_key: str = Field(description="label of the read-only key Keywatch itself signs with")
    keys: list[KeyConfig]
    # symbols whose orders/trades are reconciled over REST after a stream gap (allOrders and
    # myTrades need a symbol); symbols seen on the stream are added automatically
    symbols: list[str] = Field(default_factory=list)

    def key(self, label: str) -> KeyConfig:
        for k in self.keys:
            if k.label == label:
                return k
        raise KeyError(label)


def _local_address(v: str | None) -> str | None:
    """An IP address literal (the socket binds to it), or None."""
    if v is None or v == "":
        return None
    try:
        return str(ipaddress.ip_address(v))
    except ValueError as exc:
        raise ValueError(f"{v!r} is not an IP address of this host (e.g. \"203.0.113.10\")"
                         ) from exc


class BinanceConfig(_Model):
    rest_url: str = "https://api.binance.com"
    ws_api_url: str = "wss://ws-api.binance.com:443/ws-api/v3"
    recv_window_ms: int = Field(default=5000, ge=1, le=60000)
    weight_budget_pct: float = Field(default=1.0, gt=0, le=100)
    # the host address Keywatch's own calls leave from (a multi-homed host whose whitelisted
    # address is not the default route); empty: the system's choice
    source_address: str | None = None

    @field_validator("source_address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        return _local_address(v)

    @field_validator("rest_url", "ws_api_url")
    @classmethod
    def _secure(cls, v: str) -> str:
        parts = urlsplit(v)
        loopback = parts.hostname in ("localhost",) or _is_loopback(parts.hostname or "")
        if parts.scheme in ("http", "ws") and not loopback:
            raise ValueError("use https:// / wss:// (plain text is allowed only on loopback)")
        if parts.scheme not in ("http", "https", "ws", "wss"):
            raise ValueError("expected an http(s):// or ws(s):// URL")
        return v.rstrip("/")


class TapMode(StrEnum):
    """Where the tap runs: inside `keywatch run`, or on its own (`keywatch tap`)."""

    INPROCESS = "inprocess"
    PROCESS = "process"


class TapConfig(_Model):
    enabled: bool = False
    listen: str = "127.0.0.1:8765"
    upstream: str = "https://api.binance.com"
    account: str | None = None
    # "process": `keywatch tap` forwards and spools its records to `spool` (JSON lines);
    # `keywatch run` ingests the spool and serves no tap itself
    mode: TapMode = TapMode.INPROCESS
    spool: str | None = None
    fsync_interval_s: float = Field(default=0.2, gt=0, le=60)
    # the address the tap's calls to Binance leave from: the bots' whitelisted host address
    # (default: the service's [binance] source_address, else the system's choice)
    source_address: str | None = None

    @field_validator("source_address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        return _local_address(v)

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, v: str) -> str:
        return BinanceConfig._secure(v)  # type: ignore[operator]

    @model_validator(mode="after")
    def _spool_for_process(self) -> TapConfig:
        if self.mode is TapMode.PROCESS and not self.spool:
            raise ValueError('mode = "process" needs `spool = "/path/to/tap-spool.jsonl"`, the '
                             "file the tap writes and the service reads")
        return self


class LogSource(_Model):
    path: str
    account: str


class SourcesConfig(_Model):
    poller: bool = True
    stream: bool = True
    poll_interval_s: float = Field(default=60.0, gt=0)
    tap: TapConfig = Field(default_factory=TapConfig)
    logs: list[LogSource] = Field(default_factory=list)


class ChannelConfig(_Model):
    """One Apprise destination. Tokens live in the environment (`url_env`)."""

    name: str
    url: str | None = None
    url_env: str | None = None
    tags: list[str] = Field(default_factory=list)
    resolved_url: SecretStr | None = Field(default=None, exclude=True)

    @field_validator("url")
    @classmethod
    def _url_has_no_secret(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in SAFE_URL_SCHEMES or parts.password:
            raise ValueError(
                f"a {parts.scheme}:// URL carries a token or password; put it in the environment "
                "or .env and write `url_env = \"VAR_NAME\"` instead"
            )
        return v


class AlertsConfig(_Model):
    channels: list[ChannelConfig] = Field(default_factory=list)
    apprise_config: str | None = None  # an Apprise YAML/TEXT config file
    routing: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "critical": ["critical"], "high": ["critical"], "warning": ["digest"], "info": [],
        }
    )
    repeat_interval_s: float = Field(default=3600, ge=0)
    group_wait_s: float = Field(default=10, ge=0)
    cooldown_s: float = Field(default=300, ge=0)
    digest_hour_utc: int = Field(default=8, ge=0, le=23)


class Config(_Model):
    store_path: str = "keywatch.db"
    # Left out of the file: the rules and model shipped with Keywatch (package data of the
    # installed wheel, or the checkout's rules/ and models/). Relative paths are read from the
    # current directory, like store_path.
    rules_dir: str = Field(default_factory=lambda: str(resources.rules_dir()))
    model_path: str = Field(default_factory=lambda: str(resources.default_model()))
    egress_ip: str | None = None
    binance: BinanceConfig = Field(default_factory=BinanceConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    accounts: list[AccountConfig]

    def account(self, name: str) -> AccountConfig:
        for a in self.accounts:
            if a.name == name:
                return a
        raise KeyError(name)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secrets_in_file(data: Any, path: str = "") -> list[str]:
    """Dotted paths of fields in the TOML that look like a secret value rather than an env name."""
    found: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            p = f"{path}.{k}" if path else str(k)
            if isinstance(v, str) and SECRET_NAME.search(str(k)) and not str(k).endswith("_env"):
                found.append(p)
            found.extend(_secrets_in_file(v, p))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found.extend(_secrets_in_file(v, f"{path}[{i}]"))
    return found


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_config(
    path: str | Path, env: dict[str, str] | None = None, env_file: str | Path | None = None
) -> Config:
    """Read, validate and resolve secrets. Raises `ConfigError` listing every problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file ({exc.strerror}); "
                                 "create one with `keywatch init`"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None

    problems = [
        f"{p}: a secret is written in the file; put it in the environment or .env "
        f"(git-ignored) and write `{p.rsplit('.', 1)[-1]}_env = \"VAR_NAME\"` instead"
        for p in _secrets_in_file(data)
    ]
    if problems:
        raise ConfigError(path, problems)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            path, [f"{_loc(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]
        ) from None

    environ = _environment(path, env, env_file)
    resolved = _resolve(cfg, environ, path)
    global _loaded
    _loaded = (path.resolve(), Path(resolved.store_path).resolve())
    return resolved


# The config this process loaded last and its store, both absolute: what the `keywatch notebook`
# command printed in an alert needs, since the person reading it is in another directory.
_loaded: tuple[Path, Path] | None = None


def investigate_command(alert_id: str) -> str:
    """`keywatch notebook ALERT_ID -c CONFIG --db STORE` for the config this process runs with."""
    cmd = f"keywatch notebook {alert_id}"
    if _loaded is None:
        return cmd
    config, store = _loaded
    return f"{cmd} -c {shlex.quote(str(config))} --db {shlex.quote(str(store))}"


def path_problems(cfg: Config) -> list[str]:
    """The rules folder and the model must exist (relative paths: from the current directory)."""
    problems = []
    hint = "remove the line to use the {} shipped with Keywatch ({}), or give an absolute path"
    rules = Path(cfg.rules_dir)
    if not rules.is_dir():
        problems.append(f"rules_dir: {cfg.rules_dir!r} is not a folder (looked in "
                        f"{rules.resolve()}); " + hint.format("rules", resources.rules_dir()))
    elif not any(rules.glob("*.yaml")):
        problems.append(f"rules_dir: {rules.resolve()} holds no *.yaml rule file")
    model = Path(cfg.model_path)
    if not model.is_file():
        problems.append(f"model_path: {cfg.model_path!r} is not a file (looked in "
                        f"{model.resolve()}); " + hint.format("model", resources.default_model()))
    return problems


def env_file_warnings(config_path: str | Path, env_file: str | Path | None = None) -> list[str]:
    """The `.env` next to the config holds secrets: warn when others can read or write it."""
    dotenv = Path(env_file) if env_file is not None else Path(config_path).parent / ".env"
    try:
        mode = dotenv.stat().st_mode
    except OSError:
        return []
    if mode & 0o077:
        return [f"{dotenv} has mode {mode & 0o777:04o}: users other than its owner can read or "
                f"write it, and it holds API keys and channel tokens; run "
                f"`chmod 600 {shlex.quote(str(dotenv))}`"]
    return []


def _environment(
    path: Path, env: dict[str, str] | None, env_file: str | Path | None
) -> dict[str, str]:
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


def _resolve(cfg: Config, environ: dict[str, str], path: Path) -> Config:
    problems: list[str] = []
    names = [a.name for a in cfg.accounts]
    if len(set(names)) != len(names):
        problems.append("accounts: two accounts share a name; names must be unique")
    accounts = []
    for ai, acct in enumerate(cfg.accounts):
        labels = [k.label for k in acct.keys]
        if acct.monitor_key not in labels:
            problems.append(
                f"accounts[{ai}].monitor_key: {acct.monitor_key!r} is not one of this account's "
                f"key labels {labels}"
            )
        if len(set(labels)) != len(labels):
            problems.append(f"accounts[{ai}].keys: two keys share a label")
        keys = []
        for ki, key in enumerate(acct.keys):
            where = f"accounts[{ai}].keys[{ki}]"
            upd: dict[str, Any] = {}
            for field, var in (("api_key", key.api_key_env), ("api_secret", key.api_secret_env)):
                if var is None:
                    continue
                val = environ.get(var)
                if not val:
                    problems.append(
                        f"{where}.{field}_env: environment variable {var} is not set; export it "
                        f"or add `{var}=...` to the .env next to {path.name}"
                    )
                else:
                    upd[field] = SecretStr(val)
            if key.label == acct.monitor_key and (
                key.api_key_env is None or key.api_secret_env is None
            ):
                problems.append(
                    f"{where}: the monitor key needs api_key_env and api_secret_env "
                    "(Keywatch signs its read-only calls with it)"
                )
            keys.append(key.model_copy(update=upd))
        accounts.append(acct.model_copy(update={"keys": keys}))
    channels = []
    for ci, ch in enumerate(cfg.alerts.channels):
        if (ch.url is None) == (ch.url_env is None):
            problems.append(f"alerts.channels[{ci}]: set exactly one of url or url_env")
            channels.append(ch)
            continue
        if ch.url_env is not None:
            val = environ.get(ch.url_env)
            if not val:
                problems.append(
                    f"alerts.channels[{ci}].url_env: environment variable {ch.url_env} is not "
                    "set; export it or add it to .env"
                )
                channels.append(ch)
                continue
            channels.append(ch.model_copy(update={"resolved_url": SecretStr(val)}))
        else:
            channels.append(ch.model_copy(update={"resolved_url": SecretStr(ch.url or "")}))
    if problems:
        raise ConfigError(path, problems)
    alerts = cfg.alerts.model_copy(update={"channels": channels})
    return cfg.model_copy(update={"accounts": accounts, "alerts": alerts})


class TapSettings(BaseModel):
    """What the standalone tap reads: `[sources.tap]` and the keys' fingerprints, nothing else."""

    model_config = ConfigDict(frozen=True)

    tap: TapConfig
    keys: dict[str, tuple[str, str]]  # sha256 fingerprint -> (account, label)
    default_account: str
    warnings: list[str]


def load_tap_settings(
    path: str | Path, env: dict[str, str] | None = None, env_file: str | Path | None = None
) -> TapSettings:
    """Read only what `keywatch tap` needs, so no other part of the config can stop it.

    Raises `ConfigError` only when the file cannot be read or parsed, or `[sources.tap]` itself
    is wrong (the tap cannot know where to listen or forward). Everything else - channels, the
    monitor key, store and rules paths, an unset key variable, a malformed account - is left to
    `keywatch run`; what the tap cannot use is a warning (its calls go unattributed).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file ({exc.strerror})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    sources = data.get("sources")
    section = sources.get("tap", {}) if isinstance(sources, dict) else {}
    try:
        tap = TapConfig.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(path, [
            f"sources.tap{''.join(f'.{p}' for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)]) from None
    warnings: list[str] = []
    try:
        environ = _environment(path, env, env_file)
    except ConfigError as exc:
        warnings.extend(exc.problems)
        environ = dict(os.environ if env is None else env)
    keys: dict[str, tuple[str, str]] = {}
    accounts = data.get("accounts")
    names: list[str] = []
    for ai, acct in enumerate(accounts if isinstance(accounts, list) else []):
        name = acct.get("name") if isinstance(acct, dict) else None
        if not isinstance(name, str) or not name:
            warnings.append(f"accounts[{ai}]: no name; its keys are not recognised by the tap")
            continue
        names.append(name)
        raw_keys = acct.get("keys")
        for ki, key in enumerate(raw_keys if isinstance(raw_keys, list) else []):
            label = key.get("label") if isinstance(key, dict) else None
            if not isinstance(label, str):
                warnings.append(f"accounts[{ai}].keys[{ki}]: no label; not recognised")
                continue
            var, fp = key.get("api_key_env"), key.get("api_key_sha256")
            if isinstance(var, str) and environ.get(var):
                fp = hashlib.sha256(environ[var].encode()).hexdigest()
            elif isinstance(var, str):
                warnings.append(f"accounts[{ai}].keys[{ki}] ({label}): environment variable "
                                f"{var} is not set; the tap records this key's calls as an "
                                "unknown key")
            if isinstance(fp, str) and fp:
                keys[fp.lower()] = (name, label)
    default = tap.account or (names[0] if names else None)
    if default is None:
        warnings.append("no account is configured: the tap records its calls under 'unknown'")
        default = "unknown"
    return TapSettings(tap=tap, keys=keys, default_account=default, warnings=warnings)
