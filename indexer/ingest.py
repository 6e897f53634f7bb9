"""Ingest: walk folders, record assets in the catalog, embed them, in batches.

Files are read, hashed and decoded on worker threads while the main thread runs the
embedder on the previous batch. Each batch of assets and their vectors commits in one
transaction, so a killed run loses at most one batch of work and a rerun finishes the
job with no duplicates. A bad file becomes a per-asset error; the run goes on.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .catalog import Catalog, Change
from .colour import COLOUR_LABEL, colour_histogram
from .embedders import ImageEmbedder
from .errors import EmbedderError, ImageError
from .images import decode
from .metadata import read_embedded
from .models import AssetError, FileFacts, Metadata
from .outbox import Outbox
from .parallel import ordered_map
from .scan import Candidate, ScanProblem, walk


@dataclass
class IngestReport:
    """What an ingest run did, with every failure and its reason."""

    found: int = 0
    added: int = 0
    modified: int = 0
    updated: int = 0
    unchanged: int = 0
    embedded: int = 0
    failed: list[AssetError] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # ids added, modified or updated
    seen: list[str] = field(default_factory=list)  # every id found under the roots
    seconds: float = 0.0
    tagging: dict[str, Any] | None = None  # the tagging cycle's report, when one ran
    sync: dict[str, Any] | None = None  # the search sync's report

    def as_dict(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "added": self.added,
            "modified": self.modified,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "embedded": self.embedded,
            "failed": len(self.failed),
            "seconds": round(self.seconds, 3),
            **({"tagging": self.tagging} if self.tagging is not None else {}),
            **({"sync": self.sync} if self.sync is not None else {}),
            "errors": [
                {
                    "asset": e.asset_id,
                    "source": e.source,
                    "stage": e.stage,
                    "reason": e.reason,
                    "message": e.message,
                }
                for e in self.failed
            ],
        }


@dataclass(frozen=True)
class _Decoded:
    facts: FileFacts
    prepared: Any  # embedder input, or None when no embedding is wanted
    colour: np.ndarray | None = None  # colour statistics, computed along with embeddings


@dataclass(frozen=True)
class IngestOptions:
    max_pixels: int
    threads: int = 2
    batch_size: int = 32
    progress: bool = True


class Ingester:
    """Runs ingest over roots into one catalog with (optionally) one embedder."""

    def __init__(
        self,
        catalog: Catalog,
        embedder: ImageEmbedder | None,
        options: IngestOptions,
        outbox: Outbox | None = None,
    ) -> None:
        self.catalog = catalog
        self.embedder = embedder
        self.options = options
        self.outbox = outbox  # changed assets are queued for search in the same transaction

    def run(
        self,
        roots: Sequence[Path],
        *,
        prefix: str | None = None,
        sidecar: dict[str, Metadata] | None = None,
    ) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        sidecar = sidecar or {}
        todo: list[Candidate] = []
        for root in roots:
            for found in walk(root, prefix):
                if isinstance(found, ScanProblem):
                    report.failed.append(
                        AssetError(
                            found.source,
                            found.asset_id,
                            "scan",
                            found.reason,
                            found.message,
                            time.time(),
                        )
                    )
                    continue
                report.found += 1
                report.seen.append(found.asset_id)
                meta = _sidecar_entry(sidecar, found)
                if meta is None and self._is_current(found):
                    report.unchanged += 1
                else:
                    todo.append(found)
        with self.catalog.transaction():
            for err in report.failed:
                self.catalog.record_error(err)
        self._process(todo, sidecar, report)
        report.seconds = time.perf_counter() - started
        return report

    def _is_current(self, cand: Candidate) -> bool:
        state = self.catalog.file_state(cand.asset_id)
        if state is None:
            return False
        try:
            st = os.stat(cand.source)
        except OSError:
            return False
        source, size, mtime_ns, sha256 = state
        if (source, size, mtime_ns) != (cand.source, st.st_size, st.st_mtime_ns):
            return False
        return self.embedder is None or (
            self.catalog.embedding_sha(cand.asset_id, self.embedder.name) == sha256
            and self.catalog.embedding_sha(cand.asset_id, COLOUR_LABEL) == sha256
        )

    def _read(self, cand: Candidate) -> _Decoded:
        """Worker: read, hash, decode, extract metadata, preprocess. Raises ImageError."""
        try:
            st = os.stat(cand.source)
            with open(cand.source, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ImageError("unreadable", f"cannot read {cand.source}: {e.strerror or e}") from e
        emb = self.embedder
        img = decode(
            data, max_pixels=self.options.max_pixels, min_side=emb.input_size if emb else None
        )
        facts = FileFacts(
            source=cand.source,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            sha256=hashlib.sha256(data).hexdigest(),
            format=img.format,
            width=img.width,
            height=img.height,
            metadata=read_embedded(img.info),
        )
        if emb is None:
            return _Decoded(facts, None)
        return _Decoded(facts, emb.prepare(img.image), colour_histogram(img.image))

    def _process(
        self, todo: list[Candidate], sidecar: dict[str, Metadata], report: IngestReport
    ) -> None:
        opts = self.options
        bar = tqdm(
            total=len(todo),
            desc="ingest",
            unit="img",
            disable=not opts.progress or None,
            leave=False,
        )
        batch: list[tuple[Candidate, _Decoded | Exception]] = []
        results = ordered_map(
            self._read,
            todo,
            workers=opts.threads,
            window=max(2 * opts.batch_size, 4 * opts.threads),
        )
        try:
            for item in results:
                batch.append(item)
                if len(batch) >= opts.batch_size:
                    self._flush(batch, sidecar, report)
                    bar.update(len(batch))
                    bar.set_postfix(
                        new=report.added,
                        embedded=report.embedded,
                        failed=len(report.failed),
                        refresh=False,
                    )
                    batch = []
            if batch:
                self._flush(batch, sidecar, report)
                bar.update(len(batch))
        finally:
            bar.close()

    def _flush(
        self,
        batch: list[tuple[Candidate, _Decoded | Exception]],
        sidecar: dict[str, Metadata],
        report: IngestReport,
    ) -> None:
        now = time.time()
        ok = [(c, r) for c, r in batch if isinstance(r, _Decoded)]
        errors = [
            AssetError(
                c.source,
                c.asset_id,
                "decode",
                r.reason if isinstance(r, ImageError) else "error",
                str(r),
                now,
            )
            for c, r in batch
            if not isinstance(r, _Decoded)
        ]
        vectors: np.ndarray | None = None
        wanted = [(c, r) for c, r in ok if r.prepared is not None and self._needs_vector(c, r)]
        if wanted and self.embedder is not None:
            try:
                vectors = self.embedder.embed([r.prepared for _, r in wanted])
            except Exception as e:  # the model failed on this batch: keep the assets
                errors.extend(
                    AssetError(
                        c.source,
                        c.asset_id,
                        "embed",
                        "embedder-failed",
                        f"{type(e).__name__}: {e}",
                        now,
                    )
                    for c, _ in wanted
                )
                if isinstance(e, EmbedderError):
                    raise
        with self.catalog.transaction():
            keys: dict[str, int] = {}
            changed: list[str] = []
            for cand, dec in ok:
                meta = (_sidecar_entry(sidecar, cand) or Metadata()).merged_over(dec.facts.metadata)
                key, change = self.catalog.upsert_asset(cand.asset_id, dec.facts, meta)
                keys[cand.asset_id] = key
                _count(report, change)
                if change is not Change.UNCHANGED:
                    changed.append(cand.asset_id)
                self.catalog.clear_error(cand.source)
            if self.outbox is not None:
                self.outbox.enqueue(changed)
            report.changed.extend(changed)
            if vectors is not None and self.embedder is not None:
                self.catalog.put_embeddings(
                    self.embedder.name,
                    [
                        (keys[c.asset_id], r.facts.sha256, v)
                        for (c, r), v in zip(wanted, vectors, strict=True)
                    ],
                )
                report.embedded += len(wanted)
            colours = [
                (keys[c.asset_id], r.facts.sha256, r.colour)
                for c, r in ok
                if r.colour is not None
                and self.catalog.embedding_sha(c.asset_id, COLOUR_LABEL) != r.facts.sha256
            ]
            if colours:
                self.catalog.put_embeddings(COLOUR_LABEL, colours)
            for err in errors:
                self.catalog.record_error(err)
        report.failed.extend(errors)

    def _needs_vector(self, cand: Candidate, dec: _Decoded) -> bool:
        assert self.embedder is not None
        stored = self.catalog.embedding_sha(cand.asset_id, self.embedder.name)
        return stored != dec.facts.sha256


def _count(report: IngestReport, change: Change) -> None:
    if change is Change.ADDED:
        report.added += 1
    elif change is Change.MODIFIED:
        report.modified += 1
    elif change is Change.UPDATED:
        report.updated += 1
    else:
        report.unchanged += 1


def _sidecar_entry(sidecar: dict[str, Metadata], cand: Candidate) -> Metadata | None:
    if not sidecar:
        return None
    return sidecar.get(cand.asset_id) or sidecar.get(cand.relative)
