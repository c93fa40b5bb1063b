"""One exception root for what a user can fix: each error says where and what to do.

A config, a rules folder, a model card or a clock that is wrong is the user's to fix, not a
bug: the CLI prints such an error as its lines (`file: what is wrong; what to do`) and exits
with a non-zero code, never with a traceback. Every such error derives from `KeywatchError`,
so one handler at the top of the CLI (monitor/cli/__init__.py) covers the commands that do not catch
their own.
"""

from __future__ import annotations


class KeywatchError(Exception):
    """A problem the user can fix. `where` is a file (or a key, an account); `problems` are
    the lines to print, each naming what is wrong and the fix."""

    exit_code = 2

    def __init__(self, message: str, *, where: str = "", problems: list[str] | None = None
                 ) -> None:
        self.where = where
        self.problems = problems if problems is not None else [message]
        super().__init__(message)
