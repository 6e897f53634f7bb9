"""One error shape for every response: ``{"error": {"code", "message", "details"}}``.

The packages' error hierarchies map to HTTP statuses here, in one table; FastAPI's own
validation errors, unknown routes and unexpected exceptions get the same shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexer import errors as ix
from ranking import errors as rk
from training import errors as tr

log = logging.getLogger("smarttags.api")


class ApiError(Exception):
    """An error the API reports as is: HTTP status, a stable code, a message for people."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


#: Package error class -> (HTTP status, code). The most specific class in an error's MRO
#: wins; the base classes catch whatever a package adds later.
ERROR_MAP: dict[type[Exception], tuple[int, str]] = {
    ix.UnknownAssetError: (404, "unknown_asset"),
    ix.UnknownSmartTagError: (404, "unknown_smart_tag"),
    ix.TaxonomyError: (422, "invalid_tag"),
    ix.SidecarError: (422, "invalid_sidecar"),
    ix.ImageError: (422, "invalid_image"),
    ix.BusyError: (409, "busy"),
    ix.BackendError: (503, "backend_unavailable"),
    ix.CatalogError: (500, "catalog_error"),
    ix.EmbedderError: (500, "embedder_error"),
    ix.VectorIndexError: (500, "vector_index_error"),
    ix.IndexerError: (422, "indexer_error"),
    rk.QueryError: (400, "invalid_query"),
    rk.ProfileError: (422, "invalid_profile"),
    rk.JudgmentsError: (422, "invalid_judgments"),
    rk.RankingError: (400, "ranking_error"),
    tr.UnknownModelError: (404, "unknown_model"),
    tr.ModelExistsError: (409, "model_exists"),
    tr.ModelSpecError: (422, "invalid_model"),
    tr.GuidelineError: (409, "guideline_violation"),
    tr.FitError: (422, "training_failed"),
    tr.ReportError: (500, "report_error"),
    tr.TrainingError: (409, "training_error"),
}

#: ImageError reasons that are the client's format or size, not a damaged file.
_IMAGE_REASONS = {
    "not-an-image": (415, "unsupported_media_type"),
    "unsupported-format": (415, "unsupported_media_type"),
    "too-large": (413, "image_too_large"),
}

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    503: "unavailable",
}


def body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body(code, message, details), status_code=status, headers=headers)


def classify(exc: Exception) -> tuple[int, str, Any]:
    """(status, code, details) of a package error; (500, "internal_error", None) otherwise."""
    if isinstance(exc, ix.ImageError) and exc.reason in _IMAGE_REASONS:
        return (*_IMAGE_REASONS[exc.reason], {"reason": exc.reason})
    for cls in type(exc).__mro__:
        if cls in ERROR_MAP:
            status, code = ERROR_MAP[cls]
            details: Any = None
            if isinstance(exc, tr.GuidelineError):
                details = {"findings": [f.as_dict() for f in exc.findings]}
            elif isinstance(exc, ix.ImageError):
                details = {"reason": exc.reason}
            return status, code, details
    return 500, "internal_error", None


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Where and what, without echoing the (possibly large or binary) input back."""
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
         "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]  # fmt: skip


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    message = str(exc.detail) if exc.detail else "error"
    if status == 404 and message == "Not Found":
        message = f"no route {request.url.path!r}; see /docs for the API"
    code = _STATUS_CODES.get(status, "error")
    return error_response(status, code, message, headers=getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"])
    return error_response(422, "invalid_request", f"{where}: {first['msg']}", details)


async def _package_error(request: Request, exc: Exception) -> JSONResponse:
    status, code, details = classify(exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return error_response(status, code, str(exc), details)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; the server log has the cause")


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for cls in (ix.IndexerError, rk.RankingError, tr.TrainingError):
        app.add_exception_handler(cls, _package_error)
    app.add_exception_handler(Exception, _unexpected)
