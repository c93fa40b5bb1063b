"""What the standalone tap reads from the config: `[sources.tap]` and the keys' fingerprints.

Kept apart from `load_config` so no other part of the config (a channel, the monitor key, a
rules path) can stop the tap: the bots keep reaching Binance whatever else is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from monitor.config.checks import address_problems
from monitor.config.file import ConfigError, environment, read_toml
from monitor.config.models import TapConfig
from monitor.config.secrets import env_name
from monitor.core.redaction import key_fingerprint


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
    data = read_toml(path)
    sources = data.get("sources")
    section = sources.get("tap", {}) if isinstance(sources, dict) else {}
    try:
        tap = TapConfig.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(path, [
            f"sources.tap{''.join(f'.{p}' for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)]) from None
    bad = address_problems(tap.listen, {"sources.tap.source_address": tap.source_address})
    if bad:
        raise ConfigError(path, bad)
    warnings: list[str] = []
    try:
        environ = environment(path, env, env_file)
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
            try:
                env_name(var if isinstance(var, str) else None, "KEYWATCH_MAIN_GRID_API_KEY")
            except ValueError as exc:  # never echoed: it may be the key itself
                warnings.append(f"accounts[{ai}].keys[{ki}].api_key_env ({label}): {exc}")
                var = None
            if isinstance(var, str) and environ.get(var):
                fp = key_fingerprint(environ[var])
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
