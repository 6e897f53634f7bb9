"""The three tiers computed in plain Python on one document: explain, and the oracle.

Backends compute tiers in their engines; this module states the same rules directly, so
``--explain`` can say why a hit matched and tests can check every backend against it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from .document import SearchDocument
from .profile import METADATA_FIELDS
from .query import TieredQuery
from .results import FacetCount, Hit, MatchedTag, SearchResult, Why, capped_counts


def combine(values: list[float], how: str) -> float:
    if not values:
        return 0.0
    if how == "max":
        return max(values)
    if how == "avg":
        return sum(values) / len(values)
    return sum(values)


def passes_filters(doc: SearchDocument, q: TieredQuery) -> bool:
    if q.path_prefix is not None and not doc.asset_id.startswith(q.path_prefix):
        return False
    if q.formats and doc.format.upper() not in q.formats:
        return False
    floor = q.profile.confidence_floor
    carried = {t.tag for t in doc.manual_tags} | {
        s.tag for s in doc.smart_tags if s.confidence >= floor
    }
    return all(t in carried for t in q.tags)


def evaluate(doc: SearchDocument, q: TieredQuery) -> Hit | None:
    """The document's tier, score and why for ``q``, or None if it does not match."""
    if not passes_filters(doc, q):
        return None
    p = q.profile
    fields: dict[str, tuple[str, ...]] = {}
    text_score = 0.0
    for term in q.terms:
        stems = set(term.stems)
        hit_fields = tuple(f for f in METADATA_FIELDS if stems & set(doc.terms.get(f, ())))
        if hit_fields:
            fields[term.text] = hit_fields
            text_score += max(p.field_weights[f] for f in hit_fields)
    matched: list[MatchedTag] = []
    covered: set[str] = set()
    for s in doc.smart_tags:
        if s.confidence < p.confidence_floor:
            continue
        tag_terms = set(s.terms)
        words = tuple(t.text for t in q.terms if set(t.stems) & tag_terms)
        if words:
            matched.append(MatchedTag(s.tag, s.confidence, s.promoted, words))
            covered.update(words)
    why = Why(fields=fields, tags=tuple(matched))
    n = len(q.terms)
    if len(fields) == n:
        return Hit(doc.asset_id, 1, p.tier_boost(1) + text_score, why)
    if not matched:
        return None
    effective = [m.confidence * (p.promotion_factor if m.promoted else 1.0) for m in matched]
    smart_score = combine(effective, p.combine)
    tier = 2 if len(covered) == n else 3
    return Hit(doc.asset_id, tier, p.tier_boost(tier) + smart_score, why)


def rank(docs: Iterable[SearchDocument], q: TieredQuery) -> list[Hit]:
    """Every matching document, best first: tier, then score, then asset id."""
    hits = [h for d in docs if (h := evaluate(d, q)) is not None]
    hits.sort(key=lambda h: (-h.score, h.asset_id))
    return hits


def facets(
    docs: Sequence[SearchDocument], q: TieredQuery, size: int = 10
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Top smart tags (at or above the floor) and manual tags over the top
    ``q.profile.facet_sample`` hits in hit order (as OpenSearch's ``sampler``), by
    count, then tag id."""
    sample = {h.asset_id for h in rank(docs, q)[: q.profile.facet_sample]}
    smart: Counter[str] = Counter()
    manual: Counter[str] = Counter()
    for d in docs:
        if d.asset_id in sample:
            floor = q.profile.confidence_floor
            smart.update({s.tag for s in d.smart_tags if s.confidence >= floor})
            manual.update({t.tag for t in d.manual_tags})

    def top(c: Counter[str]) -> list[tuple[str, int]]:
        return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:size]

    return top(smart), top(manual)


def search(docs: Sequence[SearchDocument], q: TieredQuery) -> SearchResult:
    """The whole search result by these rules: what every backend must return."""
    hits = rank(docs, q)
    cap = q.profile.track_total_hits
    total, relation, tiers = capped_counts(Counter(h.tier for h in hits), cap)
    smart, manual = facets(docs, q)
    return SearchResult(
        hits=tuple(hits[q.offset : q.offset + q.limit]),
        total=total,
        tiers=tiers,
        smart_tag_facets=tuple(FacetCount(t, n) for t, n in smart),
        manual_tag_facets=tuple(FacetCount(t, n) for t, n in manual),
        total_relation=relation,
    )


def tier_of(score: float, q: TieredQuery) -> int:
    """The tier a backend score falls in (within-tier scores stay below the gaps)."""
    b1, b2, _ = q.profile.tier_boosts
    return 1 if score >= b1 else 2 if score >= b2 else 3
