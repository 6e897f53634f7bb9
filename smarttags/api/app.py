"""The app factory: ``create_app(settings)`` builds the FastAPI application.

Nothing is global: the settings, keys, metrics and (while the app runs) the service
pools and jobs live on ``app.state``; routes reach them through dependencies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ..settings import Settings
from . import errors
from .auth import load_keys
from .metrics import MetricsMiddleware, RequestMetrics
from .routes_models import router as models_router
from .routes_moderation import router as moderation_router
from .routes_ops import router as ops_router
from .routes_search import router as search_router
from .routes_upload import router as upload_router
from .runtime import Runtime
from .schemas import ErrorBody

#: Every operation documents the one error shape (and FastAPI adds no other 422 schema).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "default": {"model": ErrorBody, "description": "An error, in the one error shape."}
}

DESCRIPTION = """Smart tags over HTTP: three-tier search, assets, similar images, uploads,
tag models and training, reindexing, health and metrics.

Send an API key as `Authorization: Bearer KEY` or `X-API-Key: KEY`. Roles: reader
(search and read), editor (also upload and moderation), admin (also training and
reindexing). Every error is `{"error": {"code", "message", "details"}}`."""


def create_app(settings: Settings) -> FastAPI:
    """The API over the catalog that ``settings`` name. Service threads start with the
    app (lifespan) and stop with it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings)
        app.state.runtime = runtime
        try:
            yield
        finally:
            runtime.close()

    app = FastAPI(
        title="smarttags",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.settings = settings
    app.state.keys = load_keys(settings)
    app.state.metrics = RequestMetrics()
    errors.install(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    for router in (search_router, upload_router, moderation_router, models_router, ops_router):
        app.include_router(router)
    return app
