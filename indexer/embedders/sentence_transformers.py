"""Any sentence-transformers image model (CLIP and the like), by name or local path."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..errors import EmbedderError
from .base import EmbedderOptions


class SentenceTransformerEmbedder:
    """Wraps ``SentenceTransformer(model).encode(images)``.

    The model is loaded from a local path, or by name from the Hugging Face cache; with
    no network (as here) a name must already be cached. Images are passed as RGB PIL
    images; the model's own processor resizes and normalises them.
    """

    input_size: int | None = 224

    def __init__(self, model: str, options: EmbedderOptions) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise EmbedderError(
                "sentence-transformers embedders need `pip install sentence-transformers`"
            ) from e
        try:
            self._model: Any = SentenceTransformer(model)  # CUDA when torch has it
        except Exception as e:
            raise EmbedderError(
                f"cannot load sentence-transformers model {model!r}: {e}; give a local "
                "directory saved with `save_pretrained`/`save`, or a model already in the "
                "Hugging Face cache"
            ) from e
        # renamed in sentence-transformers 5; the old name warns
        get_dim = getattr(self._model, "get_embedding_dimension", None)
        if get_dim is None:
            get_dim = self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            probe = self._model.encode([Image.new("RGB", (32, 32))], convert_to_numpy=True)
            dim = int(probe.shape[-1])
        self.dim = int(dim)
        self.name = "sentence-transformers:" + re.sub(r"[^A-Za-z0-9_.\-/]", "_", model)

    def prepare(self, image: Image.Image) -> Image.Image:
        return image

    def embed(self, batch: Sequence[Image.Image]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        out = self._model.encode(
            list(batch), batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(out, dtype=np.float32)
