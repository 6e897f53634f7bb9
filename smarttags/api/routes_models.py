"""Tag models: define, edit examples, check, train (a job), versions, activate, diff, report."""

from __future__ import annotations

import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from training.spec import spec_from_mapping
from training.xlsx import write_xlsx

from ..service import SmartTags
from . import auth, deps
from .errors import ApiError
from .runtime import Runtime
from .schemas import (
    MODEL_NAME,
    CountOut,
    CreatedModelOut,
    DiffOut,
    ExamplesIn,
    FindingOut,
    JobOut,
    ModelIn,
    ModelOut,
    ModelSummary,
    TrainIn,
    VersionOut,
)

router = APIRouter(prefix="/v1/models", tags=["tag models"])

RuntimeDep = Annotated[Runtime, Depends(deps.runtime)]
Name = Annotated[str, Path(pattern=MODEL_NAME, description="Tag model name")]
Version = Annotated[int, Path(ge=1, le=1_000_000)]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _summary(svc: SmartTags, name: str) -> dict[str, Any]:
    m = svc.tag_models.store.get(name)
    return {
        "name": m.name, "title": m.title, "features": m.features, "tags": len(m.tags),
        "examples": sum(map(len, m.tags.values())), "active_version": m.active_version,
    }  # fmt: skip


def _detail(svc: SmartTags, name: str) -> dict[str, Any]:
    tm = svc.tag_models
    m = tm.store.get(name)
    return {
        "name": m.name, "title": m.title, "description": m.description,
        "features": m.features, "target_precision": m.target_precision,
        "active_version": m.active_version, "tags": {t: list(a) for t, a in m.tags.items()},
        "versions": [v.as_dict() for v in tm.versions(name)],
    }  # fmt: skip


@router.get("", response_model=list[ModelSummary], dependencies=[auth.reader])
async def list_models(rt: RuntimeDep) -> list[dict[str, Any]]:
    """Every tag model with its tag and example counts and active version."""
    return await rt.reads.run(lambda svc: [_summary(svc, n) for n in svc.tag_models.store.names()])


@router.post("", status_code=201, response_model=CreatedModelOut, dependencies=[auth.admin])
async def create_model(rt: RuntimeDep, body: ModelIn) -> dict[str, Any]:
    """Create a tag model from its definition (as the spec files hold it); the answer
    lists the guideline findings (errors stop training)."""
    data = body.model_dump(exclude_none=True)

    def run(svc: SmartTags) -> dict[str, Any]:
        spec = spec_from_mapping(data)
        tm = svc.tag_models
        if spec.name in tm.store.names():
            raise ApiError(409, "model_exists", f"a tag model named {spec.name!r} exists already")
        model = tm.create(spec)
        return {
            "model": model.name,
            "tags": {t: len(a) for t, a in model.tags.items()},
            "findings": [f.as_dict() for f in tm.check(model.name)],
        }

    return await rt.writes.run(run)


@router.get("/{name}", response_model=ModelOut, dependencies=[auth.reader])
async def get_model(rt: RuntimeDep, name: Name) -> dict[str, Any]:
    """A tag model's definition, examples and versions."""
    return await rt.reads.run(lambda svc: _detail(svc, name))


@router.delete("/{name}", status_code=204, dependencies=[auth.admin])
async def delete_model(rt: RuntimeDep, name: Name) -> Response:
    """Delete a tag model with its examples and versions."""
    await rt.writes.run(lambda svc: svc.delete_tag_model(name))
    return Response(status_code=204)


@router.post("/{name}/examples", response_model=CountOut, dependencies=[auth.admin])
async def add_examples(rt: RuntimeDep, name: Name, body: ExamplesIn) -> dict[str, int]:
    """Add example assets (ids or DAM folders) to a tag of the model."""
    n = await rt.writes.run(lambda svc: svc.tag_models.add_examples(name, body.tag, body.assets))
    return {"count": n}


@router.delete("/{name}/examples", response_model=CountOut, dependencies=[auth.admin])
async def remove_examples(
    rt: RuntimeDep,
    name: Name,
    tag: Annotated[str, Query(min_length=1, max_length=256)],
    asset: Annotated[list[str], Query(max_length=1000)] = [],  # noqa: B006
    all: bool = False,
) -> dict[str, int]:
    """Remove example assets from a tag (``all=true``: the tag itself)."""
    if not asset and not all:
        raise ApiError(422, "invalid_request", "name the assets to remove, or all=true")
    refs = None if all else list(asset)
    n = await rt.writes.run(lambda svc: svc.tag_models.remove_examples(name, tag, refs))
    return {"count": n}


@router.get("/{name}/check", response_model=list[FindingOut], dependencies=[auth.reader])
async def check_model(rt: RuntimeDep, name: Name) -> list[dict[str, Any]]:
    """Guideline findings: errors (training refuses) first, then warnings."""
    return await rt.reads.run(lambda svc: [f.as_dict() for f in svc.tag_models.check(name)])


@router.post(
    "/{name}/train",
    status_code=202,
    response_model=JobOut,
    dependencies=[auth.admin],
    responses={409: {"description": "A training job for this model is queued or running."}},
)
async def train(rt: RuntimeDep, name: Name, body: TrainIn | None = None) -> JSONResponse:
    """Start training a new version as a job; poll ``GET /v1/jobs/{id}``."""
    activate = body.activate if body else None
    await rt.reads.run(lambda svc: svc.tag_models.store.get(name))  # 404 now, not in the job

    def run(svc: SmartTags) -> dict[str, Any]:
        outcome = svc.tag_models.train(name, activate=activate)
        return {"model": name, "version": outcome.version, "activated": outcome.activated}

    job, started = rt.jobs.start("train", name, run)
    if not started:
        raise ApiError(
            409, "job_running", f"training of {name!r} is {job.status} already (job {job.id})",
            {"job": job.id},
        )  # fmt: skip
    return JSONResponse(job.as_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("/{name}/versions", response_model=list[VersionOut], dependencies=[auth.reader])
async def versions(rt: RuntimeDep, name: Name) -> list[dict[str, Any]]:
    """Versions with status: pending, training, trained or failed (and why)."""
    return await rt.reads.run(lambda svc: [v.as_dict() for v in svc.tag_models.versions(name)])


@router.post(
    "/{name}/versions/{version}/activate", response_model=ModelSummary, dependencies=[auth.admin]
)
async def activate(rt: RuntimeDep, name: Name, version: Version) -> dict[str, Any]:
    """Make a trained version the active one; an older one rolls back."""

    def run(svc: SmartTags) -> dict[str, Any]:
        svc.tag_models.activate(name, version)
        return _summary(svc, name)

    return await rt.writes.run(run)


@router.get("/{name}/versions/{version}/diff", response_model=DiffOut, dependencies=[auth.reader])
async def diff(
    rt: RuntimeDep,
    name: Name,
    version: Version,
    against: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> dict[str, Any]:
    """Dry run: which assets would gain or lose which tag if ``version`` were active."""
    return await rt.reads.run(lambda svc: svc.tag_models.diff(name, version, against).as_dict())


@router.get("/{name}/report", dependencies=[auth.reader])
async def report(
    rt: RuntimeDep, name: Name, version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None
) -> dict[str, Any]:
    """The training report of a version (default: the active one) as JSON."""
    return await rt.reads.run(lambda svc: svc.tag_models.report(name, version))


@router.get(
    "/{name}/report.xlsx",
    dependencies=[auth.reader],
    responses={200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}}},
)
async def report_xlsx(
    rt: RuntimeDep, name: Name, version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None
) -> Response:
    """The training report as an Excel workbook: trained tags green, the others yellow."""

    def run(svc: SmartTags) -> tuple[int, bytes]:
        data = svc.tag_models.report(name, version)
        with tempfile.TemporaryDirectory() as tmp:
            path = write_xlsx(data, FsPath(tmp) / "report.xlsx")
            return int(data["version"]), path.read_bytes()

    v, content = await rt.reads.run(run)
    filename = f"{name}-v{v}.xlsx"
    return Response(
        content,
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
