"""Typed settings, read from ``SMARTTAGS_*`` environment variables.

Built where the application starts (the CLI group, the HTTP app), never at import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Pillow refuses to open anything above twice its own limit before we can look
# at the size; our limit has to sit below that to be the one that applies.
PIL_HARD_PIXEL_LIMIT = 2 * 89_478_485


def _default_home() -> Path:
    return Path.home() / ".smarttags"


def _default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


class Settings(BaseSettings):
    """All knobs of the service. Every field can be set as ``SMARTTAGS_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SMARTTAGS_", extra="forbid")

    home: Path = Field(
        default_factory=_default_home,
        description="Data directory: catalog.sqlite3, vectors/, models/.",
    )
    embedder: str = Field(
        default="efficientnet-lite0",
        description="Image embedder: 'efficientnet-lite0', 'fake', or "
        "'sentence-transformers:<model name or local path>'.",
    )
    runtime: str = Field(
        default="onnx",
        description="Runtime of the default embedder: 'onnx' (fast) or 'torch' (reference).",
    )
    batch_size: int = Field(default=32, ge=1, le=1024)
    threads: int = Field(default_factory=_default_threads, ge=1, le=256)
    max_pixels: int = Field(
        default=100_000_000,
        ge=1,
        le=PIL_HARD_PIXEL_LIMIT,
        description="Images with more pixels are refused as decompression bombs.",
    )
    exact_search_max: int = Field(
        default=200_000,
        ge=1,
        description="Up to this many vectors the FAISS index is exact; above, IVF.",
    )
    ivf_nprobe: int = Field(default=32, ge=1)
    backend: str = Field(
        default="embedded",
        description="Search backend: 'embedded' (SQLite FTS5 in the catalog) or 'opensearch'.",
    )
    opensearch_url: str | None = Field(
        default=None, description="OpenSearch cluster URL for backend 'opensearch'."
    )
    opensearch_alias: str = Field(
        default="smarttags-assets",
        description="Alias the OpenSearch backend searches; versioned indices sit behind it.",
    )
    search_cache_mb: int = Field(
        default=112,
        ge=0,
        le=65_536,
        description="Embedded backend: memory per search connection for cached index parts "
        "(metadata matches 4/7, smart-tag rows 3/7); 0 ranks every search in SQL instead.",
    )
    languages: tuple[str, ...] = Field(
        default=("en",),
        description='Languages whose stems are indexed (JSON list, e.g. \'["en", "de"]\').',
    )

    # -- HTTP API (``smarttags serve``) --------------------------------------
    api_keys: dict[str, Literal["reader", "editor", "admin"]] = Field(
        default_factory=dict,
        repr=False,
        description='API keys and their roles (JSON, e.g. \'{"k3y": "admin"}\'); never logged.',
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="A JSON file of more API keys ({key: role}), read when the API starts.",
    )
    api_threads: int = Field(
        default=4, ge=1, le=64, description="Threads (each with its own connections) for reads."
    )
    upload_root: Path | None = Field(
        default=None, description="Where uploaded images are stored (default: HOME/uploads)."
    )
    upload_max_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1, description="Largest upload accepted, in bytes."
    )
    profiles_dir: Path | None = Field(
        default=None,
        description="Ranking profiles the API selects by name (default: HOME/profiles).",
    )

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, value: str) -> str:
        if value not in ("onnx", "torch"):
            raise ValueError(f"runtime must be 'onnx' or 'torch', not {value!r}")
        return value

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.sqlite3"

    @property
    def vectors_dir(self) -> Path:
        return self.home / "vectors"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def uploads_dir(self) -> Path:
        return self.upload_root if self.upload_root is not None else self.home / "uploads"

    @property
    def ranking_profiles_dir(self) -> Path:
        return self.profiles_dir if self.profiles_dir is not None else self.home / "profiles"
