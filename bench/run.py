"""`python -m bench.run` (what `make bench` runs): every figure, one table, bench/results.json.

Each figure measures its baseline in the same run and prints the ratio; nothing here gates on
an absolute time. The wall time of each figure is printed so the 10-minute budget stays visible.
Figures: 1 latency, 2 throughput, 3 own API cost, 4 tap overhead, 5 memory/soak, 6 store,
7 freqtrade live through the tap (its own venv, `make freqtrade-venv`), 4b the standalone
spooling tap, 8 the hostile soak. A figure that is also a verdict (the hostile soak) raises
`FigureFailed` when it fails: its rows are still shown, "FAIL" is printed and the exit is 1.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from bench import (
    apicost,
    freqtrade_live,
    hostile_soak,
    latency,
    soak,
    storefig,
    tapcost,
    tapspool,
    throughput,
)
from bench.common import FigureFailed, Row, markdown, show, write

FIGURES: list[tuple[str, Callable[..., list[Row]]]] = [
    ("latency", latency.run), ("throughput", throughput.run), ("apicost", apicost.run),
    ("tap", tapcost.run), ("tapspool", tapspool.run), ("soak", soak.run),
    ("hostile", hostile_soak.run), ("store", storefig.run), ("freqtrade", freqtrade_live.run),
]


def main(only: list[str]) -> int:
    rows: list[Row] = []
    failed: list[str] = []
    t0 = time.perf_counter()
    for name, fn in FIGURES:
        if only and name not in only:
            continue
        t = time.perf_counter()
        try:
            rows += fn(say=lambda m: print(f"  {m}", flush=True))
        except FigureFailed as exc:  # a verdict failed: its rows still go in the table
            print(f"[{name}] FAIL: {exc}", flush=True)
            rows += exc.rows
            failed.append(f"{name}: {exc}")
        except Exception as exc:  # one broken figure must not hide the others' results
            print(f"[{name}] FAILED: {exc!r}", flush=True)
            rows.append(Row(f"{name}: failed", float("nan"), "", None, "", note=repr(exc)))
            failed.append(f"{name}: {exc!r}")
        print(f"[{name}] {time.perf_counter() - t:.0f} s", flush=True)
    show(rows)
    for r in rows:
        if r.note:
            print(f"- {r.figure}: {r.note}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    write(rows, merge=bool(only))  # a partial run keeps the other figures' last results
    print("\nREADME table:\n" + markdown(rows))
    for f in failed:
        print(f"FAIL {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
