"""A deterministic, fast embedder for tests: no model, just pixel statistics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


class FakeEmbedder:
    """64-d vectors from a 4x4 colour thumbnail plus channel statistics.

    Deterministic (same pixels, same vector) and similar images get similar vectors,
    which is enough to test storage, search and plumbing in milliseconds.
    """

    name = "fake"
    dim = 64
    input_size: int | None = 16

    def prepare(self, image: Image.Image) -> np.ndarray:
        small = np.asarray(image.resize((4, 4), Image.Resampling.BILINEAR), dtype=np.float32)
        flat = small.reshape(-1) / 255.0  # 48 values
        stats = np.concatenate([small.mean(axis=(0, 1)), small.std(axis=(0, 1))]) / 255.0
        extra = np.linspace(0.01, 0.1, self.dim - 54, dtype=np.float32)
        return np.concatenate([flat, stats, extra]).astype(np.float32)

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        return np.stack(batch).astype(np.float32)
