"""The embedded search backend: SQLite FTS5 inside the catalog file. No server needed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ranking.backend import BulkResult
from ranking.document import SearchDocument, SmartTag, TagRef
from ranking.explain import evaluate
from ranking.profile import METADATA_FIELDS
from ranking.query import TieredQuery
from ranking.results import FacetCount, Hit, SearchResult, Why
from ranking.sql import SCHEMA, to_sql, to_sql_summary

from ..errors import BackendError


def document_to_json(doc: SearchDocument) -> str:
    return json.dumps(
        {
            "asset_id": doc.asset_id, "title": doc.title, "description": doc.description,
            "keywords": list(doc.keywords),
            "manual_tags": [{"tag": t.tag, "titles": dict(t.titles), "terms": list(t.terms)}
                            for t in doc.manual_tags],
            "smart_tags": [{"tag": s.tag, "confidence": s.confidence,
                            "model_version": s.model_version, "promoted": s.promoted,
                            "titles": dict(s.titles), "terms": list(s.terms)}
                           for s in doc.smart_tags],
            "format": doc.format, "width": doc.width, "height": doc.height,
            "modified_at": doc.modified_at,
            "terms": {k: list(v) for k, v in doc.terms.items()},
        },
        ensure_ascii=False,
    )  # fmt: skip


def document_from_json(text: str) -> SearchDocument:
    d: dict[str, Any] = json.loads(text)
    return SearchDocument(
        asset_id=d["asset_id"], title=d["title"], description=d["description"],
        keywords=tuple(d["keywords"]),
        manual_tags=tuple(TagRef(t["tag"], t["titles"], tuple(t["terms"]))
                          for t in d["manual_tags"]),
        smart_tags=tuple(SmartTag(s["tag"], s["confidence"], s["model_version"], s["promoted"],
                                  s["titles"], tuple(s["terms"])) for s in d["smart_tags"]),
        format=d["format"], width=d["width"], height=d["height"],
        modified_at=d["modified_at"],
        terms={k: tuple(v) for k, v in d["terms"].items()},
    )  # fmt: skip


class EmbeddedBackend:
    """Tiers computed by SQL over FTS5 and smart-tag tables; see :mod:`ranking.sql`."""

    name = "embedded"

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            raise BackendError(f"cannot open the embedded search index in {path}: {e}") from e

    def ensure_schema(self) -> None:
        try:
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise BackendError(f"cannot create the search tables in {self.path}: {e}") from e

    def close(self) -> None:
        self._conn.close()

    def _delete_keys(self, keys: list[int]) -> None:
        c = self._conn
        for key in keys:
            c.execute("DELETE FROM search_meta WHERE rowid = ?", (key,))
            c.execute("DELETE FROM search_smart WHERE key = ?", (key,))
            c.execute("DELETE FROM search_manual WHERE key = ?", (key,))
            c.execute("DELETE FROM search_docs WHERE key = ?", (key,))

    def upsert(self, docs: Sequence[SearchDocument]) -> BulkResult:
        result = BulkResult()
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            for doc in docs:
                row = c.execute(
                    "SELECT key FROM search_docs WHERE asset_id = ?", (doc.asset_id,)
                ).fetchone()
                if row is not None:
                    self._delete_keys([row[0]])
                cur = c.execute(
                    "INSERT INTO search_docs(asset_id, format, doc) VALUES (?, ?, ?)",
                    (doc.asset_id, doc.format.upper(), document_to_json(doc)),
                )
                key = cur.lastrowid
                c.execute(
                    "INSERT INTO search_meta(rowid, title, description, keywords, manual_tags) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (key, *(" ".join(doc.terms.get(f, ())) for f in METADATA_FIELDS)),
                )
                c.executemany(
                    "INSERT OR REPLACE INTO search_smart(key, tag, confidence, promoted) "
                    "VALUES (?, ?, ?, ?)",
                    [(key, s.tag, s.confidence, int(s.promoted)) for s in doc.smart_tags],
                )
                c.executemany(
                    "INSERT OR IGNORE INTO search_manual(key, tag) VALUES (?, ?)",
                    [(key, t.tag) for t in doc.manual_tags],
                )
                c.executemany(
                    "INSERT OR IGNORE INTO search_tag_terms(term, tag) VALUES (?, ?)",
                    [(term, s.tag) for s in doc.smart_tags for term in s.terms],
                )
                result.ok += 1
            c.execute("COMMIT")
        except sqlite3.Error as e:
            c.execute("ROLLBACK")
            raise BackendError(f"embedded index write failed in {self.path}: {e}") from e
        return result

    def delete(self, asset_ids: Sequence[str]) -> BulkResult:
        result = BulkResult()
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            for asset_id in asset_ids:
                row = c.execute(
                    "SELECT key FROM search_docs WHERE asset_id = ?", (asset_id,)
                ).fetchone()
                if row is not None:
                    self._delete_keys([row[0]])
                result.ok += 1
            c.execute("COMMIT")
        except sqlite3.Error as e:
            c.execute("ROLLBACK")
            raise BackendError(f"embedded index delete failed in {self.path}: {e}") from e
        return result

    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM search_docs").fetchone()[0])

    def search(self, query: TieredQuery) -> SearchResult:
        page, summary = to_sql(query), to_sql_summary(query)
        try:
            rows = self._conn.execute(page.sql, page.params).fetchall()
            counts = self._conn.execute(summary.sql, summary.params).fetchall()
        except sqlite3.Error as e:
            raise BackendError(f"embedded search failed for {query.text!r}: {e}") from e
        hits = []
        for asset_id, tier, score, doc_json in rows:
            explained = evaluate(document_from_json(doc_json), query)
            why = explained.why if explained is not None else Why()
            hits.append(Hit(asset_id, int(tier), float(score), why))
        tiers = {int(name): n for kind, name, n in counts if kind == "tier"}
        return SearchResult(
            hits=tuple(hits),
            total=sum(tiers.values()),
            tiers=tiers,
            smart_tag_facets=tuple(FacetCount(t, n) for k, t, n in counts if k == "smart"),
            manual_tag_facets=tuple(FacetCount(t, n) for k, t, n in counts if k == "manual"),
        )
