"""The service layer: one object that wires settings to the catalog, embedder and vectors.

The CLI and (later) the HTTP API are thin over this; the packages below it do not know
about each other's internals.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.backends import create_backend
from indexer.catalog import Catalog
from indexer.embedders import EmbedderOptions, ImageEmbedder, create_embedder, stored_label
from indexer.errors import BackendError, TaxonomyError, UnknownAssetError
from indexer.ingest import Ingester, IngestOptions, IngestReport
from indexer.metadata import load_sidecar
from indexer.models import Asset, Metadata
from indexer.outbox import Backlog, Outbox
from indexer.taxonomy import load_taxonomy
from indexer.vectors import VectorIndex, VectorStore
from ranking.analysis import Analyzer
from ranking.backend import SearchBackend
from ranking.document import SearchDocument, SmartTag, TagRef, build_document, tag_terms
from ranking.errors import ProfileError
from ranking.evaluation import Metrics, evaluate, load_judgments
from ranking.profile import RankingProfile, load_profile
from ranking.query import TieredQuery
from ranking.results import SearchResult
from training.moderation import Moderation, SmartTagView
from training.service import TagModels
from training.tagging import TaggingCycle, TaggingReport
from training.tagging import ensure_schema as ensure_tagging_schema

from .locks import exclusive
from .search_sync import SearchSync, SyncReport
from .settings import Settings


@dataclass(frozen=True)
class SimilarHit:
    asset: Asset
    score: float


class SmartTags:
    """The application: open with settings, use, close (or use as a context manager)."""

    def __init__(self, settings: Settings, *, search_backend: SearchBackend | None = None) -> None:
        """``search_backend``: use this backend instead of building one from settings."""
        self.settings = settings
        self._catalog: Catalog | None = None
        self._embedder: ImageEmbedder | None = None
        self._backend: SearchBackend | None = search_backend
        self._tag_models: TagModels | None = None
        self._outbox: Outbox | None = None
        self._moderation: Moderation | None = None
        self.last_sync: SyncReport | None = None  # of the last moderation, for callers
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
        self._outbox = None
        self._moderation = None
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
        tag: bool = False,
    ) -> IngestReport:
        """Add or update the images under ``roots``; embed them unless ``embed`` is False;
        with ``tag``, run a tagging cycle over them (``report.tagging``)."""
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
            outbox=self.outbox,
        )
        report = ingester.run(roots, prefix=prefix, sidecar=entries)
        if embed and report.embedded:
            self.vector_index()  # keep the persisted index in step
        if tag:
            ids = list(dict.fromkeys(report.seen))
            report.tagging = self._tag_keys(ids, periodic=False, progress=progress).as_dict()
        report.sync = self.sync_pending().as_dict()
        return report

    # -- tagging and moderation ------------------------------------------

    def tag(
        self,
        paths: list[str],
        *,
        periodic: bool = False,
        progress: bool = False,
        sync: bool = True,
    ) -> TaggingReport:
        """Apply every active tag model to the assets under ``paths``: DAM paths and
        prefixes, or folders and files on disk (ingested first, so new photos are
        embedded). A DAM path wins over a folder of the same name on disk."""
        keys: list[int] = []
        embedded = 0
        for path in paths:
            under = self.catalog.keys_under(path if path.endswith("/") else path + "/")
            if not under:
                under = list(self.catalog.asset_keys([path]).values())
            if under:  # a DAM path wins over a folder of the same name on disk
                keys.extend(under)
                continue
            if Path(path).exists():
                report = self.ingest([Path(path)], progress=progress)
                embedded += report.embedded
                keys.extend(self.catalog.asset_keys(report.seen).values())
                continue
            raise UnknownAssetError(
                f"{path!r} is neither a DAM path in the catalog nor a file or folder on "
                "disk; list assets with `smarttags assets list`"
            )
        result = self._run_cycle(keys, periodic=periodic, progress=progress)
        result.embedded = embedded
        if sync:  # else the changes wait in the outbox for the next sync
            result.sync = self.sync_pending().as_dict()
        return result

    def _tag_keys(self, ids: list[str], *, periodic: bool, progress: bool) -> TaggingReport:
        keys = list(self.catalog.asset_keys(ids).values())
        return self._run_cycle(keys, periodic=periodic, progress=progress)

    def _run_cycle(self, keys: list[int], *, periodic: bool, progress: bool) -> TaggingReport:
        with exclusive(self.settings.home, "a tagging run"):
            cycle = TaggingCycle(
                self.catalog, self.tag_models, self.outbox, vectors=self._vector_source()
            )
            return cycle.run(keys, periodic=periodic, progress=progress)

    def _vector_source(self) -> Callable[[list[int]], tuple[np.ndarray, np.ndarray]] | None:
        """The exact FAISS index's copy of every current vector (memory-mapped from its
        file; unit length: the tag models' features do not depend on a vector's
        length), so a cycle reads no vector from SQLite. None when the index is stale
        (it is not rebuilt for this) or approximate."""
        name = self.embedder_name()
        index = self.vectors.current(name, self.catalog.embeddings_version(name))
        found = None if index is None else index.matrix()
        if found is None:
            return None
        ids, matrix = found

        def source(keys: list[int]) -> tuple[np.ndarray, np.ndarray]:
            wanted = np.asarray(keys, np.int64)
            pos = np.minimum(np.searchsorted(ids, wanted), max(len(ids) - 1, 0))
            hit = ids[pos] == wanted if len(ids) else np.zeros(len(wanted), bool)
            return wanted[hit], matrix[pos[hit]]

        return source

    def delete_tag_model(self, name: str) -> int:
        """Delete a tag model with its versions, skip state and the smart tags it wrote
        (promoted ones stay: they count as manual); returns how many assets changed."""
        self.tag_models.store.get(name)  # raises, naming the models, when unknown
        ensure_tagging_schema(self.catalog)
        conn = self.catalog.connection
        pattern = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "@%"
        with self.catalog.transaction():
            rows = conn.execute(
                "SELECT DISTINCT a.id FROM smart_tags s JOIN assets a ON a.key = s.asset_key "
                "WHERE s.promoted = 0 AND s.model_version LIKE ? ESCAPE '\\'",
                (pattern,),
            ).fetchall()
            conn.execute(
                "DELETE FROM smart_tags WHERE promoted = 0 AND model_version LIKE ? ESCAPE '\\'",
                (pattern,),
            )
            conn.execute("DELETE FROM tagging_state WHERE model = ?", (name,))
            self.outbox.enqueue(r[0] for r in rows)
        self.tag_models.store.delete(name)
        self.sync_pending()
        return len(rows)

    @property
    def moderation(self) -> Moderation:
        if self._moderation is None or self._moderation.catalog is not self.catalog:
            self._moderation = Moderation(self.catalog, self.outbox)
        return self._moderation

    def smart_tags(self, asset_ref: str) -> list[SmartTagView]:
        return self.moderation.smart_tags(asset_ref)[0]

    def remove_smart_tag(self, asset_ref: str, tag_id: str) -> SmartTagView:
        """Remove a smart tag (remembered: no tagging cycle brings it back); search sees
        it at once (``last_sync`` says whether the backend took it)."""
        removed = self.moderation.remove(asset_ref, tag_id)
        self.last_sync = self.sync_pending()
        return removed

    def promote_smart_tag(self, asset_ref: str, tag_id: str) -> SmartTagView:
        """Promote a smart tag: it counts as a manual tag in search from now on."""
        promoted = self.moderation.promote(asset_ref, tag_id)
        self.last_sync = self.sync_pending()
        return promoted

    def bulk_remove_smart_tag(
        self, tag_id: str, query_text: str, *, path: str | None = None, dry_run: bool = True
    ) -> dict[str, Any]:
        """Remove ``tag_id`` from every asset matching the search (up to the search
        window); ``dry_run`` only counts."""
        matched: list[str] = []
        offset, window = 0, 10_000
        while offset < window:
            page = self.search(query_text, path_prefix=path, offset=offset, limit=200)
            matched.extend(h.asset_id for h in page.hits)
            if len(page.hits) < 200:
                break
            offset += 200
        carrying = self.moderation.has(matched, tag_id)
        removed = 0 if dry_run else self.moderation.remove_many(carrying, tag_id)
        if removed:
            self.sync_pending()
        return {
            "tag": tag_id,
            "query": query_text,
            "matched": len(matched),
            "capped": offset >= window,
            "with_tag": len(carrying),
            "removed": removed,
            "dry_run": dry_run,
            "assets": carrying[:20],
        }

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
    def outbox(self) -> Outbox:
        """The search outbox of the configured backend (and index)."""
        if self._outbox is None or self._outbox.catalog is not self.catalog:
            self._outbox = Outbox(self.catalog, self._target())
        return self._outbox

    def _target(self) -> str:
        s = self.settings
        return f"opensearch:{s.opensearch_alias}" if s.backend == "opensearch" else s.backend

    def outbox_backlog(self) -> Backlog:
        return self.outbox.backlog()

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
        try:
            out["search_documents"] = self.search_backend.count()
        except BackendError as e:  # status must work while the backend is down
            out["search_documents"] = None
            out["search_error"] = str(e)
        backlog = self.outbox_backlog()
        out["search_backlog"] = {
            "queued": backlog.queued,
            "failing": backlog.failing,
            "oldest": backlog.oldest,
            "last_error": backlog.last_error,
        }
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
                cache_mb=s.search_cache_mb,
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
        return f"search_languages:{self._target()}"

    def _check_index_languages(self) -> None:
        """The index must hold the stems of the configured languages, or say so."""
        stored = self.catalog.get_meta(self._languages_key())
        if stored is not None and tuple(json.loads(stored)) != self.settings.languages:
            raise BackendError(
                f"the {self.settings.backend} index holds stems of {', '.join(json.loads(stored))}"
                f" but SMARTTAGS_LANGUAGES is {', '.join(self.settings.languages)}; run "
                "`smarttags reindex` to rebuild it"
            )

    def sync_search(self, asset_ids: list[str] | None = None) -> SyncReport:
        """Queue ``asset_ids`` for the search backend and send the queue; without ids, a
        full reindex."""
        if asset_ids is None:
            return self.reindex(full=True)
        self._check_index_languages()
        with self.catalog.transaction():
            self.outbox.enqueue(asset_ids)
        return self.sync_pending()

    def sync_pending(self, *, progress: bool = False) -> SyncReport:
        """Send what the outbox holds. A backend that is down stops it: the queue stays
        (see ``status``) and the next sync or ``reindex`` sends it."""
        if self.catalog.get_meta(self._languages_key()) is None:
            return self.reindex(full=True, progress=progress)  # a new index: fill it
        return SearchSync(self, self.outbox).drain(progress=progress)

    def reindex(self, *, full: bool = False, progress: bool = False) -> SyncReport:
        """Incremental: send the outbox. Full: rebuild the whole index (OpenSearch: a new
        index and an atomic alias swap) while searches keep working; resumable."""
        if not full:
            return self.sync_pending(progress=progress)
        with exclusive(self.settings.home, "a full reindex"):
            return SearchSync(self, self.outbox).full(progress=progress)

    def record_index_languages(self) -> None:
        with self.catalog.transaction():
            self.catalog.set_meta(self._languages_key(), json.dumps(list(self.settings.languages)))

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
