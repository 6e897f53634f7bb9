"""Search, asset detail and similar images: the reader's endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import ValidationError

from ranking.errors import ProfileError
from ranking.profile import RankingProfile
from ranking.query import MAX_LIMIT, MAX_QUERY_CHARS, MAX_WINDOW

from ..service import SmartTags
from ..settings import Settings
from . import auth, deps
from .errors import ApiError
from .runtime import Runtime
from .schemas import PROFILE_NAME, AssetOut, SearchIn, SearchOut, SimilarOut

router = APIRouter(prefix="/v1", tags=["search"], dependencies=[auth.reader])

RuntimeDep = Annotated[Runtime, Depends(deps.runtime)]


def resolve_profile(
    svc: SmartTags, settings: Settings, profile: str | dict[str, Any] | None
) -> RankingProfile | None:
    """A profile by name (``<profiles dir>/<name>.toml|.json``), inline, or None (default)."""
    if profile is None:
        return None
    if isinstance(profile, str):
        folder = settings.ranking_profiles_dir
        for suffix in (".toml", ".json"):
            path = folder / f"{profile}{suffix}"
            if path.is_file():
                return svc.profile(path)
        raise ApiError(
            404, "unknown_profile",
            f"no ranking profile {profile!r}; put {profile}.toml in {folder}",
        )  # fmt: skip
    try:
        prof = RankingProfile.model_validate(
            {"name": "inline", "languages": settings.languages, **profile}
        )
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'profile'}: {err['msg']}" for err in e.errors()
        )
        raise ProfileError(f"inline profile: {problems}") from None
    missing = [lang for lang in prof.languages if lang not in settings.languages]
    if missing:
        raise ProfileError(
            f"inline profile searches language {missing[0]!r} but the index holds "
            f"{', '.join(settings.languages)}"
        )
    return prof


async def _search(rt: Runtime, body: SearchIn) -> dict[str, Any]:
    def run(svc: SmartTags) -> dict[str, Any]:
        result = svc.search(
            body.q,
            profile=resolve_profile(svc, rt.settings, body.profile),
            path_prefix=body.path,
            formats=tuple(body.formats),
            tags=tuple(body.tags),
            offset=body.offset,
            limit=body.limit,
        )
        return result.as_dict()

    out = await rt.reads.run(run)
    if not body.explain:
        for hit in out["hits"]:
            hit["why"] = None
    return {**out, "offset": body.offset, "limit": body.limit}


@router.get("/search", response_model=SearchOut, summary="Three-tier search (query string)")
async def search_get(
    rt: RuntimeDep,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
    path: Annotated[str | None, Query(max_length=1024, description="Folder prefix")] = None,
    format: Annotated[list[str], Query(max_length=16)] = [],  # noqa: B006
    tag: Annotated[list[str], Query(max_length=16)] = [],  # noqa: B006
    offset: Annotated[int, Query(ge=0, le=MAX_WINDOW - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    explain: bool = False,
    profile: Annotated[str | None, Query(pattern=PROFILE_NAME)] = None,
) -> dict[str, Any]:
    """Tier 1: every word in metadata; tier 2: every word in smart tags; tier 3: any.
    ``explain`` adds why each hit matched."""
    body = SearchIn(
        q=q, path=path, formats=format, tags=tag, offset=offset, limit=limit,
        explain=explain, profile=profile,
    )  # fmt: skip
    return await _search(rt, body)


@router.post("/search", response_model=SearchOut, summary="Three-tier search (JSON body)")
async def search_post(rt: RuntimeDep, body: SearchIn) -> dict[str, Any]:
    """As ``GET /v1/search``; ``profile`` may also be an inline ranking profile object."""
    return await _search(rt, body)


def asset_out(svc: SmartTags, ref: str) -> dict[str, Any]:
    a = svc.catalog.get_asset(ref)
    smart, removed = svc.moderation.smart_tags(a.id)
    return {
        "id": a.id, "sha256": a.sha256, "format": a.format, "width": a.width,
        "height": a.height, "size": a.size, "title": a.title, "description": a.description,
        "keywords": list(a.keywords), "manual_tags": list(a.manual_tags),
        "smart_tags": [t.as_dict() for t in smart],
        "removed_smart_tags": [
            {"tag": r.tag, "removed_at": r.removed_at, "model_version": r.model_version}
            for r in removed
        ],
        "created_at": a.created_at, "modified_at": a.modified_at,
        "content_version": a.content_version,
    }  # fmt: skip


def asset_ref(asset_id: str) -> str:
    """An asset id from a URL path: DAM paths start with '/'."""
    return asset_id if asset_id.startswith("/") else "/" + asset_id


@router.get("/assets/{asset_id:path}", response_model=AssetOut, summary="Asset detail")
async def asset(
    rt: RuntimeDep,
    asset_id: Annotated[str, Path(description="The DAM path, e.g. clothing/shoes/x.jpg")],
) -> dict[str, Any]:
    """Metadata, manual tags and smart tags (with confidence, model version, promotion)."""
    ref = asset_ref(asset_id)
    return await rt.reads.run(lambda svc: asset_out(svc, ref))


@router.get("/similar", response_model=SimilarOut, summary="Similar images")
async def similar(
    rt: RuntimeDep,
    asset: Annotated[str, Query(min_length=1, max_length=2048, description="Asset id")],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """The ``k`` assets whose images are most similar (cosine of embeddings), best first."""
    ref = asset_ref(asset)

    def run(svc: SmartTags) -> dict[str, Any]:
        hits = svc.similar(ref, k)
        return {
            "asset": svc.catalog.get_asset(ref).id,
            "hits": [{"asset": h.asset.id, "score": h.score, "title": h.asset.title} for h in hits],
        }

    return await rt.reads.run(run)
