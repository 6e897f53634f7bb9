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
from ranking.results import FacetCount, Hit, SearchResult, Why, capped_counts
from ranking.sql import (
    SCHEMA,
    TEMP_SCHEMA,
    SqlQuery,
    tier1_classes,
    to_sql,
    to_sql_class_count,
    to_sql_class_fill,
    to_sql_class_walk,
    to_sql_facets,
    to_sql_smart,
    to_sql_smart_count,
    to_sql_smart_rows,
    to_sql_threshold,
    to_sql_tier1,
    to_sql_tier1_count,
    to_sql_tier1_scan,
    to_sql_tier_counts,
    to_sql_top,
)
from ranking.sql_memory import (
    to_sql_docs_of,
    to_sql_facets_of,
    to_sql_meta_of,
    to_sql_prune_changes,
    to_sql_record_changes,
    to_sql_record_names,
    to_sql_smart_of,
)

from ..errors import BackendError
from .embedded_cache import IndexMemory
from .embedded_memory import rank

#: Compact JSON of the same source the OpenSearch index stores (ranking.dsl), so both
#: backends keep one document format. One encoder, so each document skips the setup.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


#: Host parameters per statement when looking keys up by asset id.
_CHUNK = 500


class EmbeddedBackend:
    """The search index in SQLite (FTS5 and smart-tag tables); searches rank in memory
    (:mod:`.embedded_memory`) or by the SQL plan (:mod:`ranking.sql`)."""

    name = "embedded"
    #: A tier-1 score class larger than this is walked in asset-id order, not loaded.
    class_fill_max = 16_384
    #: Tier 1 of a query of several terms with at most this many hits is loaded by one
    #: FTS5 query whose rows are scored by their stored tokens, not by one FTS5 query
    #: per (term, weight class) (each intersecting every term's doclist again).
    tier1_scan_max = 10_000
    #: Searches run the in-memory plan (:mod:`.embedded_memory`): index parts cached
    #: per connection, ranked with numpy; False: every step in SQL (the reference plan,
    #: also taken for queries of more than 62 terms).
    memory_plan = True
    #: Cached metadata matches and filter keys: at most this many keys (4 bytes each;
    #: least recently used first, never the current search's).
    meta_memory_rows = 16_000_000
    #: Cached smart-tag rows: at most this many (12 bytes each; as above).
    smart_memory_rows = 4_000_000
    #: A connection whose caches are at most this many changed documents behind patches
    #: them from the change log (``search_changes``); further behind, it drops them.
    patch_max = 5_000
    #: Changes kept in the log (a reader further behind than this starts over).
    changes_kept = 100_000

    def __init__(self, path: Path, *, cache_mb: int | None = None) -> None:
        """``cache_mb``: memory for the caches of this connection, split 4:3 between
        metadata matches and smart-tag rows (None: the class defaults, 112 MB; 0: the SQL
        plan for every search)."""
        self.path = path
        if cache_mb is not None:
            budget = cache_mb * 2**20
            self.meta_memory_rows = budget * 4 // 7 // 4  # 4 bytes a key
            self.smart_memory_rows = budget * 3 // 7 // 12  # 12 bytes a row
            self.memory_plan = cache_mb > 0
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
        self._memory = IndexMemory(self._conn)

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

    def _names_of(self, keys: list[int]) -> set[str]:
        """The tokens ('s:') and smart tags ('t:') the stored documents ``keys`` hold."""
        names: set[str] = set()
        as_json = json.dumps(keys)
        for _, *texts in self._conn.execute(*to_sql_meta_of(as_json).args()):
            names.update("s:" + token for text in texts for token in text.split())
        for _, tag, _, _ in self._conn.execute(*to_sql_smart_of(as_json).args()):
            names.add("t:" + tag)
        return names

    def _record(self, changes: list[tuple[int, str]], names: set[str]) -> None:
        """Log the keys this write changed and the names their documents held or hold,
        for every connection's caches (in the write's transaction), keeping the last
        ``changes_kept`` changes."""
        if changes:
            record = to_sql_record_changes()
            self._conn.execute(record.sql, {"changes": json.dumps(changes)})
            seq = self._conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            record = to_sql_record_names()
            self._conn.execute(record.sql, {"seq": seq, "names": json.dumps(sorted(names))})
            self._run(to_sql_prune_changes(self.changes_kept))

    def upsert(self, docs: Sequence[SearchDocument]) -> BulkResult:
        result = BulkResult()
        c = self._conn
        # Written in order, a later document with the same asset id replaces an earlier one.
        latest = {doc.asset_id: doc for doc in docs}
        try:
            c.execute("BEGIN IMMEDIATE")
            existing = self._keys(list(latest))
            names = self._names_of(list(existing.values())) if existing else set()
            if existing:
                self._delete_keys(list(existing.values()))
            next_key = int(c.execute("SELECT coalesce(max(key), 0) FROM search_docs")
                           .fetchone()[0]) + 1  # fmt: skip
            doc_rows: list[tuple[int, str, str, str]] = []
            meta_rows: list[tuple[Any, ...]] = []
            smart_rows: list[tuple[int, str, float, int]] = []
            manual_rows: list[tuple[int, str]] = []
            tag_terms: set[tuple[str, str]] = set()
            changes: list[tuple[int, str]] = []
            for doc in latest.values():
                key = existing.get(doc.asset_id)
                if key is None:
                    key, next_key = next_key, next_key + 1
                changes.append((key, "n" if doc.asset_id not in existing else "u"))
                names.update("s:" + token for terms in doc.terms.values() for token in terms)
                names.update("t:" + s.tag for s in doc.smart_tags)
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
            self._record(changes, names)
            c.execute("COMMIT")
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
            keys = list(self._keys(list(dict.fromkeys(asset_ids))).values())
            names = self._names_of(keys)
            self._delete_keys(keys)
            self._record([(key, "d") for key in keys], names)
            c.execute("COMMIT")
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

    def _scalar(self, step: SqlQuery) -> Any:
        row = self._conn.execute(step.sql, step.params).fetchone()
        return None if row is None else row[0]

    def _tier1_top(self, q: TieredQuery, classes: list[tuple[float, str]], k: int) -> None:
        """The top ``k`` tier-1 hits (at least) into the empty ``temp.search_scored``:
        score classes best first, each loaded whole or walked in asset-id order."""
        have = 0
        for score, expr in classes:
            n = int(self._scalar(to_sql_class_count(q, expr, self.class_fill_max + 1)))
            if n == 0:
                continue
            if n <= self.class_fill_max:
                self._run([to_sql_class_fill(q, expr, score)])
                have += n
            else:
                have += self._conn.execute(*to_sql_class_walk(q, score, k - have).args()).rowcount
            if have >= k:
                return

    def _smart_counts(self, q: TieredQuery, left: int) -> dict[int, int]:
        """Smart-tier counts (tier 1 in ``temp.search_scored``), exact while their sum is
        at most ``left``, else lower bounds that pass it."""
        if left < 0:
            return {}
        smart = int(self._scalar(to_sql_smart_count(q, left + 1)))
        if smart == 0 or len(q.terms) == 1:  # one term: every smart hit is in tier 2
            return {2: smart}
        rows = [int(self._scalar(to_sql_smart_rows(q, i, self.class_fill_max)))
                for i in range(len(q.terms))]  # fmt: skip
        rarest = rows.index(min(rows))
        n2 = int(self._scalar(to_sql_smart_count(q, smart, every_from=rarest)))
        return {2: n2, 3: smart - n2}

    def _search_memory(self, q: TieredQuery) -> tuple[dict[int, int], list[Any], list[Any]]:
        """:meth:`_search` by the in-memory plan (:func:`.embedded_memory.rank`)."""
        k = max(q.offset + q.limit, q.profile.facet_sample)
        ranked = rank(self._memory, q, k)
        self._memory.keep(self.meta_memory_rows, self.smart_memory_rows, q)
        cap = q.profile.track_total_hits
        counts = {t: min(n, cap + 1) for t, n in ranked.counts.items()}
        end = q.offset + q.limit
        page = ranked.keys[q.offset : end].tolist()
        docs = {key: (asset_id, doc) for key, asset_id, doc in
                self._conn.execute(*to_sql_docs_of(json.dumps(page)).args())}  # fmt: skip
        rows = [(docs[key][0], tier, score, docs[key][1]) for key, tier, score in
                zip(page, ranked.tiers[q.offset : end].tolist(),
                    ranked.scores[q.offset : end].tolist(), strict=True)]  # fmt: skip
        sample = json.dumps(ranked.keys[: q.profile.facet_sample].tolist())
        facets = self._conn.execute(*to_sql_facets_of(q, sample).args()).fetchall()
        return counts, rows, facets

    def _search(self, q: TieredQuery) -> tuple[dict[int, int], list[Any], list[Any]]:
        """Tier counts (exact up to the cap), page rows and facet rows by the SQL plan;
        runs inside a read transaction. Only the top K = max(offset + limit,
        facet_sample) hits are needed."""
        cap = q.profile.track_total_hits
        k = max(q.offset + q.limit, q.profile.facet_sample)
        bound = max(cap, k)
        n1 = int(self._scalar(to_sql_tier1_count(q, bound + 1)))
        classes = tier1_classes(q) if n1 > bound else None
        counts: dict[int, int]
        if classes is not None:  # tier 1 alone fills the page, the sample and the cap
            self._run([SqlQuery("DELETE FROM temp.search_scored", {})])
            self._tier1_top(q, classes, k)
            counts = {1: n1}
        else:
            if len(q.terms) > 1 and n1 <= self.tier1_scan_max:
                self._run([SqlQuery("DELETE FROM temp.search_scored", {}), to_sql_tier1_scan(q)])
            else:
                self._run(to_sql_tier1(q))
            n1 = int(self._scalar(SqlQuery("SELECT count(*) FROM temp.search_scored", {})))
            if n1 < k:  # the smart tiers are on the page or in the sample: score them all
                self._run(to_sql_smart(q))
                row = self._conn.execute(*to_sql_tier_counts(q, cap + 1).args()).fetchone()
                counts = {1: int(row[0]), 2: int(row[1]), 3: int(row[2])}
            else:  # only count them, as far as the cap
                counts = {1: n1, **self._smart_counts(q, cap - n1)}
        score = self._scalar(to_sql_threshold(q, k - 1))  # the k-th score: order from there
        delete, top = to_sql_top(q, k)
        top = SqlQuery(top.sql, {**top.params, "threshold": 0.0 if score is None else float(score)})
        self._run([delete, top])
        rows = self._conn.execute(*to_sql(q).args()).fetchall()
        facets = self._conn.execute(*to_sql_facets(q).args()).fetchall()
        return counts, rows, facets

    def search(self, query: TieredQuery) -> SearchResult:
        c = self._conn
        try:
            memory = self.memory_plan and len(query.terms) <= 62  # a mask in 63 bits
            # One read transaction: every step sees the same snapshot; only temp is written.
            c.execute("BEGIN")
            try:
                if memory:  # bring the caches to this snapshot
                    self._memory.sync(self.patch_max)
                counts, rows, facets = (self._search_memory if memory else self._search)(query)
            finally:
                c.execute("COMMIT")
        except sqlite3.Error as e:
            raise BackendError(f"embedded search failed for {query.text!r}: {e}") from e
        hits = []
        for asset_id, tier, score, doc_json in rows:
            explained = evaluate(source_to_document(json.loads(doc_json)), query)
            why = explained.why if explained is not None else Why()
            hits.append(Hit(asset_id, int(tier), float(score), why))
        total, relation, tiers = capped_counts(counts, query.profile.track_total_hits)
        return SearchResult(
            hits=tuple(hits),
            total=total,
            tiers=tiers,
            smart_tag_facets=tuple(FacetCount(t, n) for k, t, n in facets if k == "smart"),
            manual_tag_facets=tuple(FacetCount(t, n) for k, t, n in facets if k == "manual"),
            total_relation=relation,
        )
