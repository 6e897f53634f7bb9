"""The search outbox: which assets' search documents a backend still has to receive.

The catalog is the source of truth. Every write that changes an asset's search
document enqueues the asset in the same transaction; a sync drains the queue in order
and removes an entry only when the backend has acknowledged that version of it (an
asset changed again meanwhile stays queued). A backend outage therefore loses nothing:
entries wait, count their attempts and keep the last error, and `smarttags status`
shows the backlog.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .catalog import Catalog

_SCHEMA = """
CREATE TABLE IF NOT EXISTS search_outbox (
    target TEXT NOT NULL,               -- backend and index, e.g. 'embedded', 'opensearch:alias'
    asset_id TEXT NOT NULL,
    seq INTEGER NOT NULL,               -- bumped on every enqueue: acks must match it
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (target, asset_id)
);
CREATE INDEX IF NOT EXISTS search_outbox_seq ON search_outbox(target, seq);
"""


@dataclass(frozen=True)
class Pending:
    asset_id: str
    seq: int


@dataclass(frozen=True)
class Backlog:
    target: str
    queued: int
    failing: int  # entries that failed at least once
    oldest: float | None  # enqueue time of the oldest entry
    last_error: str


class Outbox:
    """The queue of one search target in one catalog."""

    def __init__(self, catalog: Catalog, target: str) -> None:
        self.catalog = catalog
        self.target = target
        self._conn: sqlite3.Connection = catalog.connection
        catalog.ensure_tables(_SCHEMA)

    def enqueue(self, asset_ids: Iterable[str]) -> int:
        """Queue assets (call inside the transaction that changed them)."""
        ids = list(dict.fromkeys(asset_ids))
        if not ids:
            return 0
        row = self._conn.execute(
            "SELECT coalesce(max(seq), 0) FROM search_outbox WHERE target = ?", (self.target,)
        ).fetchone()
        start, now = int(row[0]) + 1, time.time()
        self._conn.execute(  # one statement: the ids travel as one JSON array
            "INSERT INTO search_outbox(target, asset_id, seq, enqueued_at) "
            "SELECT ?, value, ? + key, ? FROM json_each(?) WHERE true "
            "ON CONFLICT(target, asset_id) DO UPDATE SET seq = excluded.seq, "
            "enqueued_at = excluded.enqueued_at",
            (self.target, start, now, json.dumps(ids)),
        )
        return len(ids)

    def high_water(self) -> int:
        """The newest sequence number queued so far."""
        row = self._conn.execute(
            "SELECT coalesce(max(seq), 0) FROM search_outbox WHERE target = ?", (self.target,)
        ).fetchone()
        return int(row[0])

    def pending(self, limit: int, after: int = 0) -> list[Pending]:
        rows = self._conn.execute(
            "SELECT asset_id, seq FROM search_outbox WHERE target = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (self.target, after, limit),
        )
        return [Pending(r[0], r[1]) for r in rows]

    def ack(self, done: Sequence[Pending]) -> None:
        """Remove entries the backend has, unless they were queued again since."""
        with self.catalog.transaction():
            self._conn.executemany(
                "DELETE FROM search_outbox WHERE target = ? AND asset_id = ? AND seq = ?",
                [(self.target, p.asset_id, p.seq) for p in done],
            )

    def fail(self, failed: Sequence[tuple[Pending, str]]) -> None:
        with self.catalog.transaction():
            self._conn.executemany(
                "UPDATE search_outbox SET attempts = attempts + 1, last_error = ? "
                "WHERE target = ? AND asset_id = ? AND seq = ?",
                [(reason[:500], self.target, p.asset_id, p.seq) for p, reason in failed],
            )

    def clear_through(self, seq: int) -> int:
        """Drop entries queued at or before ``seq`` (a full reindex covered them)."""
        with self.catalog.transaction():
            cur = self._conn.execute(
                "DELETE FROM search_outbox WHERE target = ? AND seq <= ?", (self.target, seq)
            )
        return cur.rowcount

    def backlog(self) -> Backlog:
        row = self._conn.execute(
            "SELECT count(*), sum(attempts > 0), min(enqueued_at) FROM search_outbox "
            "WHERE target = ?",
            (self.target,),
        ).fetchone()
        err = self._conn.execute(
            "SELECT last_error FROM search_outbox WHERE target = ? AND last_error != '' "
            "ORDER BY seq DESC LIMIT 1",
            (self.target,),
        ).fetchone()
        return Backlog(self.target, int(row[0]), int(row[1] or 0), row[2], err[0] if err else "")
