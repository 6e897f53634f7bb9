"""Moderation of smart tags: list, remove (remembered), promote (counts as manual).

A removed smart tag is deleted and remembered, so no later tagging cycle writes it to
that asset again; a promoted one stays as it is through every cycle and counts as a
manual tag in search (confidence 1.0, metadata tier). Each change queues the asset in
the search outbox in the same transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from indexer.catalog import Catalog
from indexer.errors import UnknownSmartTagError
from indexer.outbox import Outbox

from .tagging import ensure_schema


@dataclass(frozen=True)
class SmartTagView:
    tag: str
    confidence: float
    model_version: str
    promoted: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "confidence": round(self.confidence, 6),
            "model_version": self.model_version,
            "promoted": self.promoted,
        }


@dataclass(frozen=True)
class Removal:
    tag: str
    removed_at: float
    model_version: str


class Moderation:
    def __init__(self, catalog: Catalog, outbox: Outbox) -> None:
        self.catalog = catalog
        self.outbox = outbox
        self._conn = catalog.connection
        ensure_schema(catalog)

    def smart_tags(self, asset_ref: str) -> tuple[list[SmartTagView], list[Removal]]:
        """An asset's smart tags, and the ones editors removed."""
        asset = self.catalog.get_asset(asset_ref)
        tags = [SmartTagView(*row) for row in self.catalog.smart_tags(asset.key)]
        rows = self._conn.execute(
            "SELECT tag_id, removed_at, model_version FROM smart_tag_removals "
            "WHERE asset_key = ? ORDER BY tag_id",
            (asset.key,),
        )
        return tags, [Removal(r[0], r[1], r[2]) for r in rows]

    def remove(self, asset_ref: str, tag_id: str) -> SmartTagView:
        asset = self.catalog.get_asset(asset_ref)
        current = self._one(asset.key, asset.id, tag_id)
        with self.catalog.transaction():
            self._remove(asset.key, current)
            self.outbox.enqueue([asset.id])
        return current

    def remove_many(self, asset_ids: list[str], tag_id: str) -> int:
        """Remove ``tag_id`` from every asset in ``asset_ids`` that has it."""
        keys = self.catalog.asset_keys(asset_ids)
        done = []
        with self.catalog.transaction():
            for asset_id, key in keys.items():
                row = self._row(key, tag_id)
                if row is not None:
                    self._remove(key, row)
                    done.append(asset_id)
            self.outbox.enqueue(done)
        return len(done)

    def promote(self, asset_ref: str, tag_id: str) -> SmartTagView:
        asset = self.catalog.get_asset(asset_ref)
        current = self._one(asset.key, asset.id, tag_id)
        with self.catalog.transaction():
            self.catalog.set_promoted(asset.key, tag_id, True)
            self.outbox.enqueue([asset.id])
        return SmartTagView(current.tag, current.confidence, current.model_version, True)

    def has(self, asset_ids: list[str], tag_id: str) -> list[str]:
        """Those of ``asset_ids`` that carry smart tag ``tag_id``."""
        keys = self.catalog.asset_keys(asset_ids)
        return [a for a, k in keys.items() if self._row(k, tag_id) is not None]

    def _remove(self, key: int, tag: SmartTagView) -> None:
        self._conn.execute(
            "DELETE FROM smart_tags WHERE asset_key = ? AND tag_id = ?", (key, tag.tag)
        )
        self._conn.execute(
            "INSERT INTO smart_tag_removals(asset_key, tag_id, removed_at, model_version) "
            "VALUES (?,?,?,?) ON CONFLICT(asset_key, tag_id) DO UPDATE SET "
            "removed_at = excluded.removed_at, model_version = excluded.model_version",
            (key, tag.tag, time.time(), tag.model_version),
        )

    def _row(self, key: int, tag_id: str) -> SmartTagView | None:
        row = self._conn.execute(
            "SELECT tag_id, confidence, model_version, promoted FROM smart_tags "
            "WHERE asset_key = ? AND tag_id = ?",
            (key, tag_id),
        ).fetchone()
        return None if row is None else SmartTagView(row[0], row[1], row[2], bool(row[3]))

    def _one(self, key: int, asset_id: str, tag_id: str) -> SmartTagView:
        row = self._row(key, tag_id)
        if row is None:
            have = [t for t, *_ in self.catalog.smart_tags(key)]
            raise UnknownSmartTagError(
                f"asset {asset_id} has no smart tag {tag_id!r}; its smart tags: "
                f"{', '.join(have) or 'none'} (see `smarttags tags list {asset_id}`)"
            )
        return row
