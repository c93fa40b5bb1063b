"""`python -m bench.run` (what `make bench` runs): every figure, one table, bench/results.json.

Each figure measures its baseline in the same run and prints the ratio; nothing here gates on
an absolute time. The wall time of each figure is printed so the 10-minute budget stays visible.
Figures: 1 latency, 2 throughput, 3 own API cost, 4 tap overhead, 5 memory/soak, 6 store,
7 freqtrade live through the tap (its own venv, `make freqtrade-venv`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from bench import apicost, freqtrade_live, latency, soak, storefig, tapcost, throughput
from bench.common import Row, markdown, show, write

FIGURES: list[tuple[str, Callable[..., list[Row]]]] = [
    ("latency", latency.run), ("throughput", throughput.run), ("apicost", apicost.run),
    ("tap", tapcost.run), ("soak", soak.run), ("store", storefig.run),
    ("freqtrade", freqtrade_live.run),
]


def main(only: list[str]) -> int:
    rows: list[Row] = []
    t0 = time.perf_counter()
    for name, fn in FIGURES:
        if only and name not in only:
            continue
        t = time.perf_counter()
        try:
            rows += fn(say=lambda m: print(f"  {m}", flush=True))
        except Exception as exc:  # one broken figure must not hide the others' results
            print(f"[{name}] FAILED: {exc!r}", flush=True)
            rows.append(Row(f"{name}: failed", float("nan"), "", None, "", note=repr(exc)))
        print(f"[{name}] {time.perf_counter() - t:.0f} s", flush=True)
    show(rows)
    for r in rows:
        if r.note:
            print(f"- {r.figure}: {r.note}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    write(rows)
    print("\nREADME table:\n" + markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
