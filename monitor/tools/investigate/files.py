"""Files the investigation writes: readable by their owner only (0600, folders 0700).

An executed incident notebook and its HTML hold the account's balances, the keys' callers and
their addresses, order ids and the alert's evidence; on a shared host the default umask (022)
would leave them readable by every local user. Each file is written to a temporary file the
kernel creates 0600 in the same folder and renamed over the target, so there is no moment at
which the content is readable by others, and an older 0644 copy is replaced, not reused.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) 0700; an existing folder is left as it is."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return path


def write_private(path: Path, text: str) -> Path:
    """Write `text` to `path` as a 0600 file, atomically (see the module docstring)."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, FILE_MODE)  # mkstemp's mode already; said once more, whatever the OS
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
