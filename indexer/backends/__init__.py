"""Search backends behind the :class:`ranking.backend.SearchBackend` contract, by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ranking.backend import SearchBackend

from ..errors import BackendError

_REGISTRY: dict[str, Callable[[Path, str | None, str, int | None], SearchBackend]] = {}


def _embedded(
    catalog_path: Path, url: str | None, alias: str, cache_mb: int | None
) -> SearchBackend:
    from .embedded import EmbeddedBackend

    return EmbeddedBackend(catalog_path, cache_mb=cache_mb)


def _opensearch(
    catalog_path: Path, url: str | None, alias: str, cache_mb: int | None
) -> SearchBackend:
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
    name: str,
    *,
    catalog_path: Path,
    url: str | None = None,
    alias: str = "smarttags-assets",
    cache_mb: int | None = None,
) -> SearchBackend:
    """The backend called ``name``; a typo gets the list of valid names. ``cache_mb``:
    the embedded backend's search cache per connection (None: its default)."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise BackendError(
            f"unknown search backend {name!r}; choose one of: {', '.join(backend_names())} "
            "(set SMARTTAGS_BACKEND or --backend)"
        )
    return factory(catalog_path, url, alias, cache_mb)
