"""The forest: scores point the right way, explanations are words, and the card guards loading."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monitor.detect.forest import (
    FOREST_FEATURES,
    ForestModel,
    ModelMismatch,
    card_path,
    transform,
)
from monitor.detect.forestinputs import GROUP_COLS, GROUPS
from monitor.features import FeatureContext, windows
from monitor.world.evaluate.generator import generate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ForestModel, Path, object]:
    syn = generate(keys=2, days=0.5, seed=42)
    w = windows(syn.events, FeatureContext.from_config(syn.config))
    model = ForestModel.fit(w, seed=3, n_estimators=50, max_samples=256)
    path = tmp_path_factory.mktemp("m") / "m.skops"
    model.save(path)
    return model, path, w


def test_round_trip_scores_identically(trained: tuple) -> None:
    model, path, w = trained
    again = ForestModel.load(path)
    np.testing.assert_array_equal(model.score(w), again.score(w))
    assert again.threshold == model.threshold
    card = json.loads(card_path(path).read_text())
    assert card["features"] == list(FOREST_FEATURES)
    assert {"training", "threshold", "sklearn_version", "contamination",
            "model_sha256"} <= set(card)


def test_higher_is_more_anomalous_and_explained(trained: tuple) -> None:
    model, _, w = trained
    i = len(w) // 2
    odd = w.copy()
    odd.loc[odd.index[i], ["untapped_orders", "untapped_1h", "max_order_to_usual"]] = [3, 6, 3.5]
    assert model.score(odd)[i] > model.score(w)[i]
    words = model.explain(odd.iloc[i], z=transform(odd)[i])
    assert "6 orders the tap never saw in the key's last hour (usually none)" in words, words


@pytest.mark.parametrize("tamper, message", [
    (lambda c, p: c.update(features=list(reversed(c["features"]))), "feature names/order"),
    (lambda c, p: c["groups"].pop("callers"), "input groups"),
    (lambda c, p: c.update(sklearn_version="0.0.1"), "trained with scikit-learn 0.0.1"),
    (lambda c, p: c.update(transform="identity"), "transform"),
    (lambda c, p: p.write_bytes(p.read_bytes() + b"\0"), "hash differs"),
    (lambda c, p: card_path(p).unlink(), "missing"),
])
@pytest.mark.parametrize("isolated", [False, True])
def test_mismatch_refused(trained: tuple, tmp_path: Path, tamper, message: str,
                          isolated: bool) -> None:
    _, path, _ = trained
    p = tmp_path / "m.skops"
    shutil.copy(path, p)
    shutil.copy(card_path(path), card_path(p))
    card = json.loads(card_path(p).read_text())
    tamper(card, p)
    if card_path(p).exists():
        card_path(p).write_text(json.dumps(card))
    with pytest.raises(ModelMismatch, match=message):
        ForestModel.load(p, isolated=isolated)


def test_isolated_load_scores_bit_for_bit(trained: tuple) -> None:
    """The service's load (child process, node arrays only) scores exactly as sklearn does,
    for live-sized and replay-sized inputs."""
    model, path, w = trained
    light = ForestModel.load(path, isolated=True)
    assert light.models is None and light.threshold == model.threshold
    x = np.random.default_rng(5).normal(0.5, 1.5, (700, len(FOREST_FEATURES)))
    for g, cols in enumerate(GROUP_COLS.values()):
        for n in (0, 1, 17, 256, 700):
            np.testing.assert_array_equal(
                light.score_samples(x[:n, cols], g),
                model.models[g].score_samples(x[:n, cols]) if n else np.zeros(0))
    np.testing.assert_array_equal(light.score(w), model.score(w))


def test_service_process_never_imports_sklearn() -> None:
    code = ("import sys; import monitor.service.pipeline, monitor.collect.collector;"
            "from monitor.detect.forest import ForestModel;"
            f"m = ForestModel.load({str(ROOT / 'models' / 'default.skops')!r}, isolated=True);"
            "print(sorted(k for k in ('sklearn', 'scipy', 'skops') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_shipped_model_loads_and_matches_its_recipe() -> None:
    model = ForestModel.load(ROOT / "models" / "default.skops")
    assert model.card["features"] == list(FOREST_FEATURES)
    assert model.card["seed"] == 7 and model.card["training"]["windows"] > 10_000
    assert model.card["groups"] == {g: list(f) for g, f in GROUPS.items()}
