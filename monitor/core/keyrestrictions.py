"""A key's restrictions: Binance's `GET /sapi/v1/account/apiRestrictions` answer, parsed once.

One typed record is the single definition of what a key may do. The poller builds it from the
answer, stores it as the `key_config` event's raw (flat, in the documented field names, the
same shape Binance sends, plus `keywatchRetiredFor` on the poll where Keywatch stopped using
its monitor key, see `KeyConfigPoll`), and posture, the audit and the notebook read it back
with `KeyConfigPoll.from_raw`. Before this record the poller nested the flags under `snapshot`
while posture read them at the top level, so posture never fired on a live poll.

Documented answer (fields beyond the required three are optional; Binance adds new `enable*` /
`permits*` booleans over time, so every boolean is kept, not only the ones named here):
`{"ipRestrict": false, "createTime": 1698645219000, "enableReading": true,
"enableWithdrawals": false, "enableInternalTransfer": false, "enableMargin": false,
"enableFutures": false, "permitsUniversalTransfer": false, "enableVanillaOptions": false,
"enableFixApiTrade": false, "enableFixReadOnly": true, "enableSpotAndMarginTrading": false,
"enablePortfolioMarginTrading": false, "tradingAuthorityExpirationTime": 1628985600000}`
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.core.wirefields import Malformed, req_bool, req_int, req_obj

ENDPOINT = "/sapi/v1/account/apiRestrictions"
# Flags that only let a key read: anything else `enable*`/`permits*` moves money or trades.
READ_ONLY_FLAGS = frozenset({"enableReading", "enableFixReadOnly"})
# What a read-only monitor key must never have (named first in messages, most dangerous first).
PRIVILEGED = ("enableWithdrawals", "enableSpotAndMarginTrading", "enableFutures",
              "enableMargin", "enableInternalTransfer", "permitsUniversalTransfer",
              "enableVanillaOptions", "enablePortfolioMarginTrading", "enableFixApiTrade")


@dataclass(frozen=True)
class KeyRestrictions:
    """What one key may do, as Binance reports it to that key."""

    ip_restrict: bool
    create_time: int
    flags: Mapping[str, bool] = field(default_factory=dict)  # every boolean but ipRestrict
    trading_expiry: int | None = None  # tradingAuthorityExpirationTime (ms), when sent

    @classmethod
    def from_answer(cls, body: Any) -> KeyRestrictions:
        """Validate the documented answer; `Malformed` (a ValueError) names the bad field."""
        d = req_obj(body, "apiRestrictions")
        ip = req_bool(d, "ipRestrict")
        req_bool(d, "enableReading")
        created = req_int(d, "createTime")
        expiry = req_int(d, "tradingAuthorityExpirationTime") \
            if "tradingAuthorityExpirationTime" in d else None
        flags: dict[str, bool] = {}
        for k, v in d.items():
            if k in ("ipRestrict", "createTime", "tradingAuthorityExpirationTime"):
                continue
            if not isinstance(v, bool):
                raise Malformed(f"{k!r} must be a boolean, got {type(v).__name__}")
            flags[k] = v
        return cls(ip, created, dict(sorted(flags.items())), expiry)

    @classmethod
    def from_raw(cls, raw: Any) -> KeyRestrictions | None:
        """A stored `key_config` event's raw JSON or a stored snapshot (None: unreadable)."""
        poll = KeyConfigPoll.from_raw(raw)
        return poll.restrictions if poll is not None else None

    def to_dict(self) -> dict[str, bool | int]:
        """The answer's own shape and field names: the event's raw and the stored snapshot."""
        out: dict[str, bool | int] = {"ipRestrict": self.ip_restrict,
                                      "createTime": self.create_time, **self.flags}
        if self.trading_expiry is not None:
            out["tradingAuthorityExpirationTime"] = self.trading_expiry
        return dict(sorted(out.items()))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    def enabled(self, flag: str) -> bool:
        return self.flags.get(flag) is True

    def privileged(self) -> tuple[str, ...]:
        """Everything on beyond reading, the documented dangerous flags first."""
        known = [f for f in PRIVILEGED if self.enabled(f)]
        extra = [f for f, v in self.flags.items() if v and f not in READ_ONLY_FLAGS
                 and f not in PRIVILEGED and f.startswith(("enable", "permits"))]
        return tuple(known + extra)

    def gained(self, before: KeyRestrictions | None) -> tuple[str, ...]:
        """Privileges on now that `before` did not have (all of them when there is none)."""
        had = set(before.privileged()) if before is not None else set()
        return tuple(f for f in self.privileged() if f not in had)


@dataclass(frozen=True)
class KeyConfigPoll:
    """A `key_config` event's raw: the key's restrictions at this poll, and what Keywatch did.

    `retired_for` is non-empty when this poll showed the monitor key holding rights it did not
    have when the service started (the poller stopped signing with it on this poll); posture
    alerts on it, so the alert reports the poller's own decision, not a second guess of it.
    """

    restrictions: KeyRestrictions
    retired_for: tuple[str, ...] = ()

    def to_json(self) -> str:
        body: dict[str, bool | int | list[str]] = dict(self.restrictions.to_dict())
        if self.retired_for:
            body["keywatchRetiredFor"] = list(self.retired_for)
        return json.dumps(body, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_raw(cls, raw: Any) -> KeyConfigPoll | None:
        """The event's raw (None when unreadable): the flat answer (what the poller and the
        generator write), or the envelope of events stored before, flags under `snapshot`."""
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        if isinstance(data.get("snapshot"), dict):
            data = data["snapshot"]
        data = dict(data)
        retired = data.pop("keywatchRetiredFor", [])
        if not isinstance(retired, list) or not all(isinstance(f, str) for f in retired):
            return None
        try:
            return cls(KeyRestrictions.from_answer(data), tuple(retired))
        except ValueError:
            return None
