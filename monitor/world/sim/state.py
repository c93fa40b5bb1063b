"""The exchange's books as plain data: accounts, keys, orders, trades, withdrawals.

No I/O here; the REST and WebSocket layers and the control plane all mutate these records, so
one request's effects are visible to every surface at once, as on the real exchange.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

R = TypeVar("R")

# Key-level permission flags as /sapi/v1/account/apiRestrictions reports them (wire 3.5).
PERMISSION_FLAGS = (
    "enableReading",
    "enableSpotAndMarginTrading",
    "enableWithdrawals",
    "enableInternalTransfer",
    "permitsUniversalTransfer",
    "enableMargin",
    "enableFutures",
    "enableVanillaOptions",
    "enablePortfolioMarginTrading",
    "enableFixApiTrade",
    "enableFixReadOnly",
)
DEFAULT_PERMISSIONS = {"enableReading": True}
TRADING_WITHOUT_IP_LIMIT_MS = 30 * 24 * 3600 * 1000
# Every account's maker and taker rate, charged on what a fill receives (no BNB discount).
COMMISSION = Decimal("0.001")


@dataclass
class ApiKey:
    api_key: str
    secret: str
    account: str
    label: str
    permissions: dict[str, bool]
    ip_whitelist: list[str] | None
    create_time_ms: int
    # Ed25519/RSA keys: the PEM public key the user registered (Binance holds no secret for
    # them; `secret` is then empty). None: an HMAC key, Binance's generated secret.
    public_key: str | None = None

    def restrictions(self) -> dict[str, object]:
        out: dict[str, object] = {"ipRestrict": self.ip_whitelist is not None,
                                  "createTime": self.create_time_ms}
        for flag in PERMISSION_FLAGS:
            out[flag] = bool(self.permissions.get(flag, False))
        if out["enableSpotAndMarginTrading"] and self.ip_whitelist is None:
            out["tradingAuthorityExpirationTime"] = (
                self.create_time_ms + TRADING_WITHOUT_IP_LIMIT_MS
            )
        return out


@dataclass
class Order:
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    quote_order_qty: Decimal
    time_ms: int
    status: str = "NEW"
    executed_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    update_ms: int = 0
    locked_asset: str = ""
    locked_amount: Decimal = Decimal(0)
    api_key_label: str = ""
    caller_ip: str = ""
    stop_price: Decimal = Decimal(0)
    iceberg_qty: Decimal = Decimal(0)
    order_list_id: int = -1
    working_ms: int = -1  # -1 until the order is on the book (stop not triggered, pending leg)

    @property
    def is_open(self) -> bool:
        """On the book or waiting for its stop price: what openOrders lists and fills touch."""
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def is_active(self) -> bool:
        """Open, or a pending order-list leg that a cancel still reaches."""
        return self.is_open or self.status == "PENDING_NEW"

    @property
    def is_stop(self) -> bool:
        return self.type in STOP_TYPES

    @property
    def on_book(self) -> bool:
        """Resting on the order book at `price`: not a stop still waiting for its trigger."""
        return self.is_open and self.working_ms != -1 and self.type not in (
            "MARKET", "STOP_LOSS", "TAKE_PROFIT")


STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")


@dataclass
class OrderList:
    """An OCO, OTO or OTOCO: which legs it holds and what role each plays.

    `pair` are the legs that cancel each other (both OCO legs, the two OTOCO pending legs);
    `pending` are the legs that wait (PENDING_NEW) until `working` is fully filled.
    """

    order_list_id: int
    contingency_type: str  # OCO | OTO (an OTOCO reports OTO)
    list_client_order_id: str
    symbol: str
    order_ids: list[int]
    transaction_ms: int
    working: int | None = None
    pending: list[int] = field(default_factory=list)
    pair: list[int] = field(default_factory=list)
    status_type: str = "EXEC_STARTED"  # RESPONSE | EXEC_STARTED | UPDATED | ALL_DONE
    order_status: str = "EXECUTING"  # EXECUTING | ALL_DONE | REJECT


@dataclass
class Trade:
    symbol: str
    trade_id: int
    order_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_buyer: bool
    is_maker: bool


@dataclass
class Withdrawal:
    id: str
    coin: str
    address: str
    amount: Decimal
    network: str
    withdraw_order_id: str
    apply_ms: int
    status: int = 6


@dataclass
class Account:
    name: str
    uid: int
    free: dict[str, Decimal] = field(default_factory=dict)
    locked: dict[str, Decimal] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    order_lists: dict[int, OrderList] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    withdrawals: list[Withdrawal] = field(default_factory=list)
    update_ms: int = 0
    order_events: list[dict[str, object]] = field(default_factory=list)

    def assets(self) -> list[str]:
        return sorted(set(self.free) | set(self.locked))

    def balance(self, asset: str) -> tuple[Decimal, Decimal]:
        return self.free.get(asset, Decimal(0)), self.locked.get(asset, Decimal(0))

    def move(self, asset: str, free_delta: Decimal, locked_delta: Decimal = Decimal(0)) -> None:
        self.free[asset] = self.free.get(asset, Decimal(0)) + free_delta
        self.locked[asset] = self.locked.get(asset, Decimal(0)) + locked_delta


class Books:
    """All accounts and keys of one simulated exchange, plus id sequences."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.keys: dict[str, ApiKey] = {}
        self._next_order_id = 1000
        self._next_trade_id = 5000
        self._next_exec_id = 1
        self._next_order_list_id = 0
        self._next_uid = 350_000_001

    def add_account(self, name: str) -> Account:
        if name in self.accounts:
            raise ValueError(f"account {name!r} already exists")
        account = Account(name=name, uid=self._next_uid)
        self._next_uid += 1
        self.accounts[name] = account
        return account

    def add_key(self, account: str, label: str, permissions: dict[str, bool] | None,
                ip_whitelist: list[str] | None, create_time_ms: int,
                public_key: str | None = None) -> ApiKey:
        """A new key: HMAC (Binance generates the secret) or, given the user's PEM public key,
        Ed25519/RSA (Binance registers the public half and issues only the API key)."""
        if account not in self.accounts:
            raise ValueError(f"unknown account {account!r}; create it first")
        if public_key is not None:
            from monitor.world.sim.auth import public_key_type

            public_key_type(public_key)  # refuses what Binance would not register
        # Random at run time, never a literal: 64 alphanumerics like a real key.
        key = ApiKey(
            api_key=secrets.token_hex(32),
            secret="" if public_key is not None else secrets.token_hex(32),
            public_key=public_key,
            account=account,
            label=label,
            permissions=dict(permissions if permissions is not None else DEFAULT_PERMISSIONS),
            ip_whitelist=list(ip_whitelist) if ip_whitelist is not None else None,
            create_time_ms=create_time_ms,
        )
        self.keys[key.api_key] = key
        return key

    def key(self, api_key: str) -> ApiKey:
        if api_key not in self.keys:
            raise KeyError("unknown api key")  # never echo the key itself
        return self.keys[api_key]

    def order_id(self) -> int:
        self._next_order_id += 1
        return self._next_order_id

    def trade_id(self) -> int:
        self._next_trade_id += 1
        return self._next_trade_id

    def order_list_id(self) -> int:
        self._next_order_list_id += 1
        return self._next_order_list_id

    def exec_id(self) -> int:
        self._next_exec_id += 1
        return self._next_exec_id


def random_client_order_id() -> str:
    """What the exchange assigns when newClientOrderId is absent: 22 random characters."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(22))


def lookup(records: Mapping[int, R], rid: int | None, cid: str,
           cid_of: Callable[[R], str]) -> R | None:
    """An order or order list by its numeric id first (a client id sent too must then match
    it), else the newest one with that client id: how Binance resolves orderId /
    origClientOrderId and orderListId / listClientOrderId alike."""
    if rid is not None:
        found = records.get(rid)
        return None if found is not None and cid and cid_of(found) != cid else found
    same = [(k, r) for k, r in records.items() if cid_of(r) == cid]
    return max(same, key=lambda kr: kr[0])[1] if same else None

