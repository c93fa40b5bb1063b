"""`check-config --online`: each configured key asked once of Binance, and the clock compared.

Offline checks prove the config is well formed; only Binance can say a key exists, its secret
matches and this host is on its whitelist. Each key whose secret Keywatch holds makes one
signed read-only call (`GET /sapi/v1/account/apiRestrictions`, weight 1); a key without its
secret is "not checked" (Binance shows a key's details only to that key), never "ok". The
server clock is read once per account: a skew past recvWindow is what makes Binance refuse
signed calls with -1021, and a server time that cannot be Binance's (0, years off) means
rest_url does not point at Binance or this host's clock is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from monitor.binance.rest import BinanceError, BinanceRest
from monitor.config import Config, KeyConfig
from monitor.core.clock import DAY_MS, SystemClock
from monitor.core.errorcodes import CODES

# Binance opened in July 2017; a server time before it, or a day off ours, is not Binance's.
BINANCE_EPOCH_MS = 1_498_867_200_000


@dataclass(frozen=True)
class KeyCheck:
    """One key's answer: status is "ok", "refused", "not checked" or "error"."""

    account: str
    label: str
    status: str
    detail: str
    code: int | None = None


@dataclass(frozen=True)
class ClockCheck:
    account: str
    offset_ms: int | None
    problem: str | None  # refuses: the server time cannot be Binance's
    warning: str | None  # skew past recvWindow: bots signing with the local clock get -1021


def clock_verdict(account: str, server_ms: int, offset_ms: int, recv_window_ms: int
                  ) -> ClockCheck:
    """Judge a measured offset (server minus local): a problem, a warning or fine."""
    ahead = "ahead of" if offset_ms > 0 else "behind"
    skew = f"Binance's clock is {abs(offset_ms) / 1000:,.1f} s {ahead} this host's"
    if server_ms < BINANCE_EPOCH_MS or abs(offset_ms) > DAY_MS:
        return ClockCheck(account, offset_ms, (
            f"account {account}: {skew} (server time {server_ms}): either rest_url does not "
            "answer like Binance, or this host's clock is wrong; check [binance] rest_url and "
            "enable NTP (`timedatectl set-ntp true`)"), None)
    if abs(offset_ms) > recv_window_ms:
        return ClockCheck(account, offset_ms, None, (
            f"account {account}: {skew}, more than recvWindow ({recv_window_ms} ms): Keywatch "
            "corrects its own calls, but bots signing with this clock are refused (-1021); "
            "enable NTP (`timedatectl set-ntp true`)"))
    return ClockCheck(account, offset_ms, None, None)


def _rest(cfg: Config, account: str, key: KeyConfig, client: httpx.AsyncClient) -> BinanceRest:
    signer = key.signer()
    assert key.api_key is not None and signer is not None
    return BinanceRest(client, cfg.binance.rest_url, key.api_key, signer, SystemClock(),
                       account=account, key_label=key.label,
                       recv_window=cfg.binance.recv_window_ms, monitor_key=False,
                       max_retries=1)


async def check_clock(cfg: Config, account: str, client: httpx.AsyncClient) -> ClockCheck:
    """The offset to Binance's clock, read with the account's monitor key's client."""
    acct = cfg.account(account)
    key = acct.key(acct.monitor_key)
    if key.api_key is None or not key.can_sign:
        return ClockCheck(account, None, None, None)
    rest = _rest(cfg, account, key, client)
    try:
        offset = await rest.sync_time()
    except (BinanceError, httpx.HTTPError) as exc:
        return ClockCheck(account, None, f"account {account}: cannot read Binance's time "
                          f"({type(exc).__name__}: {exc}); check [binance] rest_url", None)
    t0 = SystemClock().now_ms()
    return clock_verdict(account, t0 + offset, offset, cfg.binance.recv_window_ms)


async def check_key(cfg: Config, account: str, key: KeyConfig, client: httpx.AsyncClient,
                    offset_ms: int | None) -> KeyCheck:
    """One signed read-only call with the key, or "not checked" without its secret."""
    if key.api_key is None or not key.can_sign:
        given = "api_secret_env" if key.type.value == "hmac" else "private_key_env"
        return KeyCheck(account, key.label, "not checked",
                        f"no secret given ({given}): Binance shows a key's details only "
                        "to that key; check it in API Management")
    rest = _rest(cfg, account, key, client)
    if offset_ms is not None:
        rest.offset_ms, rest.synced = offset_ms, True
    try:
        res = await rest.get("/sapi/v1/account/apiRestrictions", weight=1)
    except BinanceError as exc:
        if exc.code is None and exc.status is not None and exc.status < 500:
            return KeyCheck(account, key.label, "refused", f"HTTP {exc.status}", None)
        if exc.code is not None:
            known = CODES.get(exc.code)
            meaning = known.check if known and known.check else "see Binance's error code list"
            return KeyCheck(account, key.label, "refused", f"code {exc.code}: {meaning}",
                            exc.code)
        return KeyCheck(account, key.label, "error", str(exc))
    except httpx.HTTPError as exc:
        return KeyCheck(account, key.label, "error",
                        f"{type(exc).__name__}: cannot reach {cfg.binance.rest_url}")
    flags = res.body if isinstance(res.body, dict) else {}
    granted = sorted(k for k, v in flags.items() if v is True and k.startswith(("enable",
                                                                                 "permits")))
    restricted = "IP-restricted" if flags.get("ipRestrict") else "no IP restriction"
    return KeyCheck(account, key.label, "ok",
                    f"{', '.join(granted) or 'no permission flag'}; {restricted}")


async def check_online(cfg: Config, client: httpx.AsyncClient
                       ) -> tuple[list[ClockCheck], list[KeyCheck]]:
    """Every account's clock and every key, in config order."""
    clocks: list[ClockCheck] = []
    keys: list[KeyCheck] = []
    for acct in cfg.accounts:
        clock = await check_clock(cfg, acct.name, client)
        clocks.append(clock)
        offset = clock.offset_ms if clock.problem is None else None
        for key in acct.keys:
            if clock.problem is not None and key.can_sign:
                keys.append(KeyCheck(acct.name, key.label, "not checked",
                                     "Binance's clock could not be trusted (see above)"))
                continue
            keys.append(await check_key(cfg, acct.name, key, client, offset))
    return clocks, keys
