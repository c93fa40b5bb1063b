"""Keep committed notebooks free of outputs, so no event data or key ever lands in git.

`--check` (CI) fails listing every notebook that carries outputs or execution counts;
without it, the outputs are stripped in place.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def dirty_cells(nb: dict) -> int:
    return sum(
        1
        for c in nb.get("cells", [])
        if c.get("cell_type") == "code" and (c.get("outputs") or c.get("execution_count"))
    )


def strip(nb: dict) -> dict:
    for c in nb.get("cells", []):
        if c.get("cell_type") == "code":
            c["outputs"] = []
            c["execution_count"] = None
    return nb


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [Path(a) for a in args if a != "--check"] or [Path("notebooks")]
    files = [p for d in paths for p in (sorted(d.glob("*.ipynb")) if d.is_dir() else [d])]
    bad = []
    for f in files:
        nb = json.loads(f.read_text())
        if dirty_cells(nb):
            if check:
                bad.append(f"{f}: {dirty_cells(nb)} cell(s) carry outputs; run "
                           "`python -m monitor.tools.strip_notebooks` before committing")
            else:
                f.write_text(json.dumps(strip(nb), indent=1, ensure_ascii=False) + "\n")
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
