"""Tag-model quality on the clothing sample, with the package's own training code.

Run from the repository root::

    .venv/bin/python benchmarks/quality/tag_models.py [--home /tmp/st-quality] \
        [--seeds 3] [--out benchmarks/results/tag_models.json]

1. Ingests ``../shared/datasets/clothing`` with the default embedder into ``--home``
   (once; later runs reuse the stored vectors), so the features are exactly what tagging
   sees: one pooled vector per photo plus the colour statistics.
2. **Closed set**: 15 garment types, n = 10 / 30 / 50 examples per type drawn per seed,
   every other photo of those types held out and only scored. Top-1 accuracy of
   ``training.classifier.fit`` (shrinkage by CV inside the examples) against the
   baseline (scikit-learn logistic regression, C=1, on the raw pooled vectors), and
   the calibration error on the held-out photos.
3. **Open set**: 10 types x 30 examples; out-of-model photos are the ``Other`` and
   ``Not sure`` ones and every photo of the 5 types left out. Share of them that get no
   tag, and precision / recall of the tags given to held-out in-model photos.
4. **Training time** of a 50-tag x 50-example model (photos drawn with replacement,
   tags at random: the worst case), whole fit with cross-validation.

Nothing is tuned on held-out photos: they are only scored.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from indexer.colour import COLOUR_LABEL
from smarttags.service import SmartTags
from smarttags.settings import Settings
from training.classifier import expected_calibration_error, fit
from training.features import combine

REPO = Path(__file__).resolve().parents[2]
DATASET = REPO.parent / "shared/datasets/clothing"
OUT_OF_MODEL = ("Other", "Not sure")


def load(home: Path, dataset: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pooled vectors, colour vectors, garment labels, kids flags) for every photo."""
    with (dataset / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))
    with SmartTags(Settings(home=home)) as svc:
        svc.ingest([dataset], prefix="/clothing", progress=True)  # a no-op when current
        keys = svc.catalog.asset_keys(f"/clothing/{r['file']}" for r in rows)
        order = [keys[f"/clothing/{r['file']}"] for r in rows]
        vis = svc.catalog.current_embeddings(order, svc.embedder_name())
        col = svc.catalog.current_embeddings(order, COLOUR_LABEL)
    return (
        np.stack([vis[k] for k in order]),
        np.stack([col[k] for k in order]),
        np.array([r["label"] for r in rows]),
        np.array([r["kids"] == "True" for r in rows]),
    )


def sample(labels: np.ndarray, types: list[str], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.choice(np.flatnonzero(labels == t), n, replace=False) for t in types]
    )


def closed_set(x: np.ndarray, labels: np.ndarray, seeds: int) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    types = sorted(t for t in set(labels) if t not in OUT_OF_MODEL)
    feats = combine("visual", [x])
    out: dict[str, Any] = {}
    for n in (10, 30, 50):
        rows = []
        for seed in range(seeds):
            train = sample(labels, types, n, seed)
            held = np.setdiff1d(np.flatnonzero(np.isin(labels, types)), train)
            y = np.array([types.index(t) for t in labels[train]])
            yh = np.array([types.index(t) for t in labels[held]])
            started = time.perf_counter()
            f = fit(feats[train], y, tuple(types))
            seconds = time.perf_counter() - started
            proba = f.classifier.proba(feats[held])
            base = LogisticRegression(C=1.0, max_iter=2000).fit(x[train], y)
            rows.append(
                {
                    "seed": seed,
                    "lda": float((proba.argmax(1) == yh).mean()),
                    "baseline": float((base.predict(x[held]) == yh).mean()),
                    "ece_held_out": expected_calibration_error(proba.max(1), proba.argmax(1) == yh),
                    "cv_accuracy": f.cv.accuracy,
                    "shrinkage": f.cv.shrinkage,
                    "fit_seconds": seconds,
                }
            )
        out[str(n)] = {"runs": rows, **_means(rows, ("lda", "baseline", "ece_held_out"))}
    return out


def kids_aspect(x: np.ndarray, kids: np.ndarray, seeds: int) -> dict[str, Any]:
    """Adult vs kids over all photos: n examples per side, the rest held out."""
    from sklearn.linear_model import LogisticRegression

    feats = combine("visual", [x])
    side = np.where(kids, "kids", "adult")
    out: dict[str, Any] = {}
    for n in (10, 30, 50):
        rows = []
        for seed in range(seeds):
            train = sample(side, ["adult", "kids"], n, seed)
            held = np.setdiff1d(np.arange(len(side)), train)
            y, yh = kids[train].astype(np.int64), kids[held].astype(np.int64)
            f = fit(feats[train], y, ("adult", "kids"))
            pred = f.classifier.proba(feats[held]).argmax(1)
            base = LogisticRegression(C=1.0, max_iter=2000).fit(x[train], y).predict(x[held])
            rows.append(
                {
                    "seed": seed,
                    "lda": _balanced(pred, yh),
                    "baseline": _balanced(base, yh),
                }
            )
        out[str(n)] = {"runs": rows, **_means(rows, ("lda", "baseline"))}
    return out


def _balanced(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([(pred[y == c] == c).mean() for c in (0, 1)]))


def open_set(x: np.ndarray, labels: np.ndarray, seeds: int) -> dict[str, Any]:
    types = sorted(t for t in set(labels) if t not in OUT_OF_MODEL)
    feats = combine("visual", [x])
    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        known = sorted(rng.choice(types, 10, replace=False).tolist())
        train = sample(labels, known, 30, seed)
        y = np.array([known.index(t) for t in labels[train]])
        f = fit(feats[train], y, tuple(known))
        inm = np.setdiff1d(np.flatnonzero(np.isin(labels, known)), train)
        oom = np.flatnonzero(~np.isin(labels, known))
        p_in = f.classifier.predict(feats[inm])
        p_out = f.classifier.predict(feats[oom])
        truth = np.array([known.index(t) for t in labels[inm]])
        given = p_in.applied
        correct = given & (p_in.tag == truth)
        wrong_out = int(p_out.applied.sum())
        conf_all = np.r_[p_in.confidence[given], p_out.confidence[p_out.applied]]
        ok_all = np.r_[(p_in.tag == truth)[given], np.zeros(wrong_out, bool)]
        rows.append(
            {
                "seed": seed,
                "known": known,
                "out_of_model_photos": len(oom),
                "out_of_model_untagged": float(1 - p_out.applied.mean()),
                "in_model_precision": float(correct.sum() / max(given.sum(), 1)),
                "in_model_recall": float(correct.mean()),
                "precision_all_tags": float(correct.sum() / max(given.sum() + wrong_out, 1)),
                "ece_given_tags": expected_calibration_error(conf_all, ok_all),
            }
        )
    keys = (
        "out_of_model_untagged",
        "in_model_precision",
        "in_model_recall",
        "precision_all_tags",
        "ece_given_tags",
    )
    return {"runs": rows, **_means(rows, keys)}


def timing(x: np.ndarray, repeats: int = 2) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(x), 2500)
    feats = combine("visual", [x[idx]])
    y = np.repeat(np.arange(50), 50)
    rng.shuffle(y)
    tags = tuple(f"t{i}" for i in range(50))
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fit(feats, y, tags)
        seconds.append(time.perf_counter() - started)
    return {"tags": 50, "examples_per_tag": 50, "seconds": seconds}


def _means(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    return {
        k: {
            "mean": float(np.mean([r[k] for r in rows])),
            "std": float(np.std([r[k] for r in rows])),
        }
        for k in keys
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", type=Path, default=Path("/tmp/st-quality"))
    ap.add_argument("--dataset", type=Path, default=DATASET)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/tag_models.json")
    ap.add_argument("--only", choices=("closed", "kids", "open", "timing"), default=None)
    args = ap.parse_args()
    x, _colour, labels, kids = load(args.home, args.dataset)
    result: dict[str, Any] = {"photos": len(labels)}
    if args.only in (None, "closed"):
        result["closed_set"] = closed_set(x, labels, args.seeds)
        for n, r in result["closed_set"].items():
            print(
                f"n={n}: lda {r['lda']['mean']:.3f} ± {r['lda']['std']:.3f}, baseline "
                f"{r['baseline']['mean']:.3f} ± {r['baseline']['std']:.3f}, held-out ECE "
                f"{r['ece_held_out']['mean']:.3f}"
            )
    if args.only in (None, "kids"):
        result["kids_aspect"] = kids_result = kids_aspect(x, kids, args.seeds)
        for n, r in kids_result.items():
            print(
                f"kids aspect n={n}: lda {r['lda']['mean']:.3f} ± {r['lda']['std']:.3f}, "
                f"baseline {r['baseline']['mean']:.3f} ± {r['baseline']['std']:.3f} "
                "(balanced accuracy)"
            )
    if args.only in (None, "open"):
        result["open_set"] = o = open_set(x, labels, args.seeds)
        print(
            f"open set: {o['out_of_model_untagged']['mean']:.3f} of out-of-model photos "
            f"untagged; in-model precision {o['in_model_precision']['mean']:.3f}, recall "
            f"{o['in_model_recall']['mean']:.3f}; precision over all tags given "
            f"{o['precision_all_tags']['mean']:.3f}"
        )
    if args.only in (None, "timing"):
        result["timing"] = t = timing(x)
        print(f"50 x 50 fit: {', '.join(f'{s:.2f}s' for s in t['seconds'])}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
