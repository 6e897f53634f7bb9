"""Tag models, their examples and their versions, kept in the catalog's SQLite file.

A model's examples are stored as asset ids (DAM paths) as the author gave them, resolved
or not: the guideline checks report the ones that are not ingested images. A version is
one training run: status Pending -> Training -> Trained or Failed, the classifier as an
``.npz`` blob and the training report as JSON. At most one version per model is active.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from indexer.catalog import Catalog

from .errors import ModelExistsError, ModelSpecError, UnknownModelError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tag_models (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    features TEXT NOT NULL DEFAULT 'visual',
    target_precision REAL NOT NULL DEFAULT 0.9,
    active_version INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tag_model_tags (
    model_id INTEGER NOT NULL REFERENCES tag_models(id) ON DELETE CASCADE,
    tag_id TEXT NOT NULL,
    PRIMARY KEY (model_id, tag_id)
);
CREATE INDEX IF NOT EXISTS tag_model_tags_tag ON tag_model_tags(tag_id);
CREATE TABLE IF NOT EXISTS tag_model_examples (
    model_id INTEGER NOT NULL,
    tag_id TEXT NOT NULL,
    asset_id TEXT NOT NULL,             -- DAM path as given, perhaps not ingested (checked)
    added_at REAL NOT NULL,
    PRIMARY KEY (model_id, tag_id, asset_id),
    FOREIGN KEY (model_id, tag_id) REFERENCES tag_model_tags(model_id, tag_id)
        ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS tag_model_versions (
    model_id INTEGER NOT NULL REFERENCES tag_models(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'training', 'trained', 'failed')),
    reason TEXT NOT NULL DEFAULT '',
    pid INTEGER,                        -- process running it, to spot interrupted runs
    embedder TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    report TEXT,                        -- JSON training report
    classifier BLOB,                    -- npz, see training.classifier
    PRIMARY KEY (model_id, version)
);
"""

STATUSES = ("pending", "training", "trained", "failed")


@dataclass(frozen=True)
class TagModel:
    id: int
    name: str
    title: str
    description: str
    features: str
    target_precision: float
    active_version: int | None
    tags: dict[str, tuple[str, ...]]  # tag id -> example asset ids, sorted


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    status: str
    reason: str
    embedder: str
    created_at: float
    finished_at: float | None
    active: bool
    pid: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "reason": self.reason,
            "embedder": self.embedder,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "active": self.active,
        }


class ModelStore:
    """CRUD over the tag model tables of one catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._conn: sqlite3.Connection = catalog.connection
        catalog.ensure_tables(_SCHEMA)

    # -- models ------------------------------------------------------------

    def create(
        self, name: str, title: str, description: str, features: str, target_precision: float
    ) -> int:
        now = time.time()
        try:
            with self.catalog.transaction():
                cur = self._conn.execute(
                    "INSERT INTO tag_models(name, title, description, features, "
                    "target_precision, created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                    (name, title, description, features, target_precision, now, now),
                )
        except sqlite3.IntegrityError as e:
            raise ModelExistsError(
                f"a tag model named {name!r} exists already; add examples with `smarttags "
                f"models add-examples {name} TAG ASSET...` or choose another name"
            ) from e
        return int(cur.lastrowid or 0)

    def update(self, name: str, **fields: Any) -> None:
        allowed = {"title", "description", "features", "target_precision"}
        sets = {k: v for k, v in fields.items() if k in allowed and v is not None}
        if not sets:
            return
        model_id = self._id(name)
        cols = ", ".join(f"{k} = ?" for k in sets)
        with self.catalog.transaction():
            self._conn.execute(
                f"UPDATE tag_models SET {cols}, updated_at = ? WHERE id = ?",
                (*sets.values(), time.time(), model_id),
            )

    def delete(self, name: str) -> None:
        model_id = self._id(name)
        with self.catalog.transaction():
            self._conn.execute("DELETE FROM tag_model_examples WHERE model_id = ?", (model_id,))
            self._conn.execute("DELETE FROM tag_models WHERE id = ?", (model_id,))

    def names(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT name FROM tag_models ORDER BY name")]

    def get(self, name: str) -> TagModel:
        row = self._conn.execute("SELECT * FROM tag_models WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownModelError(self._unknown(name))
        tags: dict[str, list[str]] = {
            r[0]: []
            for r in self._conn.execute(
                "SELECT tag_id FROM tag_model_tags WHERE model_id = ? ORDER BY tag_id", (row["id"],)
            )
        }
        for tag, asset in self._conn.execute(
            "SELECT tag_id, asset_id FROM tag_model_examples WHERE model_id = ? "
            "ORDER BY tag_id, asset_id",
            (row["id"],),
        ):
            tags[tag].append(asset)
        return TagModel(
            id=row["id"],
            name=row["name"],
            title=row["title"],
            description=row["description"],
            features=row["features"],
            target_precision=row["target_precision"],
            active_version=row["active_version"],
            tags={t: tuple(a) for t, a in tags.items()},
        )

    def _id(self, name: str) -> int:
        row = self._conn.execute("SELECT id FROM tag_models WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownModelError(self._unknown(name))
        return int(row[0])

    def _unknown(self, name: str) -> str:
        names = self.names()
        known = f"; tag models: {', '.join(names)}" if names else "; none exist yet"
        return f"no tag model {name!r}{known} (create one with `smarttags models create`)"

    def owners(self, tag_ids: list[str]) -> dict[str, list[str]]:
        """Tag id -> names of the models that use it."""
        out: dict[str, list[str]] = {}
        for tag, name in self._conn.execute(
            "SELECT t.tag_id, m.name FROM tag_model_tags t JOIN tag_models m ON m.id = t.model_id "
            f"WHERE t.tag_id IN ({','.join('?' * len(tag_ids))}) ORDER BY m.name",
            tag_ids,
        ):
            out.setdefault(tag, []).append(name)
        return out

    # -- tags and examples -------------------------------------------------

    def add_examples(self, name: str, tag: str, asset_ids: list[str]) -> int:
        """Add the tag to the model (if new) and these examples; returns how many were new."""
        model_id = self._id(name)
        now = time.time()
        with self.catalog.transaction():
            self._conn.execute(
                "INSERT OR IGNORE INTO tag_model_tags(model_id, tag_id) VALUES (?, ?)",
                (model_id, tag),
            )
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO tag_model_examples(model_id, tag_id, asset_id, added_at) "
                "VALUES (?,?,?,?)",
                [(model_id, tag, a, now) for a in dict.fromkeys(asset_ids)],
            )
            added = self._conn.total_changes - before
            self._touch(model_id, now)
        return added

    def remove_examples(self, name: str, tag: str, asset_ids: list[str] | None) -> int:
        """Remove these examples of ``tag``; ``None`` removes the tag from the model."""
        model = self.get(name)
        if tag not in model.tags:
            raise ModelSpecError(
                f"tag model {name!r} has no tag {tag!r}; its tags: {', '.join(model.tags)}"
            )
        with self.catalog.transaction():
            if asset_ids is None:
                removed = len(model.tags[tag])
                self._conn.execute(
                    "DELETE FROM tag_model_examples WHERE model_id = ? AND tag_id = ?",
                    (model.id, tag),
                )
                self._conn.execute(
                    "DELETE FROM tag_model_tags WHERE model_id = ? AND tag_id = ?", (model.id, tag)
                )
            else:
                before = self._conn.total_changes
                self._conn.executemany(
                    "DELETE FROM tag_model_examples WHERE model_id = ? AND tag_id = ? "
                    "AND asset_id = ?",
                    [(model.id, tag, a) for a in asset_ids],
                )
                removed = self._conn.total_changes - before
            self._touch(model.id, time.time())
        return removed

    def _touch(self, model_id: int, now: float) -> None:
        self._conn.execute("UPDATE tag_models SET updated_at = ? WHERE id = ?", (now, model_id))

    # -- versions ----------------------------------------------------------

    def new_version(self, name: str, embedder: str, pid: int) -> int:
        """Record a Pending version; returns its number (1, 2, ...)."""
        model_id = self._id(name)
        with self.catalog.transaction():
            row = self._conn.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM tag_model_versions WHERE model_id = ?",
                (model_id,),
            ).fetchone()
            version = int(row[0])
            self._conn.execute(
                "INSERT INTO tag_model_versions(model_id, version, status, pid, embedder, "
                "created_at) VALUES (?, ?, 'pending', ?, ?, ?)",
                (model_id, version, pid, embedder, time.time()),
            )
        return version

    def set_status(
        self,
        name: str,
        version: int,
        status: str,
        *,
        reason: str = "",
        report: dict[str, Any] | None = None,
        classifier: bytes | None = None,
    ) -> None:
        assert status in STATUSES
        model_id = self._id(name)
        done = status in ("trained", "failed")
        with self.catalog.transaction():
            self._conn.execute(
                "UPDATE tag_model_versions SET status = ?, reason = ?, "
                "finished_at = CASE WHEN ? THEN ? ELSE finished_at END, "
                "report = coalesce(?, report), classifier = coalesce(?, classifier) "
                "WHERE model_id = ? AND version = ?",
                (
                    status,
                    reason,
                    done,
                    time.time(),
                    None if report is None else json.dumps(report),
                    classifier,
                    model_id,
                    version,
                ),
            )

    def versions(self, name: str) -> list[ModelVersion]:
        model = self.get(name)
        rows = self._conn.execute(
            "SELECT version, status, reason, embedder, created_at, finished_at, pid "
            "FROM tag_model_versions WHERE model_id = ? ORDER BY version",
            (model.id,),
        )
        return [
            ModelVersion(
                model=name,
                version=r[0],
                status=r[1],
                reason=r[2],
                embedder=r[3],
                created_at=r[4],
                finished_at=r[5],
                active=r[0] == model.active_version,
                pid=r[6],
            )
            for r in rows
        ]

    def version(self, name: str, version: int) -> ModelVersion:
        for v in self.versions(name):
            if v.version == version:
                return v
        known = ", ".join(str(v.version) for v in self.versions(name)) or "none yet"
        raise UnknownModelError(
            f"tag model {name!r} has no version {version}; its versions: {known}"
        )

    def report(self, name: str, version: int) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT report FROM tag_model_versions WHERE model_id = ? AND version = ?",
            (self._id(name), version),
        ).fetchone()
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    def classifier_blob(self, name: str, version: int) -> bytes | None:
        row = self._conn.execute(
            "SELECT classifier FROM tag_model_versions WHERE model_id = ? AND version = ?",
            (self._id(name), version),
        ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def activate(self, name: str, version: int | None) -> None:
        model_id = self._id(name)
        with self.catalog.transaction():
            self._conn.execute(
                "UPDATE tag_models SET active_version = ?, updated_at = ? WHERE id = ?",
                (version, time.time(), model_id),
            )

    def active_versions(self) -> list[tuple[str, int]]:
        """(model name, active version) of every model with an active version."""
        rows = self._conn.execute(
            "SELECT name, active_version FROM tag_models WHERE active_version IS NOT NULL "
            "ORDER BY name"
        )
        return [(r[0], int(r[1])) for r in rows]
