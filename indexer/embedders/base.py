"""The embedder contract and the registry that builds one from its name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ..errors import EmbedderError


@runtime_checkable
class ImageEmbedder(Protocol):
    """Turns images into fixed-size vectors.

    ``name`` identifies the model (not the runtime): every stored vector is labelled with
    it, and vectors of different names are never mixed. Two runtimes of one model (ONNX
    and torch) share a name because their outputs agree (within 1e-3).
    """

    name: str
    dim: int
    #: Smallest side the model needs; decoders may reduce large images down to it.
    input_size: int | None

    def prepare(self, image: Image.Image) -> Any:
        """Preprocess one 8-bit RGB image. Called from decoding threads: thread-safe."""
        ...

    def embed(self, batch: Sequence[Any]) -> np.ndarray:
        """Vectors (n x dim, float32, not normalised) for prepared images."""
        ...


@dataclass(frozen=True)
class EmbedderOptions:
    """What an embedder needs from the application's settings."""

    models_dir: Path
    runtime: str = "onnx"
    threads: int = 2


_Factory = Callable[[str, EmbedderOptions], ImageEmbedder]
_ST_PREFIX = "sentence-transformers:"


def _efficientnet(name: str, options: EmbedderOptions) -> ImageEmbedder:
    from .efficientnet import EfficientNetLite0

    return EfficientNetLite0(options)


def _fake(name: str, options: EmbedderOptions) -> ImageEmbedder:
    from .fake import FakeEmbedder

    return FakeEmbedder()


def _sentence_transformers(name: str, options: EmbedderOptions) -> ImageEmbedder:
    from .sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(name.removeprefix(_ST_PREFIX), options)


_REGISTRY: dict[str, _Factory] = {
    "efficientnet-lite0": _efficientnet,
    "fake": _fake,
}


def stored_label(name: str) -> str | None:
    """The label vectors of embedder ``name`` are stored under, if known without loading it."""
    if name == "efficientnet-lite0":
        from .efficientnet import VECTOR_LABEL

        return VECTOR_LABEL
    return "fake" if name == "fake" else None


def available_embedders() -> list[str]:
    return [*_REGISTRY, _ST_PREFIX + "<model name or local path>"]


def create_embedder(name: str, options: EmbedderOptions) -> ImageEmbedder:
    """Build the embedder called ``name``; a typo gets the list of valid names."""
    if name.startswith(_ST_PREFIX) and len(name) > len(_ST_PREFIX):
        return _sentence_transformers(name, options)
    factory = _REGISTRY.get(name)
    if factory is None:
        raise EmbedderError(
            f"unknown embedder {name!r}; choose one of: {', '.join(available_embedders())} "
            "(set SMARTTAGS_EMBEDDER)"
        )
    return factory(name, options)
