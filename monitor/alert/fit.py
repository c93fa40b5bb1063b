"""Fit one rendered alert into one channel's message limit, by summarising it (never splitting).

Telegram takes 4,096 characters, Discord 2,000, Pushover 1,024; an alert with five findings or
one huge evidence value is longer. The channel's limit is its Apprise plugin's (`body_maxlen`,
chosen by the URL scheme; see `channels.prepare`). Splitting was rejected: the parts of a split
page arrive as separate notifications, the person acts on the first before reading the rest,
and only one of them carries the steps. So a long alert is shortened, in this order, until it
fits:

1. long lines (a huge evidence value) are cut to `LINE_MAX` characters;
2. the later findings shrink to their headline (the first keeps its evidence and steps);
3. the later findings are dropped, counted in one line;
4. the silence commands are left to the full alert;
5. the first finding loses its evidence (its steps matter more), then lines from its end.

The header (severity, account, key), a note that the message was shortened and the command
that opens the full alert are always kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable

LINE_MAX = 160
_ITEM = re.compile(r"^(?:\*\*)?\d+\. (?:\\)?\[")  # "1. [HIGH] ..." or "**1. \[HIGH\] ...**"
_FOOTER = re.compile(r"^(?:\*\*)?Investigate:")
_EVIDENCE = re.compile(r"^(?:   - |• |   Evidence:|Evidence:)")


def fit(body: str, limit: int, measure: Callable[[str], int] = len) -> str:
    """`body` itself when `measure(body) <= limit`, else a summary that fits (see above).

    `measure` is how the channel counts: the length of the text it really sends (for a rich
    channel, the HTML Apprise makes of the Markdown).
    """
    if measure(body) <= limit:
        return body
    lines = body.split("\n")
    starts = [i for i, line in enumerate(lines) if _ITEM.match(line)]
    foot = next((i for i, line in enumerate(lines) if _FOOTER.match(line)), len(lines))
    if not starts:
        starts = [0]
    header = lines[: starts[0]]
    items = [lines[a:b] for a, b in zip(starts, starts[1:] + [foot], strict=True)]
    footer = lines[foot:]
    rich = bool(header) and header[0].startswith("**")
    note = "(Shortened to fit this channel: the Investigate command below opens the full alert.)"
    header = header + [_emph(note, rich), ""]

    def build(parts: list[list[str]]) -> str:
        return "\n".join(header + [line for p in parts for line in p] + footer)

    # a huge evidence value is cut short; the steps are kept whole as long as possible
    items = [[_clip(line, LINE_MAX if _EVIDENCE.match(line) else 600) for line in item]
             for item in items]
    if measure(build(items)) <= limit:
        return build(items)
    for n in range(len(items) - 1, 0, -1):  # later findings: headline only, last first
        items[n] = [_clip(items[n][0], 200), ""]
        if measure(build(items)) <= limit:
            return build(items)
    if len(items) > 1:  # drop later findings, counted
        more = [_emph(f"... and {len(items) - 1} more finding(s) in this alert.", rich), ""]
        items = [items[0], more]
        if measure(build(items)) <= limit:
            return build(items)
    if len(footer) > 1:  # the silence commands are in the full alert
        footer = [_hard(footer[0], rich), _emph("Silence commands: in the full alert.", rich)]
        if measure(build(items)) <= limit:
            return build(items)
    first = [line for line in items[0] if not _EVIDENCE.match(line)]  # steps before evidence
    while True:
        items[0] = first
        if measure(build(items)) <= limit or len(first) <= 1:
            break
        first = first[:-1] if first[-1] else first[:-2]
    out = build(items)
    return out if measure(out) <= limit else out[: max(0, limit - 3)] + "..."


def _hard(line: str, rich: bool) -> str:
    return line + "  " if rich and not line.endswith("  ") else line


def _clip(line: str, n: int = LINE_MAX) -> str:
    if len(line) <= n:
        return line
    brk = "  " if line.endswith("  ") else ""  # keep a Markdown hard break
    bold = "**" if line.startswith("**") and line.rstrip().endswith("**") else ""
    cut = line[: n - 3].rstrip("\\")  # never leave a dangling Markdown escape
    return cut + "..." + bold + brk


def _emph(s: str, rich: bool) -> str:
    return f"_{s}_" if rich else s
