"""The embedded backend's in-memory plan: a search ranked with numpy over cached index parts.

Per connection, valid for one state of the index (the backend drops it on its own writes
and when ``PRAGMA data_version`` shows another connection's), :class:`IndexMemory` keeps
what searches read again and again, each loaded on first use:

* metadata matches: the sorted keys of the assets holding a stem in a class of fields of
  equal weight (one FTS5 query, read once per (stem, class));
* smart-tag rows: per (tag, floor, promotion factor), the keys at or above the floor and
  the value the SQL folds (the confidence, times the promotion factor when promoted);
* the smart tags of each indexed token (``search_tag_terms``);
* each key's rank in asset-id order (ties are broken by asset id);
* per filter, the keys it lets through (path prefix, formats, tags).

:func:`rank` then computes what :mod:`ranking.sql` computes, with the same arithmetic in
the same order (so the same floats): tier 1 from the metadata matches, tiers 2 and 3 by
folding the matched tags' rows per asset tag by tag, exact tier counts, and the top K
hits in hit order (score, then asset id). Only the page's documents and the facets of
the sample are read from SQLite afterwards, by key.
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ranking.profile import METADATA_FIELDS
from ranking.query import TieredQuery
from ranking.sql import SqlQuery
from ranking.sql_memory import (
    to_sql_asset_order,
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

#: Tier 1 is scored over dense arrays by key when its rarest term's matches times this
#: reach the largest key; else by set operations on the rarest term's keys.
TIER1_DENSE = 32
#: Smart-tag rows are folded over dense arrays by key when their number times this
#: reaches the largest key; else by rank among their distinct keys.
FOLD_DENSE = 8


def member(keys: Any, sorted_keys: Any) -> Any:
    """Which of ``keys`` are in the sorted array ``sorted_keys``."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.asarray(sorted_keys[at] == keys)


def _positions(sorted_keys: Any, keys: Any) -> Any:
    """Positions in ``sorted_keys`` of those of ``keys`` (sorted) it holds."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return at[sorted_keys[at] == keys]


def union(parts: list[Any]) -> Any:
    """The union of sorted key arrays, sorted."""
    if len(parts) == 1:
        return parts[0]
    a = np.sort(np.concatenate(parts))
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _sql(q: SqlQuery) -> tuple[str, dict[str, Any]]:
    return q.sql, q.params


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
        first, last = self._conn.execute(*_sql(to_sql_change_range())).fetchone()
        if last == self.seen:
            return
        if self.seen is None or last < self.seen or first > self.seen + 1 or (
            last - self.seen > patch_max
        ):  # fmt: skip
            self.forget()
            self.last_sync = "dropped"
        else:
            changes = self._conn.execute(*_sql(to_sql_changes_since(self.seen))).fetchall()
            names = {r[0] for r in self._conn.execute(*_sql(to_sql_names_since(self.seen)))}
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
        if any(op == "n" for _, op in changes):  # new asset ids: the order changed
            self._ranks = None
        meta = [n for n in self.meta.items if "s:" + n[0] in names]
        tags = [n for n in self.tags.items if "t:" + n[0] in names]
        if meta:
            holders: dict[tuple[str, str], set[int]] = {}  # (token, field) -> changed keys
            for key, *texts in self._conn.execute(*_sql(to_sql_meta_of(as_json))):
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
                *_sql(to_sql_smart_of(as_json))
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

    def ranks(self) -> Any:
        """Each key's position in asset-id order."""
        if self._ranks is None:
            order = self._ints(to_sql_asset_order())
            rank = np.zeros(int(order.max()) + 1 if len(order) else 1, dtype=np.int32)
            rank[order] = np.arange(len(order), dtype=np.int32)
            self._ranks = rank
        return self._ranks

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
                               for t, _ in query_tags(self, q)}  # fmt: skip
        self.tags.keep(tag_limit, tags, lambda rows: len(rows[0]))
        self.filters.keep(max(meta_limit - self.meta.rows, 0), set(), len)


def tier1(mem: IndexMemory, q: TieredQuery) -> tuple[Any, Any]:
    """Tier 1's keys (sorted) and scores, as :func:`ranking.sql.to_sql_tier1` scores them:
    per term the weight of the best field class holding it, summed in term order."""
    weights = q.profile.field_weights
    classes = sorted({weights[f] for f in METADATA_FIELDS}, reverse=True)
    groups = [(w, tuple(f for f in METADATA_FIELDS if weights[f] == w)) for w in classes]
    per_term = []
    for term in q.terms:
        stems = list(dict.fromkeys(term.stems))
        per_term.append([(w, [mem.meta_keys(s, f) for s in stems]) for w, f in groups])
    sizes = [sum(len(a) for _, arrays in t for a in arrays) for t in per_term]
    rarest = per_term[sizes.index(min(sizes))]
    top = max((int(a[-1]) for t in per_term for _, arrays in t for a in arrays if len(a)),
              default=0)  # fmt: skip
    if min(sizes) * TIER1_DENSE >= top:  # many hits for the key range: by key, dense
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
    keys = union([a for _, arrays in rarest for a in arrays])
    for by_class in per_term:
        if by_class is not rarest and len(keys):
            have = np.zeros(len(keys), dtype=bool)
            for _, arrays in by_class:
                for a in arrays:
                    have |= member(keys, a)
            keys = keys[have]
    within = np.zeros(len(keys), dtype=np.float64)
    for by_class in per_term:
        best = np.full(len(keys), -1.0)
        for w, arrays in by_class:  # best class first: the first holding it decides
            for a in arrays:
                hit = (best < 0) & member(keys, a)
                best[hit] = w
        within += best
    return keys, within


@dataclass(frozen=True)
class Fold:
    """The smart hits outside tier 1: keys (sorted), combined values, matched tags, and
    the bit mask of the query terms matched."""

    keys: Any
    within: Any
    n: Any
    mask: Any


def query_tags(mem: IndexMemory, q: TieredQuery) -> list[tuple[str, int]]:
    """The smart tags matching a query term, by tag, with the bit mask of the terms each
    matches (as :func:`ranking.sql.to_sql_query_tags`)."""
    masks: dict[str, int] = {}
    for i, term in enumerate(q.terms):
        for stem in term.stems:
            for tag in mem.tags_of(stem):
                masks[tag] = masks.get(tag, 0) | (1 << i)
    return sorted(masks.items())


def fold(mem: IndexMemory, q: TieredQuery, tier1_keys: Any, allowed: Any | None) -> Fold:
    """Every smart hit not in ``tier1_keys`` and (with filters) in ``allowed``, folded as
    :func:`ranking.sql.to_sql_smart` folds them. The rows are concatenated in tag order
    and ``bincount`` adds them in that order, so every sum is the SQL's, bit for bit."""
    p = q.profile
    qtags = query_tags(mem, q)
    parts = [mem.tag_rows(t, p.confidence_floor, p.promotion_factor) for t, _ in qtags]
    used = [(m, kk, vv) for (_, m), (kk, vv) in zip(qtags, parts, strict=True) if len(kk)]
    empty = np.zeros(0, np.int32)
    if not used:
        return Fold(empty, np.zeros(0), empty, empty)
    keys = np.concatenate([kk for _, kk, _ in used])
    values = np.concatenate([vv for _, _, vv in used])
    top = int(keys.max())
    dense = len(keys) * FOLD_DENSE >= top  # many rows for the key range: by key
    if dense:
        idx, size = keys, top + 1
    else:  # by rank among the distinct keys
        uniq, idx = np.unique(keys, return_inverse=True)
        size = len(uniq)
    n = np.bincount(idx, minlength=size)
    within: Any
    if p.combine == "max":
        within = np.zeros(size, dtype=np.float64)  # values are >= 0
        np.maximum.at(within, idx, values)
    else:
        within = np.bincount(idx, weights=values, minlength=size)
    masks = sorted({m for m, _, _ in used})
    mask: Any
    if len(masks) == 1:  # every matched tag matches the same terms (one term, say)
        mask = np.full(size, masks[0], dtype=np.int64)
    else:
        mask = np.zeros(size, dtype=np.int64)
        start, by_mask = 0, {m: list[Any]() for m in masks}
        for m, kk, _ in used:  # the positions of each mask's rows
            by_mask[m].append(idx[start : start + len(kk)])
            start += len(kk)
        for m, parts_m in by_mask.items():  # duplicates all write the same old | m
            mask[np.concatenate(parts_m)] |= m
    if dense:
        n[tier1_keys[tier1_keys < size]] = 0  # tier-1 hits stay in tier 1
        if allowed is not None:
            ok = np.zeros(size, dtype=bool)
            ok[allowed[allowed < size]] = True
            n[~ok] = 0
        keys = np.flatnonzero(n != 0)
        return Fold(keys, within[keys], n[keys], mask[keys])
    live = ~member(uniq, tier1_keys)
    if allowed is not None:
        live &= member(uniq, allowed)
    return Fold(uniq[live], within[live], n[live], mask[live])


@dataclass(frozen=True)
class Ranked:
    """Exact tier counts and the top hits in hit order."""

    counts: dict[int, int]
    keys: Any
    tiers: Any
    scores: Any


def _best(mem: IndexMemory, keys: Any, scores: Any, k: int) -> Any:
    """Positions of the top ``k`` of ``keys`` by score, then asset id, in that order."""
    if len(keys) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        above = np.flatnonzero(scores > kth)
        ties = np.flatnonzero(scores == kth)
        need = k - len(above)
        if len(ties) > need:
            r = mem.ranks()[keys[ties]]
            ties = ties[np.argpartition(r, need - 1)[:need]] if need > 0 else ties[:0]
        pick = np.concatenate([above, ties])
    else:
        pick = np.arange(len(keys))
    order = np.lexsort((mem.ranks()[keys[pick]], -scores[pick]))
    return pick[order]


def rank(mem: IndexMemory, q: TieredQuery, k: int) -> Ranked:
    """Tier counts (exact; not counted past ``track_total_hits`` once tier 1 alone
    passes it) and the top ``k`` hits of ``q``."""
    p = q.profile
    b1, b2, b3 = p.tier_boosts
    allowed = mem.allowed(q)
    t1_keys, t1_within = tier1(mem, q)
    if allowed is not None:
        live = member(t1_keys, allowed)
        t1_keys, t1_within = t1_keys[live], t1_within[live]
    t1_scores = b1 + t1_within
    n1 = len(t1_keys)
    if n1 > p.track_total_hits and n1 >= k:  # tier 1 alone fills the cap and the top k
        pos = _best(mem, t1_keys, t1_scores, k)
        return Ranked({1: n1}, t1_keys[pos], np.ones(len(pos), np.int64), t1_scores[pos])
    f = fold(mem, q, t1_keys, allowed)
    tier2 = f.mask == (1 << len(q.terms)) - 1
    combined = f.within / f.n if p.combine == "avg" else f.within
    n2 = int(tier2.sum())
    counts = {1: n1, 2: n2, 3: len(f.keys) - n2}
    keys_l, tiers_l, scores_l, left = [], [], [], k
    for tier, keys, scores in (
        (1, t1_keys, t1_scores),
        (2, f.keys[tier2], b2 + combined[tier2]),
        (3, f.keys[~tier2], b3 + combined[~tier2]),
    ):  # tiers never mix (the profile keeps every within below the gaps)
        if left <= 0:
            break
        pos = _best(mem, keys, scores, left)
        keys_l.append(keys[pos])
        scores_l.append(scores[pos])
        tiers_l.append(np.full(len(pos), tier, np.int64))
        left -= len(pos)
    return Ranked(counts, np.concatenate(keys_l), np.concatenate(tiers_l),
                  np.concatenate(scores_l))  # fmt: skip
