"""Search backends behind the :class:`ranking.backend.SearchBackend` contract, by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ranking.backend import SearchBackend

from ..errors import BackendError

_REGISTRY: dict[str, Callable[[Path, str | None, str], SearchBackend]] = {}


def _embedded(catalog_path: Path, url: str | None, alias: str) -> SearchBackend:
    from .embedded import EmbeddedBackend

    return EmbeddedBackend(catalog_path)


def _opensearch(catalog_path: Path, url: str | None, alias: str) -> SearchBackend:
    if not url:
        raise BackendError(
            "backend 'opensearch' needs a cluster URL: set SMARTTAGS_OPENSEARCH_URL "
            "(e.g. http://localhost:9200)"
        )
    from .opensearch import OpenSearchBackend

    return OpenSearchBackend(url, alias)


_REGISTRY["embedded"] = _embedded
_REGISTRY["opensearch"] = _opensearch


def backend_names() -> list[str]:
    return list(_REGISTRY)


def create_backend(
    name: str, *, catalog_path: Path, url: str | None = None, alias: str = "smarttags-assets"
) -> SearchBackend:
    """The backend called ``name``; a typo gets the list of valid names."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise BackendError(
            f"unknown search backend {name!r}; choose one of: {', '.join(backend_names())} "
            "(set SMARTTAGS_BACKEND or --backend)"
        )
    return factory(catalog_path, url, alias)
