"""The incident's tables: plain DataFrames a notebook shows as they are.

Each function answers one question a person asks after a page (who called, what failed, what
was rejected, what the model saw, what the key is allowed to do, what to do now), from the
`Incident` that `load_incident` built. Times are UTC timestamps throughout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from monitor.alert.redact import Redactor
from monitor.alert.render import actions_for
from monitor.config import USE_CASE_POLICY
from monitor.core.errorcodes import code_name
from monitor.core.keyrestrictions import KeyConfigPoll
from monitor.core.wirefields import JsonObject
from monitor.detect import posture
from monitor.detect.forest import FOREST_FEATURES
from monitor.features import ACCOUNT_ROW, MINUTE_MS
from monitor.tools.investigate.incident import Incident, parse_flags


def _utc(ms: Any) -> pd.Series | pd.Timestamp:
    return pd.to_datetime(ms, unit="ms", utc=True)


def overview(inc: Incident) -> pd.DataFrame:
    """One row per finding in the alert: when, how bad, which rule, what it said."""
    rows = [{"time": _utc(f.ts), "severity": f.severity.value, "rule": f.rule_id,
             "key": f.key or "(account)", "summary": f.summary} for f in inc.findings]
    return pd.DataFrame(rows, columns=["time", "severity", "rule", "key", "summary"])


def _minutes(inc: Incident) -> pd.DatetimeIndex:
    return pd.date_range(_utc(inc.since_ms), _utc(inc.until_ms - MINUTE_MS), freq="1min")


def timeline(inc: Incident) -> pd.DataFrame:
    """Per minute for the key: calls, orders, rejects and failures.

    `orders` counts an order once whether the tap saw it placed, the stream reported it, or
    both: the larger of the tapped order requests accepted and the stream's new orders for the
    key plus foreign orders on the account (an attacker's orders reach only the stream).
    """
    e = inc.events
    mine = inc.key_mask()
    failed = e["tapped"] & e["fclass"].ne("ok")
    cols = {
        "calls": e["tapped"] & mine,
        "tap_orders": e["accepted_order"] & mine,
        "stream_orders": e["is_new_order"] & (mine | e["foreign"]),
        "rejects": e["is_order_req"] & failed & mine,
        "failures": failed & mine,
    }
    minute = _utc(e["minute"])
    df = pd.DataFrame({k: v.astype(int) for k, v in cols.items()}).groupby(minute).sum()
    df = df.reindex(_minutes(inc), fill_value=0)
    df["orders"] = np.maximum(df["tap_orders"], df["stream_orders"])
    df.index.name = "minute (UTC)"
    return df[["calls", "orders", "rejects", "failures", "tap_orders", "stream_orders"]]


def _requests(inc: Incident) -> pd.DataFrame:
    e = inc.events
    return e[e["tapped"] & inc.key_mask() & e["ip"].notna()]


def callers(inc: Incident) -> pd.DataFrame:
    """Every address that called with the key in the window, known / whitelisted / new."""
    r = _requests(inc)
    cols = ["key", "ip", "status", "whitelist", "calls", "failures", "first_seen", "last_seen",
            "known_since"]
    if r.empty:
        return pd.DataFrame(columns=cols)
    g = r.assign(failed=r["fclass"].ne("ok")).groupby(["wkey", "ip"]).agg(
        calls=("ts", "size"), failures=("failed", "sum"), first_seen=("ts", "min"),
        last_seen=("ts", "max")).reset_index().rename(columns={"wkey": "key"})
    before = {(k, ip): t for k, ip, t in zip(inc.callers_before["key"], inc.callers_before["ip"],
                                             inc.callers_before["first_ts"], strict=True)}
    g["known_since"] = [before.get((k, ip)) for k, ip in zip(g["key"], g["ip"], strict=True)]
    g["known_since"] = pd.to_numeric(g["known_since"], errors="coerce")
    wl = [inc.ctx.whitelisted(inc.account, k, ip) for k, ip in zip(g["key"], g["ip"],
                                                                  strict=True)]
    g["whitelist"] = ["in whitelist" if w else ("none declared" if w is None else "NOT listed")
                      for w in wl]
    g["status"] = np.where(pd.Series(wl).eq(True), "whitelisted",
                           np.where(g["known_since"].notna(), "known", "NEW"))
    for c in ("first_seen", "last_seen", "known_since"):
        g[c] = _utc(g[c])
    order = {"NEW": 0, "known": 1, "whitelisted": 2}
    g = g.sort_values(["status", "key", "first_seen"],
                      key=lambda s: s.map(order) if s.name == "status" else s)
    return g[cols].reset_index(drop=True)


def failure_codes(inc: Incident) -> pd.DataFrame:
    """Failed calls per minute by Binance code (or HTTP status when there is no code)."""
    r = inc.events[inc.events["tapped"] & inc.key_mask() & inc.events["fclass"].ne("ok")]
    if r.empty:
        return pd.DataFrame(index=_minutes(inc))
    label = [code_name(int(c)) if c == c
             else f"HTTP {int(s) if s == s else '?'}" for c, s in zip(r["code"], r["status"],
                                                                      strict=True)]
    df = pd.crosstab(_utc(r["minute"]), pd.Series(label, index=r.index))
    df = df.reindex(_minutes(inc), fill_value=0)
    df.index.name = "minute (UTC)"
    return df[df.sum().sort_values(ascending=False).index]


def rejected_orders(inc: Incident) -> pd.DataFrame:
    """Order requests refused (-2010, -1013...), with notional against the free balance."""
    e = inc.events
    r = e[e["is_order_req"] & e["fclass"].ne("ok") & inc.key_mask()]
    out = pd.DataFrame({
        "time": _utc(r["ts"]), "ip": r["ip"], "code": r["code"], "symbol": r["symbol"],
        "side": r["side"], "notional": r["notional"], "free_balance": r["free_value"],
        "notional_to_free": r["notional_to_free"], "usual_order": r["usual_notional"],
    })
    return out.reset_index(drop=True)


def forest_scores(inc: Incident) -> pd.DataFrame:
    """The forest's score for every minute of the key (and the account row), vs its threshold."""
    if inc.forest is None or inc.windows.empty:
        return pd.DataFrame(columns=["minute", "key", "score", "threshold", "above"])
    w = inc.windows
    rows = w[w["key"].eq(inc.key) | w["key"].eq(ACCOUNT_ROW)] if inc.key else w
    rows = rows.reset_index(drop=True)
    out = rows[["minute", "key", *FOREST_FEATURES]].copy()
    out["minute"] = _utc(out["minute"])
    out["key"] = out["key"].astype(str).replace({ACCOUNT_ROW: "(account)"})
    out["score"] = inc.forest.score(rows)
    out["threshold"] = inc.forest.threshold
    out["above"] = out["score"] > out["threshold"]
    return out


def forest_reasons(inc: Incident, top: int = 10) -> pd.DataFrame:
    """The highest-scoring minutes and, in words, the features that drove each score."""
    s = forest_scores(inc)
    if s.empty or inc.forest is None:
        return pd.DataFrame(columns=["minute", "key", "score", "above", "why"])
    best = s.sort_values("score", ascending=False).head(top)
    best["why"] = ["; ".join(inc.forest.explain(row)) for _, row in best.iterrows()]
    return best[["minute", "key", "score", "above", "why"]].reset_index(drop=True)


def key_polls(inc: Incident) -> pd.DataFrame:
    """The apiRestrictions polls in the window (the key's, or every key's when account-wide)."""
    e = inc.events
    k = e[e["kind"].eq("key_config") & e["key"].notna()]
    if inc.key is not None:
        k = k[k["key"].eq(inc.key)]
    rows = [{"time": t, "key": key, **parse_flags(raw)}
            for t, key, raw in zip(k["time"], k["key"], k["raw"], strict=True)]
    return pd.DataFrame(rows)


def _answer(flags: JsonObject) -> JsonObject:
    """A polls-frame row back into the answer's types (a frame turns ints into floats and
    bools into numpy's), so the posture record can read it."""
    out = {f: (v.item() if hasattr(v, "item") else v) for f, v in flags.items()}
    for f in ("createTime", "tradingAuthorityExpirationTime"):
        if isinstance(out.get(f), float):
            out[f] = int(out[f])
    return out


def _flags(row: pd.Series) -> JsonObject:
    return {k: v for k, v in row.items() if k not in ("time", "key") and v == v}


def drift(inc: Incident) -> pd.DataFrame:
    """Every permission flag or ipRestrict change between consecutive polls of a key."""
    polls = key_polls(inc)
    cols = ["time", "key", "flag", "before", "after"]
    if polls.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for key, g in polls.groupby("key", sort=True):
        prev: JsonObject | None = inc.flags_before.get(str(key))
        for _, row in g.iterrows():
            cur = _flags(row)
            if prev is not None:
                for flag in sorted(set(cur) | set(prev)):
                    if flag != "updateTime" and prev.get(flag) != cur.get(flag):
                        out.append({"time": row["time"], "key": key, "flag": flag,
                                    "before": prev.get(flag), "after": cur.get(flag)})
            prev = cur
    return pd.DataFrame(out, columns=cols).sort_values("time").reset_index(drop=True)


def key_posture(inc: Incident) -> pd.DataFrame:
    """Each key's latest flags (one row per key), what its use case needs, and its problems.

    The verdicts are `monitor.detect.posture.CHECKS`, the same checks the posture rules run.
    """
    polls = key_polls(inc)
    if len(polls):  # as it was when the alert fired
        polls = polls[polls["time"] <= pd.Timestamp(inc.end_ms, unit="ms", tz="UTC")]
    latest: dict[str, tuple[int, JsonObject]] = {
        k: (inc.since_ms, f) for k, f in inc.flags_before.items()
        if inc.key is None or k == inc.key}
    for _, row in polls.iterrows():
        latest[str(row["key"])] = (int(row["time"].value // 1_000_000), _flags(row))
    rows = []
    for key, (ts, flags) in sorted(latest.items()):
        uc = inc.ctx.use_cases.get((inc.account, key))
        needed = USE_CASE_POLICY[uc][0] if uc else frozenset({"enableReading"})
        shown = {f: v for f, v in sorted(flags.items())
                 if f.startswith(("enable", "permits")) or f == "ipRestrict"}
        allowed = needed | posture.READ_ONLY_FLAGS | {"ipRestrict"}
        problems = [f"{f} not needed" for f, v in shown.items() if v is True and f not in allowed]
        poll = KeyConfigPoll.from_raw(_answer(flags))
        if poll is None:
            problems.append("flags unreadable (not Binance's apiRestrictions shape)")
        else:
            facts = posture.KeyFacts(inc.account, key, ts, poll, inc.ctx, {})
            problems += [res[0] for check in posture.CHECKS.values()
                         if (res := check(facts)) is not None]
        rows.append({"key": key, "use case": uc.value if uc else "?", **shown,
                     "problems": "; ".join(dict.fromkeys(problems)) or "none"})
    return pd.DataFrame(rows).set_index("key") if rows else pd.DataFrame(columns=["problems"])


def what_to_do(inc: Incident) -> list[str]:
    """The seed's emergency actions for this alert's findings, most severe first, no repeats."""
    red = Redactor()
    steps: list[str] = []
    for f in sorted(inc.findings, key=lambda f: -f.severity.rank):
        if f.key is None and inc.key is not None:  # account-wide finding: name the suspect key
            f = f.model_copy(update={"key": inc.key})
        for s in actions_for(f, red):
            if s not in steps:
                steps.append(s)
    return steps


class Note:
    """Markdown text a notebook renders (and a console prints as is)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def header(inc: Incident) -> Note:
    """The alert in a few lines: what, how bad, which key, which window, what is missing."""
    a = inc.alert
    span = (f"{_utc(inc.since_ms):%Y-%m-%d %H:%M} to {_utc(inc.until_ms):%H:%M} UTC "
            f"({len(inc.events):,} events of account {inc.account})")
    lines = [f"### {a.title}", "",
             f"- **Alert:** `{a.alert_id}` ({a.severity}, {a.kind}), sent "
             f"{_utc(a.created_ts):%Y-%m-%d %H:%M:%S} UTC",
             f"- **Key:** {inc.key or 'account-wide: every key of the account is shown'}",
             f"- **Findings:** {len(inc.findings)}, first {_utc(inc.start_ms):%H:%M:%S} UTC",
             f"- **Window loaded:** {span}"]
    lines += [f"- **Note:** {n}" for n in inc.notes]
    return Note("\n".join(lines))


class Steps:
    """A numbered list that a notebook renders as Markdown (and a console as plain text)."""

    def __init__(self, title: str, steps: list[str]) -> None:
        self.title, self.steps = title, steps

    def _repr_markdown_(self) -> str:
        body = "\n".join(f"{i}. {s}" for i, s in enumerate(self.steps, 1))
        return f"**{self.title}**\n\n{body}"

    def __repr__(self) -> str:
        return "\n".join([self.title, *(f"{i}. {s}" for i, s in enumerate(self.steps, 1))])


def what_to_do_now(inc: Incident) -> Steps:
    """`what_to_do` as the notebook's last cell shows it."""
    steps = what_to_do(inc) or [
        "No finding in this alert asks for action; compare the key with the baseline notebook."]
    return Steps(f"Do this now (alert {inc.alert.alert_id})", steps)
