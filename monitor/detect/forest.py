"""IsolationForests over window features: fit, score (higher = more anomalous), explain, save.

One forest per group of inputs (calls, failures, callers, orders; `forestinputs`), each input
scaled against the key's own recent level, the score the highest group score over its own
threshold, so one model serves keys of every size and no loud group drowns a quiet one.

scikit-learn's `score_samples` is lower-is-more-abnormal; `score` negates it here, once, so the
rest of Keywatch reads one direction. The thresholds are calibrated on the training scores (the
1 - contamination quantile, per group and combined), kept apart from the model. Each model
ships with a JSON card (features in order, their groups, transform, training range,
thresholds, scikit-learn version, file hash); `load` refuses a card that does not match the
code's inputs, the installed scikit-learn or the model file, rather than scoring garbage.

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
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from monitor.core.errors import KeywatchError
from monitor.detect.forestinputs import (
    AGAINST_NONE,
    GROUP_COLS,
    GROUPS,
    INPUTS,
    LEVEL_WINDOWS,
    MIN_LEVEL_WINDOWS,
    NONE_LEVEL,
    PEAK_WINDOWS,
    SCALED,
    levels,
    raw,
    scaled,
    words,
)

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

FLAT_NAMES = ("left", "right", "feat", "thr", "leafval", "roots", "steps", "denom")

CARD_FORMAT = 2
TRANSFORM = ("per group (calls, failures, callers, orders): counts max(log1p(x + u) - the key's "
             f"level and its peak over {PEAK_WINDOWS} windows, 0) "
             f"(mean log1p(x + 0.5) over its previous {LEVEL_WINDOWS} windows, 0 with fewer "
             f"than {MIN_LEVEL_WINDOWS}; untapped orders and new addresses against none), "
             "ratios log1p(x); u ~ U(0,1) when fitting, 0.5 when scoring; score = "
             "mean + max over groups of the group forest's score / its threshold, inputs "
             "rounded to 1/16 when scoring, each group's score + 2 x the largest excess of an "
             "input over training's largest (log units)")
THRESHOLD_MARGIN = 1.2
EXCESS_WEIGHT = 2.0
# The raw window features the inputs are made of (see forestinputs.GROUPS).
FOREST_FEATURES = INPUTS


class ModelMismatch(KeywatchError):
    """The model card does not describe what this code would feed the model (or is no card)."""


def _sorted(windows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row order by (account, key, minute) and each sorted row's key start."""
    order = np.lexsort((windows["minute"].to_numpy(), windows["key"].astype(str).to_numpy(),
                        windows["account"].astype(str).to_numpy()))
    acct = windows["account"].astype(str).to_numpy()[order]
    key = windows["key"].astype(str).to_numpy()[order]
    n = len(order)
    change = np.flatnonzero((acct[1:] != acct[:-1]) | (key[1:] != key[:-1])) + 1
    start = np.zeros(n, dtype=np.int64)
    start[change] = change
    return order, (np.maximum.accumulate(start) if n else start)


def transform(windows: pd.DataFrame, rng: np.random.Generator | None = None) -> np.ndarray:
    """The model's inputs for a windows frame (any row order; each key's level from its own
    earlier rows in the frame), in the frame's row order.

    Most window counts are 0 in normal traffic; a tree cannot split a constant column, so
    without dithering a value never seen in training (one order the tap never saw) would be
    invisible. Fitting adds U(0,1) noise to every count (jitter for discrete data); scoring
    adds its mean, 0.5, so scores stay deterministic.
    """
    if windows.empty:
        return np.zeros((0, len(INPUTS)))
    order, start = _sorted(windows)
    x = raw(windows)[order]
    u = rng.random(x.shape) if rng is not None else 0.5
    out = np.empty_like(x)
    out[order] = scaled(x, start, u)
    return out


def _distinct_rows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer rows -> (index of each distinct row's first occurrence, each row's distinct
    index): one mixed-radix integer per row when the ranges fit in 62 bits (a 1-D sort, about
    20x faster than `np.unique(axis=0)`), else `np.unique(axis=0)`."""
    lo = codes.min(axis=0)
    span = codes.max(axis=0) - lo + 1
    if float(np.prod(span.astype(float))) < 2.0 ** 62:
        stride = np.concatenate([[1], np.cumprod(span[:-1])]).astype(np.int64)
        _, first, inv = np.unique((codes - lo) @ stride, return_index=True,
                                  return_inverse=True)
    else:
        _, first, inv = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    return first, inv.reshape(-1)


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
    models: list[IsolationForest] | None  # one per group; None when loaded isolated
    threshold: float  # on the combined score
    group_thresholds: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    card: dict[str, Any]
    name: str = "forest"
    top: np.ndarray = field(default_factory=lambda: np.zeros(0))  # training's largest inputs

    @classmethod
    def fit(cls, windows: pd.DataFrame, *, seed: int = 7, contamination: float = 0.0005,
            n_estimators: int = 100, max_samples: int = 1024, source: str = "") -> ForestModel:
        """Fit one forest per group on normal-period windows; each group's threshold = the
        (1 - contamination) quantile of its training scores, the combined one THRESHOLD_MARGIN
        times the highest combined training score."""
        from sklearn.ensemble import IsolationForest

        if len(windows) < 50:
            raise ValueError(f"need at least 50 training windows, got {len(windows)}")
        x = transform(windows, np.random.default_rng(seed))
        xs = transform(windows)
        models, thr = [], []
        for gi, cols in enumerate(GROUP_COLS.values()):
            m = IsolationForest(n_estimators=n_estimators,
                                max_samples=min(max_samples, len(x)), contamination="auto",
                                random_state=seed + gi, n_jobs=1)
            m.fit(x[:, cols])
            models.append(m)
            thr.append(float(np.quantile(-m.score_samples(xs[:, cols]), 1 - contamination)))
        gthr = np.asarray(thr)
        top = np.round(xs.max(axis=0) * 16) / 16
        model = cls(models, 1.0, gthr, np.zeros(0), np.zeros(0), {}, top=top)
        # a finding needs a minute odder than any of the normal period's: the combined score's
        # tail is long (the max of four), so its quantile would page a few times a key-week
        threshold = THRESHOLD_MARGIN * float(model.score_inputs(xs).max())
        order, start = _sorted(windows)
        typical = np.median(levels(raw(windows)[order], start)[0], axis=0)
        center = np.median(x, axis=0)
        q75, q25 = np.percentile(x, [75, 25], axis=0)
        scale = np.maximum(np.maximum(q75 - q25, x.std(axis=0)), 0.1)
        card = {
            "format": CARD_FORMAT, "features": list(FOREST_FEATURES),
            "groups": {g: list(f) for g, f in GROUPS.items()}, "transform": TRANSFORM,
            "threshold": threshold, "threshold_rule": f"{THRESHOLD_MARGIN} x the highest "
            "training score", "group_thresholds": [float(t) for t in gthr],
            "contamination": contamination, "seed": seed, "n_estimators": n_estimators,
            "max_samples": max_samples, "sklearn_version": sklearn_version(),
            "training": {"windows": int(len(x)), "source": source,
                         "keys": int(windows.groupby(["account", "key"], observed=True).ngroups),
                         "start_ms": int(windows["minute"].min()),
                         "end_ms": int(windows["minute"].max()) + 60_000},
            "center": [round(float(v), 6) for v in center],
            "scale": [round(float(v), 6) for v in scale],
            "typical_level": [round(float(v), 6) for v in typical],
            "top": [float(v) for v in top],
        }
        return cls(models, threshold, gthr, center, scale, card, top=top)

    def score(self, windows: pd.DataFrame) -> np.ndarray:
        """Higher = more anomalous, per window of a frame (each key's level from its own
        earlier rows in the frame)."""
        if windows.empty:
            return np.zeros(0)
        return self.score_inputs(transform(windows))

    def group_scores(self, z: np.ndarray) -> np.ndarray:
        """Each group's score / its threshold (rows x groups): scikit-learn's score_samples,
        negated here and only here. Inputs are scored rounded to 1/16 (a 6% step in log
        space), live and replay alike, so a replay's many windows repeat: each distinct row
        is scored once."""
        out = np.zeros((len(z), len(GROUP_COLS)))
        for gi, cols in enumerate(GROUP_COLS.values()):
            codes = np.rint(z[:, cols] * 16).astype(np.int64)
            if len(codes) > 1:  # a live close too: quiet keys' groups read alike (mostly 0)
                first, inv = _distinct_rows(codes)
                s = -self.score_samples(codes[first] / 16, gi)[inv]
            else:
                s = -self.score_samples(codes / 16, gi)
            out[:, gi] = s / self.group_thresholds[gi]
            if len(self.top):  # a tree sends any value past training's largest where that one
                # went: how far past (log units, EXCESS_WEIGHT each) is added to the group
                over = np.maximum(codes / 16 - self.top[cols], 0).max(axis=1, initial=0.0)
                out[:, gi] += EXCESS_WEIGHT * over
        return out

    def score_inputs(self, z: np.ndarray) -> np.ndarray:
        """The combined score: the groups' mean plus their highest (each over its own
        threshold): one extreme group counts in full, many mildly odd ones add up."""
        if not len(z):
            return np.zeros(0)
        g = self.group_scores(z)
        return g.mean(axis=1) + g.max(axis=1)

    def score_samples(self, x: np.ndarray, group: int = 0) -> np.ndarray:
        """scikit-learn's `IsolationForest.score_samples` of one group's forest, bit for bit,
        without its per-tree Python and joblib overhead (about 35 ms a call for a handful of
        live windows): all trees are walked at once in numpy, and leaf depths summed in tree
        order as sklearn does. Models this walk does not cover (feature subsampling) go to
        sklearn."""
        flats = self.__dict__.get("_flat")
        if flats is None:
            assert self.models is not None
            flats = self.__dict__["_flat"] = [_flatten(m) for m in self.models]
        flat = flats[group]
        if self.models is not None and (flat is False or len(x) == 0 or len(x) > 256):
            return self.models[group].score_samples(x)  # large: sklearn's trees are faster
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

    def explain(self, row: pd.Series, top: int = 3, *, z: np.ndarray | None = None,
                level: np.ndarray | None = None) -> list[str]:
        """What drove a window's score, in words: the inputs of its highest-scoring group (and
        of any other group above its own threshold) furthest from training's usual. `z`/`level`:
        the row's inputs and its key's levels (from `transform`/`levels`); without them the row
        is read on its own."""
        vals = row[list(INPUTS)].to_numpy(dtype=float)
        if z is None:  # alone: each count against the training keys' typical level
            x = np.clip(vals, 0, 1e6)[None, :]
            typical = np.asarray(self.card.get("typical_level", np.log1p(0.5)))
            typical = np.where(AGAINST_NONE, NONE_LEVEL, typical)
            z = np.where(SCALED, np.maximum(np.log1p(x + 0.5) - typical, 0), np.log1p(x))[0]
        groups = self.group_scores(z[None, :])[0]
        dist = (z - self.center) / self.scale
        picked: list[tuple[float, int]] = []
        for gi in np.argsort(-groups):
            if picked and groups[gi] < 1.0:  # the top group, then any above its threshold
                break
            cols = list(GROUP_COLS.values())[gi]
            picked += [(float(groups[gi] * abs(dist[i])), int(i)) for i in cols
                       if dist[i] >= 1 and (vals[i] > 0 or SCALED[i])]
        out = []
        for _, i in sorted(picked, reverse=True)[:top]:
            lvl = None if level is None or not np.isfinite(level[i]) else float(level[i])
            lvl = NONE_LEVEL if AGAINST_NONE[i] else lvl
            out.append(words(INPUTS[i], float(vals[i]), lvl if SCALED[i] else 0.0))
        return out or ["an unusual combination of otherwise ordinary activity"]

    def save(self, path: str | Path) -> None:
        from skops import io as skio

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        skio.dump(self.models, path, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
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
        gthr = np.asarray(card["group_thresholds"], dtype=float)
        if isolated:
            flat = _load_flat_in_child(path)
            if flat is not None:
                m = cls(None, float(card["threshold"]), gthr, center, scale, card,
                        top=np.asarray(card["top"], dtype=float))
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
        models = skio.load(path, trusted=untrusted)
        sizes = [len(c) for c in GROUP_COLS.values()]
        got = [getattr(m, "n_features_in_", -1) for m in models] if isinstance(
            models, list) else []
        if got != sizes or len(center) != len(INPUTS) or len(gthr) != len(sizes):
            raise ModelMismatch(f"{path}: model's forests take {got} inputs, code has {sizes}")
        return cls(models, float(card["threshold"]), gthr, center, scale, card,
                   top=np.asarray(card["top"], dtype=float))


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
    if card.get("groups") != {g: list(f) for g, f in GROUPS.items()}:
        problems.append("input groups differ from this code's")
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


def _load_flat_in_child(path: Path) -> list[Any] | None:
    """Each group forest's node arrays, loaded by a child process (None: this model needs
    sklearn)."""
    proc = subprocess.run([sys.executable, "-m", "monitor.detect.forest", str(path)],
                          capture_output=True, timeout=120, check=False)
    if proc.returncode == 3:
        return None
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise ModelMismatch(f"{path}: loading in a child process failed: {' '.join(tail)}")
    flats: list[Any] = []
    with np.load(io.BytesIO(proc.stdout), allow_pickle=False) as z:
        for g in range(len(GROUP_COLS)):
            a = {k: z[f"{g}_{k}"] for k in FLAT_NAMES}
            flats.append((*(a[k] for k in FLAT_NAMES[:6]), int(a["steps"]), a["denom"]))
    return flats


def _child_main(path: str) -> int:
    """`python -m monitor.detect.forest MODEL`: safe-load with skops, write the node arrays."""
    model = ForestModel.load(path)
    assert model.models is not None
    arrays: dict[str, Any] = {}
    for g, m in enumerate(model.models):
        flat = _flatten(m)
        if flat is False:
            return 3
        assert isinstance(flat, tuple)
        arrays.update({f"{g}_{k}": v for k, v in zip(FLAT_NAMES, flat, strict=True)})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    sys.stdout.buffer.write(buf.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1]))
