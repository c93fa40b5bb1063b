# ruff: noqa: E501
"""One-time migration for issue 16: move monitor/ into pipeline folders, rewrite every reference.

Run from the repository root on a clean tree, from a copy (the run deletes monitor/devtools,
this file with it): `cp monitor/devtools/relayout.py /tmp/relayout.py`, then
`python3 /tmp/relayout.py` (the moves and the rewrite of dotted names and paths in every
tracked text file), then `python3 /tmp/relayout.py --post` (the fix-ups a rename cannot express, the new walls
test and the README's Layout section). Then `ruff check --fix`, wrap the few lines the longer
paths push past 100 columns, and run the suite. The text rewrite must run once only (it is not
idempotent: `monitor.health` becomes `monitor.service.health`, which a second run would rewrite
again). Delete this module once applied.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

# old module path (relative to repo, without .py for modules) -> new
MOVES: dict[str, str] = {
    # core: the records and facts every stage shares
    "monitor/events.py": "monitor/core/events.py",
    "monitor/findings.py": "monitor/core/findings.py",
    "monitor/clock.py": "monitor/core/clock.py",
    "monitor/errors.py": "monitor/core/errors.py",
    "monitor/bounded.py": "monitor/core/bounded.py",
    "monitor/redaction.py": "monitor/core/redaction.py",
    "monitor/wirefields.py": "monitor/core/wirefields.py",
    "monitor/keyrestrictions.py": "monitor/core/keyrestrictions.py",
    "monitor/orderpaths.py": "monitor/core/orderpaths.py",
    "monitor/framecodes.py": "monitor/core/framecodes.py",
    "monitor/errorcodes.py": "monitor/core/errorcodes.py",
    "monitor/resources.py": "monitor/core/resources.py",
    # config
    "monitor/config.py": "monitor/config/__init__.py",
    "monitor/config_models.py": "monitor/config/models.py",
    "monitor/config_checks.py": "monitor/config/checks.py",
    "monitor/config_file.py": "monitor/config/file.py",
    "monitor/config_tap.py": "monitor/config/tap.py",
    "monitor/config_secrets.py": "monitor/config/secrets.py",
    # service: the process that runs the pipeline
    "monitor/service.py": "monitor/service/pipeline.py",
    "monitor/pipeline.py": "monitor/service/wiring.py",
    "monitor/supervisor.py": "monitor/service/supervisor.py",
    "monitor/health.py": "monitor/service/health.py",
    "monitor/healthchecks.py": "monitor/service/healthchecks.py",
    "monitor/metrics.py": "monitor/service/metrics.py",
    "monitor/startup.py": "monitor/service/startup.py",
    # cli
    "monitor/cli.py": "monitor/cli/__init__.py",
    "monitor/commands": "monitor/cli/commands",
    # tools beside the pipeline
    "monitor/audit.py": "monitor/tools/audit.py",
    "monitor/scan.py": "monitor/tools/scan.py",
    "monitor/scan_git.py": "monitor/tools/scan_git.py",
    "monitor/scan_patterns.py": "monitor/tools/scan_patterns.py",
    "monitor/initcmd.py": "monitor/tools/initcmd.py",
    "monitor/keycheck.py": "monitor/tools/keycheck.py",
    "monitor/investigate": "monitor/tools/investigate",
    "monitor/devtools/strip_notebooks.py": "monitor/tools/strip_notebooks.py",
    # the simulated world: nothing in the pipeline may import it
    "monitor/sim": "monitor/world/sim",
    "monitor/groundtruth.py": "monitor/world/groundtruth.py",
    "monitor/evaluate": "monitor/world/evaluate",
    "monitor/demo": "monitor/world/demo",
    "monitor/devtools/hostile.py": "monitor/world/hostile.py",
}

TEST_MOVES: dict[str, str] = {
    "tests/sim": "tests/world/sim",
    "tests/evaluate": "tests/world/evaluate",
    "tests/test_demo.py": "tests/world/test_demo.py",
    "tests/test_demo_ports.py": "tests/world/test_demo_ports.py",
    "tests/test_pipeline.py": "tests/service/test_pipeline.py",
    "tests/test_events.py": "tests/core/test_events.py",
    "tests/test_redaction.py": "tests/core/test_redaction.py",
    "tests/test_config.py": "tests/config/test_config.py",
    "tests/test_config_addresses.py": "tests/config/test_config_addresses.py",
    "tests/test_config_hostile.py": "tests/config/test_config_hostile.py",
    "tests/test_config_routing.py": "tests/config/test_config_routing.py",
    "tests/test_config_secrets.py": "tests/config/test_config_secrets.py",
    "tests/configkit.py": "tests/config/configkit.py",
    "tests/test_store.py": "tests/store/test_store.py",
    "tests/test_store_hardening.py": "tests/store/test_store_hardening.py",
    "tests/test_run_store.py": "tests/service/test_run_store.py",
    "tests/test_service.py": "tests/service/test_service.py",
    "tests/test_startup.py": "tests/service/test_startup.py",
    "tests/test_supervisor.py": "tests/service/test_supervisor.py",
    "tests/test_healthchecks.py": "tests/service/test_healthchecks.py",
    "tests/test_latency_paths.py": "tests/service/test_latency_paths.py",
    "tests/test_metrics.py": "tests/service/test_metrics.py",
    "tests/test_tap_kill9.py": "tests/collect/test_tap_kill9.py",
    "tests/test_tap_process.py": "tests/collect/test_tap_process.py",
    "tests/test_audit.py": "tests/tools/test_audit.py",
    "tests/test_check_online.py": "tests/tools/test_check_online.py",
    "tests/test_init.py": "tests/tools/test_init.py",
    "tests/test_scan.py": "tests/tools/test_scan.py",
    "tests/test_investigate.py": "tests/tools/test_investigate.py",
    "tests/test_notebook_files.py": "tests/tools/test_notebook_files.py",
    "tests/test_notebooks.py": "tests/tools/test_notebooks.py",
    "tests/test_replay.py": "tests/cli/test_replay.py",
}


def dotted(p: str) -> str:
    p = p.removesuffix(".py").removesuffix("/__init__")
    return p.replace("/", ".")


def git(*args: str) -> None:
    subprocess.run(["git", *args], check=True)


def main() -> None:
    root = Path(".")
    moves = {**MOVES, **TEST_MOVES}
    renames: dict[str, str] = {}
    for old, new in moves.items():
        src, dst = root / old, root / new
        renames[dotted(old)] = dotted(new)
        if not src.exists():
            print("skip (missing):", old, file=sys.stderr)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        init = dst.parent / "__init__.py"
        if dst.parent.name != "monitor" and not init.exists() and dst.name != "__init__.py":
            init.write_text(f'"""{dst.parent.name}: see the README\'s Layout section."""\n')
            git("add", str(init))
        git("mv", str(src), str(dst))
    # devtools held only what moved, and this script: it goes (run from a copy, see above)
    dev = root / "monitor/devtools"
    if dev.exists():
        subprocess.run(["git", "rm", "-q", "-r", "-f", "--ignore-unmatch", str(dev)], check=True)
        subprocess.run(["rm", "-rf", str(dev)], check=True)
    renames["monitor.devtools"] = "monitor.tools"
    # the references: any dotted use, longest name first, never re-scanning what was replaced
    names = sorted(renames, key=len, reverse=True)
    pat = re.compile(r"(?<![\w.])(" + "|".join(re.escape(n) for n in names) + r")(?![\w])")
    # `from monitor import resources` / `from monitor import redaction` style
    from_pkg = re.compile(r"^(\s*)from monitor import (\w+)(.*)$", re.M)

    def fix_from(m: re.Match[str]) -> str:
        mod = f"monitor.{m.group(2)}"
        if mod in renames:
            parent, _, leaf = renames[mod].rpartition(".")
            return f"{m.group(1)}from {parent} import {leaf}{m.group(3)}"
        return m.group(0)

    files = subprocess.run(["git", "ls-files"], capture_output=True, text=True,
                           check=True).stdout.split()
    files += subprocess.run(["git", "ls-files", "--others", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.split()
    exts = (".py", ".toml", ".md", ".ipynb", ".service", ".yaml", ".yml", ".cfg", ".txt",
            ".json", ".sh")
    for f in files:
        p = root / f
        if not p.is_file() or not (f.endswith(exts) or p.name in ("Makefile", "run")
                                   or f.startswith("hooks/")):
            continue
        if f.startswith(("tests/world/sim/documented/",)):
            continue
        text = p.read_text(encoding="utf-8", errors="surrogateescape")
        new = pat.sub(lambda m: renames[m.group(1)], text)
        new = from_pkg.sub(fix_from, new)
        # path spellings (monitor/sim/..., tests/sim/...) in docs, configs and code
        for old_path, new_path in sorted(moves.items(), key=lambda kv: len(kv[0]),
                                         reverse=True):
            new = re.sub(r"(?<![\w/.])" + re.escape(old_path) + r"(?![\w])", new_path, new)
        if new != text:
            p.write_text(new, encoding="utf-8", errors="surrogateescape")
    # tests moved one level deeper: their repo-root parents[] index grows by the depth change
    for old_path, new_path in TEST_MOVES.items():
        delta = new_path.count("/") - old_path.count("/")
        targets = ([root / new_path] if new_path.endswith(".py")
                   else list((root / new_path).rglob("*.py")))
        for t in targets:
            body = t.read_text()
            moved = _deeper(body, delta)
            if moved != body:
                t.write_text(moved)




def _deeper(body: str, delta: int) -> str:
    """`parents[k]` -> `parents[k + delta]`: a test moved `delta` folders deeper."""
    return re.sub(r"parents\[(\d)\]", lambda m: f"parents[{int(m.group(1)) + delta}]", body)


def post() -> None:
    """The fix-ups a rename cannot express."""
    root = Path(".")
    r = root / "monitor/core/resources.py"
    r.write_text(r.read_text().replace("Path(__file__).resolve().parent.parent",
                                       "Path(__file__).resolve().parents[2]"))
    main_py = root / "monitor/cli/__main__.py"
    main_py.write_text('"""`python -m monitor.cli`: the same entry point as `keywatch`."""\n\n'
                       "from monitor.cli import main\n\nmain()\n")
    git("add", str(main_py))
    # the wheel's explicit package list: every package on disk, then the mapped data packages
    pkgs = sorted(dotted(str(p.parent.relative_to(root)) + "/__init__.py")
                  for p in (root / "monitor").rglob("__init__.py") if "__pycache__" not in str(p))
    if (root / "monitor/world/sim/scenarios").is_dir():  # data only (YAML), no __init__.py
        pkgs = sorted([*pkgs, "monitor.world.sim.scenarios"])
    py = root / "pyproject.toml"
    s = py.read_text()
    start = s.index("packages = [\n")
    end = s.index("]\n", start) + 2
    data = ['    "monitor._data",', '    "monitor._data.rules",', '    "monitor._data.models",',
            '    "monitor._data.notebooks",']
    body = "packages = [\n" + "\n".join(f'    "{p}",' for p in pkgs) + "\n" + "\n".join(data) + "\n]\n"
    py.write_text(s[:start] + body + s[end:])
    # the walls test for the new tree, and the README section it checks
    old_walls = root / "tests/detect/test_walls.py"
    if old_walls.exists():
        git("rm", "-q", "-f", str(old_walls))
    (root / "tests/test_walls.py").write_text(WALLS_TEST)
    git("add", "tests/test_walls.py")
    readme = root / "README.md"
    text = readme.read_text()
    a = text.index("\n## Layout\n") + 1
    b = text.index("\n## ", a + 3) + 1
    readme.write_text(text[:a] + LAYOUT_SECTION + "\n" + text[b:])




WALLS_TEST = '"""The walls between the folders of `monitor/` (DESIGN.md section 4, README "Layout").\n\nThe pipeline (core -> config -> store, binance, collect -> features -> detect -> alert ->\nservice) never imports the simulated world, the command line or the tools beside it; the\ndetectors see neither the network nor the simulator; `core` imports nothing of Keywatch but\nitself. Every module of every pipeline folder is checked, and the folders on disk are the ones\nthe README\'s Layout section names, so the tree a newcomer reads is the tree that is tested.\n"""\n\nfrom __future__ import annotations\n\nimport ast\nimport re\nfrom pathlib import Path\n\nROOT = Path(__file__).resolve().parents[1]\nPKG = ROOT / "monitor"\nPIPELINE = ("core", "config", "store", "binance", "collect", "features", "detect", "alert",\n            "service")\nBESIDE = ("cli", "tools", "world")\nNETWORK = ("httpx", "websockets", "socket", "uvicorn", "starlette", "h11", "apprise")\n\n\ndef imports(path: Path) -> set[str]:\n    names: set[str] = set()\n    for node in ast.walk(ast.parse(path.read_text())):\n        if isinstance(node, ast.Import):\n            names.update(a.name for a in node.names)\n        elif isinstance(node, ast.ImportFrom) and node.module:\n            names.add(node.module)\n            if node.module == "monitor":  # `from monitor import resources`\n                names.update(f"monitor.{a.name}" for a in node.names)\n    return names\n\n\ndef modules(folder: str) -> list[Path]:\n    return sorted(p for p in (PKG / folder).rglob("*.py") if "__pycache__" not in p.parts)\n\n\ndef under(name: str, *prefixes: str) -> bool:\n    return any(name == p or name.startswith(p + ".") for p in prefixes)\n\n\ndef test_the_pipeline_never_imports_the_world_the_cli_or_the_tools() -> None:\n    checked = 0\n    for folder in PIPELINE:\n        for f in modules(folder):\n            checked += 1\n            bad = {n for n in imports(f) if under(n, *(f"monitor.{b}" for b in BESIDE))}\n            assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"\n    assert checked >= 60  # every module of every pipeline folder, not a sample\n\n\ndef test_detectors_see_neither_the_network_nor_the_simulator() -> None:\n    forbidden = ("monitor.binance", "monitor.collect", "monitor.service", "monitor.store",\n                 "monitor.alert", *NETWORK)\n    for folder in ("features", "detect"):\n        for f in modules(folder):\n            bad = {n for n in imports(f) if under(n, *forbidden)}\n            assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"\n\n\ndef test_core_imports_only_core() -> None:\n    for f in modules("core"):\n        bad = {n for n in imports(f) if under(n, "monitor") and not under(n, "monitor.core")}\n        assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"\n\n\ndef test_the_tree_is_the_one_the_readme_names() -> None:\n    on_disk = {p.name for p in PKG.iterdir()\n               if p.is_dir() and p.name != "__pycache__" and (p / "__init__.py").exists()}\n    assert on_disk == set(PIPELINE) | set(BESIDE)\n    loose = sorted(p.name for p in PKG.glob("*.py") if p.name != "__init__.py")\n    assert loose == [], f"modules outside the folders: {loose}"\n    readme = (ROOT / "README.md").read_text()\n    layout = readme.split("\\n## Layout\\n", 1)[1].split("\\n## ", 1)[0]\n    named = set(re.findall(r"^- `monitor/(\\w+)/`", layout, re.M))\n    assert named == on_disk, "README\'s Layout section and monitor/ disagree"\n'

LAYOUT_SECTION = "## Layout\n\nThe top level is the user's: `pyproject.toml`, `monitor/` (the package), `rules/` (shipped\nrules), `models/` (the default model and its card; `make model` rebuilds it byte for byte),\n`notebooks/` (stripped of outputs; CI checks), `tests/` (mirroring `monitor/`), `bench/`,\n`deploy/`. Inside `monitor/`, one folder per stage of the one data flow, read top to bottom\n(source -> Event -> store + windows -> detectors -> Finding -> alert stages -> Apprise), then\nwhat sits beside it:\n\n- `monitor/core/` the records and facts every stage shares: `Event`, `Finding`, the clock and time spans, the error tree, bounded integers, redaction and the key fingerprint, order endpoints and the reject rule, Binance's codes and field readers, a key's restrictions, where the shipped files are\n- `monitor/config/` the TOML and `.env`: models, checks, secrets, the standalone tap's settings\n- `monitor/store/` the store protocol (events, findings, outbox, alert state, silences, cursors, quarantine) and its SQLite implementation\n- `monitor/binance/` the wire: signed REST, the WebSocket API stream, parsing Binance's answers into events, weight budgets\n- `monitor/collect/` the sources: poller, stream, tap, log tailer, spool, ingest and its bounded queues\n- `monitor/features/` per-event facts and window features, each declared once, driving replay and live alike\n- `monitor/detect/` rules of every kind, posture, drift and the forest, and the engine that runs them\n- `monitor/alert/` the alert stages (silence, group, dedupe and repeat, resolve), rendering, the outbox sender\n- `monitor/service/` the service process: the pipeline, supervisor, health, metrics, start-up checks\n- `monitor/cli/` the `keywatch` command line, one module per area\n- `monitor/tools/` beside the pipeline: audit, scan, init, `check-config --online`, the investigation notebooks' helpers\n- `monitor/world/` the simulated world: the Binance simulator, scenarios and their ground truth, the synthetic generator, evaluation, the demo, the hostile upstream; nothing in the pipeline imports it\n\n`tests/test_walls.py` holds these walls: no pipeline module imports `world/`, `cli/` or\n`tools/`; `features/` and `detect/` import neither the network, the store nor the alert stages;\n`core/` imports only itself; and the folders on disk are the ones listed here.\n"


if __name__ == "__main__" and "--post" not in sys.argv:
    main()


if __name__ == "__main__" and "--post" in sys.argv:
    post()
