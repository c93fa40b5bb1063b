"""A key's normal behaviour over weeks, the forest's threshold, and what the rules would send.

The baseline notebook answers "is this key's traffic what I think it is, and would these rules
have paged me" before anyone trusts a rule: daily cycle, order sizes and caller addresses; the
model card that says how the forest's threshold was set and where this key's minutes fall
against it; and a replay of the account's history through the real detection engine and alert
manager, counting findings and the alerts each rule would have sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.config import Config
from monitor.detect.forest import ForestModel
from monitor.features import ACCOUNT_ROW, FeatureState, add_context, aggregate, enrich, normalise
from monitor.store import SQLiteStore, Store
from monitor.tools.investigate.incident import (
    DAY_MS,
    InvestigateError,
    feature_context,
    load_forest,
    open_store_ro,
    read_config,
)
from monitor.tools.investigate.plots import Chart, new_figure, utc_axis


@dataclass
class Baseline:
    account: str
    key: str
    since_ms: int
    until_ms: int
    events: pd.DataFrame  # enriched events of the account
    windows: pd.DataFrame  # one-minute windows of every key of the account
    config: Config | None
    forest: ForestModel | None
    notes: list[str] = field(default_factory=list)

    def mine(self) -> pd.DataFrame:
        """The key's own tapped calls."""
        e = self.events
        return e[e["tapped"] & e["wkey"].eq(self.key)]


def _busiest_key(store: Store, account: str | None, since: int, until: int) -> tuple[str, str]:
    df = store.load_events(since=since, until=until, account=account, kinds=["request"])
    df = df[df["source"].isin(["tap", "log"]) & df["key"].notna()]
    if df.empty:
        raise InvestigateError("no tapped requests in that range; name ACCOUNT and KEY")
    top = df.groupby(["account", "key"], observed=True).size().idxmax()
    return str(top[0]), str(top[1])


def load_baseline(db: str | Path | Store, key: str | None = None, *, account: str | None = None,
                  config: Config | str | Path | None = None, days: float = 28,
                  until: int | str | pd.Timestamp | None = None,
                  model_path: str | Path | None = None) -> Baseline:
    """Load `days` of the account's history up to `until` (default: the newest event)."""
    store = open_store_ro(db)
    try:
        return _load_baseline(store, key, account, read_config(config), days, until, model_path)
    finally:
        if store is not db:
            store.close()


def _load_baseline(store: Store, key: str | None, account: str | None, cfg: Config | None,
                   days: float, until: int | str | pd.Timestamp | None,
                   model_path: str | Path | None) -> Baseline:
    if until is None:
        last = store.load_events(since=None, kinds=["usage"])  # polled every minute: cheap
        if last.empty:
            raise InvestigateError("the store holds no usage polls; pass UNTIL explicitly")
        u = int(last["ts"].max().value // 1_000_000) + 60_000
    else:
        ts = pd.Timestamp(until)
        u = int((ts if ts.tzinfo else ts.tz_localize("UTC")).value // 1_000_000)
    s = u - int(days * DAY_MS)
    if key is None:
        account, key = _busiest_key(store, account, s, u)
    elif account is None:
        hit = store.load_events(since=s, until=u, key=key, kinds=["request"])
        if hit.empty:
            raise InvestigateError(f"key {key!r} made no tapped call in that range")
        account = str(hit["account"].iloc[0])
    raw = store.load_events(since=s, until=u, account=account)
    s = int(raw["ts"].min().value // 1_000_000) if len(raw) else s
    e = enrich(normalise(raw), feature_context(cfg), FeatureState())
    e["time"] = pd.to_datetime(e["ts"], unit="ms", utc=True)
    w = add_context(aggregate(e)) if len(e) else aggregate(e)
    forest, why = load_forest(cfg, model_path)
    notes = [] if cfg else ["no config given: orders are not attributed to keys and the rule "
                            "replay is skipped"]
    if why:
        notes.append(f"forest not shown: {why}")
    return Baseline(account, key, s, u, e, w, cfg, forest, notes)


def daily_cycle(b: Baseline) -> pd.DataFrame:
    """Calls and orders per hour of day (UTC): the mean over the days loaded, and the range."""
    m = b.mine()
    hours = m["time"].dt.floor("h")
    per_hour = pd.DataFrame({"calls": 1, "orders": m["is_order_req"].astype(int)}).groupby(
        hours).sum()
    full = pd.date_range(pd.Timestamp(b.since_ms, unit="ms", tz="UTC").floor("h"),
                         pd.Timestamp(b.until_ms - 1, unit="ms", tz="UTC").floor("h"), freq="h")
    per_hour = per_hour.reindex(full, fill_value=0)
    g = per_hour.groupby(per_hour.index.hour)
    out = pd.DataFrame({"calls_mean": g["calls"].mean(), "calls_min": g["calls"].min(),
                        "calls_max": g["calls"].max(), "orders_mean": g["orders"].mean()})
    out.index.name = "hour (UTC)"
    return out


def order_sizes(b: Baseline) -> pd.DataFrame:
    """The key's accepted and rejected order notionals, summarised."""
    m = b.mine()
    o = m[m["is_order_req"] & m["notional"].notna()]
    ok = o["accepted_order"]
    return pd.DataFrame({"accepted": o.loc[ok, "notional"].describe(
        percentiles=[0.5, 0.9, 0.99]), "rejected": o.loc[~ok, "notional"].describe(
        percentiles=[0.5, 0.9, 0.99])}).round(2)


def ip_history(b: Baseline) -> pd.DataFrame:
    """Every address the key was called from, with first/last seen and days active."""
    m = b.mine()
    if m.empty:
        return pd.DataFrame(columns=["ip", "calls", "days_active", "first_seen", "last_seen",
                                     "whitelist"])
    g = m.groupby("ip").agg(calls=("ts", "size"), first_seen=("time", "min"),
                            last_seen=("time", "max"),
                            days_active=("time", lambda t: t.dt.date.nunique())).reset_index()
    wl = [_wl(b, ip) for ip in g["ip"]]
    g["whitelist"] = wl
    return g.sort_values("calls", ascending=False).reset_index(drop=True)[
        ["ip", "calls", "days_active", "first_seen", "last_seen", "whitelist"]]


def _wl(b: Baseline, ip: str) -> str:
    w = feature_context(b.config).whitelisted(b.account, b.key, ip)
    return "in whitelist" if w else ("none declared" if w is None else "NOT listed")


def model_card(b: Baseline) -> pd.DataFrame:
    """The forest's card: what it was trained on and how its threshold was set."""
    if b.forest is None:
        return pd.DataFrame({"value": ["no model loaded"]}, index=["model"])
    c = b.forest.card
    t = c.get("training", {})
    rows = {
        "features (in order)": ", ".join(c.get("features", [])),
        "trained on": t.get("source", "?"),
        "training windows": t.get("windows"),
        "training range (UTC)": f"{pd.Timestamp(t.get('start_ms', 0), unit='ms'):%Y-%m-%d} .. "
                                f"{pd.Timestamp(t.get('end_ms', 0), unit='ms'):%Y-%m-%d}",
        "threshold": round(float(c.get("threshold", np.nan)), 4),
        "threshold rule": f"the {1 - float(c.get('contamination', 0)):.4%} quantile of the "
                          "training scores (contamination "
                          f"{c.get('contamination')}): about that share of normal minutes "
                          "scores above it",
        "transform": c.get("transform"),
        "scikit-learn": c.get("sklearn_version"),
    }
    return pd.DataFrame({"value": list(rows.values())}, index=list(rows))


def key_scores(b: Baseline) -> pd.DataFrame:
    """The forest's score for each of the key's minutes (and the account row's)."""
    if b.forest is None or b.windows.empty:
        return pd.DataFrame(columns=["minute", "key", "score"])
    w = b.windows[b.windows["key"].isin([b.key, ACCOUNT_ROW])].reset_index(drop=True)
    return pd.DataFrame({"minute": pd.to_datetime(w["minute"], unit="ms", utc=True),
                         "key": w["key"].astype(str).replace({ACCOUNT_ROW: "(account)"}),
                         "score": b.forest.score(w)})


def rule_replay(b: Baseline, rules_dir: str | Path | None = None) -> pd.DataFrame:
    """Replay the account's history through the rules and the alert manager.

    `findings` is what the detectors said (after each rule's cooldown); `paged` is how many
    alert messages carried the rule (high and critical, grouped and deduplicated as live);
    warning and info findings go to the daily digest instead (`digest`).
    """
    cols = ["rule", "severity", "findings", "paged", "digest"]
    if b.config is None:
        return pd.DataFrame(columns=cols)
    from monitor.tools.investigate.synthetic import RULES_DIR, replay_alerts

    cfg = b.config
    rules = Path(rules_dir) if rules_dir else (Path(cfg.rules_dir) if Path(cfg.rules_dir).is_dir()
                                               else RULES_DIR)
    store = SQLiteStore(":memory:")
    log = logging.getLogger("monitor.alert.manager")
    level = log.level
    log.setLevel(logging.ERROR)  # "matches no channel": this replay has no channels on purpose
    try:
        model = _model_path(cfg) if b.forest is not None else None
        replay_alerts(store, cfg, b.events, model, rules)
        findings = store.load_findings()
        alerts = [a for a in store.load_alerts() if a.kind != "digest"]
    finally:
        log.setLevel(level)
        store.close()
    f = pd.DataFrame([{"rule": x.rule_id, "severity": x.severity.value,
                       "paging": x.severity.rank >= 2} for x in findings if x.state == "firing"])
    if f.empty:
        return pd.DataFrame(columns=cols)
    out = f.groupby("rule").agg(severity=("severity", "first"), findings=("rule", "size"),
                                paging=("paging", "first"))
    paged = pd.Series([i.rule_id for a in alerts for i in a.payload.items
                       if i.kind in ("new", "repeat")], dtype=str).value_counts()
    out["paged"] = paged.reindex(out.index).fillna(0).astype(int)
    out["digest"] = np.where(out["paging"], 0, out["findings"])
    return out.reset_index()[cols].sort_values(["paged", "findings"], ascending=False,
                                               ignore_index=True)


def _model_path(cfg: Config) -> Path | None:
    from monitor.tools.investigate.incident import DEFAULT_MODEL

    p = Path(cfg.model_path)
    return p if p.is_file() else DEFAULT_MODEL


# -- plots -------------------------------------------------------------------------------------
def plot_daily_cycle(b: Baseline) -> Chart:
    d = daily_cycle(b)
    fig, (ax,) = new_figure(1, height=2.6, sharex=False)
    ax.fill_between(d.index, d["calls_min"], d["calls_max"], color="#1f77b4", alpha=0.2,
                    step="mid", label="calls: min-max over the days")
    ax.step(d.index, d["calls_mean"], where="mid", color="#1f77b4", label="calls: mean")
    ax.step(d.index, d["orders_mean"], where="mid", color="#9467bd", label="orders: mean")
    ax.set_xticks(range(0, 24, 2))
    ax.set_xlabel("hour of day (UTC)")
    ax.set_ylabel("per hour")
    ax.set_title(f"{b.account}/{b.key}: daily cycle")
    ax.legend(loc="upper left", fontsize=8)
    return Chart(fig)


def plot_order_sizes(b: Baseline) -> Chart:
    m = b.mine()
    o = m[m["is_order_req"] & m["notional"].gt(0)]
    fig, axes = new_figure(2, height=2.2, sharex=False)
    if len(o):
        bins = np.logspace(np.log10(o["notional"].min()), np.log10(o["notional"].max()) + 0.01,
                           40)
        axes[0].hist(o.loc[o["accepted_order"], "notional"], bins=bins, color="#9467bd",
                     label="accepted")
        axes[0].hist(o.loc[~o["accepted_order"], "notional"], bins=bins, color="#d62728",
                     label="rejected")
        axes[0].set_xscale("log")
        axes[0].set_xlabel("order notional (quote)")
        axes[0].legend(fontsize=8)
        axes[1].scatter(o["time"], o["notional"], s=3, alpha=0.4,
                        c=np.where(o["accepted_order"], "#9467bd", "#d62728"))
        axes[1].set_yscale("log")
    axes[0].set_ylabel("orders")
    axes[1].set_ylabel("notional")
    axes[0].set_title(f"{b.account}/{b.key}: order sizes")
    utc_axis(axes[1])
    return Chart(fig)


def plot_ip_days(b: Baseline) -> Chart:
    """Calls per day by caller address: a new address shows up as a new colour."""
    m = b.mine()
    fig, (ax,) = new_figure(1, height=2.4)
    if len(m):
        per = m.groupby([m["time"].dt.floor("D"), "ip"]).size().unstack(fill_value=0)
        bottom = np.zeros(len(per))
        for ip in per.columns:
            ax.bar(per.index, per[ip].to_numpy(), bottom=bottom, width=0.8, align="edge",
                   label=f"{ip} ({_wl(b, ip)})")
            bottom += per[ip].to_numpy()
        ax.legend(loc="upper left", fontsize=8)
    ax.set_ylabel("calls / day")
    ax.set_title(f"{b.account}/{b.key}: calls per day by source address")
    utc_axis(ax, "day (UTC)")
    return Chart(fig)


def plot_scores(b: Baseline) -> Chart:
    """Where the key's minutes fall against the forest's threshold."""
    s = key_scores(b)
    fig, (ax,) = new_figure(1, height=2.4, sharex=False)
    if len(s) and b.forest is not None:
        for key, g in s.groupby("key"):
            ax.hist(g["score"], bins=60, alpha=0.6, label=f"{key} ({len(g):,} minutes)")
        ax.axvline(b.forest.threshold, color="#d62728", ls="--",
                   label=f"threshold {b.forest.threshold:.3f}")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("anomaly score (higher = stranger)")
    ax.set_ylabel("minutes")
    ax.set_title(f"{b.account}/{b.key}: forest scores of normal minutes")
    return Chart(fig)


def plot_rule_replay(b: Baseline, table: pd.DataFrame | None = None) -> Chart:
    t = rule_replay(b) if table is None else table
    fig, (ax,) = new_figure(1, height=max(1.6, 0.35 * max(len(t), 1)), sharex=False)
    if len(t):
        y = np.arange(len(t))[::-1]
        ax.barh(y + 0.2, t["findings"], height=0.4, color="#7f7f7f", label="findings")
        ax.barh(y - 0.2, t["paged"], height=0.4, color="#d62728", label="alerts sent (paged)")
        ax.set_yticks(y, t["rule"])
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no findings (or no config to replay with)", ha="center",
                transform=ax.transAxes)
    days = (b.until_ms - b.since_ms) / DAY_MS
    ax.set_xlabel(f"count over {days:.1f} days")
    ax.set_title(f"{b.account}: what each rule would have sent")
    return Chart(fig)
