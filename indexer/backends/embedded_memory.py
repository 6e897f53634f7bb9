"""The embedded backend's in-memory plan: a search ranked with numpy over cached index parts.

:func:`rank` computes what :mod:`ranking.sql` computes, with the same arithmetic in the
same order (so the same floats), over the caches of :mod:`.embedded_cache`: tier 1 from
the metadata matches, tiers 2 and 3 by folding the matched tags' rows per asset in tag
order, exact tier counts, and the top K hits in hit order (score, then asset id). Only
the page's documents and the facets of the sample are read from SQLite afterwards, by
key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ranking.profile import METADATA_FIELDS
from ranking.query import TieredQuery

from .embedded_cache import IndexMemory, member, union

#: Tier 1 is scored over dense arrays by key when its rarest term's matches times this
#: reach the largest key; else by set operations on the rarest term's keys.
TIER1_DENSE = 32
#: Smart-tag rows are folded over dense arrays by key when their number times this
#: reaches the largest key; else by rank among their distinct keys.
FOLD_DENSE = 8


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


def fold(mem: IndexMemory, q: TieredQuery, tier1_keys: Any, allowed: Any | None) -> Fold:
    """Every smart hit not in ``tier1_keys`` and (with filters) in ``allowed``, folded as
    :func:`ranking.sql.to_sql_smart` folds them. The rows are concatenated in tag order
    and ``bincount`` adds them in that order, so every sum is the SQL's, bit for bit."""
    p = q.profile
    qtags = mem.query_tags(q)
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
