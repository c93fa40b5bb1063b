"""IsolationForest over window features: fit, score (higher = more anomalous), explain, save.

scikit-learn's `score_samples` is lower-is-more-abnormal; `score` negates it here, once, so the
rest of Keywatch reads one direction. The threshold is calibrated on the training scores (the
1 - contamination quantile), kept apart from the model. Each model ships with a JSON card
(features in order, transform, training range, threshold, scikit-learn version, file hash);
`load` refuses a card that does not match the code's feature set, the installed scikit-learn or
the model file, rather than scoring garbage.

scikit-learn, SciPy and skops are imported only where a model is fitted, saved or loaded: they
hold about 150 MiB once imported. The service loads with `isolated=True`: a short-lived child
process loads the file with skops (the safe loader, with its type allow-list) and hands back
only the trees' node arrays as a NumPy archive read without pickle; the service scores them
with the NumPy walk below, bit for bit as scikit-learn would, and never imports scikit-learn.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from monitor.core.errors import KeywatchError

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

FLAT_NAMES = ("left", "right", "feat", "thr", "leafval", "roots", "steps", "denom")

CARD_FORMAT = 1
TRANSFORM = "log1p(clip(x, 0, 1e6) + u*count), u ~ U(0,1) when fitting, 0.5 when scoring"
# The forest watches order provenance, where rules are weakest: how many orders the stream
# reports for the key vs how many the tap saw it place, fills, order size against the key's
# usual, and the last hour of untapped orders. A forest over all window features was measured
# too: the loud dimensions (failures, IPs) drowned this quiet one (see models/README.md).
FOREST_FEATURES = ("stream_orders", "accepted_orders", "untapped_orders", "max_order_to_usual",
                   "untapped_1h")
COUNT_FEATURES = np.array([f != "max_order_to_usual" for f in FOREST_FEATURES], dtype=float)


class ModelMismatch(KeywatchError):
    """The model card does not describe what this code would feed the model (or is no card)."""


def transform(windows: pd.DataFrame, rng: np.random.Generator | None = None) -> np.ndarray:
    """log1p of the clipped features, dithered.

    Most window counts are 0 in normal traffic; a tree cannot split a constant column, so
    without dithering a value never seen in training (one order the tap never saw) would be
    invisible. Fitting adds U(0,1) noise to every count (jitter for discrete data); scoring
    adds its mean, 0.5, so scores stay deterministic.
    """
    x = np.clip(windows[list(FOREST_FEATURES)].to_numpy(dtype=float), 0, 1e6)
    u = rng.random(x.shape) if rng is not None else 0.5
    return np.log1p(x + u * COUNT_FEATURES)


def card_path(model_path: str | Path) -> Path:
    p = Path(model_path)
    return p.with_name(p.name.removesuffix(".skops") + ".card.json")


def _make_reproducible(path: Path) -> None:
    """Make the skops file byte-reproducible: skops names array entries after object ids
    (memory addresses) and stamps the current time, so rename the entries in order of first
    use in schema.json and fix every time stamp. Same model in, same bytes (and hash) out."""
    with zipfile.ZipFile(path) as zin:
        entries = {i.filename: zin.read(i.filename) for i in zin.infolist()}
    schema = entries.pop("schema.json").decode()
    names: dict[str, str] = {}
    for m in re.finditer(r'"([^"/]+\.npy)"', schema):
        names.setdefault(m.group(1), f"a{len(names):06d}.npy")
    schema = re.sub(r'"([^"/]+\.npy)"', lambda m: f'"{names.get(m.group(1), m.group(1))}"',
                    schema)
    ids: dict[str, str] = {}
    for m in re.finditer(r'"__id__": ?(\d+)', schema):
        ids.setdefault(m.group(1), str(len(ids) + 1))
    schema = re.sub(r'("__id__": ?)(\d+)', lambda m: m.group(1) + ids[m.group(2)], schema)
    renamed = {names.get(k, k): v for k, v in entries.items()}
    renamed["schema.json"] = schema.encode()
    with zipfile.ZipFile(path, "w") as zout:
        for name, data in sorted(renamed.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(info, data, compresslevel=9)


def _flatten(model: IsolationForest) -> tuple[Any, ...] | bool:
    """All trees' nodes in flat arrays; leaves point to themselves so a fixed number of steps
    walks every tree to its leaf. Leaf value = sklearn's decision path length + average path
    length - 1, computed with the same float operations."""
    from sklearn.ensemble._iforest import _average_path_length

    if model._max_features != model.n_features_in_:
        return False
    lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
    base, steps = 0, 0
    for i, est in enumerate(model.estimators_):
        t = est.tree_
        n = t.node_count
        leaf = t.children_left == -1
        idx = np.arange(n)
        lefts.append(np.where(leaf, idx, t.children_left) + base)
        rights.append(np.where(leaf, idx, t.children_right) + base)
        feats.append(np.where(leaf, 0, t.feature))
        thrs.append(np.where(leaf, np.inf, t.threshold))
        vals.append(model._decision_path_lengths[i] + model._average_path_length_per_tree[i]
                    - 1.0)
        roots.append(base)
        steps = max(steps, int(t.max_depth))
        base += n
    denom = len(model.estimators_) * _average_path_length([model._max_samples])
    return (np.concatenate(lefts), np.concatenate(rights), np.concatenate(feats),
            np.concatenate(thrs), np.concatenate(vals), np.array(roots), steps, denom)


def sklearn_version() -> str:
    """The installed scikit-learn's version, read without importing it."""
    return version("scikit-learn")


@dataclass
class ForestModel:
    model: IsolationForest | None  # None when loaded isolated: the node arrays alone score
    threshold: float
    center: np.ndarray
    scale: np.ndarray
    card: dict[str, Any]
    name: str = "forest"

    @classmethod
    def fit(cls, windows: pd.DataFrame, *, seed: int = 7, contamination: float = 0.0005,
            n_estimators: int = 150, max_samples: int = 1024, source: str = "") -> ForestModel:
        """Fit on normal-period windows; threshold = the (1 - contamination) training quantile."""
        from sklearn.ensemble import IsolationForest

        if len(windows) < 50:
            raise ValueError(f"need at least 50 training windows, got {len(windows)}")
        x = transform(windows, np.random.default_rng(seed))
        model = IsolationForest(n_estimators=n_estimators, max_samples=min(max_samples, len(x)),
                                contamination="auto", random_state=seed, n_jobs=1)
        model.fit(x)
        scores = -model.score_samples(transform(windows))
        threshold = float(np.quantile(scores, 1 - contamination))
        center = np.median(x, axis=0)
        q75, q25 = np.percentile(x, [75, 25], axis=0)
        spread = np.maximum(q75 - q25, x.std(axis=0))
        scale = np.maximum(spread, 0.1)
        card = {
            "format": CARD_FORMAT, "features": list(FOREST_FEATURES), "transform": TRANSFORM,
            "threshold": threshold, "contamination": contamination, "seed": seed,
            "n_estimators": n_estimators, "max_samples": max_samples,
            "sklearn_version": sklearn_version(),
            "training": {"windows": int(len(x)), "source": source,
                         "start_ms": int(windows["minute"].min()),
                         "end_ms": int(windows["minute"].max()) + 60_000},
            "center": [round(float(v), 6) for v in center],
            "scale": [round(float(v), 6) for v in scale],
        }
        return cls(model, threshold, center, scale, card)

    def score(self, windows: pd.DataFrame) -> np.ndarray:
        """Higher = more anomalous (scikit-learn's score_samples, negated here and only here)."""
        if windows.empty:
            return np.zeros(0)
        x = transform(windows)
        if len(x) > 256:  # a replay: many windows repeat, score each distinct row once
            uniq, inv = np.unique(x, axis=0, return_inverse=True)
            return -self.score_samples(uniq)[inv.reshape(-1)]
        return -self.score_samples(x)

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        """scikit-learn's `IsolationForest.score_samples`, bit for bit, without its per-tree
        Python and joblib overhead (about 35 ms a call for a handful of live windows): all
        trees are walked at once in numpy, and leaf depths summed in tree order as sklearn
        does. Models this walk does not cover (feature subsampling) go to sklearn."""
        flat = self.__dict__.get("_flat")
        if flat is None:
            assert self.model is not None
            flat = self.__dict__["_flat"] = _flatten(self.model)
        if self.model is not None and (flat is False or len(x) == 0 or len(x) > 256):
            return self.model.score_samples(x)  # large: sklearn's trees are faster
        assert isinstance(flat, tuple)
        if len(x) > 256:
            return np.concatenate([self._walk(flat, x[i:i + 256])
                                   for i in range(0, len(x), 256)])
        return self._walk(flat, x)

    @staticmethod
    def _walk(flat: tuple[Any, ...], x: np.ndarray) -> np.ndarray:
        left, right, feat, thr, leafval, roots, steps, denom = flat
        x32 = np.asarray(x, dtype=np.float32)
        rows = np.arange(len(x32))[:, None]
        node = np.broadcast_to(roots, (len(x32), len(roots))).copy()
        for _ in range(steps):
            node = np.where(x32[rows, feat[node]] <= thr[node], left[node], right[node])
        depths = np.cumsum(leafval[node], axis=1)[:, -1]  # sequential, in tree order
        return -(2 ** (-np.divide(depths, denom, out=np.ones_like(depths), where=denom != 0)))

    def explain(self, row: pd.Series, top: int = 3) -> list[str]:
        """Which features drove a window's score, in words: value vs the training median."""
        x = transform(pd.DataFrame([row[list(FOREST_FEATURES)].astype(float)]))[0]
        z = (x - self.center) / self.scale
        order = np.argsort(-np.abs(z))[:top]
        words = []
        for i in order:
            if abs(z[i]) < 1:
                continue
            usual = float(np.expm1(self.center[i])) - 0.5 * COUNT_FEATURES[i]
            direction = "above" if z[i] > 0 else "below"
            name = FOREST_FEATURES[i]
            words.append(f"{name} {float(row[name]):g} is {direction} its usual "
                         f"{max(usual, 0):.3g} ({abs(z[i]):.1f} spreads)")
        return words or ["an unusual combination of otherwise ordinary features"]

    def save(self, path: str | Path) -> None:
        from skops import io as skio

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        skio.dump(self.model, path, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
        _make_reproducible(path)
        card = {**self.card, "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        card_path(path).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
        self.card = card

    @classmethod
    def load(cls, path: str | Path, *, isolated: bool = False) -> ForestModel:
        """Load a model whose card matches this code; `isolated`: without importing
        scikit-learn here (see the module docstring)."""
        path = Path(path)
        card = _checked_card(path)
        center, scale = np.asarray(card["center"]), np.asarray(card["scale"])
        if isolated:
            flat = _load_flat_in_child(path)
            if flat is not None:
                m = cls(None, float(card["threshold"]), center, scale, card)
                m.__dict__["_flat"] = flat
                return m
        from skops import io as skio

        allowed = {"sklearn.ensemble._iforest.IsolationForest",
                   "sklearn.tree._classes.ExtraTreeRegressor",
                   "sklearn.tree._tree.Tree", "numpy.dtype", "numpy.ndarray",
                   "numpy.random.mtrand.RandomState", "builtins.int", "builtins.float"}
        untrusted = skio.get_untrusted_types(file=path)
        bad = [t for t in untrusted if t not in allowed]
        if bad:
            raise ModelMismatch(f"{path}: unexpected types in the model file: {bad}")
        model = skio.load(path, trusted=untrusted)
        n = len(FOREST_FEATURES)
        if getattr(model, "n_features_in_", n) != n or len(center) != n or len(scale) != n:
            raise ModelMismatch(f"{path}: model expects {model.n_features_in_} features, "
                                f"code has {n}")
        return cls(model, float(card["threshold"]), center, scale, card)


def check_card(path: str | Path) -> None:
    """Raise `ModelMismatch` unless the model and its card exist and match this code: what
    check-config tells before `run` would fall back to rules only."""
    _checked_card(Path(path))


def _checked_card(path: Path) -> dict[str, Any]:
    cpath = card_path(path)
    if not path.is_file() or not cpath.is_file():
        raise ModelMismatch(f"{path}: model or card {cpath.name} missing; rebuild with "
                            "`keywatch train` (or `make model` for the default)")
    try:
        card = json.loads(cpath.read_bytes())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ModelMismatch(f"{cpath}: the model card is not JSON{where}; restore it with the "
                            "model, or rebuild both with `keywatch train`") from None
    except OSError as exc:
        raise ModelMismatch(f"{cpath}: cannot read the model card ({exc.strerror})") from None
    if not isinstance(card, dict):
        raise ModelMismatch(f"{cpath}: the model card is JSON but not an object; rebuild it "
                            "with `keywatch train`")
    problems = []
    if card.get("format") != CARD_FORMAT:
        problems.append(f"card format {card.get('format')} != {CARD_FORMAT}")
    if card.get("features") != list(FOREST_FEATURES):
        problems.append("feature names/order differ from this code's FOREST_FEATURES")
    if card.get("transform") != TRANSFORM:
        problems.append(f"transform {card.get('transform')!r} != {TRANSFORM!r}")
    if card.get("sklearn_version") != sklearn_version():
        problems.append(f"trained with scikit-learn {card.get('sklearn_version')}, "
                        f"installed {sklearn_version()}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if card.get("model_sha256") != digest:
        problems.append("model file hash differs from the card (file replaced or corrupt)")
    if problems:
        raise ModelMismatch(f"{path}: refusing to load: " + "; ".join(problems)
                            + ". Retrain with `keywatch train`.")
    return card


def _load_flat_in_child(path: Path) -> tuple[Any, ...] | None:
    """The trees' node arrays, loaded by a child process (None: this model needs sklearn)."""
    proc = subprocess.run([sys.executable, "-m", "monitor.detect.forest", str(path)],
                          capture_output=True, timeout=120, check=False)
    if proc.returncode == 3:
        return None
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise ModelMismatch(f"{path}: loading in a child process failed: {' '.join(tail)}")
    with np.load(io.BytesIO(proc.stdout), allow_pickle=False) as z:
        arrays = {k: z[k] for k in FLAT_NAMES}
    return (*(arrays[k] for k in FLAT_NAMES[:6]), int(arrays["steps"]), arrays["denom"])


def _child_main(path: str) -> int:
    """`python -m monitor.detect.forest MODEL`: safe-load with skops, write the node arrays."""
    model = ForestModel.load(path)
    assert model.model is not None
    flat = _flatten(model.model)
    if flat is False:
        return 3
    assert isinstance(flat, tuple)
    buf = io.BytesIO()
    np.savez(buf, **dict(zip(FLAT_NAMES, flat, strict=True)))
    sys.stdout.buffer.write(buf.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1]))
