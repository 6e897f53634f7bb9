"""Colour statistics of an image's central region, stored next to its embedding.

A hue-saturation histogram lifts colour aspects (shirt colours) far above what the pooled
embedding carries. It is computed at ingest from the already decoded image (no extra
decode, well under a millisecond) and kept in the catalog under :data:`COLOUR_LABEL`, so
colour tag models tag and retrain from stored features like every other model.

Bins: pixels with low saturation or value are achromatic and counted by brightness
(:data:`GREY_BINS`); the others by hue (:data:`HUE_BINS`) x saturation (:data:`SAT_BINS`).
The vector is the square root of the normalised histogram (unit L2 norm).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

COLOUR_LABEL = "colour-hs/center-60-v1"
HUE_BINS, SAT_BINS, GREY_BINS = 12, 3, 4
DIM = HUE_BINS * SAT_BINS + GREY_BINS
CENTRE = 0.6  # the central 60% of width and height
SIDE = 32  # the region is resampled to SIDE x SIDE before counting
MIN_SAT, MIN_VAL = 0.2 * 255, 0.15 * 255


def colour_histogram(image: Image.Image) -> np.ndarray:
    """The colour vector (float32, :data:`DIM`) of an RGB image's central region."""
    w, h = image.size
    mx, my = w * (1 - CENTRE) / 2, h * (1 - CENTRE) / 2
    small = image.resize((SIDE, SIDE), Image.Resampling.BILINEAR, box=(mx, my, w - mx, h - my))
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32).reshape(-1, 3)
    hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    grey = (sat < MIN_SAT) | (val < MIN_VAL)
    hue_bin = np.minimum((hue * HUE_BINS / 256).astype(np.int64), HUE_BINS - 1)
    sat_bin = np.minimum(((sat - MIN_SAT) * SAT_BINS / (256 - MIN_SAT)).astype(np.int64), 2)
    grey_bin = np.minimum((val * GREY_BINS / 256).astype(np.int64), GREY_BINS - 1)
    index = np.where(grey, HUE_BINS * SAT_BINS + grey_bin, hue_bin * SAT_BINS + sat_bin)
    counts = np.bincount(index, minlength=DIM).astype(np.float32)
    out: np.ndarray = np.sqrt(counts / counts.sum()).astype(np.float32)
    return out
