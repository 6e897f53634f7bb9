"""Pure translation of a :class:`TieredQuery` to SQLite SQL over the embedded schema.

The embedded backend stores metadata tokens in an FTS5 table (one column per metadata
field) and reads per-field hits through an ``fts5vocab`` instance table; smart tags are
a plain table indexed by tag, and ``search_tag_terms`` maps a token to the tags whose
titles or synonyms hold it. The SQL computes exactly the scores of
:mod:`ranking.explain`, with constant per-field weights and confidences only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .profile import METADATA_FIELDS
from .query import TieredQuery

SCHEMA = """
CREATE TABLE IF NOT EXISTS search_docs (
    key INTEGER PRIMARY KEY,
    asset_id TEXT NOT NULL UNIQUE,
    format TEXT NOT NULL,
    doc TEXT NOT NULL                      -- the SearchDocument as JSON
);
CREATE VIRTUAL TABLE IF NOT EXISTS search_meta USING fts5(
    title, description, keywords, manual_tags, tokenize = 'unicode61 remove_diacritics 0'
);
CREATE VIRTUAL TABLE IF NOT EXISTS search_meta_hits USING fts5vocab(search_meta, 'instance');
CREATE TABLE IF NOT EXISTS search_smart (
    key INTEGER NOT NULL,
    tag TEXT NOT NULL,
    confidence REAL NOT NULL,
    promoted INTEGER NOT NULL,
    PRIMARY KEY (key, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS search_smart_by_tag ON search_smart(tag, confidence);
CREATE TABLE IF NOT EXISTS search_manual (
    key INTEGER NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (key, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS search_manual_by_tag ON search_manual(tag);
CREATE TABLE IF NOT EXISTS search_tag_terms (
    term TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (term, tag)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class SqlQuery:
    """A statement and its parameters (named, so the golden files read well)."""

    sql: str
    params: dict[str, Any]


def _scored_cte(q: TieredQuery) -> tuple[str, dict[str, Any]]:
    """``scored(key, tier, score)``: each matching asset once, in its best tier."""
    p = q.profile
    params: dict[str, Any] = {
        "nterms": len(q.terms), "floor": p.confidence_floor, "promotion": p.promotion_factor,
        "b1": p.tier_boosts[0], "b2": p.tier_boosts[1], "b3": p.tier_boosts[2],
    }  # fmt: skip
    stems = []
    for i, term in enumerate(q.terms):
        for j, stem in enumerate(term.stems):
            params[f"t{i}_{j}"] = stem
            stems.append(f"({i}, :t{i}_{j})")
    weights = []
    for f in METADATA_FIELDS:
        params[f"w_{f}"] = p.field_weights[f]
        weights.append(f"('{f}', :w_{f})")
    combine = {"sum": "sum(eff)", "max": "max(eff)", "avg": "avg(eff)"}[p.combine]
    sql = f"""q(qi, term) AS (VALUES {", ".join(stems)}),
w(col, weight) AS (VALUES {", ".join(weights)}),
meta AS (
    SELECT h.doc AS key, q.qi, max(w.weight) AS weight
    FROM q JOIN search_meta_hits h ON h.term = q.term JOIN w ON w.col = h.col
    GROUP BY h.doc, q.qi
),
tier1 AS (
    SELECT key, :b1 + sum(weight) AS score FROM meta GROUP BY key HAVING count(*) = :nterms
),
tag_hits AS (
    SELECT s.key, s.tag, q.qi,
           s.confidence * (CASE WHEN s.promoted THEN :promotion ELSE 1.0 END) AS eff
    FROM q JOIN search_tag_terms t ON t.term = q.term
    JOIN search_smart s ON s.tag = t.tag AND s.confidence >= :floor
),
covered AS (SELECT key, count(DISTINCT qi) AS n FROM tag_hits GROUP BY key),
per_tag AS (SELECT key, tag, max(eff) AS eff FROM tag_hits GROUP BY key, tag),
smart AS (
    SELECT p.key, c.n, {combine} AS within
    FROM per_tag p JOIN covered c ON c.key = p.key
    GROUP BY p.key
),
scored(key, tier, score) AS (
    SELECT key, 1, score FROM tier1
    UNION ALL
    SELECT key, CASE WHEN n = :nterms THEN 2 ELSE 3 END,
           CASE WHEN n = :nterms THEN :b2 ELSE :b3 END + within
    FROM smart WHERE key NOT IN (SELECT key FROM tier1)
)"""
    return sql, params


def _filters(q: TieredQuery, params: dict[str, Any]) -> str:
    where = []
    if q.path_prefix is not None:
        params["prefix"] = q.path_prefix
        where.append("substr(d.asset_id, 1, length(:prefix)) = :prefix")
    if q.formats:
        names = []
        for i, f in enumerate(q.formats):
            params[f"format{i}"] = f
            names.append(f":format{i}")
        where.append(f"d.format IN ({', '.join(names)})")
    for i, tag in enumerate(q.tags):
        params[f"tag{i}"] = tag
        where.append(
            f"(EXISTS (SELECT 1 FROM search_manual m WHERE m.key = d.key AND m.tag = :tag{i}) "
            f"OR EXISTS (SELECT 1 FROM search_smart s WHERE s.key = d.key AND s.tag = :tag{i} "
            "AND s.confidence >= :floor))"
        )
    return " AND ".join(where) if where else "1"


def to_sql(q: TieredQuery) -> SqlQuery:
    """One page of hits: ``(asset_id, tier, score, doc)`` rows, best first."""
    cte, params = _scored_cte(q)
    where = _filters(q, params)
    params["limit"], params["offset"] = q.limit, q.offset
    sql = f"""WITH {cte}
SELECT d.asset_id, sc.tier, sc.score, d.doc
FROM scored sc JOIN search_docs d ON d.key = sc.key
WHERE {where}
ORDER BY sc.score DESC, d.asset_id ASC
LIMIT :limit OFFSET :offset"""
    return SqlQuery(sql, params)


def to_sql_summary(q: TieredQuery, facet_size: int = 10) -> SqlQuery:
    """Counts per tier and the top smart and manual tags over the whole result set:
    ``(kind, name, count)`` rows with kind 'tier', 'smart' or 'manual'."""
    cte, params = _scored_cte(q)
    where = _filters(q, params)
    params["facet_size"] = facet_size
    sql = f"""WITH {cte},
result AS (
    SELECT sc.key, sc.tier FROM scored sc JOIN search_docs d ON d.key = sc.key WHERE {where}
)
SELECT 'tier', CAST(tier AS TEXT), count(*) FROM result GROUP BY tier
UNION ALL
SELECT * FROM (
    SELECT 'smart', s.tag, count(*) AS n FROM result r
    JOIN search_smart s ON s.key = r.key AND s.confidence >= :floor
    GROUP BY s.tag ORDER BY n DESC, s.tag LIMIT :facet_size)
UNION ALL
SELECT * FROM (
    SELECT 'manual', m.tag, count(*) AS n FROM result r JOIN search_manual m ON m.key = r.key
    GROUP BY m.tag ORDER BY n DESC, m.tag LIMIT :facet_size)"""
    return SqlQuery(sql, params)
