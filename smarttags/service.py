"""The service layer: one object that wires settings to the catalog, embedder and vectors.

The CLI and (later) the HTTP API are thin over this; the packages below it do not know
about each other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.catalog import Catalog
from indexer.embedders import EmbedderOptions, ImageEmbedder, create_embedder
from indexer.errors import TaxonomyError, UnknownAssetError
from indexer.ingest import Ingester, IngestOptions, IngestReport
from indexer.metadata import load_sidecar
from indexer.models import Asset, Metadata
from indexer.taxonomy import load_taxonomy
from indexer.vectors import VectorIndex, VectorStore

from .settings import Settings


@dataclass(frozen=True)
class SimilarHit:
    asset: Asset
    score: float


class SmartTags:
    """The application: open with settings, use, close (or use as a context manager)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._catalog: Catalog | None = None
        self._embedder: ImageEmbedder | None = None
        self.vectors = VectorStore(
            settings.vectors_dir, exact_max=settings.exact_search_max, nprobe=settings.ivf_nprobe
        )

    def __enter__(self) -> SmartTags:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog.open(self.settings.catalog_path)
        return self._catalog

    @property
    def embedder(self) -> ImageEmbedder:
        if self._embedder is None:
            s = self.settings
            self._embedder = create_embedder(
                s.embedder,
                EmbedderOptions(models_dir=s.models_dir, runtime=s.runtime, threads=s.threads),
            )
        return self._embedder

    # -- taxonomy --------------------------------------------------------

    def import_taxonomy(self, path: Path) -> int:
        return self.catalog.upsert_tags(load_taxonomy(path))

    # -- ingest ----------------------------------------------------------

    def ingest(
        self,
        roots: list[Path],
        *,
        prefix: str | None = None,
        sidecar: Path | None = None,
        embed: bool = True,
        progress: bool = True,
    ) -> IngestReport:
        """Add or update the images under ``roots``; embed them unless ``embed`` is False."""
        entries: dict[str, Metadata] = load_sidecar(sidecar) if sidecar else {}
        tag_ids = {t for m in entries.values() for t in (m.manual_tags or ())}
        unknown = self.catalog.unknown_tags(tag_ids)
        if unknown:
            raise TaxonomyError(
                f"{sidecar}: unknown taxonomy tag {', '.join(map(repr, unknown))}; add it to "
                "the taxonomy and run `smarttags taxonomy import FILE` first"
            )
        s = self.settings
        ingester = Ingester(
            self.catalog,
            self.embedder if embed else None,
            IngestOptions(
                max_pixels=s.max_pixels,
                threads=s.threads,
                batch_size=s.batch_size,
                progress=progress,
            ),
        )
        report = ingester.run(roots, prefix=prefix, sidecar=entries)
        if embed and report.embedded:
            self.vector_index()  # keep the persisted index in step
        return report

    # -- vectors ---------------------------------------------------------

    def vector_index(self, *, rebuild: bool = False) -> VectorIndex:
        name = self.embedder_name()
        version = self.catalog.embeddings_version(name)

        def chunks() -> Any:
            return self.catalog.iter_embeddings(name)

        if rebuild:
            return self.vectors.rebuild(name, version, chunks)
        return self.vectors.get(name, version, chunks)

    def embedder_name(self) -> str:
        """The name vectors are stored under, without loading the model when it is known."""
        spec = self.settings.embedder
        return spec if spec in ("efficientnet-lite0", "fake") else self.embedder.name

    def similar(self, ref: str, k: int = 10) -> list[SimilarHit]:
        """The ``k`` assets most similar to ``ref`` (id, path or source), best first."""
        asset = self.catalog.get_asset(ref)
        name = self.embedder_name()
        vector = self.catalog.embedding(asset.key, name)
        if vector is None:
            raise UnknownAssetError(
                f"asset {asset.id!r} has no embedding from {name!r}; run "
                f"`smarttags ingest` on its folder (see `smarttags errors` for why it failed)"
            )
        hits = self.vector_index().search(vector, k + 1)
        ids = [h for h in hits if h.key != asset.key][:k]
        return [SimilarHit(self.catalog.get_asset(h.key), h.score) for h in ids]

    def status(self) -> dict[str, Any]:
        out = self.catalog.stats()
        out["home"] = str(self.settings.home)
        out["embedder"] = self.settings.embedder
        path = self.vectors.path(self.embedder_name())
        out["vector_index"] = str(path) if path.exists() else None
        return out
