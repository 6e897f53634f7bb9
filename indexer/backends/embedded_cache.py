"""The embedded backend's per-connection caches of index parts, kept up to date by patching.

:class:`IndexMemory` keeps what searches read again and again, each loaded on first use
(the reads are in :mod:`ranking.sql_memory`):

* metadata matches: the sorted keys of the assets holding a stem in a class of fields of
  equal weight (one FTS5 query, read once per (stem, class));
* smart-tag rows: per (tag, floor, promotion factor), the keys at or above the floor
  (sorted) and the value the SQL folds (the confidence, times the promotion factor when
  promoted);
* the smart tags of each indexed token (``search_tag_terms``);
* each key's rank in asset-id order (ties are broken by asset id);
* per filter, the keys it lets through (path prefix, formats, tags).

Each list is bounded (least recently used first). Writes log the keys they change and
the tokens and tags their documents held or hold (``search_changes``,
``search_changed_names``); :meth:`IndexMemory.sync`, at the start of each search, patches
only the lists of those names from the changed documents, or drops everything when too
far behind. :mod:`.embedded_memory` ranks with them.
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

from ranking.profile import METADATA_FIELDS
from ranking.query import TieredQuery
from ranking.sql import SqlQuery
from ranking.sql_memory import (
    to_sql_asset_before,
    to_sql_asset_ids_of,
    to_sql_asset_order,
    to_sql_assets_after,
    to_sql_change_range,
    to_sql_changes_since,
    to_sql_format_keys,
    to_sql_meta_keys,
    to_sql_meta_of,
    to_sql_names_since,
    to_sql_path_keys,
    to_sql_smart_of,
    to_sql_tag_filter_keys,
    to_sql_tag_keys,
    to_sql_tag_terms,
    to_sql_tag_values,
)

#: Keys of one tag's rows (sorted) and the values folded.
TagRows = tuple[Any, Any]

#: Asset-id ranks are positions times this (a float64 holds positions up to 2**23 with 30
#: halvings of room between neighbours for new assets).
RANK_GAP = float(2**30)


def _lookup(sorted_keys: Any, keys: Any) -> tuple[Any, Any]:
    """For each of ``keys``: where it is or would be in ``sorted_keys`` (non-empty), and
    whether it is there."""
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return at, np.asarray(sorted_keys[at] == keys)


def member(keys: Any, sorted_keys: Any) -> Any:
    """Which of ``keys`` are in the sorted array ``sorted_keys``."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    return _lookup(sorted_keys, keys)[1]


def _positions(sorted_keys: Any, keys: Any) -> Any:
    """Positions in ``sorted_keys`` of those of ``keys`` it holds."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64)
    at, hit = _lookup(sorted_keys, keys)
    return at[hit]


def union(parts: list[Any]) -> Any:
    """The union of sorted key arrays, sorted."""
    if len(parts) == 1:
        return parts[0]
    a = np.sort(np.concatenate(parts))
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _merge(sorted_keys: Any, changed: Any, now: Any) -> Any:
    """``sorted_keys`` without ``changed`` (sorted), with ``now`` (sorted, a subset of
    ``changed``) added back: one document set after some documents changed."""
    at = _positions(sorted_keys, changed)
    if len(at) == 0 and len(now) == 0:
        return sorted_keys
    kept = np.delete(sorted_keys, at)
    if len(now) == 0:
        return kept
    return np.insert(kept, np.searchsorted(kept, now), now)


def _int_list(text: str | None) -> Any:
    """Keys from a ``group_concat(..., ' ')`` (the fastest way to read many), as int32
    (half the memory) unless one does not fit."""
    if not text:
        return np.zeros(0, np.int32)
    keys = np.fromstring(text, dtype=np.int64, sep=" ")
    return keys.astype(np.int32) if keys.max() <= np.iinfo(np.int32).max else keys


class _Lru:
    """Arrays by name, least recently used first, sized by their row counts."""

    def __init__(self) -> None:
        self.items: OrderedDict[Any, Any] = OrderedDict()
        self.rows = 0

    def get(self, name: Hashable) -> Any:
        got = self.items.get(name)
        if got is not None:
            self.items.move_to_end(name)
        return got

    def put(self, name: Hashable, value: Any, rows: int) -> Any:
        self.items[name] = value
        self.rows += rows
        return value

    def keep(self, limit: int, names: set[Hashable], rows_of: Any) -> None:
        """Evict past ``limit`` rows, never ``names`` (the current search's)."""
        for name in names:
            if name in self.items:
                self.items.move_to_end(name)
        while self.rows > limit and len(self.items) > len(names):
            _, old = self.items.popitem(last=False)
            self.rows -= rows_of(old)

    def replace(self, name: Hashable, value: Any, rows_of: Any) -> None:
        """Swap an entry's value in place (its recency unchanged)."""
        self.rows += rows_of(value) - rows_of(self.items[name])
        self.items[name] = value

    def clear(self) -> None:
        self.items.clear()
        self.rows = 0


class IndexMemory:
    """Per-connection copies of index parts (see the module docstring). Reads run on the
    connection's current transaction, so a search sees one snapshot throughout;
    :meth:`sync` first brings what is cached to that snapshot."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.meta = _Lru()
        self.tags = _Lru()
        self.filters = _Lru()
        self._tag_terms: dict[str, list[str]] | None = None
        self._ranks: Any = None
        #: The last change (``search_changes.seq``) the caches reflect.
        self.seen: int | None = None
        #: How the caches were last brought up to date: "patched" or "dropped".
        self.last_sync = ""
        #: How many times the asset-id order was read whole.
        self.order_reads = 0

    def forget(self) -> None:
        """Drop everything."""
        self.meta.clear()
        self.tags.clear()
        self.filters.clear()
        self._tag_terms = None
        self._ranks = None

    def sync(self, patch_max: int) -> None:
        """Bring the caches to the current snapshot: patch them from the documents changed
        since :attr:`seen`, or drop them when more than ``patch_max`` changes (or changes
        no longer logged) lie between."""
        first, last = self._conn.execute(*to_sql_change_range().args()).fetchone()
        if last == self.seen:
            return
        if self.seen is None or last < self.seen or first > self.seen + 1 or (
            last - self.seen > patch_max
        ):  # fmt: skip
            self.forget()
            self.last_sync = "dropped"
        else:
            changes = self._conn.execute(*to_sql_changes_since(self.seen).args()).fetchall()
            names = {r[0] for r in self._conn.execute(*to_sql_names_since(self.seen).args())}
            self._patch(changes, names)
            self.last_sync = "patched"
        self.seen = last

    def _patch(self, changes: list[tuple[int, str]], names: set[str]) -> None:
        """Replace the changed documents' entries in the cached arrays of the tokens and
        tags they held or hold (``names``) by what they hold now (nothing, when
        deleted); no other array can have changed."""
        keys = np.unique(np.array([k for k, _ in changes], dtype=np.int64))
        as_json = json.dumps(keys.tolist())
        self.filters.clear()
        self._tag_terms = None
        added = sorted({key for key, op in changes if op == "n"})
        if added and self._ranks is not None and not self._place(added):
            self._ranks = None
        meta = [n for n in self.meta.items if "s:" + n[0] in names]
        tags = [n for n in self.tags.items if "t:" + n[0] in names]
        if meta:
            holders: dict[tuple[str, str], set[int]] = {}  # (token, field) -> changed keys
            for key, *texts in self._conn.execute(*to_sql_meta_of(as_json).args()):
                for f, text in zip(METADATA_FIELDS, texts, strict=True):
                    for token in text.split():
                        holders.setdefault((token, f), set()).add(key)
            for name in meta:
                arr = self.meta.items[name]
                stem, fields = name
                add = sorted(set().union(*(holders.get((stem, f), ()) for f in fields)))
                self.meta.replace(name, _merge(arr, keys, np.array(add, dtype=arr.dtype)), len)
        if tags:
            rows: dict[str, list[tuple[int, float, int]]] = {}
            for key, tag, confidence, promoted in self._conn.execute(
                *to_sql_smart_of(as_json).args()
            ):
                rows.setdefault(tag, []).append((key, confidence, promoted))
            for name in tags:
                kk, vv = self.tags.items[name]
                tag, floor, promotion = name
                # The SQL's arithmetic (to_sql_tag_values), so the same doubles.
                new = [(k, c * (promotion if p else 1.0)) for k, c, p in rows.get(tag, ())
                       if c >= floor]  # fmt: skip
                at = _positions(kk, keys)
                if len(at) == 0 and not new:
                    continue
                kk, vv = np.delete(kk, at), np.delete(vv, at)
                if new:
                    new.sort()
                    nk = np.array([k for k, _ in new], dtype=kk.dtype)
                    where = np.searchsorted(kk, nk)
                    kk = np.insert(kk, where, nk)
                    vv = np.insert(vv, where, np.array([v for _, v in new], dtype=np.float64))
                self.tags.replace(name, (kk, vv), lambda r: len(r[0]))

    def _ints(self, q: SqlQuery) -> Any:
        """The keys of a one-value ``group_concat`` read, in read order."""
        row = self._conn.execute(q.sql, q.params).fetchone()
        return _int_list(None if row is None else row[0])

    def meta_keys(self, stem: str, fields: tuple[str, ...]) -> Any:
        """Sorted keys of the assets holding ``stem`` in one of ``fields``."""
        name = (stem, fields)
        got = self.meta.get(name)
        if got is None:
            got = self._ints(to_sql_meta_keys(stem, fields))
            got.sort()
            self.meta.put(name, got, len(got))
        return got

    def tag_rows(self, tag: str, floor: float, promotion: float) -> TagRows:
        """``tag``'s rows at or above ``floor``: keys and confidence (times ``promotion``
        when promoted), by key. Read as keys (text, fast) and values (doubles, exact), by
        two reads of the index in one snapshot (the same order)."""
        name = (tag, floor, promotion)
        got: TagRows | None = self.tags.get(name)
        if got is None:
            keys = self._ints(to_sql_tag_keys(tag, floor))
            read = to_sql_tag_values(tag, floor, promotion)
            cur = self._conn.execute(read.sql, read.params)
            values = np.fromiter((r[0] for r in cur), np.float64, len(keys))
            order = np.argsort(keys, kind="stable")  # by key: patches find keys by bisection
            got = (keys[order], values[order])
            self.tags.put(name, got, len(keys))
        return got

    def tags_of(self, stem: str) -> list[str]:
        """The smart tags whose titles or synonyms hold ``stem``."""
        if self._tag_terms is None:
            terms: dict[str, list[str]] = {}
            read = to_sql_tag_terms()
            for term, tag in self._conn.execute(read.sql, read.params):
                terms.setdefault(term, []).append(tag)
            self._tag_terms = terms
        return self._tag_terms.get(stem, [])

    def query_tags(self, q: TieredQuery) -> list[tuple[str, int]]:
        """The smart tags matching a query term, by tag, with the bit mask of the terms
        each matches (as the SQL plan's ``tags`` CTE in :func:`ranking.sql.to_sql_smart`)."""
        masks: dict[str, int] = {}
        for i, term in enumerate(q.terms):
            for stem in term.stems:
                for tag in self.tags_of(stem):
                    masks[tag] = masks.get(tag, 0) | (1 << i)
        return sorted(masks.items())

    def ranks(self) -> Any:
        """Each key's rank in asset-id order: positions times :data:`RANK_GAP`, so that
        new assets fit in between (:meth:`_place`)."""
        if self._ranks is None:
            self.order_reads += 1
            order = self._ints(to_sql_asset_order())
            rank = np.zeros(int(order.max()) + 1 if len(order) else 1, dtype=np.float64)
            rank[order] = np.arange(len(order), dtype=np.float64) * RANK_GAP
            self._ranks = rank
        return self._ranks

    def _place(self, new: list[int]) -> bool:
        """Rank the new assets ``new`` (keys) between their neighbours in asset-id order,
        one index seek each; False when one does not fit (the ranks are read again)."""
        if len(new) > 1_000:
            return False
        rows = self._conn.execute(*to_sql_asset_ids_of(json.dumps(new)).args()).fetchall()
        if not rows:  # deleted since
            return True
        ranks: Any = self._ranks
        top = max(key for key, _ in rows)
        if top >= len(ranks):
            ranks = np.concatenate([ranks, np.zeros(top + 1 - len(ranks))])
        waiting = {key for key, _ in rows}  # not ranked yet
        # In asset-id order, so the asset just before each one is ranked already.
        for key, asset_id in sorted(rows, key=lambda r: str(r[1])):
            before = self._conn.execute(*to_sql_asset_before(asset_id).args()).fetchone()
            later = self._conn.execute(*to_sql_assets_after(asset_id, len(waiting) + 1).args())
            after = [k for (k,) in later if k not in waiting]
            lo: float | None = None if before is None else float(ranks[before[0]])
            hi: float | None = float(ranks[after[0]]) if after else None
            if lo is not None and hi is not None:
                rank = (lo + hi) / 2
                if not lo < rank < hi:
                    return False  # no room left between the two
            else:
                rank = hi - RANK_GAP if hi is not None else (lo or 0.0) + RANK_GAP
            ranks[key] = rank
            waiting.discard(key)
        self._ranks = ranks
        return True

    def allowed(self, q: TieredQuery) -> Any | None:
        """The sorted keys that pass ``q``'s filters; None when it has none."""
        parts = []
        if q.path_prefix is not None:
            parts.append(self._filter(("path", q.path_prefix), to_sql_path_keys(q.path_prefix)))
        if q.formats:
            parts.append(self._filter(("formats", q.formats), to_sql_format_keys(q.formats)))
        for tag in q.tags:
            floor = q.profile.confidence_floor
            parts.append(self._filter(("tag", tag, floor), to_sql_tag_filter_keys(tag, floor)))
        if not parts:
            return None
        keys = parts[0]
        for other in parts[1:]:
            keys = keys[member(keys, other)]
        return keys

    def _filter(self, name: Hashable, read: SqlQuery) -> Any:
        got = self.filters.get(name)
        if got is None:
            got = self._ints(read)
            got.sort()
            self.filters.put(name, got, len(got))
        return got

    def keep(self, meta_limit: int, tag_limit: int, q: TieredQuery) -> None:
        """Evict past the limits (metadata matches and filters share ``meta_limit``),
        least recently used first, never what ``q`` uses."""
        weights = q.profile.field_weights
        groups = {tuple(f for f in METADATA_FIELDS if weights[f] == w) for w in weights.values()}
        names: set[Hashable] = {(s, f) for t in q.terms for s in t.stems for f in groups}
        self.meta.keep(meta_limit, names, len)
        p = q.profile
        tags: set[Hashable] = {(t, p.confidence_floor, p.promotion_factor)
                               for t, _ in self.query_tags(q)}  # fmt: skip
        self.tags.keep(tag_limit, tags, lambda rows: len(rows[0]))
        self.filters.keep(max(meta_limit - self.meta.rows, 0), set(), len)
