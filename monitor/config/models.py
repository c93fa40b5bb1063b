"""The config's typed records: what each TOML table may hold, validated field by field.

Only names of environment variables are fields; the secrets they name are resolved by
`monitor.config.load_config` into `SecretStr` fields excluded from any dump.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.config.checks import (
    is_loopback,
    listen_address,
    local_address,
    public_address,
    routing_table,
    url_host,
)
from monitor.config.secrets import env_name, url_credential
from monitor.core import resources
from monitor.core.keys import HmacSigner, KeyType, Signer, load_signer
from monitor.core.redaction import key_fingerprint


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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyConfig(_Model):
    """One Binance API key, known by its label. Only env var *names* are in the file.

    `type` is how the key signs: `hmac` (Binance's generated secret, `api_secret_env`) or
    `ed25519` / `rsa` (the user's key pair: `private_key_env` names a variable holding the path
    of the PKCS#8 PEM file, `private_key_passphrase_env` one holding its passphrase). Key
    material never sits in the TOML."""

    label: str
    use_case: UseCase
    type: KeyType = KeyType.HMAC
    api_key_env: str | None = None
    api_secret_env: str | None = None
    private_key_env: str | None = None
    private_key_passphrase_env: str | None = None
    # sha256 of the API key, for mapping tapped calls to this label without holding the key
    api_key_sha256: str | None = None
    ip_whitelist: list[str] = Field(default_factory=list)
    client_order_prefixes: list[str] = Field(default_factory=list)
    created: str | None = None  # ISO date; else taken from apiRestrictions.createTime
    # resolved from the environment at load time, never from the file
    api_key: SecretStr | None = Field(default=None, exclude=True)
    api_secret: SecretStr | None = Field(default=None, exclude=True)
    private_key_pem: SecretBytes | None = Field(default=None, exclude=True)
    private_key_path: str | None = Field(default=None, exclude=True)  # for messages only
    private_key_passphrase: SecretStr | None = Field(default=None, exclude=True)

    @field_validator("label")
    @classmethod
    def _label(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", v):
            raise ValueError("use letters, digits, '_', '.' or '-' (at most 64)")
        return v

    @field_validator("api_key_env", "api_secret_env", "private_key_env",
                     "private_key_passphrase_env")
    @classmethod
    def _env_names(cls, v: str | None, info: ValidationInfo) -> str | None:
        return env_name(v, "KEYWATCH_MAIN_MONITOR_" + str(info.field_name).upper()[:-4])

    @model_validator(mode="after")
    def _type_fields(self) -> KeyConfig:
        if self.type is KeyType.HMAC and (self.private_key_env or self.private_key_passphrase_env):
            raise ValueError("private_key_env is for type = \"ed25519\" or \"rsa\" keys; an "
                             "HMAC key signs with api_secret_env")
        if self.type is not KeyType.HMAC and self.api_secret_env:
            raise ValueError(f"a {self.type.value} key has no secret (Binance holds only its "
                             "public key): name the PEM file's variable in private_key_env "
                             "instead of api_secret_env")
        return self

    def signer(self) -> Signer | None:
        """What signs this key's requests, when the environment gave its secret or private key
        (checked at load: a PEM that cannot sign is a config problem, not a later crash)."""
        if self.type is KeyType.HMAC:
            return HmacSigner(self.api_secret) if self.api_secret is not None else None
        if self.private_key_pem is None:
            return None
        return load_signer(self.private_key_pem.get_secret_value(), self.private_key_passphrase,
                           expect=self.type, where=f"key {self.label}'s private key")

    @property
    def can_sign(self) -> bool:
        return (self.api_secret if self.type is KeyType.HMAC
                else self.private_key_pem) is not None

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
            return key_fingerprint(self.api_key.get_secret_value())
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
        return local_address(v)

    @field_validator("rest_url", "ws_api_url")
    @classmethod
    def _secure(cls, v: str) -> str:
        parts = urlsplit(v)
        loopback = parts.hostname in ("localhost",) or is_loopback(parts.hostname or "")
        if parts.scheme in ("http", "ws") and not loopback:
            raise ValueError("use https:// / wss:// (plain text is allowed only on loopback)")
        if parts.scheme not in ("http", "https", "ws", "wss"):
            raise ValueError("expected an http(s):// or ws(s):// URL")
        url_host(v)
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
    # `keywatch run` ingests the spool and serves no tap itself. "inprocess": the tap inside
    # `keywatch run` spools too (default: beside the store, `<store_path>.tap-spool.jsonl`)
    mode: TapMode = TapMode.INPROCESS
    spool: str | None = None
    fsync_interval_s: float = Field(default=0.2, gt=0, le=60)
    # the address the tap's calls to Binance leave from: the bots' whitelisted host address
    # (default: the service's [binance] source_address, else the system's choice)
    source_address: str | None = None

    @field_validator("source_address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        return local_address(v)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        return listen_address(v)

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
    def _url_has_no_secret(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        found = url_credential(v)
        if found is not None:
            var = "KEYWATCH_" + re.sub(r"[^A-Z0-9]+", "_", str(info.data.get("name", "x")).upper()
                                       ).strip("_") + "_URL"
            raise ValueError(
                f"{found}; a URL with a credential belongs in the environment: move the whole "
                f"URL to .env as `{var}=...` and write `url_env = \"{var}\"` instead of `url`"
            )
        return v

    @field_validator("url_env")
    @classmethod
    def _url_env(cls, v: str | None) -> str | None:
        return env_name(v, "KEYWATCH_TELEGRAM_URL")


class AlertsConfig(_Model):
    channels: list[ChannelConfig] = Field(default_factory=list)
    apprise_config: str | None = None  # an Apprise YAML/TEXT config file
    # severity -> channel tags; a severity left out takes DEFAULT_ROUTING's entry
    routing: dict[str, list[str]] = Field(default_factory=lambda: routing_table({}))
    repeat_interval_s: float = Field(default=3600, ge=0)
    group_wait_s: float = Field(default=10, ge=0)
    cooldown_s: float = Field(default=300, ge=0)
    digest_hour_utc: int = Field(default=8, ge=0, le=23)

    @field_validator("routing")
    @classmethod
    def _routing(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return routing_table(v)


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

    @field_validator("egress_ip")
    @classmethod
    def _egress(cls, v: str | None) -> str | None:
        return public_address(v)

    def key_map(self) -> dict[str, tuple[str, str]]:
        """sha256 of each known API key -> (account, label): how the tap and the log readers
        (live tailer and `keywatch replay`) name the key behind a call without storing it."""
        return {fp.lower(): (a.name, k.label) for a in self.accounts for k in a.keys
                if (fp := k.fingerprint())}

    def account(self, name: str) -> AccountConfig:
        for a in self.accounts:
            if a.name == name:
                return a
        raise KeyError(name)
