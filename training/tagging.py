"""Tagging cycles: apply every active tag model to assets, from their stored vectors.

Skip rule (``../shared/DESIGN.md``): an asset whose bytes have not changed since the
same model version tagged it is skipped, unless that was longer ago than
:data:`ON_DEMAND_MAX_AGE` (24 hours) or, for periodic runs, :data:`PERIODIC_MAX_AGE`
(6 months). A new model version re-applies the classifier to the stored vectors: no
image is decoded.

Moderation is kept by every cycle: a promoted smart tag is never touched, and a tag an
editor removed from an asset is never written to it again. Work is committed per chunk
(smart tags, the skip state and the search outbox entries of changed assets in one
transaction), so a killed run loses at most one chunk and a rerun finishes the job.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from indexer.catalog import Catalog
from indexer.outbox import Outbox

from . import features as feats
from .classifier import LinearClassifier
from .service import TagModels

#: Keys (sorted) -> (those with a current vector, their vectors in that order).
VectorSource = Callable[[list[int]], tuple[np.ndarray, np.ndarray]]

ON_DEMAND_MAX_AGE = 24 * 3600.0
PERIODIC_MAX_AGE = 183 * 24 * 3600.0
#: Chunks read and classified ahead, each on its own thread and catalog connection.
READERS = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tagging_state (
    asset_key INTEGER NOT NULL REFERENCES assets(key) ON DELETE CASCADE,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    content_version INTEGER NOT NULL,   -- the asset's content_version it saw
    tagged_at REAL NOT NULL,
    PRIMARY KEY (asset_key, model)
);
CREATE TABLE IF NOT EXISTS smart_tag_removals (
    asset_key INTEGER NOT NULL REFERENCES assets(key) ON DELETE CASCADE,
    tag_id TEXT NOT NULL,
    removed_at REAL NOT NULL,
    model_version TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (asset_key, tag_id)
);
"""


def ensure_schema(catalog: Catalog) -> None:
    catalog.ensure_tables(_SCHEMA)


@dataclass
class TaggingReport:
    """What a cycle did; counts are per (asset, model) pair except ``assets``."""

    assets: int = 0
    models: list[str] = field(default_factory=list)  # name@version applied
    classified: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (asset id, reason)
    tags_written: int = 0
    changed_assets: int = 0
    embedded: int = 0  # set by the caller when it ingested first
    seconds: float = 0.0
    sync: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "assets": self.assets,
            "models": self.models,
            "embedded": self.embedded,
            "classified": self.classified,
            "skipped": self.skipped,
            "failed": len(self.failed),
            "tags_written": self.tags_written,
            "changed_assets": self.changed_assets,
            "seconds": round(self.seconds, 3),
            "sync": self.sync,
            "errors": [{"asset": a, "reason": r} for a, r in self.failed[:100]],
        }


@dataclass(frozen=True)
class _Active:
    name: str
    version: int
    label: str  # name@version, stored with each smart tag
    features: str
    classifier: LinearClassifier
    tags: tuple[str, ...]


class TaggingCycle:
    """One catalog's tagging: ``run(keys)`` over chosen assets with every active model."""

    def __init__(
        self,
        catalog: Catalog,
        models: TagModels,
        outbox: Outbox,
        *,
        clock: Callable[[], float] = time.time,
        chunk: int = 8192,
        vectors: VectorSource | None = None,
    ) -> None:
        """``vectors``: where the shared embedder's vectors come from (e.g. the FAISS
        index's in-memory copy); default: the catalog."""
        self.vectors = vectors
        self.catalog = catalog
        self.models = models
        self.outbox = outbox
        self.clock = clock
        self.chunk = chunk
        self._conn = catalog.connection
        ensure_schema(catalog)

    def active(self) -> list[_Active]:
        out = []
        for name, version in self.models.store.active_versions():
            clf = self.models.classifier(name, version)
            model = self.models.store.get(name)
            out.append(_Active(name, version, f"{name}@{version}", model.features, clf, clf.tags))
        return out

    def run(
        self, keys: Sequence[int], *, periodic: bool = False, progress: bool = False
    ) -> TaggingReport:
        started = time.perf_counter()
        report = TaggingReport(assets=len(set(keys)))
        active = self.active()
        report.models = [a.label for a in active]
        if not active or not keys:
            report.seconds = time.perf_counter() - started
            return report
        max_age = PERIODIC_MAX_AGE if periodic else ON_DEMAND_MAX_AGE
        ordered = sorted(set(keys))
        parts = [ordered[i : i + self.chunk] for i in range(0, len(ordered), self.chunk)]
        bar = tqdm(
            total=len(ordered), desc="tag", unit="asset", disable=not progress or None,
            leave=False,
        )  # fmt: skip
        # Reads of the next chunk (on their own connection, so SQLite works outside the
        # GIL) overlap classifying and writing the current one.
        local = threading.local()

        readers: list[_Reader] = []
        lock = threading.Lock()

        def read_ahead(part: list[int]) -> _ChunkData:
            if not hasattr(local, "reader"):
                local.reader = _Reader(Catalog.open(self.catalog.path, any_thread=True))
                with lock:
                    readers.append(local.reader)
            reader: _Reader = local.reader
            return reader.read(
                part, active, self.models.embedder, max_age, self.clock(), self.vectors
            )

        with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="tag-read") as pool:
            try:
                ahead = [pool.submit(read_ahead, p) for p in parts[:READERS]]
                for i, part in enumerate(parts):
                    data = ahead.pop(0).result()
                    if i + READERS < len(parts):
                        ahead.append(pool.submit(read_ahead, parts[i + READERS]))
                    self._apply(data, report)
                    bar.update(len(part))
                    bar.set_postfix(
                        classified=report.classified, skipped=report.skipped,
                        failed=len(report.failed), refresh=False,
                    )  # fmt: skip
            finally:
                bar.close()
                for f in ahead:
                    f.cancel()
        for reader in readers:
            reader.catalog.close()
        report.seconds = time.perf_counter() - started
        return report

    # -- one chunk ---------------------------------------------------------

    def _apply(self, data: _ChunkData, report: TaggingReport) -> None:
        report.skipped += data.skipped
        report.failed.extend(data.failed)
        report.classified += sum(len(keys) for _, keys, _, _ in data.results)
        if not data.results:
            return
        changed: set[int] = set()
        with self.catalog.transaction():
            for model, done, tag_index, conf in data.results:
                report.tags_written += self._write(
                    model, done, tag_index, conf, data.old, data.removed, changed, data.now,
                    data.assets,
                )  # fmt: skip
            self.outbox.enqueue(data.assets[k][0] for k in sorted(changed))
        report.changed_assets += len(changed)

    def _write(
        self,
        model: _Active,
        keys: list[int],
        tag_index: np.ndarray,
        conf: np.ndarray,
        old: dict[int, dict[str, tuple[float, str, bool]]],
        removed: set[tuple[int, str]],
        changed: set[int],
        now: float,
        assets: dict[int, tuple[str, int]],
    ) -> int:
        tags = set(model.tags)
        names, label, version, mname = model.tags, model.label, model.version, model.name
        deletes: list[tuple[int, str]] = []
        inserts: list[tuple[int, str, float, str, float]] = []
        for k, t, c in zip(keys, tag_index.tolist(), conf.tolist(), strict=True):
            before: list[tuple[str, float, str]] = []  # this model's unpromoted tags
            promoted: set[str] = set()
            for tag, (oc, ov, op) in old.get(k, {}).items():
                if tag in tags:
                    if op:
                        promoted.add(tag)
                    else:
                        before.append((tag, oc, ov))
            new = None
            if t >= 0:
                tag = names[t]
                if tag not in promoted and (k, tag) not in removed:
                    new = (tag, c, label)
            if (
                new is not None
                and len(before) == 1
                and before[0][0] == new[0]
                and before[0][2] == label
                and abs(before[0][1] - c) < 1e-6
            ):
                continue  # the same tag, confidence and version: nothing to write
            if new is None and not before:
                continue
            changed.add(k)
            for tag, _, _ in before:
                if new is None or tag != new[0]:
                    deletes.append((k, tag))
            if new is not None:
                inserts.append((k, new[0], float(c), label, now))
        self._conn.executemany(
            "DELETE FROM smart_tags WHERE asset_key = ? AND tag_id = ? AND promoted = 0", deletes
        )
        self._conn.executemany(
            "INSERT INTO smart_tags(asset_key, tag_id, confidence, model_version, updated_at) "
            "VALUES (?,?,?,?,?) ON CONFLICT(asset_key, tag_id) DO UPDATE SET "
            "confidence = excluded.confidence, model_version = excluded.model_version, "
            "updated_at = excluded.updated_at WHERE promoted = 0",
            inserts,
        )
        # One statement for the whole chunk's skip state: SQLite reads the keys from a
        # JSON array and the content versions from the assets table itself.
        self._conn.execute(
            "INSERT INTO tagging_state(asset_key, model, version, content_version, tagged_at) "
            "SELECT a.key, ?, ?, a.content_version, ? FROM json_each(?) j "
            "JOIN assets a ON a.key = j.value WHERE true "
            "ON CONFLICT(asset_key, model) DO UPDATE SET version = excluded.version, "
            "content_version = excluded.content_version, tagged_at = excluded.tagged_at",
            (mname, version, now, json.dumps(keys)),
        )
        return len(inserts)


@dataclass
class _ChunkData:
    """Everything a chunk needs from the catalog, read ahead of its writes."""

    now: float
    assets: dict[int, tuple[str, int]]  # key -> (asset id, content_version)
    todo: dict[str, np.ndarray]  # model -> keys to classify
    skipped: int
    results: list[tuple[_Active, list[int], np.ndarray, np.ndarray]]  # keys, tag or -1, conf
    failed: list[tuple[str, str]]
    old: dict[int, dict[str, tuple[float, str, bool]]]
    removed: set[tuple[int, str]]


class _Reader:
    """The read side of a cycle, on its own catalog connection: which assets to
    classify, their stored vectors, their current smart tags, and the classification
    itself (numpy, outside the GIL), so that the writer only writes."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._conn = catalog.connection

    def read(
        self,
        keys: list[int],
        active: list[_Active],
        embedder: str,
        max_age: float,
        now: float,
        source: VectorSource | None = None,
    ) -> _ChunkData:
        assets = self._assets(keys)
        todo: dict[str, np.ndarray] = {}
        skipped = 0
        for model in active:
            state = self._states(model.name, keys)
            need = []
            for k in keys:
                s = state.get(k)
                if (
                    s is not None
                    and s[0] == model.version
                    and s[1] == assets[k][1]
                    and now - s[2] < max_age
                ):
                    skipped += 1
                else:
                    need.append(k)
            todo[model.name] = np.array(need, np.int64)
        wanted = sorted({int(k) for ks in todo.values() for k in ks})
        if not wanted:
            return _ChunkData(now, assets, todo, skipped, [], [], {}, set())
        labels = {lab for m in active for lab in feats.labels_for(m.features, embedder)}
        stored = {
            lab: source(wanted)
            if source is not None and lab == embedder
            else self.catalog.vectors_for(wanted, lab)
            for lab in labels
        }
        results: list[tuple[_Active, list[int], np.ndarray, np.ndarray]] = []
        failed: list[tuple[str, str]] = []
        failed_keys: set[int] = set()
        for model in active:
            pending: np.ndarray = todo[model.name]
            model_labels = feats.labels_for(model.features, embedder)
            have = np.ones(len(pending), bool)
            for lab in model_labels:
                have &= np.isin(pending, stored[lab][0])
            lacking = pending[~have].tolist()
            present = {lab: set(stored[lab][0].tolist()) for lab in model_labels} if lacking else {}
            for k in lacking:
                if k not in failed_keys:
                    failed_keys.add(k)
                    missing = [lab for lab in model_labels if k not in present[lab]]
                    failed.append(
                        (assets[k][0], f"no current {' or '.join(missing)} vector: run "
                         "`smarttags ingest` on its folder (see `smarttags errors`)")
                    )  # fmt: skip
            usable: np.ndarray = pending[have]
            if not len(usable):
                continue
            parts = []
            for lab in model_labels:
                found, matrix = stored[lab]
                same = len(found) == len(usable) and bool(np.array_equal(found, usable))
                parts.append(matrix if same else matrix[np.searchsorted(found, usable)])
            pred = model.classifier.predict(feats.combine(model.features, parts))
            results.append(
                (model, usable.tolist(), np.where(pred.applied, pred.tag, -1), pred.confidence)
            )
        return _ChunkData(
            now, assets, todo, skipped, results, failed, self._smart_tags(wanted),
            self._removed(wanted),
        )  # fmt: skip

    def _in(self, sql: str, keys: list[int], *args: Any) -> list[Any]:
        out: list[Any] = []
        for i in range(0, len(keys), 900):
            part = keys[i : i + 900]
            marks = ",".join("?" * len(part))
            out.extend(self._conn.execute(sql.format(marks=marks), (*args, *part)).fetchall())
        return out

    def _assets(self, keys: list[int]) -> dict[int, tuple[str, int]]:
        rows = self._in("SELECT key, id, content_version FROM assets WHERE key IN ({marks})", keys)
        return {r[0]: (r[1], r[2]) for r in rows}

    def _states(self, model: str, keys: list[int]) -> dict[int, tuple[int, int, float]]:
        rows = self._in(
            "SELECT asset_key, version, content_version, tagged_at FROM tagging_state "
            "WHERE model = ? AND asset_key IN ({marks})",
            keys,
            model,
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def _smart_tags(self, keys: list[int]) -> dict[int, dict[str, tuple[float, str, bool]]]:
        rows = self._in(
            "SELECT asset_key, tag_id, confidence, model_version, promoted FROM smart_tags "
            "WHERE asset_key IN ({marks})",
            keys,
        )
        out: dict[int, dict[str, tuple[float, str, bool]]] = {}
        for k, tag, conf, version, promoted in rows:
            out.setdefault(k, {})[tag] = (float(conf), version, bool(promoted))
        return out

    def _removed(self, keys: list[int]) -> set[tuple[int, str]]:
        rows = self._in(
            "SELECT asset_key, tag_id FROM smart_tag_removals WHERE asset_key IN ({marks})", keys
        )
        return {(r[0], r[1]) for r in rows}
