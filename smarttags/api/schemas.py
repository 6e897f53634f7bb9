"""Request and response bodies: the OpenAPI spec documents them and responses are checked."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ranking.query import MAX_LIMIT, MAX_QUERY_CHARS, MAX_WINDOW

#: Ranking profile names the API selects from the profiles folder.
PROFILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
#: Tag model names (as training.spec validates them).
MODEL_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable, machine-readable: unknown_asset, invalid_query, ...")
    message: str = Field(description="For people: names the bad value and the fix.")
    details: Any = None


class ErrorBody(BaseModel):
    """Every error response has this shape."""

    error: ErrorInfo


# -- search ------------------------------------------------------------------


class MatchedTagOut(BaseModel):
    tag: str
    confidence: float
    promoted: bool
    terms: list[str]


class WhyOut(BaseModel):
    fields: dict[str, list[str]] = Field(description="query word -> metadata fields holding it")
    tags: list[MatchedTagOut] = Field(description="smart tags that matched query words")


class HitOut(BaseModel):
    asset: str
    tier: int = Field(ge=1, le=3, description="1 metadata, 2 all words in smart tags, 3 any")
    score: float
    why: WhyOut | None = Field(default=None, description="With explain=true.")


class FacetOut(BaseModel):
    tag: str
    count: int


class FacetsOut(BaseModel):
    smart_tags: list[FacetOut]
    manual_tags: list[FacetOut]


class SearchOut(BaseModel):
    total: int
    total_relation: Literal["eq", "gte"] = Field(
        description="eq: total is exact; gte: there are more hits than total"
    )
    tiers: dict[str, int]
    hits: list[HitOut]
    facets: FacetsOut
    offset: int
    limit: int


class SearchIn(Strict):
    """A search; ``profile`` is a profile name or an inline profile object."""

    q: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The query words.")
    path: str | None = Field(default=None, max_length=1024, description="Only under this folder.")
    formats: list[str] = Field(default_factory=list, max_length=16)
    tags: list[str] = Field(default_factory=list, max_length=16)
    offset: int = Field(default=0, ge=0, le=MAX_WINDOW - 1)
    limit: int = Field(default=20, ge=1, le=MAX_LIMIT)
    explain: bool = False
    profile: Annotated[str, Field(pattern=PROFILE_NAME)] | dict[str, Any] | None = Field(
        default=None, description="A profile name (profiles folder) or a profile object."
    )


# -- assets ------------------------------------------------------------------


class SmartTagOut(BaseModel):
    tag: str
    confidence: float
    model_version: str
    promoted: bool


class AssetOut(BaseModel):
    id: str
    sha256: str
    format: str
    width: int
    height: int
    size: int
    title: str
    description: str
    keywords: list[str]
    manual_tags: list[str]
    smart_tags: list[SmartTagOut]
    removed_smart_tags: list[RemovedTagOut] = Field(
        description="Smart tags editors removed; tagging never brings them back."
    )
    created_at: float
    modified_at: float
    content_version: int


class RemovedTagOut(BaseModel):
    tag: str
    removed_at: float
    model_version: str


class SimilarHitOut(BaseModel):
    asset: str
    score: float
    title: str


class SimilarOut(BaseModel):
    asset: str
    hits: list[SimilarHitOut]


class UploadOut(BaseModel):
    asset: str
    stored: bool
    ingest: dict[str, Any]
    tagging: dict[str, Any] | None = None


class ModerationIn(Strict):
    asset: str = Field(min_length=1, max_length=2048, description="Asset id (DAM path)")
    tag: str = Field(min_length=1, max_length=256, description="Taxonomy tag id")


class ModerationOut(BaseModel):
    asset: str
    smart_tag: SmartTagOut


class BulkRemoveIn(Strict):
    tag: str = Field(min_length=1, max_length=256)
    q: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The search")
    path: str | None = Field(default=None, max_length=1024)
    dry_run: bool = Field(default=True, description="Only count (the default).")


class BulkRemoveOut(BaseModel):
    tag: str
    query: str
    matched: int
    capped: bool
    with_tag: int
    removed: int
    dry_run: bool
    assets: list[str] = Field(description="Up to 20 of the assets that carry the tag.")


# -- tag models --------------------------------------------------------------


class ModelIn(Strict):
    """A tag model definition, as the YAML/JSON spec files hold it."""

    name: str | None = Field(default=None, pattern=MODEL_NAME)
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    features: Literal["visual", "visual+colour"] | None = None
    target_precision: float | None = Field(default=None, ge=0.5, le=0.99)
    tags: dict[str, list[str]] = Field(
        default_factory=dict, description="taxonomy tag id -> example assets (ids or folders)"
    )


class FindingOut(BaseModel):
    level: str
    code: str
    tag: str | None
    assets: list[str]
    message: str


class ModelSummary(BaseModel):
    name: str
    title: str
    features: str
    tags: int
    examples: int
    active_version: int | None


class VersionOut(BaseModel):
    model: str
    version: int
    status: str
    reason: str
    embedder: str
    created_at: float
    finished_at: float | None
    active: bool


class ModelOut(BaseModel):
    name: str
    title: str
    description: str
    features: str
    target_precision: float
    active_version: int | None
    tags: dict[str, list[str]]
    versions: list[VersionOut]


class CreatedModelOut(BaseModel):
    model: str
    tags: dict[str, int]
    findings: list[FindingOut]


class ExamplesIn(Strict):
    tag: str = Field(min_length=1, max_length=256)
    assets: list[str] = Field(min_length=1, max_length=1000)


class CountOut(BaseModel):
    count: int


class TrainIn(Strict):
    activate: bool | None = Field(
        default=None, description="Activate the new version (default: only if none is active)."
    )


class TagChangeOut(BaseModel):
    tag: str
    gained: int
    lost: int
    examples_gained: list[str]
    examples_lost: list[str]


class DiffOut(BaseModel):
    model: str
    version: int
    against: int | None
    assets: int
    changed: int
    tags: list[TagChangeOut]


# -- jobs and operations ----------------------------------------------------


class JobOut(BaseModel):
    id: str
    kind: str
    target: str | None
    status: Literal["queued", "running", "succeeded", "failed"]
    created_at: float
    started_at: float | None
    finished_at: float | None
    result: Any = None
    error: dict[str, Any] | None = None


class ReindexIn(Strict):
    full: bool = Field(default=True, description="Rebuild every document (else the queue).")


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    checks: dict[str, str]
    uptime_s: float
