"""Embedders: the registry, the fake embedder, EfficientNet-Lite0 (ONNX and torch), and
sentence-transformers with a tiny CLIP model built on the spot."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.embedders import (
    EmbedderOptions,
    ImageEmbedder,
    available_embedders,
    create_embedder,
)
from indexer.embedders.efficientnet import EXPORT_VERSION
from indexer.embedders.fake import FakeEmbedder
from indexer.errors import EmbedderError
from indexer.images import decode
from tests.fixtures_clip import IMAGE_SIZE, PROJECTION_DIM, make_tiny_clip

ONNX_FILE = f"efficientnet-lite0-pooled-v{EXPORT_VERSION}.onnx"


# --- registry -----------------------------------------------------------------------------


def test_available_embedders() -> None:
    assert available_embedders() == [
        "efficientnet-lite0",
        "fake",
        "sentence-transformers:<model name or local path>",
    ]


@pytest.mark.parametrize("name", ["efficientnet-lite", "", "Fake", "sentence-transformers:"])
def test_unknown_embedder_lists_the_valid_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(EmbedderError) as info:
        create_embedder(name, EmbedderOptions(models_dir=tmp_path))
    assert str(info.value) == (
        f"unknown embedder {name!r}; choose one of: efficientnet-lite0, fake, "
        "sentence-transformers:<model name or local path> (set SMARTTAGS_EMBEDDER)"
    )
    assert not list(tmp_path.iterdir())


# --- fake ---------------------------------------------------------------------------------


def test_fake_embedder_values(tmp_path: Path) -> None:
    emb = create_embedder("fake", EmbedderOptions(models_dir=tmp_path))
    assert isinstance(emb, FakeEmbedder)
    assert isinstance(emb, ImageEmbedder)
    assert (emb.name, emb.dim, emb.input_size) == ("fake", 64, 16)
    # A plain colour: the 4x4 thumbnail is that colour everywhere, the spread is zero.
    rgb = np.array([255, 51, 102], dtype=np.float32) / 255
    expected = np.concatenate(
        [np.tile(rgb, 16), rgb, np.zeros(3), np.linspace(0.01, 0.1, 10)]
    ).astype(np.float32)
    prepared = emb.prepare(Image.new("RGB", (20, 10), (255, 51, 102)))
    np.testing.assert_allclose(prepared, expected, atol=1e-6)


def test_fake_embedder_is_deterministic(tmp_path: Path) -> None:
    emb = create_embedder("fake", EmbedderOptions(models_dir=tmp_path))
    rng = np.random.default_rng(3)
    images = [Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)) for _ in range(5)]
    a = emb.embed([emb.prepare(im) for im in images])
    b = emb.embed([emb.prepare(im.copy()) for im in images])
    assert a.shape == (5, 64)
    assert a.dtype == np.float32
    assert np.array_equal(a, b)
    assert len({row.tobytes() for row in a}) == 5  # different images, different vectors
    empty = emb.embed([])
    assert (empty.shape, empty.dtype) == ((0, 64), np.float32)


# --- EfficientNet-Lite0 (the real model) ---------------------------------------------------


@pytest.fixture(scope="module")
def photos(clothing: Path) -> list[np.ndarray]:
    """Eight real photos (two each of four garment types), prepared for EfficientNet."""
    from indexer.embedders.efficientnet import preprocess

    with (clothing / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))
    files = []
    for label in ("Shoes", "Hat", "Pants", "Dress"):
        files += [r["file"] for r in rows if r["label"] == label][:2]
    assert len(files) == 8
    out = []
    for rel in files:
        img = decode((clothing / rel).read_bytes(), max_pixels=10**8, min_side=224).image
        assert min(img.size) >= 224
        x = preprocess(img)
        assert (x.shape, x.dtype) == ((3, 224, 224), np.float32)
        out.append(x)
    return out


@pytest.fixture(scope="module")
def torch_reference(
    photos: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> np.ndarray:
    models = tmp_path_factory.mktemp("torch-models")
    emb = create_embedder(
        "efficientnet-lite0", EmbedderOptions(models_dir=models, runtime="torch", threads=2)
    )
    assert emb.runtime == "torch"  # type: ignore[attr-defined]
    out = emb.embed(photos)
    assert not list(models.iterdir())  # torch needs no export
    return out


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir where a first EfficientNetLite0 has exported the ONNX file."""
    models = tmp_path_factory.mktemp("onnx-models")
    emb = create_embedder(
        "efficientnet-lite0", EmbedderOptions(models_dir=models, runtime="onnx", threads=2)
    )
    assert emb.runtime == "onnx"  # type: ignore[attr-defined]
    return models


def check_features(x: np.ndarray, n: int) -> None:
    assert x.shape == (n, 1280)
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    # Mean-pooled ReLU6 activations.
    assert x.min() >= 0.0
    assert x.max() <= 6.0
    assert len({row.tobytes() for row in x}) == n


@pytest.mark.real_model
def test_efficientnet_onnx_matches_torch(
    onnx_models: Path, photos: list[np.ndarray], torch_reference: np.ndarray
) -> None:
    emb = create_embedder(
        "efficientnet-lite0", EmbedderOptions(models_dir=onnx_models, runtime="onnx", threads=2)
    )
    assert isinstance(emb, ImageEmbedder)
    assert (emb.name, emb.dim, emb.input_size) == ("efficientnet-lite0/center-crop-224", 1280, 224)
    onnx_out = emb.embed(photos)
    check_features(onnx_out, 8)
    check_features(torch_reference, 8)
    diff = float(np.abs(onnx_out - torch_reference).max())
    print(f"EfficientNet-Lite0 ONNX vs torch: max abs diff {diff:.2e}")
    assert diff <= 1e-3
    # Batch size does not change a vector (beyond float noise).
    single = np.concatenate([emb.embed([p]) for p in photos[:3]])
    assert float(np.abs(single - onnx_out[:3]).max()) <= 1e-4
    empty = emb.embed([])
    assert (empty.shape, empty.dtype) == ((0, 1280), np.float32)


@pytest.mark.real_model
def test_efficientnet_onnx_file_is_cached_and_reused(
    onnx_models: Path, photos: list[np.ndarray], torch_reference: np.ndarray
) -> None:
    assert sorted(p.name for p in onnx_models.iterdir()) == [ONNX_FILE]  # no *.tmp left
    path = onnx_models / ONNX_FILE
    before = path.stat()
    assert before.st_size > 1_000_000
    emb = create_embedder(
        "efficientnet-lite0", EmbedderOptions(models_dir=onnx_models, runtime="onnx", threads=2)
    )
    assert emb.runtime == "onnx"  # type: ignore[attr-defined]
    after = path.stat()
    assert (after.st_mtime_ns, after.st_ino, after.st_size) == (
        before.st_mtime_ns,
        before.st_ino,
        before.st_size,
    )
    assert float(np.abs(emb.embed(photos[:4]) - torch_reference[:4]).max()) <= 1e-3
    assert sorted(p.name for p in onnx_models.iterdir()) == [ONNX_FILE]


@pytest.mark.real_model
def test_efficientnet_corrupt_onnx_cache_is_exported_again(
    tmp_path: Path, onnx_models: Path, photos: list[np.ndarray], torch_reference: np.ndarray
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    good = (onnx_models / ONNX_FILE).read_bytes()
    garbage = b"\x00not an onnx model\xff" * 100
    (models / ONNX_FILE).write_bytes(garbage)
    emb = create_embedder(
        "efficientnet-lite0", EmbedderOptions(models_dir=models, runtime="onnx", threads=2)
    )
    assert emb.runtime == "onnx"  # type: ignore[attr-defined]  # not the torch fallback
    data = (models / ONNX_FILE).read_bytes()
    assert data != garbage
    assert len(data) == len(good)
    out = emb.embed(photos)
    check_features(out, 8)
    assert float(np.abs(out - torch_reference).max()) <= 1e-3
    assert sorted(p.name for p in models.iterdir()) == [ONNX_FILE]


@pytest.mark.real_model
def test_efficientnet_falls_back_to_torch_when_export_fails(
    tmp_path: Path,
    photos: list[np.ndarray],
    torch_reference: np.ndarray,
    caplog: pytest.LogCaptureFixture,
) -> None:
    not_a_dir = tmp_path / "models"
    not_a_dir.write_text("a file where the models folder should be")
    with caplog.at_level(logging.WARNING, logger="indexer.embedders.efficientnet"):
        emb = create_embedder(
            "efficientnet-lite0", EmbedderOptions(models_dir=not_a_dir, runtime="onnx", threads=2)
        )
    assert emb.runtime == "torch"  # type: ignore[attr-defined]
    assert "falling back to torch eager" in caplog.text
    np.testing.assert_allclose(emb.embed(photos[:2]), torch_reference[:2], atol=1e-5)


# --- sentence-transformers with a tiny CLIP ------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("st") / "tiny-clip")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def colour_images() -> list[Image.Image]:
    rng = np.random.default_rng(5)
    noise = Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    return [
        Image.new("RGB", (40, 30), (220, 20, 20)),
        Image.new("RGB", (64, 64), (20, 20, 220)),
        noise,
    ]


def reference_clip_features(model_dir: Path, images: list[Image.Image]) -> np.ndarray:
    """What transformers itself says the image embeddings are."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_dir).eval()
    processor = CLIPProcessor.from_pretrained(model_dir)
    inputs = processor(images=images, return_tensors="pt")
    assert tuple(inputs["pixel_values"].shape) == (len(images), 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        out = model.get_image_features(pixel_values=inputs["pixel_values"])
    tensor = out if isinstance(out, torch.Tensor) else out.pooler_output
    return np.asarray(tensor.numpy(), dtype=np.float32)


@pytest.mark.real_model
@pytest.mark.usefixtures("offline")
def test_sentence_transformers_tiny_clip(tiny_clip: Path, tmp_path: Path) -> None:
    emb = create_embedder(
        "sentence-transformers:" + str(tiny_clip), EmbedderOptions(models_dir=tmp_path)
    )
    assert isinstance(emb, ImageEmbedder)
    assert emb.name.startswith("sentence-transformers:")
    assert emb.name.endswith("/tiny-clip")
    assert emb.dim == PROJECTION_DIM
    images = colour_images()
    prepared = [emb.prepare(im) for im in images]
    out = emb.embed(prepared)
    assert out.shape == (3, PROJECTION_DIM)
    assert out.dtype == np.float32
    assert np.array_equal(out, emb.embed([emb.prepare(im.copy()) for im in images]))
    assert len({row.tobytes() for row in out}) == 3
    np.testing.assert_allclose(out, reference_clip_features(tiny_clip, images), atol=1e-5)
    empty = emb.embed([])
    assert (empty.shape, empty.dtype) == ((0, PROJECTION_DIM), np.float32)
    # A second load of the same directory gives the same vectors.
    again = create_embedder(
        "sentence-transformers:" + str(tiny_clip), EmbedderOptions(models_dir=tmp_path)
    )
    assert again.name == emb.name
    assert np.array_equal(again.embed(prepared), out)


@pytest.mark.real_model
@pytest.mark.usefixtures("offline")
def test_sentence_transformers_saved_model_dir(tiny_clip: Path, tmp_path: Path) -> None:
    """A directory written by ``SentenceTransformer.save`` (modules.json) loads too."""
    from sentence_transformers import SentenceTransformer

    saved = tmp_path / "st-saved"
    SentenceTransformer(str(tiny_clip), device="cpu").save(str(saved))
    assert (saved / "modules.json").exists()
    emb = create_embedder(
        "sentence-transformers:" + str(saved), EmbedderOptions(models_dir=tmp_path)
    )
    assert emb.dim == PROJECTION_DIM
    images = colour_images()
    np.testing.assert_allclose(
        emb.embed([emb.prepare(im) for im in images]),
        reference_clip_features(tiny_clip, images),
        atol=1e-5,
    )


@pytest.mark.usefixtures("offline")
def test_sentence_transformers_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(EmbedderError) as info:
        create_embedder(
            "sentence-transformers:" + str(missing), EmbedderOptions(models_dir=tmp_path)
        )
    msg = str(info.value)
    assert msg.startswith(f"cannot load sentence-transformers model {str(missing)!r}: ")
    assert "give a local directory saved with `save_pretrained`/`save`" in msg


def test_efficientnet_preprocess_takes_the_central_square() -> None:
    from PIL import Image

    from indexer.embedders.efficientnet import preprocess

    im = Image.new("RGB", (300, 100), (255, 0, 0))
    im.paste((0, 255, 0), (100, 0, 200, 100))  # the central square is green
    x = preprocess(im)
    assert x.shape == (3, 224, 224)
    green = (np.array([0, 255, 0], np.float32) - 127) / 128
    assert np.allclose(x[:, 5:-5, 5:-5].mean(axis=(1, 2)), green, atol=1e-3)
