"""FAISS vector index of L2-normalised embeddings keyed by asset key.

Exact inner-product search up to ``exact_max`` vectors; above that an IVF index
(inverted lists over k-means cells, searched ``nprobe`` cells deep). Files are
written atomically and carry the catalog version they were built from, so a stale
index is detected and rebuilt from the catalog, which is the store of record.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import VectorIndexError
from .files import write_atomic


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as e:
        raise VectorIndexError(
            "FAISS is not installed: `pip install faiss-cpu` (or faiss-gpu-cu12 on a GPU host)"
        ) from e
    return faiss


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32, C-contiguous."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12))


@dataclass(frozen=True)
class Neighbour:
    key: int
    score: float  # cosine similarity


class VectorIndex:
    """A FAISS index plus what it was built from."""

    def __init__(self, index: Any, meta: dict[str, Any]) -> None:
        self._index = index
        self.meta = meta
        self._matrix: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        return str(self.meta["kind"])

    @classmethod
    def build(
        cls,
        keys: np.ndarray,
        vectors: np.ndarray,
        *,
        exact_max: int,
        nprobe: int = 32,
        meta: dict[str, Any] | None = None,
    ) -> VectorIndex:
        """Build from int64 keys and raw vectors (normalised here)."""
        faiss = _faiss()
        if len(keys) != len(vectors):
            raise VectorIndexError(f"{len(keys)} keys for {len(vectors)} vectors")
        n = len(keys)
        dim = int(vectors.shape[1]) if vectors.ndim == 2 and n else int((meta or {}).get("dim", 0))
        if dim <= 0:
            raise VectorIndexError("cannot build a vector index without vectors or a dimension")
        x = normalise(vectors.reshape(n, dim))
        ids = np.ascontiguousarray(keys, dtype=np.int64)
        nlist = int(min(max(16, 4 * math.sqrt(n)), n // 39))
        if n <= exact_max or nlist < 1:  # under 39 vectors there is nothing to cluster
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            kind = "exact"
        else:
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            sample = x[rng.choice(n, size=min(n, nlist * 64), replace=False)]
            index.train(sample)
            index.nprobe = min(nprobe, nlist)
            kind = f"ivf{nlist}"
        if n:
            index.add_with_ids(x, ids)
        info = {**(meta or {}), "kind": kind, "dim": dim, "count": n}
        return cls(index, info)

    def matrix(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(keys sorted, their unit vectors) of an exact index, straight from FAISS's
        storage; None for an IVF index."""
        if self.kind != "exact":
            return None
        if self._matrix is not None:
            return self._matrix
        faiss = _faiss()
        n, dim = self.size, int(self.meta["dim"])
        if n == 0:
            return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        flat = faiss.downcast_index(self._index.index)
        # A view of FAISS's storage (memory-mapped when loaded from a file): valid while
        # this object lives, which holds the index. Built in key order, so no copy.
        vectors = faiss.rev_swig_ptr(flat.get_xb(), n * dim).reshape(n, dim)
        if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            order = np.argsort(ids, kind="stable")
            ids, vectors = ids[order], vectors[order]
        self._matrix = (ids, vectors)
        return self._matrix

    def search(self, vector: np.ndarray, k: int) -> list[Neighbour]:
        if self.size == 0 or k <= 0:
            return []
        q = normalise(vector.reshape(1, -1))
        scores, ids = self._index.search(q, min(k, self.size))
        return [
            Neighbour(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0
        ]

    def save(self, path: Path) -> None:
        """Write atomically: the FAISS index to a new data file beside ``path``, then
        ``path`` itself, a small manifest naming it (readers see the old pair or the
        new one), then older data files are removed."""
        faiss = _faiss()
        path.parent.mkdir(parents=True, exist_ok=True)
        data = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.idx")
        fd, tmp = tempfile.mkstemp(prefix=data.name, suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            faiss.write_index(self._index, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, data)
            header = json.dumps({**self.meta, "data": data.name}, sort_keys=True).encode()
            write_atomic(path, _MAGIC + header)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        for old in path.parent.glob(f"{path.name}.*.idx"):
            if old != data:
                old.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        """Read the manifest and its FAISS data file; an exact index is memory-mapped
        (loading costs milliseconds, pages are read on use)."""
        faiss = _faiss()
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise VectorIndexError(f"cannot read vector index {path}: {e}") from e
        if not raw.startswith(_MAGIC):
            raise VectorIndexError(f"{path} is not a smarttags vector index; delete it to rebuild")
        try:
            meta = json.loads(raw[len(_MAGIC) :])
            data = path.parent / str(meta.pop("data"))
            flags = faiss.IO_FLAG_MMAP_IFC if meta.get("kind") == "exact" else 0
            index = faiss.read_index(str(data), flags)
        except Exception as e:
            raise VectorIndexError(
                f"damaged vector index {path} ({e}); delete it to rebuild"
            ) from e
        if hasattr(index, "nprobe") and "nprobe" in meta:
            index.nprobe = int(meta["nprobe"])
        return cls(index, meta)


_MAGIC = b"SMARTTAGSVEC2\n"


class VectorStore:
    """One persisted index per embedder under ``directory``, kept in step with the catalog."""

    def __init__(self, directory: Path, *, exact_max: int, nprobe: int) -> None:
        self.directory = directory
        self.exact_max = exact_max
        self.nprobe = nprobe
        self._loaded: dict[str, VectorIndex] = {}  # this process's copy, per embedder

    def loaded(self, embedder: str, version: int) -> VectorIndex | None:
        """The index already in memory, if it is current: no disk read."""
        index = self._loaded.get(embedder)
        return index if index is not None and index.meta.get("version") == version else None

    def current(self, embedder: str, version: int) -> VectorIndex | None:
        """The index in memory or on disk if it is current; never rebuilds."""
        index = self.loaded(embedder, version)
        if index is not None:
            return index
        try:
            index = VectorIndex.load(self.path(embedder))
        except VectorIndexError:
            return None
        if index.meta.get("version") != version or index.meta.get("embedder") != embedder:
            return None
        self._loaded[embedder] = index
        return index

    def path(self, embedder: str) -> Path:
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in embedder)
        return self.directory / f"{slug}.faiss"

    def get(
        self,
        embedder: str,
        version: int,
        chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
    ) -> VectorIndex:
        """The index for ``embedder`` at catalog ``version``: the copy in memory, else the
        file, else rebuilt from ``chunks`` (stale or damaged file)."""
        cached = self.loaded(embedder, version)
        if cached is not None:
            return cached
        path = self.path(embedder)
        if path.exists():
            try:
                index = VectorIndex.load(path)
                if index.meta.get("version") == version and index.meta.get("embedder") == embedder:
                    self._loaded[embedder] = index
                    return index
            except VectorIndexError:
                pass  # damaged or foreign file: rebuild below
        return self.rebuild(embedder, version, chunks)

    def rebuild(
        self,
        embedder: str,
        version: int,
        chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
    ) -> VectorIndex:
        keys_parts: list[np.ndarray] = []
        vec_parts: list[np.ndarray] = []
        for keys, vecs in chunks():
            keys_parts.append(keys)
            vec_parts.append(normalise(vecs))
        if not keys_parts:
            raise VectorIndexError(
                f"no stored embeddings from {embedder!r}; run `smarttags ingest DIR` first"
            )
        index = VectorIndex.build(
            np.concatenate(keys_parts),
            np.concatenate(vec_parts),
            exact_max=self.exact_max,
            nprobe=self.nprobe,
            meta={"embedder": embedder, "version": version, "nprobe": self.nprobe},
        )
        index.save(self.path(embedder))
        self._loaded[embedder] = index
        return index
