"""Errors raised by the indexer package."""

from __future__ import annotations


class IndexerError(Exception):
    """Base class of every error the indexer raises on purpose."""


class CatalogError(IndexerError):
    """The catalog could not be read or written."""


class TaxonomyError(IndexerError):
    """A taxonomy file or a tag id is invalid."""


class SidecarError(IndexerError):
    """A metadata sidecar file is invalid."""


class ImageError(IndexerError):
    """One image could not be used; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class EmbedderError(IndexerError):
    """An embedder could not be built or run."""


class VectorIndexError(IndexerError):
    """The FAISS vector index could not be built, read or searched."""


class UnknownAssetError(IndexerError):
    """An asset id or path is not in the catalog."""


class BackendError(IndexerError):
    """A search backend could not be reached, written or queried."""


class BusyError(CatalogError):
    """Another process holds the data directory's lock for this kind of run."""


class UnknownSmartTagError(CatalogError):
    """An asset does not carry the smart tag named."""
