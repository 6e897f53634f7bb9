"""Ranking profiles: the numbers behind the three tiers, in a file a search engineer edits.

Example (TOML)::

    name = "boost-titles"
    tier_boosts = [3000, 2000, 1000]
    confidence_floor = 0.3
    promotion_factor = 1.5
    combine = "sum"          # how the confidences of several matched smart tags combine
    languages = ["en", "de"]
    track_total_hits = 10000 # totals and tier counts are exact up to here, then "10,000+"
    facet_sample = 1000      # facets count the smart and manual tags of the top N hits
    [field_weights]
    title = 5
    keywords = 3
    manual_tags = 3
    description = 1
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .analysis import LANGUAGES
from .errors import ProfileError

#: Metadata fields of the first tier, in index order.
METADATA_FIELDS = ("title", "description", "keywords", "manual_tags")
#: Within-tier smart-tag scores assume at most this many matched tags per asset.
MAX_MATCHED_TAGS = 100
#: Largest ``track_total_hits`` a profile may ask for.
MAX_TRACKED_HITS = 1_000_000
#: Largest ``facet_sample``: OpenSearch's default ``max_result_window``.
MAX_FACET_SAMPLE = 10_000


class RankingProfile(BaseModel):
    """Tier boosts, metadata field weights, confidence floor, promotion, languages.

    Scores: tier k scores ``tier_boosts[k-1] + within``; ``within`` is, for tier 1, the
    sum over query terms of the largest weight of a field holding the term; for tiers 2
    and 3, the combined effective confidence (confidence, times ``promotion_factor`` for
    promoted tags) of the smart tags that matched a term. Validation keeps every
    ``within`` below the gap between tiers, so tiers never mix.

    Result-set size bounds, as OpenSearch's ``track_total_hits`` and ``sampler``:
    ``track_total_hits`` caps the total and the tier counts (exact below it, else
    reported as "at least", see :func:`ranking.results.capped_counts`); facets count the
    tags of the top ``facet_sample`` hits in hit order (score, then asset id).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "default"
    tier_boosts: tuple[float, float, float] = (3000.0, 2000.0, 1000.0)
    field_weights: dict[str, float] = Field(
        default_factory=lambda: {"title": 4.0, "keywords": 3.0, "manual_tags": 3.0,
                                 "description": 1.0}
    )  # fmt: skip
    confidence_floor: float = Field(default=0.3, ge=0.0, le=1.0)
    promotion_factor: float = Field(default=1.5, ge=1.0, le=5.0)
    combine: Literal["sum", "max", "avg"] = "sum"
    languages: tuple[str, ...] = ("en",)
    max_terms: int = Field(default=16, ge=1, le=64)
    track_total_hits: int = Field(default=10_000, ge=1, le=MAX_TRACKED_HITS)
    facet_sample: int = Field(default=1_000, ge=1, le=MAX_FACET_SAMPLE)

    @field_validator("field_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(METADATA_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown field {unknown[0]!r}; fields are {', '.join(METADATA_FIELDS)}"
            )
        if any(not 0 <= w <= 100 for w in value.values()):
            raise ValueError("field weights must be between 0 and 100")
        return {f: float(value.get(f, 0.0)) for f in METADATA_FIELDS}

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [lang for lang in value if lang not in LANGUAGES]
        if bad or not value:
            raise ValueError(
                f"unsupported language {bad[0] if bad else '(none)'!r}; "
                f"choose from {', '.join(LANGUAGES)}"
            )
        return value

    @model_validator(mode="after")
    def _tiers_never_mix(self) -> RankingProfile:
        b1, b2, b3 = self.tier_boosts
        if not b1 > b2 > b3 > 0:
            raise ValueError(
                f"tier_boosts must decrease and be positive, got {list(self.tier_boosts)}"
            )
        text_max = self.max_terms * max(self.field_weights.values())
        smart_max = MAX_MATCHED_TAGS * self.promotion_factor
        gap = min(b1 - b2, b2 - b3, b3)
        if gap <= max(text_max, smart_max):
            raise ValueError(
                f"tier_boosts {list(self.tier_boosts)} are too close: within-tier scores reach "
                f"{max(text_max, smart_max):g}; make each gap larger than that"
            )
        return self

    @model_validator(mode="after")
    def _sample_within_cap(self) -> RankingProfile:
        if self.facet_sample > self.track_total_hits:
            raise ValueError(
                f"facet_sample {self.facet_sample} exceeds track_total_hits "
                f"{self.track_total_hits}; facets sample the top hits, which the cap counts"
            )
        return self

    def tier_boost(self, tier: int) -> float:
        return self.tier_boosts[tier - 1]


def load_profile(path: Path, defaults: dict[str, object] | None = None) -> RankingProfile:
    """Read a profile from TOML or JSON; errors name the file and the field.

    ``defaults`` fill keys the file does not set (the service passes its languages)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ProfileError(f"cannot read profile {path}: {e.strerror or e}") from e
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        elif path.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            raise ProfileError(f"profile {path.name}: use a .toml or .json file")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProfileError(f"profile {path.name}: {e}") from e
    data = {**(defaults or {}), "name": path.stem, **data}
    try:
        return RankingProfile.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'profile'}: {err['msg']}" for err in e.errors()
        )
        raise ProfileError(f"profile {path.name}: {problems}") from e
