"""The three-tier query as OpenSearch query DSL, and documents as OpenSearch sources.

Pure functions, no client: :func:`to_dsl` renders a :class:`~ranking.query.TieredQuery`
as one search body; :func:`document_to_source` / :func:`source_to_document` convert a
:class:`~ranking.document.SearchDocument` to the ``_source`` the index stores and back.
The mapping these rely on is ``opensearch-config/index-template.json``.

Scores follow :mod:`ranking.explain` exactly, built only from ``constant_score`` clauses
and the stored confidences (never from BM25 or other engine text statistics)::

    dis_max(tie_breaker=0) of
      tier 1: constant_score(b1) + sum over terms of dis_max over fields of
              constant_score(terms_<field> has a stem of the term, boost=weight)
      tier 2: constant_score(b2) + nested(score_mode=combine) of
              function_score(confidence x promotion_factor if promoted)
              over the smart tags at or above the floor holding any query stem,
              filtered to documents whose smart tags cover EVERY term
      tier 3: the same without the every-term filter (so: ANY term)

Tier scores never overlap (the profile validates the gaps), so the ``dis_max`` picks the
best tier. Analysis happens in Python: documents carry stems in keyword arrays and the
query matches them with ``terms`` queries.

Result-set bounds follow the profile: ``track_total_hits`` is the profile's cap, and the
tier counts come from a ``filters`` aggregation (exact; the backend caps them with
:func:`ranking.results.capped_counts`). Facets count the top ``facet_sample`` hits in
hit order: :func:`to_dsl_facet_sample` fetches their tags (sorted by score, then asset
id) and :func:`sample_facets` counts them. A ``sampler`` aggregation would be cheaper but
takes the top hits by score alone, breaking ties by Lucene doc id (osmem-server does
the same, by insertion order), and per shard, so its facets would differ from the
contract's whenever hits tie at the sample's edge, which large tier-1 result sets
(scores are sums of a few field weights) nearly always do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .document import SearchDocument, SmartTag, TagRef
from .profile import METADATA_FIELDS
from .query import TieredQuery

#: Facet sizes: the most frequent smart tags (at or above the floor) and manual tags.
FACET_SIZE = 10
#: The stable order of hits: score, then asset id (the tie-breaker).
SORT: list[dict[str, Any]] = [{"_score": "desc"}, {"asset_id": "asc"}]
#: What the facet sample reads of each hit's source.
SAMPLE_SOURCE = ["manual_tags", "smart_tags.tag", "smart_tags.confidence"]

Json = dict[str, Any]


def term_field(field: str) -> str:
    """The keyword field holding the stems of a metadata field."""
    return f"terms_{field}"


def _constant(boost: float, flt: Json | None = None) -> Json:
    return {"constant_score": {"filter": flt or {"match_all": {}}, "boost": boost}}


def _above_floor(q: TieredQuery) -> Json:
    return {"range": {"smart_tags.confidence": {"gte": q.profile.confidence_floor}}}


def _all_stems(q: TieredQuery) -> list[str]:
    return list(dict.fromkeys(s for t in q.terms for s in t.stems))


# -- membership conditions (filter context, no score) ----------------------------------


def _metadata_has(stems: tuple[str, ...]) -> Json:
    """Some metadata field holds one of ``stems``."""
    return {
        "bool": {
            "should": [{"terms": {term_field(f): list(stems)}} for f in METADATA_FIELDS],
            "minimum_should_match": 1,
        }
    }


def _smart_has(q: TieredQuery, stems: list[str]) -> Json:
    """Some smart tag at or above the floor holds one of ``stems``."""
    return {
        "nested": {
            "path": "smart_tags",
            "score_mode": "none",
            "query": {
                "bool": {"filter": [_above_floor(q), {"terms": {"smart_tags.terms": stems}}]}
            },
        }
    }


def tier_conditions(q: TieredQuery) -> dict[int, Json]:
    """Mutually exclusive filters: a document is in tier k iff it matches condition k."""
    tier1 = {"bool": {"filter": [_metadata_has(t.stems) for t in q.terms]}}
    every = {"bool": {"filter": [_smart_has(q, list(t.stems)) for t in q.terms]}}
    tier2 = {"bool": {"filter": [every], "must_not": [tier1]}}
    tier3 = {"bool": {"filter": [_smart_has(q, _all_stems(q))], "must_not": [tier1, every]}}
    return {1: tier1, 2: tier2, 3: tier3}


# -- scoring clauses --------------------------------------------------------------------


def _tier1(q: TieredQuery) -> Json:
    weights = q.profile.field_weights
    per_term = [
        {
            "dis_max": {
                "tie_breaker": 0.0,
                "queries": [
                    _constant(weights[f], {"terms": {term_field(f): list(t.stems)}})
                    for f in METADATA_FIELDS
                ],
            }
        }
        for t in q.terms
    ]
    return {"bool": {"must": [_constant(q.profile.tier_boost(1)), *per_term]}}


def _smart_score(q: TieredQuery) -> Json:
    """combine(effective confidence) over the smart tags matching any query stem."""
    functions: list[Json] = [
        {"field_value_factor": {"field": "smart_tags.confidence", "missing": 0.0}}
    ]
    if q.profile.promotion_factor != 1.0:
        functions.append(
            {
                "filter": {"term": {"smart_tags.promoted": True}},
                "weight": q.profile.promotion_factor,
            }
        )
    return {
        "nested": {
            "path": "smart_tags",
            "score_mode": q.profile.combine,
            "query": {
                "function_score": {
                    "query": {
                        "bool": {
                            "filter": [
                                _above_floor(q),
                                {"terms": {"smart_tags.terms": _all_stems(q)}},
                            ]
                        }
                    },
                    "functions": functions,
                    "score_mode": "multiply",
                    "boost_mode": "replace",
                }
            },
        }
    }


def _tier2(q: TieredQuery) -> Json:
    return {
        "bool": {
            "must": [_constant(q.profile.tier_boost(2)), _smart_score(q)],
            "filter": [_smart_has(q, list(t.stems)) for t in q.terms],
        }
    }


def _tier3(q: TieredQuery) -> Json:
    return {"bool": {"must": [_constant(q.profile.tier_boost(3)), _smart_score(q)]}}


def filters(q: TieredQuery) -> list[Json]:
    """``path_prefix`` (asset id prefix), ``formats`` (any of), ``tags`` (all of)."""
    out: list[Json] = []
    if q.path_prefix is not None:
        out.append({"prefix": {"asset_id": q.path_prefix}})
    if q.formats:
        out.append({"terms": {"format": list(q.formats)}})
    for tag in q.tags:
        smart = {
            "nested": {
                "path": "smart_tags",
                "score_mode": "none",
                "query": {"bool": {"filter": [{"term": {"smart_tags.tag": tag}}, _above_floor(q)]}},
            }
        }
        out.append(
            {
                "bool": {
                    "should": [{"term": {"manual_tags": tag}}, smart],
                    "minimum_should_match": 1,
                }
            }
        )
    return out


def aggregations(q: TieredQuery) -> Json:
    """Tier counts: a ``filters`` aggregation over the exclusive tier conditions."""
    return {"tiers": {"filters": {"filters": {str(k): c for k, c in tier_conditions(q).items()}}}}


def _query(q: TieredQuery) -> Json:
    query: Json = {
        "bool": {
            "must": [
                {"dis_max": {"tie_breaker": 0.0, "queries": [_tier1(q), _tier2(q), _tier3(q)]}}
            ]
        }
    }
    flt = filters(q)
    if flt:
        query["bool"]["filter"] = flt
    return query


def to_dsl(q: TieredQuery) -> Json:
    """The search body for ``q``: one page of hits, the total up to the profile's cap
    and the tier counts."""
    return {
        "query": _query(q),
        "sort": [dict(s) for s in SORT],
        "from": q.offset,
        "size": q.limit,
        "track_total_hits": q.profile.track_total_hits,
        "track_scores": True,
        "aggs": aggregations(q),
    }


def to_dsl_facet_sample(q: TieredQuery) -> Json:
    """The search body of the facet sample: the tags of the top ``facet_sample`` hits in
    hit order (count them with :func:`sample_facets`)."""
    return {
        "query": _query(q),
        "sort": [dict(s) for s in SORT],
        "from": 0,
        "size": q.profile.facet_sample,
        "track_total_hits": False,
        "_source": list(SAMPLE_SOURCE),
    }


def sample_facets(
    sources: Iterable[Mapping[str, Any]], q: TieredQuery, size: int = FACET_SIZE
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The top smart tags (at or above the floor) and manual tags of the sampled hits'
    sources, by count, then tag id (as :func:`ranking.explain.facets`)."""
    smart: Counter[str] = Counter()
    manual: Counter[str] = Counter()
    floor = q.profile.confidence_floor
    for src in sources:
        smart.update({str(t["tag"]) for t in src.get("smart_tags") or ()
                      if float(t["confidence"]) >= floor})  # fmt: skip
        manual.update({str(t) for t in src.get("manual_tags") or ()})

    def top(c: Counter[str]) -> list[tuple[str, int]]:
        return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:size]

    return top(smart), top(manual)


# -- documents --------------------------------------------------------------------------


def document_to_source(doc: SearchDocument) -> Json:
    """The ``_source`` stored for ``doc`` (see opensearch-config/README.md)."""
    src: Json = {
        "asset_id": doc.asset_id,
        "path": doc.path,
        "format": doc.format,
        "width": doc.width,
        "height": doc.height,
        "modified_at": doc.modified_at,
        "title": doc.title,
        "description": doc.description,
        "keywords": list(doc.keywords),
    }
    for f in METADATA_FIELDS:
        src[term_field(f)] = list(doc.terms.get(f, ()))
    src["manual_tags"] = [t.tag for t in doc.manual_tags]
    src["manual_tag_refs"] = [
        {"tag": t.tag, "titles": dict(t.titles), "terms": list(t.terms)} for t in doc.manual_tags
    ]
    src["smart_tags"] = [
        {
            "tag": s.tag,
            "confidence": s.confidence,
            "promoted": s.promoted,
            "model_version": s.model_version,
            "terms": list(s.terms),
            "titles": dict(s.titles),
        }
        for s in doc.smart_tags
    ]
    return src


def _titles(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def source_to_document(src: Mapping[str, Any]) -> SearchDocument:
    """The inverse of :func:`document_to_source`.

    ``terms`` always comes back with the four metadata fields (empty tuples for none),
    as :func:`ranking.document.build_document` makes it.
    """
    manual = tuple(
        TagRef(str(r["tag"]), _titles(r.get("titles")), tuple(r.get("terms") or ()))
        for r in src.get("manual_tag_refs") or ()
    )
    smart = tuple(
        SmartTag(
            tag=str(s["tag"]),
            confidence=float(s["confidence"]),
            model_version=str(s.get("model_version") or ""),
            promoted=bool(s.get("promoted", False)),
            titles=_titles(s.get("titles")),
            terms=tuple(s.get("terms") or ()),
        )
        for s in src.get("smart_tags") or ()
    )
    return SearchDocument(
        asset_id=str(src["asset_id"]),
        title=str(src.get("title") or ""),
        description=str(src.get("description") or ""),
        keywords=tuple(src.get("keywords") or ()),
        manual_tags=manual,
        smart_tags=smart,
        format=str(src.get("format") or ""),
        width=int(src.get("width") or 0),
        height=int(src.get("height") or 0),
        modified_at=float(src.get("modified_at") or 0.0),
        terms={f: tuple(src.get(term_field(f)) or ()) for f in METADATA_FIELDS},
    )
