"""Moderation: remove a smart tag (remembered), promote one, bulk removal over a search."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from ..service import SmartTags
from . import auth, deps
from .errors import ApiError
from .routes_search import asset_ref
from .runtime import Runtime
from .schemas import BulkRemoveIn, BulkRemoveOut, ModerationIn, ModerationOut

router = APIRouter(prefix="/v1/moderation", tags=["moderation"], dependencies=[auth.editor])

RuntimeDep = Annotated[Runtime, Depends(deps.runtime)]


def _require_tag(svc: SmartTags, ref: str, tag: str) -> None:
    """404 when the asset does not carry smart tag ``tag`` (the service's error is a 500)."""
    have = [t.tag for t in svc.smart_tags(ref)]
    if tag not in have:
        raise ApiError(
            404, "unknown_smart_tag",
            f"asset {ref} has no smart tag {tag!r}; its smart tags: {', '.join(have) or 'none'}",
        )  # fmt: skip


@router.post("/remove", response_model=ModerationOut)
async def remove(rt: RuntimeDep, body: ModerationIn) -> dict[str, Any]:
    """Remove a wrong smart tag; no later tagging cycle brings it back."""
    ref = asset_ref(body.asset)

    def run(svc: SmartTags) -> dict[str, Any]:
        _require_tag(svc, ref, body.tag)
        return {"asset": ref, "smart_tag": svc.remove_smart_tag(ref, body.tag).as_dict()}

    return await rt.writes.run(run)


@router.post("/promote", response_model=ModerationOut)
async def promote(rt: RuntimeDep, body: ModerationIn) -> dict[str, Any]:
    """Promote a smart tag: it counts as a manual tag (metadata tier) from now on."""
    ref = asset_ref(body.asset)

    def run(svc: SmartTags) -> dict[str, Any]:
        _require_tag(svc, ref, body.tag)
        return {"asset": ref, "smart_tag": svc.promote_smart_tag(ref, body.tag).as_dict()}

    return await rt.writes.run(run)


@router.post("/bulk-remove", response_model=BulkRemoveOut)
async def bulk_remove(rt: RuntimeDep, body: BulkRemoveIn) -> dict[str, Any]:
    """Remove a smart tag from every asset a search finds (up to its window). Dry run by
    default: counts what would be removed."""
    return await rt.writes.run(
        lambda svc: svc.bulk_remove_smart_tag(
            body.tag, body.q, path=body.path, dry_run=body.dry_run
        )
    )
