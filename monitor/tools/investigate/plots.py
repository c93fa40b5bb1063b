"""Static matplotlib figures for the incident notebook (Agg, no pyplot, no global state).

Every function returns a `Chart`: a notebook shows it as a PNG (so it renders on GitHub and in
e-mail), a script can `save` it. Time axes are UTC and say so. The alert is drawn the same way
everywhere: a shaded band from its first to its last finding and a red line when it was sent.
"""

from __future__ import annotations

import io
from datetime import UTC
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from monitor.detect.forest import FOREST_FEATURES
from monitor.tools.investigate import tables
from monitor.tools.investigate.incident import Incident

STATUS_COLOURS = {"NEW": "#d62728", "known": "#7f7f7f", "whitelisted": "#2ca02c"}


class Chart:
    """A figure that displays itself as PNG in a notebook."""

    def __init__(self, fig: Figure) -> None:
        self.figure = fig
        FigureCanvasAgg(fig)

    def png(self) -> bytes:
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def save(self, path: str | Path) -> Path:
        Path(path).write_bytes(self.png())
        return Path(path)


def new_figure(rows: int = 1, height: float = 2.2, width: float = 11.0, sharex: bool = True
               ) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, 0.6 + height * rows), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0]
    return fig, list(axes)


def utc_axis(ax, label: str = "time (UTC)") -> None:
    loc = mdates.AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz=UTC))
    ax.set_xlabel(label)


def mark_alert(ax, inc: Incident, label: bool = False) -> None:
    t0 = pd.Timestamp(inc.start_ms, unit="ms", tz="UTC")
    t1 = pd.Timestamp(inc.end_ms, unit="ms", tz="UTC")
    ax.axvspan(t0, max(t1, t0 + pd.Timedelta("1min")), color="#d62728", alpha=0.12,
               label="findings" if label else None)
    if inc.alert.alert_id:
        ax.axvline(inc.alert_ts, color="#d62728", lw=1.5,
                   label=f"alert {inc.alert.alert_id}" if label else None)


def _title(inc: Incident, what: str) -> str:
    return f"{inc.account}/{inc.key or '(all keys)'}: {what}"


def plot_timeline(inc: Incident) -> Chart:
    """Calls, orders, rejects and failures per minute, with the alert marked."""
    t = tables.timeline(inc)
    series = [("calls", "#1f77b4", "calls / min"), ("orders", "#9467bd", "orders / min"),
              ("rejects", "#ff7f0e", "rejected / min"), ("failures", "#d62728", "failed / min")]
    fig, axes = new_figure(len(series), height=1.5)
    for ax, (col, colour, ylabel) in zip(axes, series, strict=True):
        ax.fill_between(t.index, t[col].to_numpy(), step="post", color=colour, alpha=0.35)
        ax.step(t.index, t[col].to_numpy(), where="post", color=colour, lw=1)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        mark_alert(ax, inc, label=ax is axes[0])
    axes[0].legend(loc="upper left", fontsize=8)
    axes[0].set_title(_title(inc, "activity per minute"))
    utc_axis(axes[-1])
    return Chart(fig)


def plot_callers(inc: Incident) -> Chart:
    """Who called, when: one row per address, dot size = calls that minute, colour = status."""
    r = tables._requests(inc)
    c = tables.callers(inc)
    fig, (ax,) = new_figure(1, height=max(1.6, 0.45 * max(len(c), 1)))
    if r.empty:
        ax.text(0.5, 0.5, "no tapped calls for this key in the window", ha="center",
                transform=ax.transAxes)
    else:
        many = c["key"].nunique() > 1

        def name(key: str, ip: str) -> str:
            return f"{ip} ({key})" if many else ip

        order = [name(k, ip) for k, ip in zip(c["key"], c["ip"], strict=True)][::-1]
        status = {name(k, ip): st for k, ip, st in zip(c["key"], c["ip"], c["status"],
                                                       strict=True)}
        per = r.groupby([r["wkey"], r["ip"], r["minute"]]).size().reset_index(name="n")
        per["row"] = [name(k, ip) for k, ip in zip(per["wkey"], per["ip"], strict=True)]
        for st, colour in STATUS_COLOURS.items():
            sub = per[per["row"].map(status).eq(st)]
            if sub.empty:
                continue
            ax.scatter(pd.to_datetime(sub["minute"], unit="ms", utc=True),
                       [order.index(x) for x in sub["row"]], s=6 + 4 * np.sqrt(sub["n"]),
                       color=colour, alpha=0.7, label=st, edgecolors="none")
        ax.set_yticks(range(len(order)), order)
        ax.set_ylim(-0.7, len(order) - 0.3)
        ax.legend(loc="upper left", fontsize=8, title="caller", title_fontsize=8)
    mark_alert(ax, inc)
    ax.set_title(_title(inc, "calls by source address (dot size = calls that minute)"))
    utc_axis(ax)
    return Chart(fig)


def plot_failures(inc: Incident) -> Chart:
    """Failed calls per minute, stacked by Binance error code."""
    f = tables.failure_codes(inc)
    fig, (ax,) = new_figure(1, height=2.6)
    if f.empty or f.shape[1] == 0:
        ax.text(0.5, 0.5, "no failed calls in the window", ha="center", transform=ax.transAxes)
    else:
        bottom = np.zeros(len(f))
        width = pd.Timedelta("1min") * 0.9
        for col in f.columns:
            ax.bar(f.index, f[col].to_numpy(), width=width, bottom=bottom, align="edge",
                   label=col)
            bottom += f[col].to_numpy()
        ax.legend(loc="upper left", fontsize=8)
    mark_alert(ax, inc)
    ax.set_ylabel("failed calls / min")
    ax.set_title(_title(inc, "failures by error code"))
    utc_axis(ax)
    return Chart(fig)


def plot_rejects(inc: Incident) -> Chart:
    """Each rejected order's notional against the free balance it would have spent."""
    r = tables.rejected_orders(inc)
    e = inc.events
    fig, (ax,) = new_figure(1, height=2.8)
    bal = e[e["kind"].eq("balance") & e["asset"].eq("USDT")]
    if len(bal):
        ax.step(bal["time"], bal["free"], where="post", color="#2ca02c", lw=1,
                label="free USDT balance")
    if len(r):
        ax.scatter(r["time"], r["notional"], marker="x", color="#d62728", s=40,
                   label="rejected order notional", zorder=3)
        has = r["free_balance"].notna()
        ax.scatter(r["time"][has], r["free_balance"][has], marker="_", color="#2ca02c", s=120,
                   label="free balance of the asset it needed", zorder=3)
        usual = r["usual_order"].dropna()
        if len(usual):
            ax.axhline(float(usual.median()), color="#7f7f7f", ls="--", lw=1,
                       label="key's usual order size")
    else:
        ax.text(0.5, 0.5, "no rejected orders in the window", ha="center",
                transform=ax.transAxes)
    if len(r) or len(bal):
        ax.set_yscale("log")
        ax.legend(loc="upper left", fontsize=8)
    mark_alert(ax, inc)
    ax.set_ylabel("quote (USDT)")
    ax.set_title(_title(inc, "rejected orders vs free balance"))
    utc_axis(ax)
    return Chart(fig)


def plot_forest(inc: Incident) -> Chart:
    """The forest's score per minute against its threshold, and the features it reads."""
    s = tables.forest_scores(inc)
    fig, axes = new_figure(2, height=2.0)
    if s.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "forest not available (see notes)", ha="center",
                    transform=ax.transAxes)
    else:
        for key, g in s.groupby("key"):
            axes[0].plot(g["minute"], g["score"], lw=1, marker=".", ms=3, label=f"{key}")
        axes[0].axhline(float(s["threshold"].iloc[0]), color="#d62728", ls="--", lw=1,
                        label="threshold")
        hot = s[s["above"]]
        axes[0].scatter(hot["minute"], hot["score"], color="#d62728", s=25, zorder=3)
        axes[0].legend(loc="upper left", fontsize=8)
        mine = s[s["key"].eq(inc.key or "(account)")] if inc.key else s
        for feat in FOREST_FEATURES:
            if mine[feat].abs().sum() > 0:
                axes[1].plot(mine["minute"], mine[feat], lw=1, label=feat)
        axes[1].set_yscale("symlog")
        axes[1].legend(loc="upper left", fontsize=8, ncol=3)
    axes[0].set_ylabel("anomaly score")
    axes[1].set_ylabel("feature value")
    for ax in axes:
        mark_alert(ax, inc)
    axes[0].set_title(_title(inc, "IsolationForest score (higher = stranger) and its inputs"))
    utc_axis(axes[-1])
    return Chart(fig)
