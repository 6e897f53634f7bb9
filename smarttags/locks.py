"""An exclusive lock per data directory for runs that must not overlap (tagging, full
reindex). Searches, ingests and reads never take it: SQLite's WAL keeps them safe."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from indexer.errors import BusyError


@contextmanager
def exclusive(home: Path, what: str) -> Iterator[None]:
    """Hold ``home/run.lock`` for ``what``; raise BusyError naming the holder if taken.

    The lock is the kernel's (``flock``), so a killed holder releases it at once."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise BusyError(
                f"{holder} is running on {home}; wait for it to finish (a second {what} "
                "would compete for the same assets), or stop it and run again"
            ) from None
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()}, since {stamp})".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
