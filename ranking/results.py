"""What a search returns: hits with tier, score and why; totals; facets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass(frozen=True)
class SearchResult:
    """One page of hits, the total per tier, and facets over the whole result set."""

    hits: tuple[Hit, ...]
    total: int
    tiers: dict[int, int]
    smart_tag_facets: tuple[FacetCount, ...] = ()
    manual_tag_facets: tuple[FacetCount, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
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
