"""Where the shipped rules, model, notebooks and config template are, installed or not.

They live at the top of the repository (`rules/`, `models/`, `notebooks/`,
`keywatch.example.toml`), which is what a reader of the repo sees and edits. A wheel carries
the same files as package data under `monitor/_data/` (pyproject.toml maps the package
`monitor._data` onto the repository root, so nothing is copied or moved in the source tree and
an sdist carries them too). At run time the code asks `importlib.resources` for
`monitor/_data` first and falls back to the source checkout next to the `monitor` package
(clones, editable installs, `PYTHONPATH=.`).

A config that names its own `rules_dir` or `model_path` wins over these defaults.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

TEMPLATE_NAME = "keywatch.example.toml"
DEFAULT_MODEL_NAME = "default.skops"


class ResourceError(LookupError):
    """A shipped file is missing from this installation."""


def data_root() -> Path:
    """The folder holding rules/, models/, notebooks/ and the template in this installation."""
    packaged = Path(str(files("monitor") / "_data"))
    if (packaged / "rules").is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "rules").is_dir():
        return checkout
    raise ResourceError(
        f"the shipped rules are missing: neither {packaged} (an installed wheel) nor {checkout} "
        "(a source checkout) has a rules/ folder; reinstall Keywatch"
    )


def rules_dir() -> Path:
    return data_root() / "rules"


def models_dir() -> Path:
    return data_root() / "models"


def default_model() -> Path:
    return models_dir() / DEFAULT_MODEL_NAME


def notebooks_dir() -> Path:
    return data_root() / "notebooks"


def notebook(name: str) -> Path:
    return notebooks_dir() / name


def template() -> Path:
    return data_root() / TEMPLATE_NAME


def is_packaged(path: str | Path) -> bool:
    """True if `path` is one of the shipped defaults of this installation."""
    try:
        root = data_root().resolve()
        Path(path).resolve().relative_to(root)
    except (ValueError, ResourceError, OSError):
        return False
    return True
