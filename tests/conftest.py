"""Shared fixtures: settings in a temp home, image files made on the fly, the clothing sample."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smarttags.service import SmartTags
from smarttags.settings import Settings

pytest_plugins = ["tests.conftest_opensearch"]

REPO = Path(__file__).resolve().parent.parent


def clothing_dir() -> Path:
    return Path(os.environ.get("SMARTTAGS_TEST_DATASET", REPO.parent / "shared/datasets/clothing"))


@pytest.fixture(scope="session")
def clothing() -> Path:
    """The CC0 clothing sample. Missing data is an error, never a silent skip."""
    path = clothing_dir()
    if not (path / "labels.csv").exists():
        pytest.fail(
            f"clothing sample not found at {path}; put ../shared beside the repo "
            "or set SMARTTAGS_TEST_DATASET"
        )
    return path


@pytest.fixture(scope="session")
def clothing_labels(clothing: Path) -> dict[str, str]:
    with (clothing / "labels.csv").open() as f:
        return {row["file"]: row["label"] for row in csv.DictReader(f)}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with the fake embedder in a fresh home (fast)."""
    return Settings(home=tmp_path / "home", embedder="fake", threads=2, batch_size=4)


@pytest.fixture
def app(settings: Settings) -> Iterator[SmartTags]:
    with SmartTags(settings) as svc:
        yield svc


def jpeg_bytes(
    size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30), **save: object
) -> bytes:
    """A JPEG with a gradient (so draft decoding and resizing have something to do)."""
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None]
    arr = np.broadcast_to(x, (h, w, 3)).copy()
    arr[..., 0] = color[0]
    arr[: h // 2, :, 1] = color[1]
    im = Image.fromarray(arr, "RGB")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """Write an image file: ``make_image("a/b.jpg", size=(w, h), color=(r, g, b))``."""
    root = tmp_path / "photos"

    def make(
        rel: str,
        size: tuple[int, int] = (64, 48),
        color: tuple[int, int, int] = (200, 30, 30),
        **save: object,
    ) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() in (".jpg", ".jpeg"):
            path.write_bytes(jpeg_bytes(size, color, **save))
        else:
            Image.new("RGB", size, color).save(path, **save)
        return path

    return make
