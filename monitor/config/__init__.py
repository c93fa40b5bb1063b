"""The user's config: a TOML file for what is safe to commit, the environment for secrets.

A key's secret, a key itself and a channel token never live in the TOML: the file names the
environment variable (or `.env` entry) that holds each one. A secret pasted into the TOML is
refused with a message that says where to move it. Secrets are `SecretStr`, so a `repr`, a log
line or a traceback shows `'**********'` instead of the value.
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path
from typing import Any

from pydantic import SecretBytes, SecretStr, ValidationError

from monitor.config.checks import (
    SECRET_NAME,
    SEVERITIES,
    address_problems,
    digest_unrouted,
    is_loopback,
    local_address,
    unrouted,
)
from monitor.config.file import ConfigError, environment, read_toml
from monitor.config.models import (
    USE_CASE_POLICY,
    AccountConfig,
    AlertsConfig,
    BinanceConfig,
    ChannelConfig,
    Config,
    KeyConfig,
    LogSource,
    SourcesConfig,
    TapConfig,
    TapMode,
    UseCase,
)
from monitor.config.secrets import SAFE_URL_SCHEMES
from monitor.config.tap import TapSettings, load_tap_settings
from monitor.core import resources
from monitor.core.keys import KeyType, PrivateKeyError, load_signer

__all__ = [
    "SAFE_URL_SCHEMES", "SECRET_NAME", "USE_CASE_POLICY", "AccountConfig", "AlertsConfig",
    "BinanceConfig", "ChannelConfig", "Config", "ConfigError", "KeyConfig", "LogSource",
    "SEVERITIES", "channel_tags",
    "SourcesConfig", "TapConfig", "TapMode", "TapSettings", "UseCase", "env_file_warnings",
    "key_file_warnings",
    "environment", "investigate_command", "is_loopback", "load_config", "load_tap_settings",
    "local_address", "path_problems", "store_problems", "routing_warnings", "unrouted",
]


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
    data = read_toml(path)

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

    environ = environment(path, env, env_file)
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


def channel_tags(cfg: Config) -> list[frozenset[str]]:
    """Each TOML channel's tags (an empty set: a catch-all channel)."""
    return [frozenset(ch.tags) for ch in cfg.alerts.channels]


def routing_warnings(tags: list[frozenset[str]], cfg: Config) -> list[str]:
    """What check-config warns about routing without refusing: a digest nobody receives."""
    if digest_unrouted(cfg.alerts.routing, tags):
        return ["alerts.routing: no channel receives the daily digest (warning and info "
                "findings); tag a channel `digest` to get it"]
    return []


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


def store_problems(cfg: Config) -> list[str]:
    """The store must open read-write and its folder take new files (SQLite creates the -wal
    and -shm beside it); found at check-config rather than as a traceback at `run`."""
    store = Path(cfg.store_path)
    where = f"store_path: {cfg.store_path!r}"
    if store.exists() and not store.is_file():
        return [f"{where} is not a regular file; name a file such as keywatch.db"]
    folder = store.parent
    if not folder.is_dir():
        return [f"{where}: its folder {folder.resolve()} does not exist (or is not a folder); "
                f"create it (`mkdir -p {shlex.quote(str(folder))}`) or change store_path"]
    try:
        if store.exists():
            with store.open("r+b"):
                pass
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return [f"{where}: cannot write there ({exc.strerror}); give the user Keywatch runs as "
                "write access to the file and its folder, or change store_path"]
    return []


def _open_mode(path: str | Path) -> int | None:
    """The permission bits of a secrets file that others may read or write, else None."""
    try:
        mode = Path(path).stat().st_mode & 0o777
    except OSError:
        return None
    return mode if mode & 0o077 else None


def env_file_warnings(config_path: str | Path, env_file: str | Path | None = None) -> list[str]:
    """The `.env` next to the config holds secrets: warn when others can read or write it."""
    dotenv = Path(env_file) if env_file is not None else Path(config_path).parent / ".env"
    mode = _open_mode(dotenv)
    if mode is None:
        return []
    return [f"{dotenv} has mode {mode:04o}: users other than its owner can read or "
            f"write it, and it holds API keys and channel tokens; run "
            f"`chmod 600 {shlex.quote(str(dotenv))}`"]



MAX_PEM_BYTES = 64 << 10  # a 4096-bit RSA PEM is about 3.3 KiB


def _private_key(key: KeyConfig, environ: dict[str, str], where: str, path: Path,
                 problems: list[str]) -> dict[str, object]:
    """An Ed25519/RSA key's PEM, read from the file its variable names and checked by loading
    it once: every problem is one line saying what is wrong and what to give instead."""
    if key.private_key_env is None:
        return {}
    file = environ.get(key.private_key_env)
    if not file:
        problems.append(f"{where}.private_key_env: environment variable {key.private_key_env} is "
                        f"not set; set it to the path of the key's PEM file (in the environment "
                        f"or the .env next to {path.name})")
        return {}
    pem_path = Path(file).expanduser()
    if not pem_path.is_absolute():
        pem_path = path.parent / pem_path
    try:
        if not pem_path.is_file():
            raise FileNotFoundError
        with pem_path.open("rb") as fh:
            pem = fh.read(MAX_PEM_BYTES + 1)
    except FileNotFoundError:
        problems.append(f"{where}.private_key_env: {pem_path} is not a file; "
                        f"{key.private_key_env} must name the PEM file of the private key")
        return {}
    except OSError as exc:
        problems.append(f"{where}.private_key_env: cannot read {pem_path} ({exc.strerror}); give "
                        "the user Keywatch runs as read access (and only that user: chmod 600)")
        return {}
    if len(pem) > MAX_PEM_BYTES:
        problems.append(f"{where}.private_key_env: {pem_path} is larger than a PEM key "
                        f"({MAX_PEM_BYTES >> 10} KiB); name the private key's file")
        return {}
    passphrase = None
    if key.private_key_passphrase_env is not None:
        pw = environ.get(key.private_key_passphrase_env)
        if not pw:
            problems.append(f"{where}.private_key_passphrase_env: environment variable "
                            f"{key.private_key_passphrase_env} is not set")
            return {}
        passphrase = SecretStr(pw)
    try:
        load_signer(pem, passphrase, expect=key.type, where=str(pem_path))
    except PrivateKeyError as exc:
        problems.append(f"{where}.private_key_env: {exc}")
        return {}
    return {"private_key_pem": SecretBytes(pem), "private_key_passphrase": passphrase,
            "private_key_path": str(pem_path)}


def key_file_warnings(cfg: Config) -> list[str]:
    """A private key's PEM file that users other than its owner can read."""
    out = []
    for acct in cfg.accounts:
        for key in acct.keys:
            mode = _open_mode(key.private_key_path) if key.private_key_path else None
            if mode is not None:
                out.append(f"{key.private_key_path} (key {acct.name}/{key.label}'s private key) "
                           f"has mode {mode:04o}: others can read it; run "
                           f"`chmod 600 {shlex.quote(str(key.private_key_path))}`")
    return out


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
            upd: dict[str, SecretStr] = {}
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
            pem = _private_key(key, environ, where, path, problems)
            if key.label == acct.monitor_key and (
                key.api_key_env is None or (key.api_secret_env if key.type is KeyType.HMAC
                                            else key.private_key_env) is None
            ):
                need = ("api_secret_env" if key.type is KeyType.HMAC else "private_key_env "
                        f"(the {key.type.value} key's PEM file)")
                problems.append(
                    f"{where}: the monitor key needs api_key_env and {need} "
                    "(Keywatch signs its read-only calls with it)"
                )
            keys.append(key.model_copy(update={**upd, **pem}))
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
    problems.extend(address_problems(cfg.sources.tap.listen, {
        "sources.tap.source_address": cfg.sources.tap.source_address,
        "binance.source_address": cfg.binance.source_address}))
    if cfg.alerts.channels and not cfg.alerts.apprise_config:
        # an Apprise config file's entries carry their own tags: check-config checks those
        problems.extend(unrouted(cfg.alerts.routing, channel_tags(cfg)))
    if problems:
        raise ConfigError(path, problems)
    alerts = cfg.alerts.model_copy(update={"channels": channels})
    return cfg.model_copy(update={"accounts": accounts, "alerts": alerts})
