"""Detectors must not see the simulator, its labels or the network (DESIGN.md section 4)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "monitor"
FORBIDDEN = ("monitor.sim", "monitor.groundtruth", "monitor.binance", "monitor.collect",
             "httpx", "websockets", "socket", "monitor.evaluate")


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_features_and_detect_stay_behind_the_wall() -> None:
    features = sorted((ROOT / "features").glob("*.py"))
    assert {f.stem for f in features} >= {"catalog", "replay", "live", "provenance"}
    files = [*features, *sorted((ROOT / "detect").glob("*.py"))]
    assert len(files) >= 14
    for f in files:
        bad = {n for n in imports(f) if n.startswith(FORBIDDEN)}
        assert not bad, f"{f.name} imports {bad}"
