"""FastAPI dependencies over ``app.state``: the runtime and the settings."""

from __future__ import annotations

from fastapi import Request

from ..settings import Settings
from .metrics import RequestMetrics
from .runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def settings(request: Request) -> Settings:
    s: Settings = request.app.state.settings
    return s


def metrics(request: Request) -> RequestMetrics:
    m: RequestMetrics = request.app.state.metrics
    return m
