"""Request metrics in the Prometheus text format (0.0.4), written here: no dependency.

Counts and a latency histogram per (method, route template, status); the route is the
template (``/v1/assets/{asset_id}``), never the raw path, so label sets stay bounded.
Catalog gauges are read when scraped.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Histogram bucket upper bounds, seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Labels = tuple[str, str, str]  # method, route, status


class RequestMetrics:
    """Thread-safe request counters and latency histograms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[Labels, list[int]] = {}
        self._sums: dict[Labels, float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        i = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            counts = self._buckets.setdefault(key, [0] * (len(BUCKETS) + 1))
            counts[i] += 1
            self._sums[key] = self._sums.get(key, 0.0) + seconds

    def snapshot(self) -> dict[Labels, tuple[list[int], float]]:
        with self._lock:
            return {k: (list(v), self._sums[k]) for k, v in self._buckets.items()}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(
    requests: dict[Labels, tuple[list[int], float]],
    gauges: Mapping[str, tuple[str, float | Mapping[tuple[tuple[str, str], ...], float]]],
) -> str:
    """The exposition text: request counters and histograms, then ``gauges``
    (name -> (help, value or {label pairs: value}))."""
    out = [
        "# HELP smarttags_http_requests_total HTTP requests by method, route and status.",
        "# TYPE smarttags_http_requests_total counter",
    ]
    for (method, route, status), (counts, _) in sorted(requests.items()):
        labels = _labels([("method", method), ("route", route), ("status", status)])
        out.append(f"smarttags_http_requests_total{labels} {sum(counts)}")
    out += [
        "# HELP smarttags_http_request_duration_seconds HTTP request latency.",
        "# TYPE smarttags_http_request_duration_seconds histogram",
    ]
    for (method, route, status), (counts, total) in sorted(requests.items()):
        base = [("method", method), ("route", route), ("status", status)]
        cumulative = 0
        for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
            cumulative += n
            le = _labels([*base, ("le", _number(bound))])
            out.append(f"smarttags_http_request_duration_seconds_bucket{le} {cumulative}")
        out.append(f"smarttags_http_request_duration_seconds_sum{_labels(base)} {total!r}")
        out.append(f"smarttags_http_request_duration_seconds_count{_labels(base)} {cumulative}")
    for name, (help_text, value) in gauges.items():
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        if isinstance(value, Mapping):
            for pairs, v in sorted(value.items()):
                out.append(f"{name}{_labels(pairs)} {_number(v)}")
        else:
            out.append(f"{name} {_number(value)}")
    return "\n".join(out) + "\n"


class MetricsMiddleware:
    """Pure ASGI middleware: times each HTTP request and records it by route template."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path_format", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - started)
