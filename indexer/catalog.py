"""The catalog: SQLite in WAL mode, the store of record for assets, taxonomy and embeddings.

Everything else (the FAISS vectors, the search backends) can be rebuilt from it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CatalogError, TaxonomyError, UnknownAssetError
from .models import Asset, AssetError, FileFacts, Metadata, TaxonomyTag

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assets (
    key INTEGER PRIMARY KEY,            -- numeric key, the id used in FAISS
    id TEXT NOT NULL UNIQUE,            -- DAM path, e.g. /clothing/shoes/x.jpg
    source TEXT NOT NULL,               -- file it was last read from
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    format TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    keywords TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    modified_at REAL NOT NULL,          -- when the bytes last changed
    content_version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS assets_source ON assets(source);
CREATE TABLE IF NOT EXISTS taxonomy_tags (
    id TEXT PRIMARY KEY,
    titles TEXT NOT NULL,
    synonyms TEXT NOT NULL DEFAULT '{}',
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS manual_tags (
    asset_key INTEGER NOT NULL REFERENCES assets(key) ON DELETE CASCADE,
    tag_id TEXT NOT NULL REFERENCES taxonomy_tags(id),
    PRIMARY KEY (asset_key, tag_id)
);
CREATE TABLE IF NOT EXISTS embeddings (
    asset_key INTEGER NOT NULL REFERENCES assets(key) ON DELETE CASCADE,
    embedder TEXT NOT NULL,
    sha256 TEXT NOT NULL,               -- bytes the vector was computed from
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,               -- float32, as the embedder returned it
    created_at REAL NOT NULL,
    PRIMARY KEY (asset_key, embedder)
);
CREATE TABLE IF NOT EXISTS smart_tags (
    asset_key INTEGER NOT NULL REFERENCES assets(key) ON DELETE CASCADE,
    tag_id TEXT NOT NULL REFERENCES taxonomy_tags(id),
    confidence REAL NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    model_version TEXT NOT NULL,
    promoted INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (asset_key, tag_id)
);
CREATE TABLE IF NOT EXISTS asset_errors (
    source TEXT PRIMARY KEY,
    asset_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    at REAL NOT NULL
);
"""


class Change(Enum):
    """What an upsert did to an asset."""

    ADDED = "added"
    MODIFIED = "modified"
    UPDATED = "updated"  # metadata or file time only; the bytes are the same
    UNCHANGED = "unchanged"


class Catalog:
    """The SQLite catalog. Open with :meth:`open`; use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, *, any_thread: bool = False) -> Catalog:
        """Open (creating) the catalog. ``any_thread``: the connection may be handed to
        another thread (used by one thread at a time, e.g. a worker, closed by its owner)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=not any_thread
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CatalogError(
                    f"catalog {path} has schema version {version}, newer than this "
                    f"smarttags knows ({SCHEMA_VERSION}); upgrade smarttags"
                )
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as e:
            raise CatalogError(f"cannot open catalog {path}: {e}") from e
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    def ensure_tables(self, schema: str) -> None:
        """Run ``CREATE ... IF NOT EXISTS`` statements (``;``-separated) without
        committing a transaction the caller may have open (unlike ``executescript``)."""
        for statement in schema.split(";"):
            if statement.strip():
                self._conn.execute(statement)

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection, for packages that keep their own tables in the catalog
        file (tag models and versions). Write inside :meth:`transaction`."""
        return self._conn

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write: everything inside commits together or not at all."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- meta ------------------------------------------------------------

    def _bump(self, key: str) -> None:
        self._conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            (key,),
        )

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _counter(self, key: str) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    # -- taxonomy --------------------------------------------------------

    def upsert_tags(self, tags: Iterable[TaxonomyTag]) -> int:
        now = time.time()
        rows = [
            (
                t.id,
                json.dumps(t.titles, ensure_ascii=False),
                json.dumps(t.synonyms, ensure_ascii=False),
                now,
            )
            for t in tags
        ]
        with self.transaction():
            self._conn.executemany(
                "INSERT INTO taxonomy_tags(id, titles, synonyms, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET titles=excluded.titles, "
                "synonyms=excluded.synonyms, updated_at=excluded.updated_at",
                rows,
            )
        return len(rows)

    def tags(self) -> list[TaxonomyTag]:
        rows = self._conn.execute("SELECT id, titles, synonyms FROM taxonomy_tags ORDER BY id")
        return [TaxonomyTag(r[0], json.loads(r[1]), json.loads(r[2])) for r in rows]

    def unknown_tags(self, tag_ids: Iterable[str]) -> list[str]:
        """The ids among ``tag_ids`` that are not in the taxonomy, sorted."""
        wanted = sorted(set(tag_ids))
        known: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            rows = self._conn.execute(
                f"SELECT id FROM taxonomy_tags WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            known.update(r[0] for r in rows)
        return [t for t in wanted if t not in known]

    # -- assets ----------------------------------------------------------

    def file_state(self, asset_id: str) -> tuple[str, int, int, str] | None:
        """(source, size, mtime_ns, sha256) stored for an asset, or None if it is not in
        the catalog."""
        row = self._conn.execute(
            "SELECT source, size, mtime_ns, sha256 FROM assets WHERE id = ?", (asset_id,)
        ).fetchone()
        return (row[0], row[1], row[2], row[3]) if row else None

    def upsert_asset(
        self, asset_id: str, facts: FileFacts, metadata: Metadata
    ) -> tuple[int, Change]:
        """Add or update one asset; returns its key and what changed. Call inside a transaction."""
        now = time.time()
        row = self._conn.execute(
            "SELECT key, id, sha256, size, mtime_ns, title, description, keywords "
            "FROM assets WHERE id = ?",
            (asset_id,),
        ).fetchone()
        keywords = list(metadata.keywords or ())
        if row is None:
            cur = self._conn.execute(
                "INSERT INTO assets(id, source, sha256, size, mtime_ns, format, width, height, "
                "title, description, keywords, created_at, updated_at, modified_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    asset_id,
                    facts.source,
                    facts.sha256,
                    facts.size,
                    facts.mtime_ns,
                    facts.format,
                    facts.width,
                    facts.height,
                    metadata.title or "",
                    metadata.description or "",
                    json.dumps(keywords, ensure_ascii=False),
                    now,
                    now,
                    now,
                ),
            )
            key = int(cur.lastrowid or 0)
            if metadata.manual_tags:
                self._set_manual_tags(key, metadata.manual_tags)
            return key, Change.ADDED
        key = int(row["key"])
        stored = Metadata(row["title"], row["description"], tuple(json.loads(row["keywords"])))
        merged = metadata.merged_over(stored)
        content_changed = row["sha256"] != facts.sha256
        same_meta = (merged.title, merged.description, merged.keywords) == (
            stored.title,
            stored.description,
            stored.keywords,
        )
        tags_changed = metadata.manual_tags is not None and set(metadata.manual_tags) != set(
            self.manual_tags(key)
        )
        if (
            not content_changed
            and same_meta
            and not tags_changed
            and (row["size"], row["mtime_ns"]) == (facts.size, facts.mtime_ns)
        ):
            return key, Change.UNCHANGED
        self._conn.execute(
            "UPDATE assets SET source=?, sha256=?, size=?, mtime_ns=?, format=?, width=?, "
            "height=?, title=?, description=?, keywords=?, updated_at=?, "
            "modified_at = CASE WHEN sha256 != ? THEN ? ELSE modified_at END, "
            "content_version = content_version + (sha256 != ?) WHERE key=?",
            (
                facts.source,
                facts.sha256,
                facts.size,
                facts.mtime_ns,
                facts.format,
                facts.width,
                facts.height,
                merged.title or "",
                merged.description or "",
                json.dumps(list(merged.keywords or ()), ensure_ascii=False),
                now,
                facts.sha256,
                now,
                facts.sha256,
                key,
            ),
        )
        if metadata.manual_tags is not None:
            self._set_manual_tags(key, metadata.manual_tags)
        return key, Change.MODIFIED if content_changed else Change.UPDATED

    def _set_manual_tags(self, key: int, tag_ids: Sequence[str]) -> None:
        unknown = self.unknown_tags(tag_ids)
        if unknown:
            raise TaxonomyError(
                f"unknown taxonomy tag {', '.join(map(repr, unknown))}; import it first "
                "with `smarttags taxonomy import FILE`"
            )
        self._conn.execute("DELETE FROM manual_tags WHERE asset_key = ?", (key,))
        self._conn.executemany(
            "INSERT INTO manual_tags(asset_key, tag_id) VALUES (?, ?)",
            [(key, t) for t in dict.fromkeys(tag_ids)],
        )

    def manual_tags(self, key: int) -> list[str]:
        rows = self._conn.execute(
            "SELECT tag_id FROM manual_tags WHERE asset_key = ? ORDER BY tag_id", (key,)
        )
        return [r[0] for r in rows]

    def _asset(self, row: sqlite3.Row) -> Asset:
        return Asset(
            key=row["key"],
            id=row["id"],
            source=row["source"],
            sha256=row["sha256"],
            size=row["size"],
            mtime_ns=row["mtime_ns"],
            format=row["format"],
            width=row["width"],
            height=row["height"],
            title=row["title"],
            description=row["description"],
            keywords=tuple(json.loads(row["keywords"])),
            manual_tags=tuple(self.manual_tags(row["key"])),
            created_at=row["created_at"],
            modified_at=row["modified_at"],
            content_version=row["content_version"],
        )

    def get_asset(self, ref: str | int) -> Asset:
        """An asset by id (DAM path), numeric key or source file path."""
        if isinstance(ref, int):
            row = self._conn.execute("SELECT * FROM assets WHERE key = ?", (ref,)).fetchone()
        else:
            row = self._conn.execute(
                "SELECT * FROM assets WHERE id = ? OR source = ?", (ref, ref)
            ).fetchone()
            if row is None and not ref.startswith("/"):
                row = self._conn.execute(
                    "SELECT * FROM assets WHERE id = ?", ("/" + ref,)
                ).fetchone()
        if row is None:
            raise UnknownAssetError(
                f"no asset {ref!r} in the catalog; list assets with `smarttags assets list`"
            )
        return self._asset(row)

    def assets(self, prefix: str = "", limit: int | None = None) -> list[Asset]:
        """Assets whose id starts with ``prefix``, ordered by id."""
        rows = self._conn.execute(
            "SELECT * FROM assets WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT ?",
            (len(prefix), prefix, -1 if limit is None else limit),
        )
        return [self._asset(r) for r in rows.fetchall()]

    def asset_keys(self, asset_ids: Iterable[str]) -> dict[str, int]:
        """Asset id -> key for those of ``asset_ids`` in the catalog."""
        wanted = list(dict.fromkeys(asset_ids))
        out: dict[str, int] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            rows = self._conn.execute(
                f"SELECT id, key FROM assets WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            out.update({r[0]: r[1] for r in rows})
        return out

    def keys_under(self, prefix: str) -> list[int]:
        """Keys of the assets whose id starts with ``prefix``, in key order."""
        rows = self._conn.execute(
            "SELECT key FROM assets WHERE substr(id, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        )
        return [r[0] for r in rows]

    def ids_under(self, prefix: str, *, by_source: bool = False) -> list[str]:
        """Ids of the assets whose id (or source file path) starts with ``prefix``."""
        column = "source" if by_source else "id"
        rows = self._conn.execute(
            f"SELECT id FROM assets WHERE substr({column}, 1, ?) = ? ORDER BY id",
            (len(prefix), prefix),
        )
        return [r[0] for r in rows]

    def count_assets(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM assets").fetchone()[0])

    # -- embeddings ------------------------------------------------------

    def put_embeddings(self, embedder: str, rows: Sequence[tuple[int, str, np.ndarray]]) -> None:
        """Store (asset key, sha256 of the bytes, vector) rows. Call inside a transaction."""
        now = time.time()
        self._conn.executemany(
            "INSERT INTO embeddings(asset_key, embedder, sha256, dim, vector, created_at) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT(asset_key, embedder) DO UPDATE SET "
            "sha256=excluded.sha256, dim=excluded.dim, vector=excluded.vector, "
            "created_at=excluded.created_at",
            [
                (
                    k,
                    embedder,
                    sha,
                    int(v.shape[0]),
                    np.ascontiguousarray(v, np.float32).tobytes(),
                    now,
                )
                for k, sha, v in rows
            ],
        )
        self._bump(f"embeddings_version:{embedder}")

    def embeddings_version(self, embedder: str) -> int:
        """A counter that moves whenever the stored vectors of ``embedder`` change."""
        return self._counter(f"embeddings_version:{embedder}")

    def embedding_sha(self, asset_id: str, embedder: str) -> str | None:
        """sha256 of the bytes the stored vector of ``embedder`` was computed from."""
        row = self._conn.execute(
            "SELECT e.sha256 FROM assets a JOIN embeddings e ON e.asset_key = a.key "
            "AND e.embedder = ? WHERE a.id = ?",
            (embedder, asset_id),
        ).fetchone()
        return None if row is None else str(row[0])

    def missing_embeddings(self, embedder: str) -> list[tuple[int, str, str]]:
        """(key, source, sha256) of assets with no current vector from ``embedder``."""
        rows = self._conn.execute(
            "SELECT a.key, a.source, a.sha256 FROM assets a LEFT JOIN embeddings e "
            "ON e.asset_key = a.key AND e.embedder = ? "
            "WHERE e.asset_key IS NULL OR e.sha256 != a.sha256 ORDER BY a.key",
            (embedder,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def embedding(self, key: int, embedder: str) -> np.ndarray | None:
        row = self._conn.execute(
            "SELECT vector FROM embeddings WHERE asset_key = ? AND embedder = ?", (key, embedder)
        ).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32).copy()

    def current_embeddings(self, keys: Sequence[int], embedder: str) -> dict[int, np.ndarray]:
        """Key -> vector of ``embedder`` for those of ``keys`` whose vector is current
        (computed from the asset's present bytes)."""
        found, matrix = self.vectors_for(keys, embedder)
        return {int(k): row for k, row in zip(found.tolist(), matrix, strict=True)}

    def vectors_for(self, keys: Sequence[int], embedder: str) -> tuple[np.ndarray, np.ndarray]:
        """(keys that have a current vector, their vectors as one n x dim float32 matrix),
        in key order: the fast path for bulk reads (no per-row arrays)."""
        wanted = sorted(set(keys))
        found: list[int] = []
        blobs: list[bytes] = []
        for i in range(0, len(wanted), 900):
            chunk = wanted[i : i + 900]
            rows = self._conn.execute(
                "SELECT e.asset_key, e.vector FROM embeddings e JOIN assets a "
                "ON a.key = e.asset_key AND a.sha256 = e.sha256 WHERE e.embedder = ? "
                f"AND e.asset_key IN ({','.join('?' * len(chunk))}) ORDER BY e.asset_key",
                (embedder, *chunk),
            ).fetchall()
            found.extend(r[0] for r in rows)
            blobs.extend(r[1] for r in rows)
        if not found:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(found), -1)
        return np.array(found, np.int64), matrix

    def count_embeddings(self, embedder: str) -> int:
        return int(
            self._conn.execute(
                "SELECT count(*) FROM embeddings WHERE embedder = ?", (embedder,)
            ).fetchone()[0]
        )

    def embedders(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT embedder, count(*) FROM embeddings GROUP BY embedder")
        return {r[0]: r[1] for r in rows}

    def iter_embeddings(
        self, embedder: str, chunk: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (keys int64, vectors float32 n x dim) in chunks, current vectors only."""
        last = -1
        while True:
            rows = self._conn.execute(
                "SELECT e.asset_key, e.vector FROM embeddings e JOIN assets a "
                "ON a.key = e.asset_key AND a.sha256 = e.sha256 "
                "WHERE e.embedder = ? AND e.asset_key > ? ORDER BY e.asset_key LIMIT ?",
                (embedder, last, chunk),
            ).fetchall()
            if not rows:
                return
            keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            yield keys, vecs.reshape(len(rows), -1)
            last = int(keys[-1])

    # -- smart tags --------------------------------------------------------

    def put_smart_tags(
        self, key: int, tags: Sequence[tuple[str, float, str]], *, replace: bool = True
    ) -> None:
        """Store (tag id, confidence, model version) for an asset; ``replace`` drops the
        asset's other smart tags that are not promoted. Unknown tag ids are an error."""
        unknown = self.unknown_tags(t for t, _, _ in tags)
        if unknown:
            raise TaxonomyError(
                f"unknown taxonomy tag {', '.join(map(repr, unknown))}; import it first "
                "with `smarttags taxonomy import FILE`"
            )
        bad = [(t, c) for t, c, _ in tags if not 0.0 <= c <= 1.0]
        if bad:
            raise CatalogError(f"confidence {bad[0][1]} of {bad[0][0]!r} is not in [0, 1]")
        now = time.time()
        with self.transaction():
            if replace:
                self._conn.execute(
                    "DELETE FROM smart_tags WHERE asset_key = ? AND promoted = 0", (key,)
                )
            self._conn.executemany(
                "INSERT INTO smart_tags(asset_key, tag_id, confidence, model_version, "
                "updated_at) VALUES (?,?,?,?,?) ON CONFLICT(asset_key, tag_id) DO UPDATE SET "
                "confidence=excluded.confidence, model_version=excluded.model_version, "
                "updated_at=excluded.updated_at",
                [(key, t, float(c), v, now) for t, c, v in tags],
            )

    def set_promoted(self, key: int, tag_id: str, promoted: bool = True) -> None:
        cur = self._conn.execute(
            "UPDATE smart_tags SET promoted = ?, updated_at = ? WHERE asset_key = ? AND tag_id = ?",
            (int(promoted), time.time(), key, tag_id),
        )
        if cur.rowcount == 0:
            raise CatalogError(f"asset {key} has no smart tag {tag_id!r}")

    def smart_tags(self, key: int) -> list[tuple[str, float, str, bool]]:
        """(tag id, confidence, model version, promoted) of an asset, by tag id."""
        rows = self._conn.execute(
            "SELECT tag_id, confidence, model_version, promoted FROM smart_tags "
            "WHERE asset_key = ? ORDER BY tag_id",
            (key,),
        )
        return [(r[0], float(r[1]), r[2], bool(r[3])) for r in rows]

    # -- errors ----------------------------------------------------------

    def record_error(self, err: AssetError) -> None:
        self._conn.execute(
            "INSERT INTO asset_errors(source, asset_id, stage, reason, message, at) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT(source) DO UPDATE SET "
            "asset_id=excluded.asset_id, stage=excluded.stage, reason=excluded.reason, "
            "message=excluded.message, at=excluded.at",
            (err.source, err.asset_id, err.stage, err.reason, err.message, err.at),
        )

    def clear_error(self, source: str) -> None:
        self._conn.execute("DELETE FROM asset_errors WHERE source = ?", (source,))

    def errors(self) -> list[AssetError]:
        rows = self._conn.execute(
            "SELECT source, asset_id, stage, reason, message, at FROM asset_errors ORDER BY source"
        )
        return [AssetError(*r) for r in rows]

    # -- summary ---------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        q = self._conn.execute
        return {
            "catalog": str(self.path),
            "assets": self.count_assets(),
            "taxonomy_tags": q("SELECT count(*) FROM taxonomy_tags").fetchone()[0],
            "manual_tags": q("SELECT count(*) FROM manual_tags").fetchone()[0],
            "embeddings": self.embedders(),
            "errors": q("SELECT count(*) FROM asset_errors").fetchone()[0],
        }
