"""The embedded search backend: SQLite FTS5 inside the catalog file. No server needed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ranking.backend import BulkResult
from ranking.document import SearchDocument
from ranking.dsl import document_to_source, source_to_document
from ranking.explain import evaluate
from ranking.profile import METADATA_FIELDS
from ranking.query import TieredQuery
from ranking.results import FacetCount, Hit, SearchResult, Why
from ranking.sql import (
    SCHEMA,
    TEMP_SCHEMA,
    SqlQuery,
    to_sql,
    to_sql_facets,
    to_sql_facets_all,
    to_sql_facets_complement,
    to_sql_scoring,
    to_sql_summary,
    to_sql_threshold,
    to_sql_ties,
)

from ..errors import BackendError


def _args(q: SqlQuery) -> tuple[str, dict[str, Any]]:
    return q.sql, q.params


#: Compact JSON of the same source the OpenSearch index stores (ranking.dsl), so both
#: backends keep one document format. One encoder, so each document skips the setup.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


#: Host parameters per statement when looking keys up by asset id.
_CHUNK = 500


class EmbeddedBackend:
    """Tiers computed by SQL over FTS5 and smart-tag tables; see :mod:`ranking.sql`."""

    name = "embedded"
    #: Count facets as all assets' less the others' when more than this share matches.
    complement_share = 0.5
    #: Find tied hits by walking asset ids when more than this many tie (and they are dense).
    ties_walk_min = 1_000

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            # Searches stream whole result sets through per-connection temp tables.
            self._conn.execute("PRAGMA temp_store=MEMORY")
            self._conn.execute("PRAGMA cache_size=-65536")  # KiB: 64 MiB
            self._conn.execute("PRAGMA mmap_size=1073741824")
            self._conn.executescript(TEMP_SCHEMA)
        except sqlite3.Error as e:
            raise BackendError(f"cannot open the embedded search index in {path}: {e}") from e
        self._writes = 0  # commits by this connection (other connections: data_version)
        self._facets_all: dict[float, tuple[int, int]] = {}  # floor -> version counted

    def ensure_schema(self) -> None:
        try:
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise BackendError(f"cannot create the search tables in {self.path}: {e}") from e

    def close(self) -> None:
        self._conn.close()

    def _keys(self, asset_ids: Sequence[str]) -> dict[str, int]:
        """Keys of the stored documents among ``asset_ids``."""
        found: dict[str, int] = {}
        for i in range(0, len(asset_ids), _CHUNK):
            chunk = asset_ids[i : i + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            found.update(self._conn.execute(
                f"SELECT asset_id, key FROM search_docs WHERE asset_id IN ({marks})", chunk
            ).fetchall())  # fmt: skip
        return found

    def _delete_keys(self, keys: list[int]) -> None:
        c = self._conn
        rows = [(key,) for key in sorted(keys)]
        c.executemany("DELETE FROM search_meta WHERE rowid = ?", rows)
        c.executemany("DELETE FROM search_smart WHERE key = ?", rows)
        c.executemany("DELETE FROM search_manual WHERE key = ?", rows)
        c.executemany("DELETE FROM search_docs WHERE key = ?", rows)

    def upsert(self, docs: Sequence[SearchDocument]) -> BulkResult:
        result = BulkResult()
        c = self._conn
        # Written in order, a later document with the same asset id replaces an earlier one.
        latest = {doc.asset_id: doc for doc in docs}
        try:
            c.execute("BEGIN IMMEDIATE")
            existing = self._keys(list(latest))
            if existing:
                self._delete_keys(list(existing.values()))
            next_key = int(c.execute("SELECT coalesce(max(key), 0) FROM search_docs")
                           .fetchone()[0]) + 1  # fmt: skip
            doc_rows: list[tuple[int, str, str, str]] = []
            meta_rows: list[tuple[Any, ...]] = []
            smart_rows: list[tuple[int, str, float, int]] = []
            manual_rows: list[tuple[int, str]] = []
            tag_terms: set[tuple[str, str]] = set()
            for doc in latest.values():
                key = existing.get(doc.asset_id)
                if key is None:
                    key, next_key = next_key, next_key + 1
                doc_rows.append(
                    (
                        key,
                        doc.asset_id,
                        doc.format.upper(),
                        _ENCODER.encode(document_to_source(doc)),
                    )
                )
                meta_rows.append((key, *(" ".join(doc.terms.get(f, ())) for f in METADATA_FIELDS)))
                smart_rows.extend(
                    (key, s.tag, s.confidence, int(s.promoted)) for s in doc.smart_tags
                )
                manual_rows.extend((key, t.tag) for t in doc.manual_tags)
                tag_terms.update((term, s.tag) for s in doc.smart_tags for term in s.terms)
            c.executemany(
                "INSERT INTO search_docs(key, asset_id, format, doc) VALUES (?, ?, ?, ?)",
                doc_rows,
            )
            c.executemany(
                "INSERT INTO search_meta(rowid, title, description, keywords, manual_tags) "
                "VALUES (?, ?, ?, ?, ?)",
                meta_rows,
            )
            c.executemany(
                "INSERT OR REPLACE INTO search_smart(key, tag, confidence, promoted) "
                "VALUES (?, ?, ?, ?)",
                smart_rows,
            )
            c.executemany("INSERT OR IGNORE INTO search_manual(key, tag) VALUES (?, ?)",
                          manual_rows)  # fmt: skip
            c.executemany("INSERT OR IGNORE INTO search_tag_terms(term, tag) VALUES (?, ?)",
                          sorted(tag_terms))  # fmt: skip
            c.execute("COMMIT")
            self._writes += 1
            result.ok = len(docs)
        except sqlite3.Error as e:
            c.execute("ROLLBACK")
            raise BackendError(f"embedded index write failed in {self.path}: {e}") from e
        return result

    def delete(self, asset_ids: Sequence[str]) -> BulkResult:
        result = BulkResult()
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            self._delete_keys(list(self._keys(list(dict.fromkeys(asset_ids))).values()))
            c.execute("COMMIT")
            self._writes += 1
            result.ok = len(asset_ids)
        except sqlite3.Error as e:
            c.execute("ROLLBACK")
            raise BackendError(f"embedded index delete failed in {self.path}: {e}") from e
        return result

    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM search_docs").fetchone()[0])

    def _run(self, steps: list[SqlQuery]) -> None:
        for step in steps:
            self._conn.execute(step.sql, step.params)

    def _search(self, q: TieredQuery) -> tuple[list[Any], list[Any]]:
        """The page rows and the summary rows of ``q``; runs inside a read transaction."""
        c = self._conn
        self._run(to_sql_scoring(q))
        found = int(c.execute("SELECT count(*) FROM temp.search_scored").fetchone()[0])
        # Indexed assets, roughly (keys are dense unless many were deleted).
        indexed = int(c.execute("SELECT coalesce(max(key), 0) FROM search_docs").fetchone()[0])
        if found > self.complement_share * indexed:
            # Most assets match: count the facets of all of them (kept while the index is
            # unchanged: data_version moves with other connections' commits, _writes with
            # ours) less those of the few that do not match.
            version = (int(c.execute("PRAGMA data_version").fetchone()[0]), self._writes)
            floor = q.profile.confidence_floor
            if self._facets_all.get(floor) != version:
                self._run(to_sql_facets_all(q))
                self._facets_all[floor] = version
            self._run(to_sql_facets_complement(q))
        else:
            self._run(to_sql_facets(q))
        page = to_sql(q)
        kth = c.execute(*_args(to_sql_threshold(q))).fetchone()
        if kth is not None and kth[0] is not None:
            score, above, ties = float(kth[0]), int(kth[1]), int(kth[2])
            need = q.offset + q.limit - above
            if ties > self.ties_walk_min and ties * ties > need * indexed:
                page = to_sql_ties(q, score, need)
            else:
                page = SqlQuery(page.sql, {**page.params, "threshold": score})
        rows = c.execute(*_args(page)).fetchall()
        counts = c.execute(*_args(to_sql_summary(q))).fetchall()
        return rows, counts

    def search(self, query: TieredQuery) -> SearchResult:
        c = self._conn
        try:
            # One read transaction: every step sees the same snapshot; only temp is written.
            c.execute("BEGIN")
            try:
                rows, counts = self._search(query)
            finally:
                c.execute("COMMIT")
        except sqlite3.Error as e:
            raise BackendError(f"embedded search failed for {query.text!r}: {e}") from e
        hits = []
        for asset_id, tier, score, doc_json in rows:
            explained = evaluate(source_to_document(json.loads(doc_json)), query)
            why = explained.why if explained is not None else Why()
            hits.append(Hit(asset_id, int(tier), float(score), why))
        tiers = {int(name): n for kind, name, n in counts if kind == "tier"}
        return SearchResult(
            hits=tuple(hits),
            total=sum(tiers.values()),
            tiers=tiers,
            smart_tag_facets=tuple(FacetCount(t, n) for k, t, n in counts if k == "smart"),
            manual_tag_facets=tuple(FacetCount(t, n) for k, t, n in counts if k == "manual"),
        )
