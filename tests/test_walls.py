"""The walls between the folders of `monitor/` (DESIGN.md section 4, README "Layout").

The pipeline (core -> config -> store, binance, collect -> features -> detect -> alert ->
service) never imports the simulated world, the command line or the tools beside it; the
detectors see neither the network nor the simulator; `core` imports nothing of Keywatch but
itself. Every module of every pipeline folder is checked, and the folders on disk are the ones
the README's Layout section names, so the tree a newcomer reads is the tree that is tested.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "monitor"
PIPELINE = ("core", "config", "store", "binance", "collect", "features", "detect", "alert",
            "service")
BESIDE = ("cli", "tools", "world")
NETWORK = ("httpx", "websockets", "socket", "uvicorn", "starlette", "h11", "apprise")


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "monitor":  # `from monitor import resources`
                names.update(f"monitor.{a.name}" for a in node.names)
    return names


def modules(folder: str) -> list[Path]:
    return sorted(p for p in (PKG / folder).rglob("*.py") if "__pycache__" not in p.parts)


def under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_pipeline_never_imports_the_world_the_cli_or_the_tools() -> None:
    checked = 0
    for folder in PIPELINE:
        for f in modules(folder):
            checked += 1
            bad = {n for n in imports(f) if under(n, *(f"monitor.{b}" for b in BESIDE))}
            assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"
    assert checked >= 60  # every module of every pipeline folder, not a sample


def test_detectors_see_neither_the_network_nor_the_simulator() -> None:
    forbidden = ("monitor.binance", "monitor.collect", "monitor.service", "monitor.store",
                 "monitor.alert", *NETWORK)
    for folder in ("features", "detect"):
        for f in modules(folder):
            bad = {n for n in imports(f) if under(n, *forbidden)}
            assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"


def test_core_imports_only_core() -> None:
    for f in modules("core"):
        bad = {n for n in imports(f) if under(n, "monitor") and not under(n, "monitor.core")}
        assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_tree_is_the_one_the_readme_names() -> None:
    on_disk = {p.name for p in PKG.iterdir()
               if p.is_dir() and p.name != "__pycache__" and (p / "__init__.py").exists()}
    assert on_disk == set(PIPELINE) | set(BESIDE)
    loose = sorted(p.name for p in PKG.glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"modules outside the folders: {loose}"
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^- `monitor/(\w+)/`", layout, re.M))
    assert named == on_disk, "README's Layout section and monitor/ disagree"
