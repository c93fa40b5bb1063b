"""The README's "Point your bot at the tap" snippets, run as a user would paste them.

The section is read from README.md; until it is merged there, from docs-draft/point-your-bot.md.
Only the placeholders change: the tap address `http://127.0.0.1:8765` becomes the running tap's
(which forwards to the simulator), and `BINANCE_API_KEY`/`BINANCE_API_SECRET` in the environment
hold a fresh simulator key per snippet. Each snippet's calls must all reach the tap and succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pytest
from binance.client import Client

from monitor.config import TapConfig
from tests.clients.kit import World, world

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Point your bot at the tap"
PLACEHOLDER_TAP = "http://127.0.0.1:8765"
FENCE = re.compile(r"^( *)```(\w+)\n(.*?)^\1```$", re.S | re.M)


def guide_section() -> str:
    """The section from README.md, or from the draft while README lacks it."""
    for path in (ROOT / "README.md", ROOT / "docs-draft" / "point-your-bot.md"):
        text = path.read_text(encoding="utf-8")
        start = text.find(HEADING + "\n")
        if start >= 0:
            end = text.find("\n## ", start + len(HEADING))
            return text[start:end if end >= 0 else len(text)]
    raise AssertionError(f"neither README.md nor the draft has {HEADING!r}")


def blocks(lang: str) -> list[tuple[str, str]]:
    """(the ### heading above it, dedented code) for each fenced block in `lang`."""
    section = guide_section()
    out = []
    for m in FENCE.finditer(section):
        if m.group(2) != lang:
            continue
        heads = re.findall(r"^### (.+)$", section[:m.start()], re.M)
        indent = len(m.group(1))
        code = "\n".join(line[indent:] for line in m.group(3).splitlines())
        out.append((heads[-1] if heads else "", code))
    return out


PYTHON = blocks("python")


def label_of(heading: str) -> str:
    return "snippet-" + re.sub(r"\W+", "-", heading).strip("-").lower()


@pytest.fixture(scope="module")
def w() -> Iterator[World]:
    """An account and key per snippet, each known to the tap by its label."""
    yield from world([label_of(h) for h, _ in PYTHON] + [label_of("freqtrade")], seed=9)


def assert_all_through_tap(w: World, mark: int, label: str, at_least: int) -> None:
    got = [e for e in w.recorder.since(mark, at_least) if e.key == label]
    assert len(got) >= at_least, f"{label}: {len(got)} tap events"
    bad = [(e.method, e.endpoint, e.status, e.raw) for e in got if e.status != 200]
    assert not bad, bad


def test_the_guide_has_the_snippets_we_run() -> None:
    assert [h for h, _ in PYTHON] == ["ccxt", "python-binance", "binance-connector"]
    assert all(PLACEHOLDER_TAP in code or "base_url" in code for _, code in PYTHON)


@pytest.mark.parametrize("heading,code", PYTHON, ids=[h for h, _ in PYTHON])
def test_python_snippet(w: World, heading: str, code: str,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    label = label_of(heading)
    key, secret = w.keys[label]
    monkeypatch.setenv("BINANCE_API_KEY", key)
    monkeypatch.setenv("BINANCE_API_SECRET", secret)
    # The python-binance snippet sets class attributes, as users do; put them back after.
    for attr in ("API_URL", "MARGIN_API_URL"):
        monkeypatch.setattr(Client, attr, getattr(Client, attr))
    mark = w.recorder.mark()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace(PLACEHOLDER_TAP, w.tap_url), f"<guide: {heading}>", "exec"),
             {"__name__": "__guide__"})
    assert out.getvalue().strip(), "the snippet prints what it fetched"
    assert key not in out.getvalue() and secret not in out.getvalue()
    assert_all_through_tap(w, mark, label, at_least=1)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def test_freqtrade_exchange_block_drives_ccxt_sync_and_async_through_the_tap(w: World) -> None:
    """freqtrade's JSON is handed to ccxt as freqtrade hands it: `ccxt_config` to the sync
    object, `ccxt_config` merged with `ccxt_async_config` to the async one."""
    (text,) = [code for head, code in blocks("json") if head == "freqtrade"]
    exchange = json.loads("{" + text.replace(PLACEHOLDER_TAP, w.tap_url) + "}")["exchange"]
    label = label_of("freqtrade")
    key, secret = w.keys[label]
    creds = {"apiKey": key, "secret": secret}
    sync_cfg = exchange["ccxt_config"]
    async_cfg = _merge(exchange["ccxt_config"], exchange["ccxt_async_config"])

    mark = w.recorder.mark()
    api = ccxt.binance({**creds, **sync_cfg})
    api.load_markets()
    assert api.fetch_balance()["USDT"]["free"] > 0

    async def run_async() -> float:
        api_async = ccxt_async.binance({**creds, **async_cfg})
        try:
            await api_async.load_markets()
            return (await api_async.fetch_balance())["USDT"]["free"]
        finally:
            await api_async.close()

    assert asyncio.run(run_async()) > 0
    assert_all_through_tap(w, mark, label, at_least=4)


def test_tap_listen_block_is_a_valid_tap_config() -> None:
    (text,) = [code for _head, code in blocks("toml")]
    tap = TapConfig(**tomllib.loads(text)["sources"]["tap"])
    assert tap.enabled and tap.listen.endswith(":8765")
