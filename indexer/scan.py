"""Walking ingest roots: image files with their DAM paths, and what could not be walked."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .images import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class Candidate:
    """An image file found under an ingest root."""

    source: str  # absolute filesystem path
    asset_id: str  # DAM path: prefix + path under the root, e.g. /clothing/shoes/x.jpg
    relative: str  # path under the root, forward slashes


@dataclass(frozen=True)
class ScanProblem:
    """A file or folder that could not be walked."""

    source: str
    asset_id: str
    reason: str
    message: str


def dam_prefix(root: Path, prefix: str | None) -> str:
    """The DAM path prefix for a root: ``prefix`` if given, else ``/<folder name>``."""
    p = prefix if prefix is not None else "/" + (root.resolve().name or "root")
    p = "/" + p.strip().strip("/")
    return "" if p == "/" else p


def walk(root: Path, prefix: str | None = None) -> Iterator[Candidate | ScanProblem]:
    """Image files under ``root`` (a folder or a single file), in a stable order.

    Follows symlinks but never loops: a folder already visited (same device and inode)
    is reported as a symlink loop and not entered again.
    """
    base = dam_prefix(root if root.is_dir() else root.parent, prefix)
    if not root.exists() and not root.is_symlink():
        yield ScanProblem(str(root), base, "missing", f"{root} does not exist")
        return
    if not root.is_dir():
        yield from _file(root, root.name, base)
        return
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        folder, rel = stack.pop()
        try:
            st = folder.stat()
        except OSError as e:
            yield _problem(folder, base, rel, e)
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in seen:
            yield ScanProblem(
                str(folder),
                f"{base}/{rel}".rstrip("/") or "/",
                "symlink-loop",
                f"{folder} leads back to a folder already walked (symlink loop); skipped",
            )
            continue
        seen.add(ident)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            yield _problem(folder, base, rel, e)
            continue
        subdirs: list[tuple[Path, str]] = []
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append((path, child_rel))
            else:
                yield from _file(path, child_rel, base)
        stack.extend(reversed(subdirs))


def _file(path: Path, rel: str, base: str) -> Iterator[Candidate | ScanProblem]:
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return
    asset_id = f"{base}/{rel}"
    try:
        path.stat()
    except OSError as e:
        yield _problem(path, base, rel, e)
        return
    yield Candidate(str(path.absolute()), asset_id, rel)


def _problem(path: Path, base: str, rel: str, e: OSError) -> ScanProblem:
    asset_id = f"{base}/{rel}" if rel else base or "/"
    if e.errno == errno.ELOOP:
        return ScanProblem(
            str(path), asset_id, "symlink-loop", f"{path}: symlink loop; fix the link"
        )
    if e.errno == errno.ENOENT and path.is_symlink():
        return ScanProblem(
            str(path), asset_id, "broken-symlink", f"{path}: broken symlink to {os.readlink(path)}"
        )
    if e.errno in (errno.EACCES, errno.EPERM):
        return ScanProblem(
            str(path), asset_id, "unreadable", f"{path}: permission denied; check its permissions"
        )
    return ScanProblem(str(path), asset_id, "unreadable", f"{path}: {e.strerror or e}")
