"""The forest's inputs: scaled against each key's own level (so keys of any size compare), said
in words a user reads, and `keywatch train --store --config --account` on a real store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.detect.anomaly import ForestDetector
from monitor.detect.candidate import Windows
from monitor.detect.forest import FOREST_FEATURES, ForestModel
from monitor.detect.forestinputs import (
    INPUTS,
    LEVEL_WINDOWS,
    PEAK_WINDOWS,
    levels,
    peaks,
    raw,
    scaled,
)
from monitor.features import FEATURES
from monitor.store import SQLiteStore, events_from_frame
from monitor.world.evaluate.generator import generate
from tests.configs import Account, Key, config_toml
from tests.factories import fake_secret

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_785_000_000_000
REQ = INPUTS.index("requests")
ENV = {"KW_TEST_KEY": fake_secret("key"), "KW_TEST_SECRET": fake_secret("secret")}


def _key(key: str, requests: np.ndarray) -> pd.DataFrame:
    """One key's windows: only `requests` varies (weight follows it), everything else 0."""
    n = len(requests)
    d = pd.DataFrame({f: np.zeros(n) for f in FEATURES})
    d["requests"] = requests.astype(float)
    d["weight_max"] = requests * 2.0
    d["distinct_endpoints"] = 3.0
    d["distinct_ips"] = 1.0
    d.insert(0, "minute", T0 + 60_000 * np.arange(n))
    d.insert(0, "key", key)
    d.insert(0, "account", "a")
    return d


@pytest.fixture(scope="module")
def shipped() -> ForestModel:
    return ForestModel.load(ROOT / "models" / "default.skops")


def test_keys_of_different_sizes_read_alike(shipped: ForestModel) -> None:
    """A key making 3,000 calls a minute and one making 3, each 10x its usual in its last
    minute: the same input (about log 10; log1p(x + 0.5) damps a small count: log 7 for
    3 -> 30), not log 3,000 vs log 3, and both
    spikes above both keys' ordinary minutes."""
    rng = np.random.default_rng(1)
    big = np.r_[rng.integers(2900, 3100, 40), 30_000]
    small = np.r_[np.full(40, 3), 30]
    frame = pd.concat([_key("big", big), _key("small", small)], ignore_index=True)
    shuffled = frame.sample(frac=1.0, random_state=3)  # the public path: a frame, any order
    s = pd.Series(shipped.score(shuffled), index=shuffled.index).sort_index().to_numpy()
    x = raw(frame)
    start = np.r_[np.zeros(41, dtype=np.int64), np.full(41, 41)]
    inp = scaled(x, start)
    spike_big, spike_small = inp[40, REQ], inp[81, REQ]
    assert abs(spike_big - np.log(10)) < 0.1 and abs(spike_small - np.log(31.5 / 4.5)) < 0.01
    assert abs(inp[10:40, REQ]).max() < 0.1 and abs(inp[51:81, REQ]).max() < 1e-3
    ordinary = np.r_[s[10:40], s[51:81]]
    assert min(s[40], s[81]) > ordinary.max()
    # without the key's level the big key's ordinary minutes would be the outliers
    assert np.log1p(3000) - np.log1p(3) > 6


def test_level_is_the_same_live_and_replayed() -> None:
    """The level over the kept history (live: the last LEVEL_WINDOWS+ windows) equals the one
    over the whole key (replay), bit for bit."""
    x = np.abs(np.random.default_rng(2).normal(5, 4, (300, len(INPUTS))))
    whole, _ = levels(x, np.zeros(300, dtype=np.int64))
    tail = x[-(LEVEL_WINDOWS + 5):]
    live, count = levels(tail, np.zeros(len(tail), dtype=np.int64))
    assert (count[-5:] == LEVEL_WINDOWS).all()
    assert np.array_equal(whole[-5:], live[-5:])


def test_peak_is_the_max_over_the_keys_previous_windows() -> None:
    """A burst that recurs within PEAK_WINDOWS reads 0 the next time (an hourly job is the
    key's normal); the doubling-table max equals the plain one, per key."""
    x = np.random.default_rng(0).integers(0, 50, (400, 3)).astype(float)
    start = np.r_[np.zeros(150, dtype=np.int64), np.full(250, 150)]
    got, q = peaks(x, start), np.log1p(x + 0.5)
    for i in range(400):
        lo = max(i - PEAK_WINDOWS, int(start[i]))
        want = q[lo:i].max(axis=0) if i > lo else np.full(3, -np.inf)
        assert np.array_equal(got[i], want), i
    calls = np.full(201, 3.0)
    calls[[20, 80, 200]] = 200  # 80: 60 windows after the first; 200: 120 after the second
    x = calls[:, None] * np.ones(len(INPUTS))
    inp = scaled(x, np.zeros(len(x), dtype=np.int64))[:, REQ]
    assert inp[20] > 3 and inp[80] == 0 and inp[200] > 3


def test_explanation_names_the_inputs_in_words(shipped: ForestModel) -> None:
    w = _key("small", np.r_[np.full(40, 3), 120])
    w.loc[40, ["untapped_orders", "untapped_1h", "distinct_ips", "new_ips"]] = [3, 3, 3, 2]
    cands = ForestDetector(shipped).on_windows(Windows(w))
    assert [c.anchor for c in cands] == [int(w["minute"].iloc[40])]
    reasons = cands[0].evidence["reasons"]
    text = " | ".join(reasons)
    assert reasons[0] == ("calls to the API 34.4x the usual for this key (120 in the minute, "
                          "usually about 3)"), text
    assert "3 addresses calling in the minute (usually about 1)" in reasons, text
    assert all("_" not in r for r in reasons), reasons  # words, not column names
    assert cands[0].summary.endswith(reasons[0] + ".")


def test_train_from_a_store_writes_a_model_that_loads_and_scores(tmp_path: Path) -> None:
    syn = generate(keys=2, days=0.1, seed=3)
    db = tmp_path / "kw.db"
    store = SQLiteStore(db)
    store.insert_events(events_from_frame(syn.events))
    store.close()
    cfg = tmp_path / "keywatch.toml"
    cfg.write_text(config_toml({"store_path": db}, None, [Account("acct0", "acct0-monitor", [
        Key("acct0-monitor", "monitoring", "KW_TEST_KEY", "KW_TEST_SECRET"),
        Key("bot0", "spot-bot"), Key("bot1", "spot-bot")])]))
    out = tmp_path / "acct0.skops"
    res = CliRunner().invoke(app, ["train", "--store", str(db), "--config", str(cfg),
                                   "--account", "acct0", "--out", str(out), "--seed", "5"], env=ENV)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "wrote" in res.stdout
    m = ForestModel.load(out, isolated=True)
    assert m.card["features"] == list(FOREST_FEATURES)
    assert "account acct0" in m.card["training"]["source"] and m.card["seed"] == 5
    w = _key("bot0", np.r_[np.full(40, 3), 300])
    w.loc[40, ["distinct_ips", "new_ips", "fail_auth"]] = [4, 3, 12]
    s = m.score(w)
    assert np.isfinite(s).all() and s[-1] > m.threshold > np.median(s[:-1])
    res = CliRunner().invoke(app, ["train", "--store", str(db), "--config", str(cfg),
                                   "--account", "nobody", "--out", str(out)], env=ENV)
    assert res.exit_code == 1 and "no events" in res.stderr
