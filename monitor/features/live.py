"""The live path: `replay.enrich` + `aggregate`, one event at a time, from the same declarations.

The service hands the engine a few events every fraction of a second; building pandas frames
for each of those batches costs milliseconds of fixed overhead, so live runs the row forms
instead: `enrich_one` runs every `catalog.ENRICH` step's `row` (reading and advancing the same
`FeatureState` as replay), and the window accumulator is generated from `catalog.WINDOWS` (each
reducer's `live_step` source, each distinct mask evaluated once per row), so nothing here names a
feature. tests/features and tests/detect prove live == replay, per fact and per feature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from monitor.core.events import Event
from monitor.features.base import MINUTE_MS, FeatureContext, FeatureState, Row, WindowRow
from monitor.features.catalog import ENRICH, WINDOWS
from monitor.features.expr import Expr, Namespace
from monitor.features.frame import to_row
from monitor.features.provenance import Held, Provenance, Verdict
from monitor.features.reducers import clean_one

WindowKey = tuple[str, str, int]  # account, window key, minute
# an open window: each row-folding feature's running value (a count or sum, a max or None while
# nothing was seen, the set of distinct values)
OpenWindow = dict[str, float | set[str] | None]


def _compile_add() -> Callable[[OpenWindow, Row], None]:
    """One function folding a row into an open window, generated from `WINDOWS`."""
    ns: Namespace = {}
    masks: dict[Expr, str] = {}
    lines = ["def add(w, r):"]
    for win in WINDOWS:
        m = win.reducer.mask
        if m is not None and m not in masks:
            masks[m] = f"m{len(masks)}"
            ns.update(m.names())
            lines.append(f"    {masks[m]} = {m.src()}")
    by_mask: dict[str | None, list[str]] = {}  # one test per mask, features in catalog order
    for win in WINDOWS:
        m = win.reducer.mask
        var = None if m is None else masks[m]
        by_mask.setdefault(var, []).extend(win.reducer.live_step(win.name, None))
    for var, body in by_mask.items():
        if var is None:
            lines += ["    " + s for s in body]
        elif body:
            lines += [f"    if {var}:", *("        " + s for s in body)]
    exec("\n".join(lines), ns)  # noqa: S102 - source generated from the catalog
    fn = cast(Callable[[OpenWindow, Row], None], ns["add"])
    fn.__doc__ = "\n".join(lines)
    return fn


_ADD = _compile_add()
_ROW_REDUCED = tuple(w for w in WINDOWS if not w.reducer.reads)
_FROM_FEATURES = tuple(w for w in WINDOWS if w.reducer.reads)


def _new_window() -> OpenWindow:
    return {w.name: w.reducer.live_init() for w in _ROW_REDUCED}


class LiveFeatures:
    """Per-event enrichment plus open windows; shares `FeatureState` with `replay.enrich`."""

    def __init__(self, ctx: FeatureContext, state: FeatureState) -> None:
        self.ctx, self.state = ctx, state
        self.prov = Provenance(ctx, state.provenance)
        self.steps = [step(ctx, state) for step in ENRICH]
        self._rows = tuple(s.row for s in self.steps)  # bound once: this runs per event
        self._seq = 0
        self.open: dict[WindowKey, OpenWindow] = {}

    # enrichment ---------------------------------------------------------------------------
    def feed(self, ev: Event) -> list[Row]:
        """One event in -> the enriched rows now ready, in the order replay enriches them.

        A tap/log record comes out at once, followed by any held reports it explains
        (`attribution` moves them to the same place). A stream/REST report that no
        record explains yet is held (nothing out) until a record explains it or `expire`.
        """
        seq, self._seq = self._seq, self._seq + 1
        source, kind = ev.source._value_, ev.kind._value_
        if source in ("tap", "log") and kind in ("request", "reject") and ev.key is not None:
            r = self.enrich_one(ev)
            hits = self.prov.record(
                r["account"], ev.key, source, r["ts"], ev.ip, ev.method, ev.endpoint,
                r["status"], r["code"], ev.symbol, r["order_id"], ev.client_order_id, ev.raw)
            return [r] + [self.enrich_one(h.payload, v) for h, v in hits]
        if source in ("stream", "rest") and kind in ("order", "fill"):
            got = self.prov.arrive(seq, ev.account, ev.ts, kind, ev.exec_type, ev.symbol,
                                   ev.order_id, ev.client_order_id)
            if isinstance(got, Held):
                got.payload = ev
                return []
            return [self.enrich_one(ev, got)]
        return [self.enrich_one(ev)]

    def expire(self, now_ms: int) -> list[Row]:
        """Held reports whose grace ended before `now_ms`, enriched as foreign."""
        return [self.enrich_one(h.payload, v) for h, v in self.prov.expire(now_ms)]

    def enrich_one(self, ev: Event, verdict: Verdict | None = None) -> Row:
        """One event -> the row `replay.enrich` would produce for it (as a dict);
        `verdict`: the provenance of a stream/REST report (`feed` supplies it)."""
        r = to_row(ev)
        for row in self._rows:
            row(r, verdict)
        return r

    # windows ------------------------------------------------------------------------------
    def add(self, r: Row) -> OpenWindow:
        """Count an enriched row into its (account, key, minute) window (`aggregate`); the
        window as it now stands (crossing triggers read it)."""
        wk = (r["account"], r["wkey"], r["minute"])
        w = self.open.get(wk)
        if w is None:
            w = self.open[wk] = _new_window()
        _ADD(w, r)
        return w

    def close(self, now_ms: int) -> list[WindowRow]:
        """Windows that ended at or before `now_ms`, as `aggregate` rows sorted by
        (account, key, minute); `Rolling` features are left 0 for the engine's context step.
        A minute that still holds a report waiting for its record stays open (with every later
        one) until the report is decided: it must join its own window."""
        held = self.prov.held_min_minute(MINUTE_MS)
        done = sorted(k for k in self.open if k[2] + MINUTE_MS <= now_ms
                      and (held is None or k[2] < held))
        return [_row(k, self.open.pop(k)) for k in done]


def _row(k: WindowKey, w: OpenWindow) -> WindowRow:
    vals: dict[str, float | None] = {}
    for f in _ROW_REDUCED:
        vals[f.name] = f.reducer.live_value(f.name, w, vals)
    for f in _FROM_FEATURES:
        vals[f.name] = f.reducer.live_value(f.name, w, vals)
    out: WindowRow = {"account": k[0], "key": k[1], "minute": k[2]}
    for f in WINDOWS:
        out[f.name] = clean_one(vals[f.name])
    return out
