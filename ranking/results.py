"""What a search returns: hits with tier, score and why; totals; facets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: ``"eq"``: ``total`` is exact; ``"gte"``: there are more hits (OpenSearch's relation).
Relation = Literal["eq", "gte"]


@dataclass(frozen=True)
class MatchedTag:
    """A smart tag that matched query terms, with its confidence."""

    tag: str
    confidence: float
    promoted: bool
    terms: tuple[str, ...]  # the query words it matched


@dataclass(frozen=True)
class Why:
    """Why a hit matched: query word -> metadata fields holding it; matched smart tags."""

    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tags: tuple[MatchedTag, ...] = ()


@dataclass(frozen=True)
class Hit:
    asset_id: str
    tier: int
    score: float
    why: Why


@dataclass(frozen=True)
class FacetCount:
    tag: str
    count: int


def capped_counts(tiers: Mapping[int, int], cap: int) -> tuple[int, Relation, dict[int, int]]:
    """``(total, relation, tiers)`` as a search reports them with ``track_total_hits=cap``.

    The tiers are those of the first ``cap`` hits in hit order: tier 1 up to the cap,
    tier 2 up to what is left of it, then tier 3; ``total`` is their sum, ``min(hits,
    cap)``, and ``relation`` is ``"gte"`` when there are more hits than ``cap``. A count
    past the cap may be any lower bound above it (backends stop counting there).
    """
    left, out = cap, {}
    for tier in (1, 2, 3):
        take = min(tiers.get(tier, 0), left)
        if take > 0:
            out[tier] = take
            left -= take
    relation: Relation = "gte" if sum(tiers.values()) > cap else "eq"
    return sum(out.values()), relation, out


@dataclass(frozen=True)
class SearchResult:
    """One page of hits, the tier counts, and facets over the top hits.

    ``total`` and ``tiers`` are exact when ``total_relation`` is ``"eq"``; with
    ``"gte"`` there are more than ``total`` hits (the profile's ``track_total_hits``),
    and ``tiers`` counts the first ``total`` of them (:func:`capped_counts`). Facets
    count the tags of the top ``facet_sample`` hits in hit order.
    """

    hits: tuple[Hit, ...]
    total: int
    tiers: dict[int, int]
    smart_tag_facets: tuple[FacetCount, ...] = ()
    manual_tag_facets: tuple[FacetCount, ...] = ()
    total_relation: Relation = "eq"

    @property
    def total_text(self) -> str:
        """``"1,234"``, or ``"10,000+"`` when there are more hits than counted."""
        return f"{self.total:,}" + ("+" if self.total_relation == "gte" else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "total_relation": self.total_relation,
            "tiers": {str(k): v for k, v in sorted(self.tiers.items())},
            "hits": [
                {
                    "asset": h.asset_id, "tier": h.tier, "score": round(h.score, 6),
                    "why": {
                        "fields": {k: list(v) for k, v in h.why.fields.items()},
                        "tags": [
                            {"tag": t.tag, "confidence": t.confidence, "promoted": t.promoted,
                             "terms": list(t.terms)}
                            for t in h.why.tags
                        ],
                    },
                }
                for h in self.hits
            ],
            "facets": {
                "smart_tags": [{"tag": f.tag, "count": f.count} for f in self.smart_tag_facets],
                "manual_tags": [{"tag": f.tag, "count": f.count} for f in self.manual_tag_facets],
            },
        }  # fmt: skip
