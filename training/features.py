"""Feature vectors of a tag model, built from what the catalog stores per asset.

``visual``: the shared embedder's pooled vector, power-normalised (signed square root)
and L2-normalised, which suits linear discriminants better than raw pooled activations.
``visual+colour``: that, plus the colour histogram of the central region
(:mod:`indexer.colour`) scaled by :data:`COLOUR_WEIGHT`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from indexer.catalog import Catalog
from indexer.colour import COLOUR_LABEL

#: Weight of the colour histogram (unit norm) against the visual vector (unit norm):
#: 0.5 measured best at 30 examples per colour (benchmarks/quality/NOTES.md).
COLOUR_WEIGHT = 0.5


def power_normalise(x: np.ndarray) -> np.ndarray:
    """Signed square root, then unit L2 norm per row (float32, in few passes)."""
    y = np.sqrt(np.abs(np.asarray(x, dtype=np.float32)))
    np.copysign(y, x, out=y)
    norm = np.sqrt(np.einsum("ij,ij->i", y, y))
    np.maximum(norm, 1e-12, out=norm)
    y /= norm[:, None]
    return y


def labels_for(features: str, embedder: str) -> tuple[str, ...]:
    """The stored vector labels a model with ``features`` needs."""
    return (embedder, COLOUR_LABEL) if features == "visual+colour" else (embedder,)


def combine(features: str, parts: Sequence[np.ndarray]) -> np.ndarray:
    """The model's feature matrix from the stored vectors (in :func:`labels_for` order)."""
    visual = power_normalise(parts[0])
    if features == "visual+colour":
        return np.hstack([visual, COLOUR_WEIGHT * parts[1].astype(np.float32)])
    return visual


def stored(
    catalog: Catalog, keys: Sequence[int], labels: Sequence[str]
) -> tuple[list[np.ndarray], list[int]]:
    """Current stored vectors per label for ``keys``; also the keys that lack one."""
    parts: list[np.ndarray] = []
    missing: set[int] = set()
    for label in labels:
        rows = catalog.current_embeddings(keys, label)
        missing.update(k for k in keys if k not in rows)
        parts.append(np.stack([rows[k] for k in keys if k in rows]) if rows else np.zeros((0, 0)))
    if missing:
        return [], sorted(missing)
    return parts, []
