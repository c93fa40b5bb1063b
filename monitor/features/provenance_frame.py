"""Provenance over a whole frame at once: the replay form of `provenance.Provenance`.

The state machine answers one row at a time; replay asks the same questions of every row at
once, as sorted-array lookups. Each match key of `provenance._keys` becomes one integer code;
records (and suspects) are tables of (code, row) entries, and the machine's dictionary at a row
is "the last entry of that code before the row" (a `searchsorted`):

- a report is explained at once by the last record of one of its keys (in key order) whose
  time is within [ts - LOOKBACK_MS, ts + grace]; a fill by the last NEW record (its owner);
- a report held for its grace is explained by the first later record of one of its keys with
  ts <= its due (it moves to just after that record); else it is foreign and names the last
  later record of its keys from an unexpected address within its grace, else its suspect at
  arrival (prefix, the cancelled order's owner, an earlier such record, the sole trader).

The rows the tables do not settle (reports no record explains at once, fills without an
owner) take the machine's own helpers (`prefix_owner`, `sole`) in a short Python pass. The
machine's state after the same rows is built only if something reads it (`ProvenanceState
.pending`; a replay's fresh state is usually dropped unread).

`verdicts` returns None for what it does not cover, and attribution runs the machine: state
carried in, a lookup whose entry a cap (`RECORDS_MAX`, `OWNERS_MAX`) may have dropped by then,
order ids past 2**62, rows out of time order. tests/features/test_provenance_frame.py checks
that both forms give the same verdicts, row order and state on hypothesis-generated traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from monitor.core.framecodes import text_codes
from monitor.core.orderpaths import CANCEL, MULTI_SHAPES, NEW, endpoint, record_ids
from monitor.features import provenance as machine
from monitor.features.provenance import JUDGED, LOOKBACK_MS, Provenance, ProvenanceState, _put
from monitor.features.rowindex import Codes, RowIndex, first_valid, firsts

ACTIONS = (NEW, CANCEL)  # action codes 0, 1
BIG = 2**62
I64 = np.int64


def _strs(df: pd.DataFrame, col: str, rows: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Codes of a text column at `rows`, -1 where missing or not a string (`_text`)."""
    s = df[col]
    if isinstance(s.dtype, pd.CategoricalDtype):  # codes at `rows` only
        c = s.cat.codes.to_numpy()[rows].astype(I64)
        u = np.asarray(s.cat.categories, dtype=object)
    else:
        c, u = text_codes(s)
        c = c[rows]
    ok = np.array([isinstance(v, str) for v in u] + [False], dtype=bool)
    return np.where(ok[c], c, -1), list(u)


def verdicts(prov: Provenance, df: pd.DataFrame, rows: np.ndarray, is_tap: np.ndarray,
             out: dict[str, np.ndarray]) -> int | None:
    """Decide the selected `rows` (frame positions, in order; `is_tap` per row) into `out`
    as the machine would (frame-length columns wkey, placed_by, how, foreign,
    foreign_cancel, major, minor); return how many reports moved, or None when the frame is
    not covered (then nothing was written)."""
    st = prov.st
    st.settle()
    if (st.records or st.suspects or st.addrs or st.tapped or st.owners or st.held
            or st.dues):
        return None
    m = len(rows)
    ts = df["ts"].to_numpy()[rows].astype(I64)
    if m > 1 and bool((np.diff(ts) < 0).any()):
        return None
    ac, au = text_codes(df["account"])
    ac = ac[rows]
    if (ac < 0).any() or not all(isinstance(a, str) for a in au):
        return None
    kc, ku = _strs(df, "key", rows)
    ipc, ipu = _strs(df, "ip", rows)
    symc, symu = _strs(df, "symbol", rows)
    oid_f = df["order_id"].to_numpy(dtype=float)[rows]
    has_oid = ~np.isnan(oid_f)
    if bool((np.abs(oid_f[has_oid]) >= BIG).any()):
        return None
    oid = np.where(has_oid, oid_f, 0).astype(I64)
    oc, ou = pd.factorize(oid[has_oid])
    r_oc = np.full(m, -1, dtype=I64)
    r_oc[has_oid] = oc
    oids = Codes(r_oc, ou.tolist())
    cids = df["client_order_id"].to_numpy()[rows]
    cc, cu = pd.factorize(cids)
    if pd.api.types.infer_dtype(cu, skipna=False) in ("string", "empty"):
        good = np.append(np.asarray(cu != "", dtype=bool), False)
    else:
        good = np.array([isinstance(v, str) and v != "" for v in cu] + [False], dtype=bool)
    r_cc = np.where(good[cc], cc, -1).astype(I64)
    cidv = Codes(r_cc, cu)
    syms = Codes(symc, symu)
    src = df["source"].to_numpy()[rows]
    na, nk, nip = len(au), len(ku), len(ipu)
    a_idx = {a: i for i, a in enumerate(au)}
    k_idx = {k: i for i, k in enumerate(ku) if isinstance(k, str)}

    # records: registered keys, expected addresses, successful calls, their ids ---------
    reg_tab = np.zeros((na, nk + 1), dtype=bool)
    decl_tab = np.zeros((na, nk + 1), dtype=bool)
    for a, k in prov.registered:
        if a in a_idx and k in k_idx:
            reg_tab[a_idx[a], k_idx[k]] = True
            decl_tab[a_idx[a], k_idx[k]] = bool(prov.ctx.whitelists.get((a, k)))
    reg = is_tap & (kc >= 0) & reg_tab[ac, kc]
    pair = ac * (nk + 1) + kc
    rj = np.flatnonzero(reg)
    first_tap = {(au[p // (nk + 1)], ku[p % (nk + 1)]): int(j)
                 for p, j in zip(pair[rj][firsts(pair[rj])].tolist(),
                                 rj[firsts(pair[rj])].tolist(), strict=True)}
    acct_tap: dict[str, int] = {}
    for (a, _), j in first_tap.items():
        acct_tap[a] = min(j, acct_tap.get(a, m))
    expected = np.ones(m, dtype=bool)
    withip = reg & (ipc >= 0)
    triple = pair * (nip + 1) + ipc
    wl = np.flatnonzero(withip & decl_tab[ac, kc])
    if len(wl):
        inv, ut = pd.factorize(triple[wl])
        val = np.array([bool(prov.ctx.whitelisted(au[t // (nip + 1) // (nk + 1)],
                                                  ku[t // (nip + 1) % (nk + 1)],
                                                  ipu[t % (nip + 1)])) for t in ut.tolist()],
                       dtype=bool)
        expected[wl] = val[inv]
    lr = np.flatnonzero(withip & ~decl_tab[ac, kc])
    learned: list[tuple[int, int]] = []
    if len(lr):
        tf = firsts(triple[lr])
        new_ip = np.zeros(len(lr), dtype=bool)
        new_ip[tf] = True
        new_ip[firsts(pair[lr])] = False  # a key's very first address is known
        expected[lr[new_ip]] = False
        learned = list(zip(pair[lr][tf].tolist(), ipc[lr][tf].tolist(), strict=True))
    status = df["status"].to_numpy(dtype=float)[rows]
    code = df["code"].to_numpy(dtype=float)[rows]
    ok = reg & (status < 400) & np.isnan(code)
    mc, mu = _strs(df, "method", rows)
    ec, eu = _strs(df, "endpoint", rows)
    cinv, ucombo = pd.factorize((mc + 1) * (len(eu) + 1) + (ec + 1))
    act_of, multi_of = [], []
    for cb in ucombo.tolist():
        mi, ei = divmod(cb, len(eu) + 1)
        ep = endpoint(mu[mi - 1] if mi else None, eu[ei - 1] if ei else None)
        act_of.append(ACTIONS.index(ep.actions[0]) if ep is not None and ep.actions else -1)
        multi_of.append(ep is not None and ep.shape in MULTI_SHAPES)
    act = np.array(act_of, dtype=I64)[cinv]
    rec_j = np.flatnonzero(ok & (act >= 0))
    raws = df["raw"].to_numpy()[rows]
    multi = np.zeros(m, dtype=bool)
    multi[rec_j] = np.array(multi_of, dtype=bool)[cinv[rec_j]]
    rr = rec_j[~pd.isna(raws[rec_j])]
    multi[rr] |= np.fromiter((isinstance(r, str) and '"ids"' in r for r in raws[rr]), bool,
                             len(rr))
    single = np.zeros(m, dtype=bool)
    single[rec_j] = ~multi[rec_j]
    so, sc = np.flatnonzero(single & has_oid), np.flatnonzero(single & (r_cc >= 0))
    # entries, one per match key: row, order in the row, kind (0 "o", 1 "c"), action,
    # symbol code (-1 None), order id code / clientOrderId code
    parts = [(so, np.zeros(len(so), I64), np.zeros(len(so), I64), act[so], symc[so], r_oc[so]),
             (sc, np.ones(len(sc), I64), np.ones(len(sc), I64), act[sc], np.full(len(sc), -1),
              r_cc[sc])]
    mrows = np.flatnonzero(multi)
    if len(mrows):
        ents: list[tuple[int, int, int, int, int, int]] = []
        for j in mrows.tolist():
            symbol = symu[symc[j]] if symc[j] >= 0 else None
            ids = record_ids(mu[mc[j]] if mc[j] >= 0 else None,
                             eu[ec[j]] if ec[j] >= 0 else None, symbol, oid_f[j],
                             cids[j] if isinstance(cids[j], str) else None,
                             raws[j] if isinstance(raws[j], str) else None)
            for n, (action, sym, o, c) in enumerate(ids):
                s = sym or symbol
                x = ACTIONS.index(action)
                if o is not None:
                    if abs(o) >= BIG:
                        return None
                    ents.append((j, 2 * n, 0, x, -1 if s is None else syms.of(s), oids.of(o)))
                if isinstance(c, str) and c:
                    ents.append((j, 2 * n + 1, 1, x, -1, cidv.of(c)))
        arr = np.array(ents, dtype=I64).reshape(-1, 6)
        parts.append(tuple(arr[:, i] for i in range(6)))  # type: ignore[arg-type]
    cat = [np.concatenate([p[i] for p in parts]).astype(I64) for i in range(6)]
    order = np.lexsort((cat[1], cat[0]))
    ej, ekind, eact, esym, eval_ = (cat[i][order] for i in (0, 2, 3, 4, 5))
    ne = len(ej)

    # one code per match key, for entries and report queries alike -------------------------
    nsym, no, ncid = len(syms.values) + 1, max(len(oids.values), 1), max(len(cidv.values), 1)
    if (na * 2 * max(nsym * no, ncid) * 2 + 2) * (ne + 2) >= BIG:
        return None  # a code times a position (`RowIndex`) must stay inside int64

    def ocodes(a: np.ndarray, x: np.ndarray, s: np.ndarray, o: np.ndarray) -> np.ndarray:
        return (((a * 2 + x) * nsym + (s + 1)) * no + o) * 2

    def ccodes(a: np.ndarray, x: np.ndarray, c: np.ndarray) -> np.ndarray:
        return ((a * 2 + x) * ncid + c) * 2 + 1

    ecode = np.where(ekind == 0, ocodes(ac[ej], eact, esym, eval_),
                     ccodes(ac[ej], eact, eval_))

    def queries(j: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
        """`_keys(..., lookup=True)` of reports j under action codes x (-1: absent)."""
        a, o, c, s = ac[j], r_oc[j], r_cc[j], symc[j]
        return [np.where(o >= 0, ocodes(a, x, s, o), -1),
                np.where((o >= 0) & (s >= 0), ocodes(a, x, np.full(len(j), -1), o), -1),
                np.where(c >= 0, ccodes(a, x, c), -1)]

    e_exp = expected[ej]
    pos = np.arange(ne, dtype=I64)
    ex, ux = np.flatnonzero(e_exp), np.flatnonzero(~e_exp)
    nx = ex[eact[ex] == 0]
    grp, _ = pd.factorize(ecode[nx])
    own_first = np.full(ne + 1, -1, dtype=I64)  # where each owner key was first written
    own_first[nx] = nx[firsts(grp)][grp]

    def kept(c: np.ndarray, j: np.ndarray, owners: bool) -> bool:
        """No cap can have dropped these entries (-1: none) by row j: fewer writes since
        (records, suspects: since the entry, they move to the end; owners: since the key's
        first write, they do not) than the cap. Else the machine decides the frame."""
        since = np.searchsorted(ej, j, "left") - (own_first[c] if owners else c) - 1
        cap = machine.OWNERS_MAX if owners else machine.RECORDS_MAX
        return bool((since[c >= 0] < cap).all())

    exp_tab = RowIndex(ecode[ex], pos[ex], ej)
    sus_tab = RowIndex(ecode[ux], pos[ux], ej)
    # each entry's key, time and source, one padding entry after them (at -1 and ne)
    pad = np.array([None], dtype=object)
    ekey = np.concatenate([np.asarray(ku, dtype=object)[kc[ej]], pad])
    ets, esrc = np.append(ts[ej], 0), np.concatenate([src[ej].astype(object), pad])

    # reports ------------------------------------------------------------------------------
    kd, kdu = _strs(df, "kind", rows)
    xc, xu = _strs(df, "exec_type", rows)
    x_act = np.array([ACTIONS.index(JUDGED[x]) if x in JUDGED else -1 for x in xu] + [-1],
                     dtype=I64)
    ract = np.where(np.array([k == "order" for k in kdu] + [False], dtype=bool)[kd],
                    x_act[xc], -1)
    wkey, placed_by, how = out["wkey"], out["placed_by"], out["how"]
    grace = prov.grace
    rep = np.flatnonzero(~is_tap)
    act_j, own_j = rep[ract[rep] >= 0], rep[ract[rep] < 0]

    def put(j: np.ndarray, e: np.ndarray, told: Any) -> None:
        wkey[rows[j]] = placed_by[rows[j]] = ekey[e]
        how[rows[j]] = told

    tsa = ts[act_j]
    cand = [exp_tab.last_before(q, act_j) for q in queries(act_j, ract[act_j])]
    valid = [(c >= 0) & (ets[c] >= tsa - LOOKBACK_MS) & (ets[c] <= tsa + grace) for c in cand]
    hit = first_valid(cand, valid)
    got = hit >= 0
    own_q = [exp_tab.last_before(q, own_j) for q in queries(own_j, np.zeros(len(own_j), I64))]
    owner = first_valid(own_q, [c >= 0 for c in own_q])
    if not (all(kept(np.where(v, c, -1), act_j, False) for c, v in zip(cand, valid, strict=True))
            and all(kept(c, own_j, True) for c in own_q)):
        return None  # (an entry out of its time window counts as missing either way)
    moved = _unexplained(prov, act_j[~got], ract, ts, ac, au, cids, rows, m, queries, exp_tab,
                         sus_tab, ej, ets, ekey, esrc, first_tap, acct_tap, kept, out)
    if moved is None:
        return None
    put(act_j[got], hit[got], esrc[hit[got]])
    put(own_j[owner >= 0], owner[owner >= 0], "owner")
    for j in own_j[owner < 0].tolist():
        p = prov.prefix_owner(au[ac[j]], cids[j])
        wkey[rows[j]] = placed_by[rows[j]] = p
        how[rows[j]] = "prefix" if p else ""

    # the machine's state after these rows, built when first read ------------------------
    def settle(s: ProvenanceState) -> None:
        s.tapped.update(first_tap)
        for p, i in learned:
            s.addrs.setdefault((au[p // (nk + 1)], ku[p % (nk + 1)]), set()).add(ipu[i])
        keys = _key_tuples(au, ac[ej], ekind, eact, syms.values, esym, oids.values, eval_,
                           cidv.values)
        for e, k in enumerate(keys):  # the machine's own writes, caps and all, in its order
            if e_exp[e]:
                _put(s.records, k, (int(ets[e]), ekey[e], esrc[e]))
                if eact[e] == 0:
                    prov._own(k, ekey[e])
            else:
                _put(s.suspects, k, (int(ets[e]), ekey[e]))

    st.pending = settle
    return moved


def _unexplained(prov: Provenance, uj: np.ndarray, ract: np.ndarray, ts: np.ndarray,
                 ac: np.ndarray, au: Any, cids: np.ndarray, rows: np.ndarray, m: int,
                 queries: Any, exp_tab: RowIndex, sus_tab: RowIndex, ej: np.ndarray,
                 ets: np.ndarray, ekey: np.ndarray, esrc: np.ndarray,
                 first_tap: dict[tuple[str, str], int], acct_tap: dict[str, int],
                 kept: Callable[[np.ndarray, np.ndarray, bool], bool],
                 out: dict[str, np.ndarray]) -> int | None:
    """Reports no earlier record explains: prefix, not judged, held then explained (moved
    after the record), or foreign with a suspect, as `Provenance.arrive` and `record`."""
    if not len(uj):
        return 0
    wkey, placed_by, how = out["wkey"], out["placed_by"], out["how"]
    foreign, fcancel, major, minor = (out["foreign"], out["foreign_cancel"], out["major"],
                                      out["minor"])
    qu = queries(uj, ract[uj])
    tsu = ts[uj]
    due = tsu + prov.grace
    last = np.searchsorted(ts, due, "right") - 1  # the last row with ts <= due
    own_q = [exp_tab.last_before(q, uj) for q in queries(uj, np.zeros(len(uj), I64))]
    cown = first_valid(own_q, [c >= 0 for c in own_q])
    sus_c = [sus_tab.last_before(q, uj) for q in qu]
    sus_ok = [(c >= 0) & (ets[c] >= tsu - LOOKBACK_MS) & (ets[c] <= due) for c in sus_c]
    sus = first_valid(sus_c, sus_ok)
    if not (all(kept(c, uj, True) for c in own_q) and all(
            kept(np.where(v, c, -1), uj, False) for c, v in zip(sus_c, sus_ok, strict=True))):
        return None
    ne = len(ej)
    ejx = np.append(ej, -1)  # padded: position -1 is no row
    res = np.full(len(uj), ne, dtype=I64)
    late = np.full(len(uj), -1, dtype=I64)
    for q in qu:
        f = exp_tab.first_after(q, uj)
        res = np.where((f >= 0) & (f < res), f, res)
        s = sus_tab.last_upto(q, last)
        late = np.where((s >= 0) & (ejx[s] > uj) & (s > late), s, late)
    res = np.where((res < ne) & (ets[res] <= due), res, -1)
    moved = 0
    for n, j in enumerate(uj.tolist()):
        a, i = au[ac[j]], rows[j]
        p = prov.prefix_owner(a, cids[j])
        if (p and first_tap.get((a, p), m) >= j) or not (
                a in prov.prefixed or acct_tap.get(a, m) < j):
            wkey[i] = placed_by[i] = p
            how[i] = "prefix" if p else ""
            continue
        e = int(res[n])
        if e >= 0:  # held, then explained by a later record: it moves after that record
            wkey[i] = placed_by[i] = ekey[e]
            how[i] = esrc[e]
            moved += 1
            major[i], minor[i] = rows[ej[e]], i + 1
            continue
        suspect = p
        if ract[j] == 1:
            suspect = (ekey[cown[n]] if cown[n] >= 0 else "") or p
        if sus[n] >= 0:
            suspect = ekey[sus[n]]
        suspect = suspect or prov.sole.get(a, "")
        if late[n] >= 0:
            suspect = ekey[late[n]]
        wkey[i], placed_by[i], how[i] = "", suspect, ""
        foreign[i], fcancel[i] = ract[j] == 0, ract[j] == 1
    return moved


def _key_tuples(au: Any, ea: np.ndarray, kind: np.ndarray, act: np.ndarray,
                symv: list[Any], sym: np.ndarray, oidv: list[Any], val: np.ndarray,
                cidv: list[Any]) -> list[tuple[Any, ...]]:
    """Each entry's match key exactly as `provenance._keys` spells it."""
    out: list[tuple[Any, ...]] = []
    for a, k, x, s, v in zip(ea.tolist(), kind.tolist(), act.tolist(), sym.tolist(),
                             val.tolist(), strict=True):
        if k == 0:
            out.append(("o", au[a], ACTIONS[x], symv[s] if s >= 0 else None, int(oidv[v])))
        else:
            out.append(("c", au[a], ACTIONS[x], cidv[v]))
    return out
