"""Keeping the search backend in step with the catalog: outbox drains and full reindexes.

* :meth:`SearchSync.drain` sends the queued assets' documents in order and removes each
  entry once the backend has it; a backend outage stops the drain and leaves the queue
  for the next one (nothing is lost).
* :meth:`SearchSync.full` rebuilds everything. OpenSearch: a new versioned index, then
  one atomic alias swap, so searches keep working on the old index meanwhile.
  Embedded: documents are replaced batch by batch in the catalog file (each batch one
  transaction; searches keep working). Progress is recorded per batch, so a killed
  reindex resumes where it stopped (into the same new index).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from indexer.backends.opensearch import OpenSearchBackend
from indexer.errors import BackendError
from indexer.outbox import Outbox, Pending
from ranking.document import SearchDocument

if TYPE_CHECKING:
    from .service import SmartTags

BATCH = 500


@dataclass
class SyncReport:
    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    queued: int = 0  # entries left in the outbox
    error: str = ""  # why a drain stopped early (backend unreachable)
    full: bool = False
    resumed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": len(self.failed),
            "queued": self.queued,
            "error": self.error,
            "full": self.full,
            "resumed": self.resumed,
            "errors": [{"asset": a, "reason": r} for a, r in self.failed[:100]],
        }


class SearchSync:
    def __init__(self, svc: SmartTags, outbox: Outbox) -> None:
        self.svc = svc
        self.outbox = outbox

    def _docs(self, asset_ids: list[str]) -> tuple[list[SearchDocument], list[str]]:
        """Documents of the assets still in the catalog, and the ids that are gone."""
        keys = self.svc.catalog.asset_keys(asset_ids)
        assets = [self.svc.catalog.get_asset(keys[a]) for a in asset_ids if a in keys]
        return self.svc.documents(assets), [a for a in asset_ids if a not in keys]

    def drain(self, *, progress: bool = False) -> SyncReport:
        report = SyncReport()
        backend = self.svc.search_backend
        total = self.outbox.backlog().queued
        bar = tqdm(total=total, desc="sync", unit="doc", disable=not progress or None, leave=False)
        cursor = 0
        try:
            while True:
                batch = self.outbox.pending(BATCH, after=cursor)
                if not batch:
                    break
                cursor = batch[-1].seq
                try:
                    self._send(backend, batch, report)
                except BackendError as e:
                    self.outbox.fail([(p, str(e)) for p in batch])
                    report.error = str(e)
                    report.failed = []  # the whole queue waits; none is a document's fault
                    break
                bar.update(len(batch))
        finally:
            bar.close()
        report.queued = self.outbox.backlog().queued
        return report

    def _send(self, backend: Any, batch: list[Pending], report: SyncReport) -> None:
        by_id = {p.asset_id: p for p in batch}
        docs, gone = self._docs(list(by_id))
        failed: dict[str, str] = {}
        if docs:
            result = backend.upsert(docs)
            failed.update(result.failed)
        if gone:
            failed.update(backend.delete(gone).failed)
        self.outbox.ack([p for a, p in by_id.items() if a not in failed])
        self.outbox.fail([(by_id[a], r) for a, r in failed.items() if a in by_id])
        if failed and len(failed) == len(batch):  # nothing got through: stop, keep the queue
            report.failed.extend(failed.items())
            raise BackendError(
                f"every document of a batch failed, first: {next(iter(failed.values()))}"
            )
        report.sent += len(batch) - len(failed)
        report.failed.extend(failed.items())

    # -- full reindex ------------------------------------------------------

    def full(self, *, progress: bool = False) -> SyncReport:
        svc = self.svc
        catalog = svc.catalog
        key = f"reindex:{self.outbox.target}"
        saved = catalog.get_meta(key)
        state: dict[str, Any] = json.loads(saved) if saved else {}
        report = SyncReport(full=True, resumed=bool(state))
        if not state:
            state = {"through": self.outbox.high_water(), "last": "", "index": None}
        backend = svc.search_backend
        total = catalog.count_assets()
        bar = tqdm(total=total, desc="reindex", unit="doc", disable=not progress or None)

        def save() -> None:
            with catalog.transaction():
                catalog.set_meta(key, json.dumps(state))

        def write_all(write: Callable[[list[SearchDocument]], Any]) -> None:
            while ids := self._ids_after(state["last"]):
                docs, _ = self._docs(ids)
                result = write(docs)
                if result.failed:
                    report.failed.extend(result.failed)
                    first = "; ".join(f"{a}: {r}" for a, r in result.failed[:3])
                    raise BackendError(
                        f"{len(result.failed)} documents failed during the full reindex "
                        f"(first: {first}); fix the cause and run `smarttags reindex --full` "
                        "again: it resumes where it stopped"
                    )
                state["last"] = ids[-1]
                save()
                report.sent += len(docs)
                bar.update(len(ids))

        try:
            if isinstance(backend, OpenSearchBackend):
                state["index"] = backend.start_reindex(state.get("index"))
                save()
                write_all(lambda d: backend.write_index(state["index"], d))
                backend.finish_reindex(state["index"])
            else:
                save()
                write_all(backend.upsert)
        finally:
            bar.close()
        self.outbox.clear_through(int(state["through"]))
        with catalog.transaction():
            catalog.connection.execute("DELETE FROM meta WHERE key = ?", (key,))
        svc.record_index_languages()
        report.queued = self.outbox.backlog().queued
        return report

    def _ids_after(self, last: str) -> list[str]:
        rows = self.svc.catalog.connection.execute(
            "SELECT id FROM assets WHERE id > ? ORDER BY id LIMIT ?", (last, BATCH)
        )
        return [r[0] for r in rows]
