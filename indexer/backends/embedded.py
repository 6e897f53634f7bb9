"""The embedded search backend: SQLite FTS5 inside the catalog file. No server needed."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ranking.backend import BulkResult
from ranking.document import SearchDocument
from ranking.dsl import document_to_source, source_to_document
from ranking.explain import evaluate
from ranking.profile import METADATA_FIELDS
from ranking.query import TieredQuery
from ranking.results import FacetCount, Hit, SearchResult, Why, capped_counts
from ranking.sql import (
    ASSET_ORDER_INDEX,
    PROMOTION_REF,
    SCHEMA,
    TEMP_SCHEMA,
    TERM_SMART,
    SqlQuery,
    _phrase,
    term_bounds,
    tier1_classes,
    to_sql,
    to_sql_class_count,
    to_sql_class_fill,
    to_sql_class_walk,
    to_sql_facets,
    to_sql_query_tag_list,
    to_sql_query_tags,
    to_sql_smart,
    to_sql_smart_candidates,
    to_sql_smart_count,
    to_sql_smart_rows,
    to_sql_stream_count,
    to_sql_tag_rows,
    to_sql_term_list,
    to_sql_term_rows,
    to_sql_term_smart_backfill,
    to_sql_threshold,
    to_sql_tier1,
    to_sql_tier1_count,
    to_sql_tier1_scan,
    to_sql_tier_counts,
    to_sql_top,
)

from ..errors import BackendError


def _args(q: SqlQuery) -> tuple[str, dict[str, Any]]:
    return q.sql, q.params


#: Compact JSON of the same source the OpenSearch index stores (ranking.dsl), so both
#: backends keep one document format. One encoder, so each document skips the setup.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


#: Host parameters per statement when looking keys up by asset id.
_CHUNK = 500

#: One smart tag's rows at a profile's floor in memory: keys and folded values (the
#: confidence, times the promotion factor when promoted), in index order.
_TagRows = tuple[Any, Any]


def _member(keys: Any, sorted_keys: Any) -> Any:
    """Which of ``keys`` are in the sorted array ``sorted_keys``."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.asarray(sorted_keys[at] == keys)


def _union(parts: list[Any]) -> Any:
    """The union of sorted key arrays, sorted."""
    if len(parts) == 1:
        return parts[0]
    a = np.sort(np.concatenate(parts))
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


class EmbeddedBackend:
    """Tiers computed by SQL over FTS5 and smart-tag tables; see :mod:`ranking.sql`."""

    name = "embedded"
    #: A tier-1 score class larger than this is walked in asset-id order, not loaded.
    class_fill_max = 16_384
    #: Tier 1 of a query of several terms with at most this many hits is loaded by one
    #: FTS5 query whose rows are scored by their stored tokens, not by one FTS5 query
    #: per (term, weight class) (each intersecting every term's doclist again).
    tier1_scan_max = 10_000
    #: The smart tiers' top hits are found by a threshold algorithm over
    #: ``search_term_smart`` (see ``_smart_top``), which reads the other terms' rows
    #: whole and the most frequent term's in rounds: at most this many rows in rounds
    #: (then every smart hit is scored instead; 0: always score every smart hit) ...
    smart_top_max = 8_192
    #: ... with at most this many rows of the other terms (counted again past
    #: ``smart_top_max``) ...
    smart_top_whole_max = 65_536
    #: ... and only when the most frequent term has this many times more rows than the
    #: others together plus the first round (0: whenever allowed).
    smart_top_gain = 4
    #: Rows read per stem in the first round (None: 1.5 x the hits missing).
    smart_top_batch: int | None = None
    #: Where every smart hit must be scored (and no filter applies), the matched tags'
    #: rows are folded in memory (numpy) from a per-connection cache of smart-tag rows
    #: by tag, holding at most this many rows (16 bytes each; least recently used tags
    #: go first; 0: fold in SQL). Only the top K smart hits are written to
    #: ``temp.search_scored``; the tier counts come from the fold.
    smart_memory_rows = 4_000_000
    #: ... when the query's terms hold at least this many ``search_term_smart`` rows
    #: together (fewer: the SQL fold is as fast).
    smart_memory_min = 4_096
    #: Count the smart tiers of a query of several terms from the in-memory fold too
    #: (when tier 1 fills the top K), not by SQL.
    smart_memory_count = True
    #: Tier 1 (no filter) from per-connection in-memory key arrays of each (stem, field
    #: class) FTS5 match, at most this many keys (8 bytes each; least recently used
    #: first; 0: tier 1 in SQL): membership, scores and the top score classes become
    #: numpy set operations instead of FTS5 doclist intersections.
    meta_memory_rows = 16_000_000

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
        # Smart-tag rows by (tag, floor, promotion factor) (see smart_memory_rows), valid
        # for one data_version.
        self._tag_rows: OrderedDict[tuple[str, float, float], _TagRows] = OrderedDict()
        self._tag_rows_size = 0
        self._tag_rows_version: int | None = None
        self._fold_counts: dict[int, int] | None = None
        # Metadata matches: sorted keys by (stem, fields); asset-id rank by key.
        self._meta_keys: OrderedDict[tuple[str, tuple[str, ...]], Any] = OrderedDict()
        self._meta_size = 0
        self._asset_rank: Any = None

    def ensure_schema(self) -> None:
        try:
            c = self._conn
            fresh = c.execute("SELECT 1 FROM sqlite_master WHERE name = ?",
                              (TERM_SMART,)).fetchone() is None  # fmt: skip
            c.executescript(SCHEMA)
            if fresh:  # an index written before the table existed: derive its rows
                c.execute("BEGIN IMMEDIATE")
                c.execute(*_args(to_sql_term_smart_backfill()))
                c.execute("COMMIT")
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
        c.executemany(f"DELETE FROM {TERM_SMART} WHERE key = ?", rows)
        c.executemany("DELETE FROM search_docs WHERE key = ?", rows)

    def upsert(self, docs: Sequence[SearchDocument]) -> BulkResult:
        result = BulkResult()
        c = self._conn
        # Written in order, a later document with the same asset id replaces an earlier one.
        latest = {doc.asset_id: doc for doc in docs}
        try:
            c.execute("BEGIN IMMEDIATE")
            self._forget_tag_rows()
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
            term_rows: list[tuple[int, str, float, float]] = []
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
                bounds = term_bounds([(s.confidence, s.promoted, s.terms) for s in doc.smart_tags])
                term_rows.extend((key, term, b, top) for term, (b, top) in bounds.items())
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
            c.executemany(f"INSERT INTO {TERM_SMART}(key, term, bound, top) VALUES (?, ?, ?, ?)",
                          term_rows)  # fmt: skip
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
            self._forget_tag_rows()
            self._delete_keys(list(self._keys(list(dict.fromkeys(asset_ids))).values()))
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
                have += self._conn.execute(*_args(to_sql_class_walk(q, score, k - have))).rowcount
            if have >= k:
                return

    def _smart_all(self, q: TieredQuery, k: int, memory: bool = True) -> tuple[bool, list[str]]:
        """Score every smart hit (tier 1 in ``temp.search_scored`` stays): in memory when
        allowed (only the top ``k`` smart hits are then added; ``_fold_counts`` holds the
        tier counts), else in SQL."""
        self._run([SqlQuery("DELETE FROM temp.search_scored WHERE tier <> 1", {})])
        if not (memory and self._smart_memory(q, k)):
            self._run(to_sql_smart(q))
        return True, []

    def _forget_tag_rows(self) -> None:
        self._tag_rows.clear()
        self._tag_rows_size = 0
        self._meta_keys.clear()
        self._meta_size = 0
        self._asset_rank = None

    def _meta_keys_of(self, stem: str, fields: tuple[str, ...]) -> Any:
        """Sorted keys of the assets holding ``stem`` in one of ``fields`` (cached)."""
        name = (stem, fields)
        got = self._meta_keys.get(name)
        if got is not None:
            self._meta_keys.move_to_end(name)
            return got
        expr = "{" + " ".join(fields) + "} : " + _phrase((stem,))
        text = self._scalar(SqlQuery(
            "SELECT group_concat(rowid, ' ') FROM search_meta WHERE search_meta MATCH :expr",
            {"expr": expr},
        ))  # fmt: skip
        got = np.array(text.split(), dtype=np.int64) if text else np.zeros(0, np.int64)
        got.sort()
        self._meta_keys[name] = got
        self._meta_size += len(got)
        return got

    def _tier1_memory(self, q: TieredQuery) -> tuple[Any, Any] | None:
        """Tier 1's keys (sorted) and scores from in-memory metadata matches, as
        :func:`ranking.sql.to_sql_tier1` scores them (per term the weight of the best
        field class holding it, summed in term order); None when not allowed."""
        if self.meta_memory_rows <= 0 or not self._memory_allowed(q):
            return None
        weights = q.profile.field_weights
        classes = sorted({weights[f] for f in METADATA_FIELDS}, reverse=True)
        groups = [(w, tuple(f for f in METADATA_FIELDS if weights[f] == w)) for w in classes]
        per_term = []
        for term in q.terms:
            stems = list(dict.fromkeys(term.stems))
            per_term.append([(w, [self._meta_keys_of(s, f) for s in stems]) for w, f in groups])
        sizes = [sum(len(a) for _, arrays in t for a in arrays) for t in per_term]
        rarest = per_term[sizes.index(min(sizes))]
        top = max((int(a[-1]) for t in per_term for _, arrays in t for a in arrays if len(a)),
                  default=0)  # fmt: skip
        self._meta_keys_keep(q, groups)
        if min(sizes) * 32 >= top:  # many hits for the key range: by key, dense
            within = np.zeros(top + 1, dtype=np.float64)
            held = np.ones(top + 1, dtype=bool)
            for by_class in per_term:
                best = np.full(top + 1, -1.0)
                for w, arrays in reversed(by_class):  # the best class written last wins
                    for a in arrays:
                        best[a] = w
                held &= best >= 0
                within += best
            keys = np.flatnonzero(held)
            return keys, within[keys]
        # Few: the rarest term's keys held by every other term (sorted throughout).
        keys = _union([a for _, arrays in rarest for a in arrays])
        for by_class in per_term:
            if by_class is not rarest and len(keys):
                have = np.zeros(len(keys), dtype=bool)
                for _, arrays in by_class:
                    for a in arrays:
                        have |= _member(keys, a)
                keys = keys[have]
        within = np.zeros(len(keys), dtype=np.float64)
        for by_class in per_term:
            best = np.full(len(keys), -1.0)
            for w, arrays in by_class:  # best class first: the first holding it decides
                for a in arrays:
                    hit = (best < 0) & _member(keys, a)
                    best[hit] = w
            within += best
        return keys, within

    def _meta_keys_keep(self, q: TieredQuery, groups: list[tuple[float, tuple[str, ...]]]) -> None:
        """Evict the least recently used metadata matches past ``meta_memory_rows``, never
        those of ``q``."""
        names = {(s, f) for t in q.terms for s in t.stems for _, f in groups}
        for name in names:
            self._meta_keys.move_to_end(name)
        while self._meta_size > self.meta_memory_rows and len(self._meta_keys) > len(names):
            _, old = self._meta_keys.popitem(last=False)
            self._meta_size -= len(old)

    def _ranks(self) -> Any:
        """Each key's position in asset-id order (cached like the tag rows)."""
        if self._asset_rank is None:
            cur = self._conn.execute(
                f"SELECT key FROM search_docs INDEXED BY {ASSET_ORDER_INDEX} ORDER BY asset_id"
            )
            order = np.fromiter((r[0] for r in cur), np.int64)
            rank = np.zeros(int(order.max()) + 1 if len(order) else 1, dtype=np.int64)
            rank[order] = np.arange(len(order), dtype=np.int64)
            self._asset_rank = rank
        return self._asset_rank

    def _write_tier1(self, keys: Any, within: Any) -> None:
        self._conn.executemany(
            "INSERT INTO temp.search_scored(key, tier, mask, within, n) VALUES (?, 1, 0, ?, 1)",
            zip(keys.tolist(), within.tolist(), strict=True),
        )

    def _tier1_top_memory(self, keys: Any, within: Any, k: int) -> None:
        """The top ``k`` tier-1 hits (score, then asset id) into the empty
        ``temp.search_scored``."""
        if len(keys) > k:
            kth = np.partition(within, len(within) - k)[len(within) - k]
            above = within > kth + 1e-9
            ties = np.flatnonzero(np.abs(within - kth) <= 1e-9)
            need = k - int(above.sum())
            if len(ties) > need:
                r = self._ranks()[keys[ties]]
                ties = ties[np.argpartition(r, need - 1)[:need]] if need > 0 else ties[:0]
            pick = np.concatenate([np.flatnonzero(above), ties])
            keys, within = keys[pick], within[pick]
        self._write_tier1(keys, within)

    def _tag_rows_of(self, q: TieredQuery, tags: list[str]) -> list[_TagRows]:
        """The rows of each of ``tags`` at ``q``'s floor, from the cache or read (and
        cached)."""
        cache, out, p = self._tag_rows, [], q.profile
        for tag in tags:
            name = (tag, p.confidence_floor, p.promotion_factor)
            rows = cache.get(name)
            if rows is None:
                got = self._conn.execute(*_args(to_sql_tag_rows(q, tag))).fetchall()
                if got:
                    keys, vals = zip(*got, strict=True)
                    rows = (np.fromiter(keys, np.int64, len(got)),
                            np.fromiter(vals, np.float64, len(got)))  # fmt: skip
                else:
                    rows = (np.zeros(0, np.int64), np.zeros(0, np.float64))
                cache[name] = rows
                self._tag_rows_size += len(rows[0])
            else:
                cache.move_to_end(name)
            out.append(rows)
        # Evict least recently used tags, never those of this query.
        while self._tag_rows_size > self.smart_memory_rows and len(cache) > len(tags):
            _, old = cache.popitem(last=False)
            self._tag_rows_size -= len(old[0])
        return out

    def _memory_allowed(self, q: TieredQuery) -> bool:
        """Whether the smart tiers may be folded in memory: a cache, no filter, and at
        most 62 terms (a mask in 63 bits)."""
        return (self.smart_memory_rows > 0 and q.path_prefix is None and not q.formats
                and not q.tags and len(q.terms) <= 62)  # fmt: skip

    def _fold(self, q: TieredQuery) -> tuple[int, tuple[Any, ...] | None]:
        """Every smart hit not in tier 1 (the keys in ``temp.search_scored``), folded in
        memory as :func:`ranking.sql.to_sql_smart` folds them (the same tags in the same
        order, so the same sums): the tier-1 count and ``(keys, within, n, mask,
        tier2)`` arrays, or None when there is no smart hit."""
        c = self._conn
        self._run(to_sql_query_tags(q))
        qtags = c.execute(*_args(to_sql_query_tag_list())).fetchall()
        parts = self._tag_rows_of(q, [t for t, _ in qtags])
        keys_l, vals_l, masks_l = [], [], []
        for (_, mask), (kk, vv) in zip(qtags, parts, strict=True):
            if len(kk):
                keys_l.append(kk)
                vals_l.append(vv)
                masks_l.append(np.full(len(kk), int(mask), dtype=np.int64))
        t1 = np.array([r[0] for r in c.execute("SELECT key FROM temp.search_scored")],
                      dtype=np.int64)  # fmt: skip
        if not keys_l:
            return len(t1), None
        keys = np.concatenate(keys_l)
        vals = np.concatenate(vals_l)
        masks = np.concatenate(masks_l)
        # Fold per asset in row order (tags by tag, as the SQL upsert folds them), by key
        # when the rows are many for the key range, else by rank among the keys.
        dense = len(keys) * 8 >= int(keys.max())
        if dense:
            idx, size = keys, int(keys.max()) + 1
        else:
            uniq, idx = np.unique(keys, return_inverse=True)
            size = len(uniq)
        count = np.bincount(idx, minlength=size)
        within: Any
        if q.profile.combine == "max":
            within = np.zeros(size, dtype=np.float64)
            np.maximum.at(within, idx, vals)
        else:
            within = np.bincount(idx, weights=vals, minlength=size)
        mask = np.zeros(size, dtype=np.int64)
        np.bitwise_or.at(mask, idx, masks)
        if dense:  # the keys with rows
            uniq = np.flatnonzero(count)
            within, count, mask = within[uniq], count[uniq], mask[uniq]
        if len(t1):  # tier-1 hits stay as they are
            live = ~np.isin(uniq, t1)
            uniq, within, count, mask = uniq[live], within[live], count[live], mask[live]
        tier2 = mask == (1 << len(q.terms)) - 1
        return len(t1), (uniq, within, count, mask, tier2)

    def _smart_memory(self, q: TieredQuery, k: int) -> bool:
        """Every smart hit folded in memory (:meth:`_fold`) and the top ``k`` of them (with
        ties) added to ``temp.search_scored``; ``_fold_counts`` gets the tier counts.
        False (nothing done) when not allowed."""
        if not self._memory_allowed(q):
            return False
        p = q.profile
        n1, fold = self._fold(q)
        if fold is None:
            self._fold_counts = {1: n1, 2: 0, 3: 0}
            return True
        uniq, within, count, mask, tier2 = fold
        n2 = int(tier2.sum())
        self._fold_counts = {1: n1, 2: n2, 3: len(uniq) - n2}
        combined = within / count if p.combine == "avg" else within
        score = np.where(tier2, p.tier_boosts[1], p.tier_boosts[2]) + combined
        if len(score) > k:  # the top k smart hits and ties (the SQL orders them exactly)
            kth = np.partition(score, len(score) - k)[len(score) - k]
            top = score >= kth - 1e-9
            uniq, within, count, mask = uniq[top], within[top], count[top], mask[top]
        self._conn.executemany(
            "INSERT INTO temp.search_scored(key, tier, mask, within, n) VALUES (?, 3, ?, ?, ?)",
            zip(uniq.tolist(), mask.tolist(), within.tolist(), count.tolist(), strict=True),
        )
        return True

    def _smart_top(self, q: TieredQuery, k: int, need: int) -> tuple[bool, list[str]]:
        """Add the smart hits (tiers 2 and 3) among the top ``k`` hits to
        ``temp.search_scored`` (tier 1 there, ``need`` hits short of ``k``), with every
        hit scoring as much as the ``k``-th. Says whether every smart hit was added, and
        else the stems whose assets were not all read (only they hold smart hits not
        added).

        A threshold algorithm over ``search_term_smart``: the assets holding a stem of
        any term but the most frequent one are read whole; those of the most frequent
        term's stems are read best bound first, in rounds of growing size; each asset read
        is scored exactly. It stops when the ``k``-th score beats what an asset not read
        yet can score (its tier's boost plus the sum of the live stems' current bounds,
        see :data:`ranking.sql.TERM_SMART`). An asset not read then holds only the most
        frequent term's stems, so every tier-2 hit has been scored unless those cover
        every term (one term, or the same word twice). Every smart hit is scored instead
        when the other terms have more than ``smart_top_whole_max`` rows, when the most
        frequent term has fewer than ``smart_top_gain`` times theirs plus the first
        round, or when the rounds pass ``smart_top_max`` rows."""
        limit = self.smart_top_max
        if limit <= 0:
            return self._smart_all(q, k)

        def term_sizes(cap: int) -> list[int]:  # per term, counting at most cap + 1
            return [int(self._scalar(to_sql_term_rows(q, i, cap + 1))) for i in range(len(q.terms))]

        cap = limit
        sizes = term_sizes(cap)
        if sum(sizes) - max(sizes) > cap and self.smart_top_whole_max > cap:
            cap = self.smart_top_whole_max  # count again, further
            sizes = term_sizes(cap)
        big = sizes.index(max(sizes))
        others = sum(sizes) - sizes[big]
        memory = sum(sizes) >= self.smart_memory_min
        if others > cap:  # several frequent terms: score everything
            return self._smart_all(q, k, memory)
        # Reading and scoring asset by asset costs a few times what scoring every row in
        # one statement does: worth it only when the streamed term is much larger.
        worth = self.smart_top_gain * (others + need + need // 2)
        if sizes[big] > cap and worth > cap:
            sizes[big] = int(self._scalar(to_sql_term_rows(q, big, worth + 1)))
        if sizes[big] <= worth:
            return self._smart_all(q, k, memory)
        self._run(to_sql_query_tags(q))
        p = q.profile
        scale = max(1.0, p.promotion_factor / PROMOTION_REF)
        stream = list(dict.fromkeys(q.terms[big].stems))
        whole = [s for t in q.terms for s in t.stems if s not in stream]
        cursors = {s: self._conn.execute(*_args(to_sql_term_list(s)))
                   for s in dict.fromkeys(whole + stream)}  # fmt: skip
        heads = dict.fromkeys(stream, math.inf)  # the live streams' bounds
        seen: set[int] = set()
        batch = self.smart_top_batch or max(need + need // 2, 32)
        read = 0
        try:
            first = True
            while True:
                new: list[tuple[int]] = []
                for stem, cursor in cursors.items():
                    if stem in heads:
                        rows = cursor.fetchmany(batch)
                        if len(rows) < batch:
                            del heads[stem]
                        else:
                            heads[stem] = float(rows[-1][1])
                    elif first:
                        rows = cursor.fetchall()
                    else:
                        continue
                    read += len(rows)
                    for key, _ in rows:
                        if key not in seen:
                            seen.add(key)
                            new.append((key,))
                first = False
                if new:
                    self._run([SqlQuery("DELETE FROM temp.search_cand", {})])
                    self._conn.executemany("INSERT INTO temp.search_cand(key) VALUES (?)", new)
                    self._run(to_sql_smart_candidates(q))
                if not heads:
                    return True, []
                # An asset not read holds live stems only: tier 2 if they cover every term.
                tier2 = all(any(s in heads for s in t.stems) for t in q.terms)
                best = p.tier_boosts[1 if tier2 else 2] + scale * sum(heads.values())
                kth = self._scalar(to_sql_threshold(q, k - 1))
                if kth is not None and best + 1e-6 < float(kth):
                    return False, stream
                if read > others + limit:
                    return self._smart_all(q, k)
                batch *= 2
        finally:
            for cursor in cursors.values():
                cursor.close()

    def _smart_counts(self, q: TieredQuery, left: int) -> dict[int, int]:
        """Smart-tier counts (tier 1 in ``temp.search_scored``), exact while their sum is
        at most ``left``, else lower bounds that pass it."""
        if left < 0:
            return {}
        if len(q.terms) > 1 and self.smart_memory_count and self._memory_allowed(q):
            _, fold = self._fold(q)  # exact counts (past the cap too)
            if fold is None:
                return {2: 0, 3: 0}
            n2 = int(fold[4].sum())
            return {2: n2, 3: len(fold[0]) - n2}
        smart = int(self._scalar(to_sql_smart_count(q, left + 1)))
        if smart == 0 or len(q.terms) == 1:  # one term: every smart hit is in tier 2
            return {2: smart}
        rows = [int(self._scalar(to_sql_smart_rows(q, i, self.class_fill_max)))
                for i in range(len(q.terms))]  # fmt: skip
        rarest = rows.index(min(rows))
        n2 = int(self._scalar(to_sql_smart_count(q, smart, every_from=rarest)))
        return {2: n2, 3: smart - n2}

    def _search(self, q: TieredQuery) -> tuple[dict[int, int], list[Any], list[Any]]:
        """Tier counts (exact up to the cap), page rows and facet rows; runs inside a read
        transaction. Only the top K = max(offset + limit, facet_sample) hits are needed."""
        cap = q.profile.track_total_hits
        k = max(q.offset + q.limit, q.profile.facet_sample)
        bound = max(cap, k)
        t1 = self._tier1_memory(q)
        classes: list[tuple[float, str]] | None
        if t1 is not None:
            n1 = len(t1[0])
            classes = [] if n1 > bound else None
        else:
            n1 = int(self._scalar(to_sql_tier1_count(q, bound + 1)))
            classes = tier1_classes(q) if n1 > bound else None
        counts: dict[int, int]
        if classes is not None:  # tier 1 alone fills the page, the sample and the cap
            self._run([SqlQuery("DELETE FROM temp.search_scored", {})])
            if t1 is not None:
                self._tier1_top_memory(t1[0], t1[1], k)
            else:
                self._tier1_top(q, classes, k)
            counts = {1: n1}
        else:
            if t1 is not None:
                self._run([SqlQuery("DELETE FROM temp.search_scored", {})])
                self._write_tier1(*t1)
            elif len(q.terms) > 1 and n1 <= self.tier1_scan_max:
                self._run([SqlQuery("DELETE FROM temp.search_scored", {}), to_sql_tier1_scan(q)])
            else:
                self._run(to_sql_tier1(q))
            n1 = int(self._scalar(SqlQuery("SELECT count(*) FROM temp.search_scored", {})))
            if n1 < k:  # the smart tiers are on the page or in the sample: find their top
                self._fold_counts = None
                every, stream = self._smart_top(q, k, k - n1)
                if self._fold_counts is not None:  # folded in memory: counted there
                    counts = {t: min(n, cap + 1) for t, n in self._fold_counts.items()}
                else:
                    row = self._conn.execute(*_args(to_sql_tier_counts(q, cap + 1))).fetchone()
                    counts = {1: int(row[0]), 2: int(row[1]), 3: int(row[2])}
                if not every:  # count the hits not read, to the cap
                    more = cap + 1 - sum(counts.values())
                    rest = int(self._scalar(to_sql_stream_count(q, stream, max(more, 0))))
                    if len(q.terms) == 1:  # every smart hit is in tier 2
                        counts[2] += rest
                    elif any(not set(t.stems) & set(stream) for t in q.terms):
                        counts[3] += rest  # they lack a term: tier 3
                    else:  # they may hold every term
                        counts = {1: n1, **self._smart_counts(q, cap - n1)}
            else:  # only count them, as far as the cap
                counts = {1: n1, **self._smart_counts(q, cap - n1)}
        score = self._scalar(to_sql_threshold(q, k - 1))  # the k-th score: order from there
        delete, top = to_sql_top(q, k)
        top = SqlQuery(top.sql, {**top.params, "threshold": 0.0 if score is None else float(score)})
        self._run([delete, top])
        rows = self._conn.execute(*_args(to_sql(q))).fetchall()
        facets = self._conn.execute(*_args(to_sql_facets(q))).fetchall()
        return counts, rows, facets

    def search(self, query: TieredQuery) -> SearchResult:
        c = self._conn
        try:
            # Read before the snapshot starts: cached tag rows read in this search are at
            # least this recent, and a write after it changes it for the next search.
            version = int(c.execute("PRAGMA data_version").fetchone()[0])
            if version != self._tag_rows_version:  # another connection wrote
                self._forget_tag_rows()
                self._tag_rows_version = version
            # One read transaction: every step sees the same snapshot; only temp is written.
            c.execute("BEGIN")
            try:
                counts, rows, facets = self._search(query)
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
