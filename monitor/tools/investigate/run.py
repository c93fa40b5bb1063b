"""Execute a notebook with parameters (papermill's convention, without papermill) and render it.

The notebook's first code cell is tagged `parameters` and holds the defaults; `execute` inserts
a cell tagged `injected-parameters` right after it that assigns the given values, so the
rendered report shows exactly what it was run with. Runs in the `python3` kernel (ipykernel in
the same environment) with nbclient; HTML comes from nbconvert when it is installed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import nbformat

from monitor.core import resources

NOTEBOOKS = resources.notebooks_dir()  # the wheel's package data, or the checkout's notebooks/
INCIDENT = NOTEBOOKS / "incident.ipynb"
BASELINE = NOTEBOOKS / "baseline.ipynb"
# A parameter's value: written into the injected cell as its Python literal (`repr`).
Param = str | int | float | bool | None


def inject(nb: nbformat.NotebookNode, params: Mapping[str, Param]) -> nbformat.NotebookNode:
    """A copy of `nb` with a cell assigning `params` after the `parameters` cell."""
    nb = copy.deepcopy(nb)
    idx = next((i for i, c in enumerate(nb.cells)
                if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])), None)
    if idx is None:
        raise ValueError("the notebook has no cell tagged 'parameters'")
    for name in params:
        if not name.isidentifier():
            raise ValueError(f"{name!r} is not a valid parameter name")
    src = "# Parameters injected for this run\n" + "\n".join(
        f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]})
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    nb.cells.insert(idx + 1, cell)
    return nb


def execute(path: str | Path, params: Mapping[str, Param], *, cwd: str | Path | None = None,
            timeout: int = 300) -> nbformat.NotebookNode:
    """Run the notebook top to bottom in a fresh python3 kernel; raise on the first error."""
    from nbclient import NotebookClient

    nb = inject(nbformat.read(str(path), as_version=4), params)
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout,
                            resources={"metadata": {"path": str(cwd or Path.cwd())}})
    client.execute()
    return nb


def to_html(nb: nbformat.NotebookNode, *, hide_code: bool = False) -> str:
    """The executed notebook as one self-contained HTML page (plots embedded as PNG)."""
    try:
        from nbconvert import HTMLExporter
    except ImportError:
        raise RuntimeError("rendering to HTML needs nbconvert: pip install nbconvert") from None
    exporter = HTMLExporter()
    exporter.exclude_input = hide_code
    body, _ = exporter.from_notebook_node(nb)
    return body


def images(nb: nbformat.NotebookNode) -> list[bytes]:
    """Every PNG the executed notebook displayed, in order."""
    import base64

    return [base64.b64decode(o["data"]["image/png"]) for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if "image/png" in o.get("data", {})]


def errors(nb: nbformat.NotebookNode) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]
