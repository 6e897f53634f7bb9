"""Operations: health, Prometheus metrics, jobs, reindex."""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, PlainTextResponse

from ..service import SmartTags
from . import auth, deps
from .errors import ApiError, body
from .metrics import RequestMetrics, render
from .runtime import Runtime
from .schemas import HealthOut, JobOut, ReindexIn

router = APIRouter(prefix="/v1", tags=["operations"])

RuntimeDep = Annotated[Runtime, Depends(deps.runtime)]
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def _version() -> str:
    try:
        return package_version("smarttags")
    except PackageNotFoundError:
        return "unknown"


def _checks(svc: SmartTags) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        svc.catalog.count_assets()
        out["catalog"] = "ok"
    except Exception as e:
        out["catalog"] = f"error: {type(e).__name__}"
    try:
        svc.search_backend.count()
        out["search_backend"] = "ok"
    except Exception as e:
        out["search_backend"] = f"error: {type(e).__name__}"
    return out


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "A dependency is down."}},
)
async def health(rt: RuntimeDep) -> JSONResponse:
    """Liveness and readiness, without a key: the catalog and the search backend answer."""
    checks = await rt.reads.run(_checks)
    ok = all(v == "ok" for v in checks.values())
    data = {
        "status": "ok" if ok else "degraded",
        "version": _version(),
        "checks": checks,
        "uptime_s": round(time.time() - rt.started_at, 3),
    }
    return JSONResponse(data, status_code=200 if ok else 503)


def catalog_gauges(svc: SmartTags) -> dict[str, Any]:
    """Catalog sizes for the metrics page."""
    q = svc.catalog.connection.execute
    stats = svc.catalog.stats()
    tm = svc.tag_models
    backlog = svc.outbox_backlog()
    return {
        "smarttags_assets": ("Assets in the catalog.", stats["assets"]),
        "smarttags_asset_errors": ("Files that could not be ingested.", stats["errors"]),
        "smarttags_taxonomy_tags": ("Taxonomy tags.", stats["taxonomy_tags"]),
        "smarttags_manual_tags": ("Manual tag assignments.", stats["manual_tags"]),
        "smarttags_smart_tags": (
            "Smart tag assignments.", q("SELECT count(*) FROM smart_tags").fetchone()[0],
        ),
        "smarttags_embeddings": (
            "Stored embeddings by embedder.",
            {(("embedder", k),): v for k, v in stats["embeddings"].items()},
        ),
        "smarttags_tag_models": ("Tag models.", len(tm.store.names())),
        "smarttags_search_documents": ("Documents in the search backend.",
                                       svc.search_backend.count()),
        "smarttags_search_outbox": ("Changes queued for the search backend.",
                                    {(("state", "queued"),): backlog.queued,
                                     (("state", "failing"),): backlog.failing}),
    }  # fmt: skip


@router.get(
    "/metrics",
    dependencies=[auth.reader],
    responses={200: {"content": {PROMETHEUS: {"schema": {"type": "string"}}}}},
)
async def metrics(rt: RuntimeDep, deps_metrics: RequestMetrics = Depends(deps.metrics)) -> Any:  # noqa: B008
    """Prometheus text format: requests and latency by route and status, catalog gauges."""
    gauges = await rt.reads.run(catalog_gauges)
    jobs = rt.jobs.counts()
    gauges["smarttags_jobs"] = ("Background jobs by status.",
                                {(("status", k),): v for k, v in jobs.items()})  # fmt: skip
    text = render(deps_metrics.snapshot(), gauges)
    return PlainTextResponse(text, media_type=PROMETHEUS)


JobId = Annotated[str, Path(min_length=1, max_length=100)]


@router.get("/jobs", response_model=list[JobOut], dependencies=[auth.reader])
async def jobs(
    rt: RuntimeDep, kind: Annotated[str | None, Query(max_length=32)] = None
) -> list[dict[str, Any]]:
    """Recent background jobs, newest first."""
    return [j.as_dict() for j in rt.jobs.list(kind)]


@router.get("/jobs/{job_id}", response_model=JobOut, dependencies=[auth.reader])
async def job(rt: RuntimeDep, job_id: JobId) -> dict[str, Any]:
    """A job's status: queued, running, succeeded (with its result) or failed (with why)."""
    found = rt.jobs.get(job_id)
    if found is None:
        raise ApiError(404, "unknown_job", f"no job {job_id!r}; jobs are kept in memory")
    return found.as_dict()


@router.post(
    "/reindex",
    status_code=202,
    response_model=JobOut,
    dependencies=[auth.admin],
    responses={409: {"description": "A reindex is queued or running.",
                     "content": {"application/json": {"example": body("job_running", "...")}}}},
)  # fmt: skip
async def reindex(rt: RuntimeDep, body: ReindexIn | None = None) -> JSONResponse:
    """Start a reindex job. Full (default): rebuild the whole index while searches keep
    working; incremental (``full: false``): send the queued changes."""
    full = body.full if body else True

    def run(svc: SmartTags) -> dict[str, Any]:
        return svc.reindex(full=full).as_dict()

    job, started = rt.jobs.start("reindex", None, run)
    if not started:
        raise ApiError(409, "job_running", f"a reindex is {job.status} (job {job.id})",
                       {"job": job.id})  # fmt: skip
    return JSONResponse(job.as_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("/reindex", response_model=JobOut | None, dependencies=[auth.reader])
async def reindex_status(rt: RuntimeDep) -> dict[str, Any] | None:
    """The latest reindex job, or null when none ran since the service started."""
    latest = rt.jobs.list("reindex")
    return latest[0].as_dict() if latest else None
