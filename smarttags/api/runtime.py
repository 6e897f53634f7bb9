"""Where the API runs service calls: thread-bound service pools and background jobs.

SQLite connections belong to the thread that opened them, so each pool thread owns one
:class:`SmartTags` for its lifetime and closes it on shutdown. Reads go to a pool of
``api_threads``; writes (uploads, moderation, model edits) to a pool of one, which
also keeps a single embedding model in memory; jobs (training, reindex) to another
pool of one, so a long job never blocks a request.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from ..service import SmartTags
from ..settings import Settings
from .errors import classify

T = TypeVar("T")
log = logging.getLogger("smarttags.api")
Task = tuple[Callable[[SmartTags], Any], "Future[Any]"]


class ServicePool:
    """``size`` threads, each owning one :class:`SmartTags`; ``run`` awaits a call on one."""

    def __init__(self, settings: Settings, size: int, name: str) -> None:
        self._settings = settings
        self._tasks: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(size)
        ]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        with SmartTags(self._settings) as svc:
            while (task := self._tasks.get()) is not None:
                fn, fut = task
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    fut.set_result(fn(svc))
                except BaseException as e:  # handed to the awaiting request
                    fut.set_exception(e)

    def submit(self, fn: Callable[[SmartTags], T]) -> Future[T]:
        fut: Future[T] = Future()
        self._tasks.put((fn, fut))
        return fut

    async def run(self, fn: Callable[[SmartTags], T]) -> T:
        return await asyncio.wrap_future(self.submit(fn))

    def close(self) -> None:
        """Finish queued calls, then close every thread's service."""
        for _ in self._threads:
            self._tasks.put(None)
        for t in self._threads:
            t.join()


JobStatus = Literal["queued", "running", "succeeded", "failed"]


@dataclass
class Job:
    """A background job (training, reindex) and what became of it."""

    id: str
    kind: str
    target: str | None
    status: JobStatus = "queued"
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    result: Any = None
    error: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "target": self.target, "status": self.status,
            "created_at": self.created_at, "started_at": self.started_at,
            "finished_at": self.finished_at, "result": self.result, "error": self.error,
        }  # fmt: skip

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


class Jobs:
    """Runs jobs one at a time on their own service thread and remembers the last ``keep``."""

    def __init__(self, settings: Settings, keep: int = 200) -> None:
        self._pool = ServicePool(settings, 1, "smarttags-jobs")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._keep = keep

    def start(
        self, kind: str, target: str | None, fn: Callable[[SmartTags], Any]
    ) -> tuple[Job, bool]:
        """Queue ``fn``; returns (job, True), or (the active job of the same kind and
        target, False) when one is queued or running already."""
        with self._lock:
            for job in self._jobs.values():
                if job.kind == kind and job.target == target and job.active:
                    return job, False
            job = Job(id=f"{kind}-{next(self._ids)}-{int(time.time())}", kind=kind, target=target)
            self._jobs[job.id] = job
            finished = [j.id for j in self._jobs.values() if not j.active]
            for old in finished[: max(0, len(self._jobs) - self._keep)]:
                del self._jobs[old]  # the oldest finished ones

        def run(svc: SmartTags) -> None:
            job.status, job.started_at = "running", time.time()
            try:
                job.result = fn(svc)
                job.status = "succeeded"
            except Exception as e:
                status, code, details = classify(e)
                message = str(e) if status < 500 else f"{type(e).__name__}: {e}"
                job.error = {"code": code, "message": message, "details": details}
                job.status = "failed"
                if status >= 500:
                    log.error("job %s failed", job.id, exc_info=e)
            finally:
                job.finished_at = time.time()

        self._pool.submit(run)
        return job, True

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def list(self, kind: str | None = None) -> list[Job]:
        with self._lock:
            jobs = list(self._jobs.values())
        return [j for j in reversed(jobs) if kind is None or j.kind == kind]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("queued", "running", "succeeded", "failed"), 0)
        for j in self.list():
            out[j.status] += 1
        return out

    def close(self) -> None:
        self._pool.close()


class Runtime:
    """What the app holds while it runs (``app.state.runtime``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.reads = ServicePool(settings, settings.api_threads, "smarttags-read")
        self.writes = ServicePool(settings, 1, "smarttags-write")
        self.jobs = Jobs(settings)
        self.started_at = time.time()

    def close(self) -> None:
        self.jobs.close()
        self.writes.close()
        self.reads.close()
