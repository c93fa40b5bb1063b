"""Provenance before prefixes: which key placed (or cancelled) each order the account reports.

The user-data stream says an order exists, not who placed it. The tap and the access logs say
who called: a record of an order endpoint (`monitor/core/orderpaths.py`) with a registered key, from
an expected address (inside the key's declared whitelist, or any when none is declared), names
the orders its ANSWER placed or cancelled. An execution report is matched to those records by
(account, action, symbol, orderId) or (account, action, clientOrderId):

- NEW reports against placements (order, SOR, order lists, cancel-replace's new order);
- CANCELED reports against cancels (DELETE order, order list, openOrders, cancel-replace).

A matched report belongs to the record's key, whatever its clientOrderId: stock frameworks stamp
their own prefix (ccxt's x-TKT5PX2F), which anyone running the same framework stamps too.
Prefix conventions (`client_order_prefixes`) still attribute reports for untapped bots: a prefix
explains a report only while its key has no tap or log records; a tapped key's orders must be
tapped. A report nothing explains, on an account with declared prefixes or tapped keys, is
foreign (NEW: `foreign`, CANCELED: `foreign_cancel`) and names a suspect in `placed_by`: the key
whose prefix it carries, else the owner of the cancelled order, else the account's only trading
key.

Timing: a report may reach Keywatch before the tap's record of the same call (the tap records
after its answer went out). So a report that no earlier record explains is HELD for
`grace_ms` (default 3 s, `FeatureContext.provenance_grace_ms`) of event time: a record of it
with ts <= report ts + grace explains it. Live holds such reports until `expire(now)` with
now > ts + grace (the service calls it that long after the report, plus its lateness allowance
for in-flight records), then calls them foreign; replay sees the whole frame and applies the
same rule. A record is used for at most `LOOKBACK_MS` (10 min) after it was made.

This class is the definition: live runs it over events as they come (`features.live`, the
engine). Replay asks the same questions of a whole frame at once (`provenance_frame`, sorted-array
lookups over the same keys, ~10x faster), and runs this class over the frame's rows in order
where that form does not apply (`features.attribution`); tests/features/test_provenance_frame.py
proves both forms equal on hypothesis-generated traffic, and the live == replay tests hold.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitor.config import USE_CASE_POLICY
from monitor.core.orderpaths import CANCEL, NEW, record_ids

GRACE_MS = 3_000
LOOKBACK_MS = 10 * 60_000
OWNERS_MAX = 200_000  # orders whose placing key is remembered (for fills and cancels)
RECORDS_MAX = 200_000  # order ids of records kept for matching (oldest dropped first)
JUDGED = {"NEW": NEW, "CANCELED": CANCEL}  # report exec types whose origin is judged
TRADING_PERMS = frozenset({"enableSpotAndMarginTrading", "enableFutures", "enableMargin"})


@dataclass(frozen=True)
class Verdict:
    wkey: str  # window key: the placing key, or "" (account row)
    attributed: bool
    foreign: bool = False  # a NEW no registered bot placed
    foreign_cancel: bool = False  # a CANCELED no registered bot asked for
    placed_by: str = ""  # the key that placed it (or, when foreign, the suspect)
    how: str = ""  # tap | log | prefix | owner | "" (what told)


@dataclass
class Held:
    seq: int  # arrival number (replay: the row index)
    ts: int
    due: int  # a record with ts <= due still explains it
    account: str
    action: str
    keys: tuple[tuple[Any, ...], ...]
    suspect: str
    payload: Any = None


@dataclass
class ProvenanceState:
    records: OrderedDict[tuple[Any, ...], tuple[int, str, str]] = field(
        default_factory=OrderedDict)
    # records of a registered key from an unexpected address: they explain nothing, but name
    # the key a foreign report was placed with
    suspects: OrderedDict[tuple[Any, ...], tuple[int, str]] = field(default_factory=OrderedDict)
    addrs: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # tapped callers
    tapped: set[tuple[str, str]] = field(default_factory=set)  # (account, key) seen tapped
    owners: OrderedDict[tuple[Any, ...], str] = field(default_factory=OrderedDict)
    held: dict[int, Held] = field(default_factory=dict)
    held_by_key: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    dues: list[tuple[int, int]] = field(default_factory=list)  # heap of (due, seq)
    # a replay's final state, filled in when first read (`provenance_frame`; most replays
    # drop their state unread)
    pending: Callable[[ProvenanceState], None] | None = field(default=None, compare=False,
                                                               repr=False)

    def settle(self) -> None:
        """Fill in the state a vectorised replay left pending (every reader calls this)."""
        if self.pending is not None:
            fill, self.pending = self.pending, None
            fill(self)


def _keys(acct: str, action: str, symbol: Any, oid: Any, cid: Any, lookup: bool = False
          ) -> list[tuple[Any, ...]]:
    """Match keys; `lookup` adds the symbol-less orderId key (a log line may omit the symbol)."""
    out: list[tuple[Any, ...]] = []
    if oid is not None and oid == oid:
        sym = symbol if isinstance(symbol, str) else None
        out.append(("o", acct, action, sym, int(oid)))
        if lookup and sym is not None:
            out.append(("o", acct, action, None, int(oid)))
    if isinstance(cid, str) and cid:
        out.append(("c", acct, action, cid))
    return out


def _put(d: OrderedDict[tuple[Any, ...], Any], k: tuple[Any, ...], v: Any) -> None:
    d[k] = v
    d.move_to_end(k)
    if len(d) > RECORDS_MAX:
        d.popitem(last=False)


class Provenance:
    """The matching state machine; see the module docstring. `state` outlives batches."""

    def __init__(self, ctx: Any, state: ProvenanceState) -> None:
        self.ctx, self.st = ctx, state
        self.grace = int(getattr(ctx, "provenance_grace_ms", GRACE_MS))
        self.prefixed = {a for a, pairs in ctx.prefixes.items() if pairs}
        traders: dict[str, list[str]] = {}
        for (a, k), uc in ctx.use_cases.items():
            if k != ctx.monitor_keys.get(a) and USE_CASE_POLICY[uc][0] & TRADING_PERMS:
                traders.setdefault(a, []).append(k)
        self.sole = {a: ks[0] for a, ks in traders.items() if len(ks) == 1}
        self.registered = set(ctx.use_cases)
        self._wl: dict[tuple[str, str, Any], bool | None] = {}

    # records ------------------------------------------------------------------------------
    def record(self, acct: str, key: Any, source: str, ts: int, ip: Any, method: Any,
               endpoint: Any, status: Any, code: Any, symbol: Any, oid: Any, cid: Any,
               raw: Any) -> list[tuple[Held, Verdict]]:
        """A tap/log request: mark its key tapped; index the orders it placed or cancelled.
        Returns the held reports it explains (in arrival order) with their verdicts."""
        if not isinstance(key, str) or (acct, key) not in self.registered:
            return []
        if self.st.pending is not None:
            self.st.settle()
        self.st.tapped.add((acct, key))
        expected = self._expected(acct, key, ip)
        if status is None or status != status or status >= 400 or (code is not None
                                                                     and code == code):
            return []
        ids = record_ids(method, endpoint, symbol, oid, cid, raw)
        if not ids:
            return []
        if not expected:  # the key from an unexpected address proves nothing; it names a key
            for action, sym, o, c in ids:
                for k in _keys(acct, action, sym or symbol, o, c):
                    _put(self.st.suspects, k, (ts, key))
                    for seq in self.st.held_by_key.get(k, ()):
                        h = self.st.held.get(seq)
                        if h is not None and ts <= h.due:
                            h.suspect = key
            return []
        st, hits = self.st, []
        for action, sym, o, c in ids:
            for k in _keys(acct, action, sym or symbol, o, c):
                _put(st.records, k, (ts, key, source))
                if action == NEW:
                    self._own(k, key)
                for seq in st.held_by_key.get(k, ()):
                    h = st.held.get(seq)
                    if h is not None and ts <= h.due:
                        hits.append(h)
        out = []
        for h in sorted({id(h): h for h in hits}.values(), key=lambda h: h.seq):
            self._drop(h)
            out.append((h, Verdict(key, True, placed_by=key, how=source)))
        return out

    def _expected(self, acct: str, key: str, ip: Any) -> bool:
        """Inside the key's declared whitelist; with none declared, an address the key was
        seen from before (tapped or logged), or its very first one."""
        t = (acct, key, ip)
        if t not in self._wl:
            self._wl[t] = None if not isinstance(ip, str) else self.ctx.whitelisted(acct, key, ip)
        wl = self._wl[t]
        if wl is not None:
            return wl
        if not isinstance(ip, str):
            return True
        seen = self.st.addrs.setdefault((acct, key), set())
        known = not seen or ip in seen
        seen.add(ip)
        return known

    def _own(self, k: tuple[Any, ...], key: str) -> None:
        owners = self.st.owners
        owners[(k[0], k[1], *k[3:])] = key
        if len(owners) > OWNERS_MAX:
            owners.popitem(last=False)

    def _owner(self, acct: str, symbol: Any, oid: Any, cid: Any) -> str:
        owners = self.st.owners
        for k in _keys(acct, NEW, symbol, oid, cid, lookup=True):
            got = owners.get((k[0], k[1], *k[3:]))
            if got is not None:
                return got
        return ""

    def prefix_owner(self, acct: str, cid: Any) -> str:
        c = cid if isinstance(cid, str) else ""
        for prefix, label in self.ctx.prefixes.get(acct, ()):
            if c.startswith(prefix):
                return str(label)
        return ""

    # reports ------------------------------------------------------------------------------
    def arrive(self, seq: int, acct: str, ts: int, kind: Any, exec_type: Any, symbol: Any,
               oid: Any, cid: Any) -> Verdict | Held:
        """A stream/REST order or fill report: its verdict now, or a `Held` to wait for."""
        action = JUDGED.get(exec_type) if kind == "order" else None
        st = self.st
        if st.pending is not None:
            st.settle()
        if action is None:  # fills and other reports: whose order is it?
            owner = self._owner(acct, symbol, oid, cid)
            if owner:
                return Verdict(owner, True, placed_by=owner, how="owner")
            owner = self.prefix_owner(acct, cid)
            return Verdict(owner, bool(owner), placed_by=owner, how="prefix" if owner else "")
        keys = _keys(acct, action, symbol, oid, cid, lookup=True)
        for k in keys:
            rec = st.records.get(k)
            if rec is not None and ts - LOOKBACK_MS <= rec[0] <= ts + self.grace:
                return Verdict(rec[1], True, placed_by=rec[1], how=rec[2])
        owner = self.prefix_owner(acct, cid)
        if owner and (acct, owner) not in st.tapped:
            return Verdict(owner, True, placed_by=owner, how="prefix")
        judged = acct in self.prefixed or any(a == acct for a, _ in st.tapped)
        if not judged:
            return Verdict(owner, bool(owner), placed_by=owner, how="prefix" if owner else "")
        suspect = owner
        if action == CANCEL:
            suspect = self._owner(acct, symbol, oid, cid) or owner
        for k in keys:
            sus = st.suspects.get(k)
            if sus is not None and ts - LOOKBACK_MS <= sus[0] <= ts + self.grace:
                suspect = sus[1]
                break
        suspect = suspect or self.sole.get(acct, "")
        h = Held(seq, ts, ts + self.grace, acct, action, tuple(keys), suspect)
        st.held[seq] = h
        heapq.heappush(st.dues, (h.due, seq))
        for k in keys:
            st.held_by_key.setdefault(k, []).append(seq)
        return h

    @staticmethod
    def foreign_verdict(h: Held) -> Verdict:
        return Verdict("", False, foreign=h.action == NEW, foreign_cancel=h.action == CANCEL,
                       placed_by=h.suspect)

    def expire(self, now_ms: int) -> list[tuple[Held, Verdict]]:
        """Held reports whose grace ended before `now_ms`: foreign, in arrival order."""
        st, due = self.st, []
        st.settle()
        while st.dues and st.dues[0][0] < now_ms:
            _, seq = heapq.heappop(st.dues)
            h = st.held.get(seq)
            if h is not None:
                due.append(h)
        due.sort(key=lambda h: h.seq)
        for h in due:
            self._drop(h)
        return [(h, self.foreign_verdict(h)) for h in due]

    def next_due(self) -> int | None:
        """Event time after which the earliest held report may be called foreign."""
        st = self.st
        st.settle()
        while st.dues and st.dues[0][1] not in st.held:
            heapq.heappop(st.dues)
        return st.dues[0][0] if st.dues else None

    def held_min_minute(self, minute_ms: int) -> int | None:
        self.st.settle()
        return min(((h.ts // minute_ms) * minute_ms for h in self.st.held.values()),
                   default=None)

    def _drop(self, h: Held) -> None:
        st = self.st
        st.held.pop(h.seq, None)
        for k in h.keys:
            lst = st.held_by_key.get(k)
            if lst is not None:
                try:
                    lst.remove(h.seq)
                except ValueError:
                    pass
                if not lst:
                    del st.held_by_key[k]
