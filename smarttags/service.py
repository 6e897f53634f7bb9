"""The service layer: one object that wires settings to the catalog, embedder and vectors.

The CLI and (later) the HTTP API are thin over this; the packages below it do not know
about each other's internals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.backends import create_backend
from indexer.catalog import Catalog
from indexer.embedders import EmbedderOptions, ImageEmbedder, create_embedder, stored_label
from indexer.errors import BackendError, TaxonomyError, UnknownAssetError
from indexer.ingest import Ingester, IngestOptions, IngestReport
from indexer.metadata import load_sidecar
from indexer.models import Asset, Metadata
from indexer.taxonomy import load_taxonomy
from indexer.vectors import VectorIndex, VectorStore
from ranking.analysis import Analyzer
from ranking.backend import BulkResult, SearchBackend
from ranking.document import SearchDocument, SmartTag, TagRef, build_document, tag_terms
from ranking.errors import ProfileError
from ranking.evaluation import Metrics, evaluate, load_judgments
from ranking.profile import RankingProfile, load_profile
from ranking.query import TieredQuery
from ranking.results import SearchResult
from training.service import TagModels

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
        self._backend: SearchBackend | None = None
        self._tag_models: TagModels | None = None
        self.vectors = VectorStore(
            settings.vectors_dir, exact_max=settings.exact_search_max, nprobe=settings.ivf_nprobe
        )

    def __enter__(self) -> SmartTags:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        self._tag_models = None
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
        if report.changed:
            self.sync_search(report.changed)
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
        """The label vectors are stored under, without loading the model when it is known."""
        return stored_label(self.settings.embedder) or self.embedder.name

    @property
    def tag_models(self) -> TagModels:
        """Tag models of this catalog: define, check, train, versions, diff."""
        if self._tag_models is None:
            self._tag_models = TagModels(self.catalog, self.embedder_name())
        return self._tag_models

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
        out["search_backend"] = self.settings.backend
        out["search_documents"] = self.search_backend.count()
        tm = self.tag_models
        out["tag_models"] = {name: tm.store.get(name).active_version for name in tm.store.names()}
        return out

    # -- search ----------------------------------------------------------

    @property
    def search_backend(self) -> SearchBackend:
        if self._backend is None:
            s = self.settings
            backend = create_backend(
                s.backend,
                catalog_path=s.catalog_path,
                url=s.opensearch_url,
                alias=s.opensearch_alias,
            )
            backend.ensure_schema()
            self._backend = backend
        return self._backend

    def analyzer(self) -> Analyzer:
        return Analyzer(self.settings.languages)

    def documents(self, assets: list[Asset]) -> list[SearchDocument]:
        """Search documents for catalog assets: metadata, manual and smart tags."""
        analyzer = self.analyzer()
        taxonomy = {t.id: t for t in self.catalog.tags()}

        def titles(tag_id: str) -> dict[str, str]:
            t = taxonomy.get(tag_id)
            return dict(t.titles) if t else {"en": tag_id}

        def terms(tag_id: str) -> tuple[str, ...]:
            t = taxonomy.get(tag_id)
            return tag_terms(analyzer, titles(tag_id), t.synonyms if t else {})

        docs = []
        for a in assets:
            smart = [
                SmartTag(tag, conf, version, promoted, titles(tag), terms(tag))
                for tag, conf, version, promoted in self.catalog.smart_tags(a.key)
            ]
            manual = [TagRef(t, titles(t), terms(t)) for t in a.manual_tags]
            docs.append(build_document(
                analyzer, asset_id=a.id, title=a.title, description=a.description,
                keywords=a.keywords, manual_tags=manual, smart_tags=smart, format=a.format,
                width=a.width, height=a.height, modified_at=a.modified_at,
            ))  # fmt: skip
        return docs

    def _languages_key(self) -> str:
        s = self.settings
        where = f"opensearch:{s.opensearch_alias}" if s.backend == "opensearch" else s.backend
        return f"search_languages:{where}"

    def _check_index_languages(self) -> None:
        """The index must hold the stems of the configured languages, or say so."""
        stored = self.catalog.get_meta(self._languages_key())
        if stored is not None and tuple(json.loads(stored)) != self.settings.languages:
            raise BackendError(
                f"the {self.settings.backend} index holds stems of {', '.join(json.loads(stored))}"
                f" but SMARTTAGS_LANGUAGES is {', '.join(self.settings.languages)}; run "
                "`smarttags reindex` to rebuild it"
            )

    def sync_search(self, asset_ids: list[str] | None = None, chunk: int = 500) -> BulkResult:
        """Write the documents of ``asset_ids`` (default: every asset) to the search backend.

        A full sync (no ids) also records the languages the index now holds."""
        total = BulkResult()
        if asset_ids is None:
            assets = self.catalog.assets()
        else:
            self._check_index_languages()
            assets = [self.catalog.get_asset(i) for i in asset_ids]
        for i in range(0, len(assets), chunk):
            result = self.search_backend.upsert(self.documents(assets[i : i + chunk]))
            total.ok += result.ok
            total.failed.extend(result.failed)
        key = self._languages_key()
        if asset_ids is None or self.catalog.get_meta(key) is None:
            self.catalog.set_meta(key, json.dumps(list(self.settings.languages)))
        return total

    def profile(self, path: Path | None = None) -> RankingProfile:
        """The ranking profile in ``path``, or the default; languages default to the index's."""
        langs = self.settings.languages
        profile = (
            load_profile(path, defaults={"languages": langs})
            if path
            else RankingProfile(languages=langs)
        )
        missing = [lang for lang in profile.languages if lang not in langs]
        if missing:
            raise ProfileError(
                f"profile {profile.name!r} searches language {missing[0]!r} but the index holds "
                f"{', '.join(langs)}; set SMARTTAGS_LANGUAGES and run `smarttags reindex`"
            )
        return profile

    def search(
        self,
        text: str,
        *,
        profile: RankingProfile | None = None,
        path_prefix: str | None = None,
        formats: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
        offset: int = 0,
        limit: int = 20,
    ) -> SearchResult:
        self._check_index_languages()
        query = TieredQuery.build(
            text, profile=profile or self.profile(), path_prefix=path_prefix, formats=formats,
            tags=tags, offset=offset, limit=limit,
        )  # fmt: skip
        return self.search_backend.search(query)

    def evaluate(self, judgments: Path, profiles: list[Path]) -> dict[str, Metrics]:
        """nDCG@10, P@10, MRR and recall@100 per profile, over the judged queries."""
        graded = load_judgments(judgments)
        out: dict[str, Metrics] = {}
        paths: list[Path | None] = list(profiles) or [None]
        for path in paths:
            prof = self.profile(path)

            def run(text: str, prof: RankingProfile = prof) -> list[str]:
                # 100 hits: enough for recall@100 and every other metric.
                return [h.asset_id for h in self.search(text, profile=prof, limit=100).hits]

            name = prof.name if prof.name not in out else f"{prof.name} ({path})"
            out[name] = evaluate(graded, run)
        return out
