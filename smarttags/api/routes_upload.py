"""Upload of one image into a DAM folder: size-limited, decoded before anything is stored,
written atomically under the upload root, then ingested."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from indexer.files import write_atomic
from indexer.images import IMAGE_EXTENSIONS, decode

from ..service import SmartTags
from . import auth, deps
from .errors import ApiError
from .runtime import Runtime
from .schemas import UploadOut

router = APIRouter(prefix="/v1", tags=["upload"], dependencies=[auth.editor])

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$")
#: Extension for a decoded format, when the client's file name has none we scan.
_EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif",
               "BMP": ".bmp", "GIF": ".gif"}  # fmt: skip
#: Multipart overhead allowed on top of the file size limit.
_FORM_SLACK = 64 * 1024

_FORM_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The image."},
        "folder": {"type": "string", "default": "/uploads", "description": "DAM folder."},
        "replace": {"type": "boolean", "default": False,
                    "description": "Replace an asset of the same name in the folder."},
        "tag": {"type": "boolean", "default": False,
                "description": "Apply the active tag models to the image."},
    },
}  # fmt: skip


def dam_folder(folder: str) -> str:
    """``/a/b`` from a folder given as ``a/b``, ``/a/b/``; every segment a plain name."""
    parts = [p for p in folder.strip().split("/") if p]
    if not parts or len(parts) > 16 or not all(_SEGMENT.match(p) for p in parts):
        raise ApiError(
            422, "invalid_folder",
            f"folder {folder!r} is not a DAM folder; use names of letters, digits, '.', '_', "
            "'-' and spaces separated by '/', e.g. /uploads/2024",
        )  # fmt: skip
    return "/" + "/".join(parts)


def file_name(given: str | None, fmt: str) -> str:
    """The client's base name, checked; the format's extension added if it has none we scan."""
    name = re.split(r"[\\/]", given or "")[-1].strip() or "upload"
    if not _SEGMENT.match(name):
        raise ApiError(
            422, "invalid_file_name",
            f"file name {name!r}: use letters, digits, '.', '_', '-' and spaces, not starting "
            "with '.'",
        )  # fmt: skip
    if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
        name += _EXTENSIONS.get(fmt, ".img")
    return name


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise ApiError(413, "payload_too_large", f"the upload is over {limit:,} bytes")
        yield chunk


async def read_form(request: Request, max_bytes: int) -> tuple[bytes, str | None, dict[str, str]]:
    """(file bytes, file name, other fields) of a multipart form, refusing big bodies early."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise ApiError(
            415, "unsupported_media_type",
            "send the image as multipart/form-data with a 'file' field",
        )  # fmt: skip
    limit = max_bytes + _FORM_SLACK
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(413, "payload_too_large", f"the upload is over {max_bytes:,} bytes")
    parser = MultiPartParser(
        request.headers, _limited(request, limit), max_files=1, max_fields=8,
        max_part_size=64 * 1024,
    )  # fmt: skip
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise ApiError(400, "bad_request", f"malformed multipart form: {e.message}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "invalid_request", "the form needs a 'file' field with the image")
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ApiError(413, "payload_too_large", f"the image is over {max_bytes:,} bytes")
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        return data, upload.filename, fields
    finally:
        await form.close()


def _flag(fields: dict[str, str], name: str) -> bool:
    value = fields.get(name, "false").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", "on", "off", ""):
        raise ApiError(422, "invalid_request", f"{name}: expected true or false, got {value!r}")
    return value in ("true", "1", "yes", "on")


def store_and_ingest(
    svc: SmartTags, data: bytes, name: str | None, folder: str, replace: bool, tag: bool
) -> dict[str, Any]:
    """Decode (refusing bad images), write atomically under the upload root, ingest."""
    settings = svc.settings
    decoded = decode(data, max_pixels=settings.max_pixels)  # ImageError: 413/415/422
    fname = file_name(name, decoded.format)
    root = settings.uploads_dir.resolve()
    target_dir = root.joinpath(*folder.strip("/").split("/"))
    target = target_dir / fname
    if root not in target.resolve().parents:
        raise ApiError(422, "invalid_folder", f"folder {folder!r} leaves the upload root")
    existed = target.exists()
    if existed and not replace:
        raise ApiError(
            409, "asset_exists", f"{folder}/{fname} exists; send replace=true to replace it"
        )
    target_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data)
    report = svc.ingest([target], prefix=folder, progress=False, tag=tag)
    if report.failed:
        if not existed:
            target.unlink(missing_ok=True)
        raise ApiError(
            422, "ingest_failed", f"{folder}/{fname} could not be ingested: "
            f"{report.failed[0].message}", report.as_dict(),
        )  # fmt: skip
    out = report.as_dict()
    tagging = out.pop("tagging", None)
    return {"asset": f"{folder}/{fname}", "stored": True, "ingest": out, "tagging": tagging}


@router.post(
    "/uploads",
    status_code=201,
    response_model=UploadOut,
    summary="Upload an image into a folder",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": _FORM_SCHEMA}},
        }
    },
)
async def upload(request: Request, rt: Runtime = Depends(deps.runtime)) -> dict[str, Any]:  # noqa: B008
    """Multipart form: ``file`` (the image), ``folder`` (DAM folder, default /uploads),
    ``replace``, ``tag`` (apply the active tag models). The image is decoded before
    anything is stored: a file that is not an image is 415, one over the size or pixel
    limit 413, a damaged one 422."""
    data, name, fields = await read_form(request, rt.settings.upload_max_bytes)
    folder = dam_folder(fields.get("folder") or "/uploads")
    replace, tag = _flag(fields, "replace"), _flag(fields, "tag")
    return await rt.writes.run(lambda svc: store_and_ingest(svc, data, name, folder, replace, tag))
