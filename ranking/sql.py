"""Pure translation of a :class:`TieredQuery` to SQLite SQL over the embedded schema.

The embedded backend stores metadata tokens in an FTS5 table (one column per metadata
field); smart tags are a plain table indexed by tag, and ``search_tag_terms`` maps a
token to the tags whose titles or synonyms hold it. The SQL computes exactly the scores
of :mod:`ranking.explain`, with constant per-field weights and confidences only.

A search is a short plan run in one read transaction on one connection:

1. :func:`to_sql_scoring` fills the connection's ``temp.search_scored`` with each
   matching asset once: tier 1 from FTS5 ``MATCH`` (per query term, the fields are
   grouped by weight, best first, so ``{fields} : term NOT {better fields} : term``
   yields each document once with the largest weight of a field holding the term; with
   several terms every such expression is ANDed with all terms, so FTS5 intersects the
   doclists); then the smart-tag hits, folded per asset by an upsert (terms covered as a
   bit mask, effective confidences combined), skipping assets already in tier 1; then
   the filters; then the facet counts into ``temp.search_facets``.
2. :func:`to_sql` reads one page; :func:`to_sql_summary` the tier counts and facets.

Every step streams rows once; nothing is grouped by sorting the whole result set.
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
CREATE INDEX IF NOT EXISTS search_docs_narrow ON search_docs(key, asset_id, format);
CREATE VIRTUAL TABLE IF NOT EXISTS search_meta USING fts5(
    title, description, keywords, manual_tags, tokenize = 'unicode61 remove_diacritics 0'
);
DROP TABLE IF EXISTS search_meta_hits;     -- the fts5vocab table of earlier versions
CREATE TABLE IF NOT EXISTS search_smart (
    key INTEGER NOT NULL,
    tag TEXT NOT NULL,
    confidence REAL NOT NULL,
    promoted INTEGER NOT NULL,
    PRIMARY KEY (key, tag)
) WITHOUT ROWID;
DROP INDEX IF EXISTS search_smart_by_tag;
CREATE INDEX IF NOT EXISTS search_smart_by_tag_conf
    ON search_smart(tag, confidence, promoted);  -- covering: key is in the primary key
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

#: Per-connection scratch tables of a search (``temp`` is private to the connection).
TEMP_SCHEMA = """
CREATE TEMP TABLE IF NOT EXISTS search_scored (
    key INTEGER PRIMARY KEY,
    tier INTEGER NOT NULL,      -- 1, or 3 for smart-tag hits (2 when mask is full)
    mask INTEGER NOT NULL,      -- smart-tag hits: bit i set when query term i matched
    within REAL NOT NULL,       -- tier 1: sum of weights; else combined confidences
    n INTEGER NOT NULL          -- smart-tag hits: matched tags (for avg)
);
CREATE TEMP TABLE IF NOT EXISTS search_facets (
    kind TEXT NOT NULL,
    tag TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (kind, tag)
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS search_facets_all (  -- facets of every asset, by floor
    floor REAL NOT NULL,
    kind TEXT NOT NULL,
    tag TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (floor, kind, tag)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class SqlQuery:
    """A statement and its parameters (named, so the golden files read well)."""

    sql: str
    params: dict[str, Any]


def _phrase(stems: tuple[str, ...]) -> str:
    """An FTS5 expression matching any of ``stems`` exactly (as tokens, never syntax)."""
    quoted = ['"' + s.replace('"', '""') + '"' for s in stems]
    return quoted[0] if len(quoted) == 1 else "(" + " OR ".join(quoted) + ")"


def _tier_expr() -> str:
    return "CASE WHEN tier = 1 THEN 1 WHEN mask = :full THEN 2 ELSE 3 END"


def _score_expr(q: TieredQuery) -> str:
    within = "within / n" if q.profile.combine == "avg" else "within"
    return f"(CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + {within})"


def _common_params(q: TieredQuery) -> dict[str, Any]:
    n = len(q.terms)
    full = (1 << n) - 1
    if full >= 1 << 63:  # as a signed 64-bit SQLite integer
        full -= 1 << 64
    p = q.profile
    return {"full": full, "b1": p.tier_boosts[0], "b2": p.tier_boosts[1],
            "b3": p.tier_boosts[2]}  # fmt: skip


def _tier1(q: TieredQuery) -> SqlQuery:
    """Tier 1: one row per (asset, term) with the weight of the best field holding it."""
    weights = q.profile.field_weights
    classes = sorted({weights[f] for f in METADATA_FIELDS}, reverse=True)
    every = " AND ".join(_phrase(t.stems) for t in q.terms)
    params: dict[str, Any] = {}
    arms = []
    for i, term in enumerate(q.terms):
        phrase = _phrase(term.stems)
        better: list[str] = []
        for j, w in enumerate(classes):
            fields = [f for f in METADATA_FIELDS if weights[f] == w]
            expr = "{" + " ".join(fields) + "} : " + phrase
            if better:
                expr = f"({expr} NOT {{{' '.join(better)}}} : {phrase})"
            if len(q.terms) > 1:
                expr = f"{expr} AND {every}"
            better.extend(fields)
            params[f"m{i}_{j}"] = expr
            params[f"w_{fields[0]}"] = w
            arms.append(f"SELECT rowid AS key, :w_{fields[0]} AS weight FROM search_meta "
                        f"WHERE search_meta MATCH :m{i}_{j}")  # fmt: skip
    union = "\n    UNION ALL ".join(arms)
    sql = f"""INSERT INTO temp.search_scored(key, tier, mask, within, n)
SELECT key, 1, 0, weight, 1 FROM (
    {union}
    ORDER BY 1
) WHERE true
ON CONFLICT(key) DO UPDATE SET within = within + excluded.within"""
    return SqlQuery(sql, params)


def _smart(q: TieredQuery) -> SqlQuery:
    """Tiers 2 and 3: matched smart tags folded per asset; tier-1 assets stay as they are."""
    p = q.profile
    params: dict[str, Any] = {"floor": p.confidence_floor, "promotion": p.promotion_factor}
    stems = []
    for i, term in enumerate(q.terms):
        for j, stem in enumerate(term.stems):
            params[f"t{i}_{j}"] = stem
            stems.append(f"({i}, :t{i}_{j})")
    combine = {"sum": "within + excluded.within", "avg": "within + excluded.within",
               "max": "max(within, excluded.within)"}[p.combine]  # fmt: skip
    sql = f"""WITH q(qi, term) AS (VALUES {", ".join(stems)}),
tags(tag, mask) AS (
    SELECT t.tag, sum(DISTINCT 1 << q.qi) FROM q JOIN search_tag_terms t ON t.term = q.term
    GROUP BY t.tag
)
INSERT INTO temp.search_scored(key, tier, mask, within, n)
SELECT s.key, 3, tags.mask,
       s.confidence * (CASE WHEN s.promoted THEN :promotion ELSE 1.0 END), 1
FROM tags CROSS JOIN search_smart s INDEXED BY search_smart_by_tag_conf
    ON s.tag = tags.tag AND s.confidence >= :floor
WHERE true
ON CONFLICT(key) DO UPDATE SET mask = mask | excluded.mask, within = {combine}, n = n + 1
    WHERE tier <> 1"""
    return SqlQuery(sql, params)


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
    return " AND ".join(where)


def to_sql_scoring(q: TieredQuery) -> list[SqlQuery]:
    """The statements that fill ``temp.search_scored`` for ``q``; run them in order, in
    the read transaction that then runs the facet statements (:func:`to_sql_facets` or
    :func:`to_sql_facets_complement`), :func:`to_sql` and :func:`to_sql_summary` (the
    temp tables must exist: :data:`TEMP_SCHEMA`)."""
    steps = [
        SqlQuery("DELETE FROM temp.search_scored", {}),
        _tier1(q),
        _smart(q),
    ]
    params: dict[str, Any] = {"floor": q.profile.confidence_floor}
    where = _filters(q, params)
    if where:
        steps.append(SqlQuery(f"""DELETE FROM temp.search_scored AS sc WHERE NOT EXISTS (
    SELECT 1 FROM search_docs d WHERE d.key = sc.key AND {where}
)""", params))  # fmt: skip
    return steps


def to_sql_facets(q: TieredQuery) -> list[SqlQuery]:
    """Facet counts of the assets in ``temp.search_scored`` into ``temp.search_facets``,
    one pass over the result set (cheapest while it is a small part of the index)."""
    floor = {"floor": q.profile.confidence_floor}
    return [
        SqlQuery("DELETE FROM temp.search_facets", {}),
        SqlQuery("""INSERT INTO temp.search_facets(kind, tag, n)
SELECT 'smart', s.tag, 1 FROM temp.search_scored r
CROSS JOIN search_smart s ON s.key = r.key AND s.confidence >= :floor
WHERE true
ON CONFLICT(kind, tag) DO UPDATE SET n = n + 1""", floor),
        SqlQuery("""INSERT INTO temp.search_facets(kind, tag, n)
SELECT 'manual', m.tag, 1 FROM temp.search_scored r
CROSS JOIN search_manual m ON m.key = r.key
WHERE true
ON CONFLICT(kind, tag) DO UPDATE SET n = n + 1""", {}),
    ]  # fmt: skip


def to_sql_facets_all(q: TieredQuery) -> list[SqlQuery]:
    """Facet counts of every asset at the profile's floor into ``temp.search_facets_all``
    (streams the by-tag indexes; a connection keeps them until the index changes)."""
    floor = {"floor": q.profile.confidence_floor}
    return [
        SqlQuery("DELETE FROM temp.search_facets_all WHERE floor = :floor", floor),
        SqlQuery("""INSERT INTO temp.search_facets_all(floor, kind, tag, n)
SELECT :floor, 'smart', tag, count(*) FROM search_smart INDEXED BY search_smart_by_tag_conf
WHERE confidence >= :floor GROUP BY tag""", floor),
        SqlQuery("""INSERT INTO temp.search_facets_all(floor, kind, tag, n)
SELECT :floor, 'manual', tag, count(*) FROM search_manual INDEXED BY search_manual_by_tag
GROUP BY tag""", floor),
    ]  # fmt: skip


def to_sql_facets_complement(q: TieredQuery) -> list[SqlQuery]:
    """The same counts as :func:`to_sql_facets`, as every asset's (``temp.search_facets_all``
    at the floor, filled by :func:`to_sql_facets_all`) less those of the assets outside
    the result set: cheapest when the result set is most of the index."""
    floor = {"floor": q.profile.confidence_floor}
    outside = (
        "FROM search_docs d INDEXED BY search_docs_narrow\n"
        "CROSS JOIN {table} ON {alias}.key = d.key{cond}\n"
        "WHERE NOT EXISTS (SELECT 1 FROM temp.search_scored r WHERE r.key = d.key)"
    )
    return [
        SqlQuery("DELETE FROM temp.search_facets", {}),
        SqlQuery("""INSERT INTO temp.search_facets(kind, tag, n)
SELECT kind, tag, n FROM temp.search_facets_all WHERE floor = :floor""", floor),
        SqlQuery(f"""INSERT INTO temp.search_facets(kind, tag, n)
SELECT 'smart', s.tag, 0 {outside.format(table="search_smart s", alias="s",
                                         cond=" AND s.confidence >= :floor")}
ON CONFLICT(kind, tag) DO UPDATE SET n = n - 1""", floor),
        SqlQuery(f"""INSERT INTO temp.search_facets(kind, tag, n)
SELECT 'manual', m.tag, 0 {outside.format(table="search_manual m", alias="m", cond="")}
ON CONFLICT(kind, tag) DO UPDATE SET n = n - 1""", {}),
    ]  # fmt: skip


def to_sql_threshold(q: TieredQuery) -> SqlQuery:
    """The score of the page's last hit (offset + limit), how many hits score above it
    and how many tie with it: a NULL score when the result set is shorter than that."""
    params = _common_params(q)
    params["last"] = q.offset + q.limit - 1
    score = _score_expr(q)
    sql = f"""WITH kth(score) AS MATERIALIZED (
    SELECT {score} AS score FROM temp.search_scored ORDER BY score DESC LIMIT 1 OFFSET :last
)
SELECT (SELECT score FROM kth), CAST(total({score} > (SELECT score FROM kth)) AS INTEGER),
       CAST(total({score} = (SELECT score FROM kth)) AS INTEGER)
FROM temp.search_scored"""
    return SqlQuery(sql, params)


def to_sql(q: TieredQuery) -> SqlQuery:
    """One page of hits: ``(asset_id, tier, score, doc)`` rows, best first (after
    :func:`to_sql_scoring`). Only hits scoring at least ``:threshold`` (the page's last
    score, from :func:`to_sql_threshold`; 0 takes all) are looked up, and the documents
    are read for the page only."""
    params = _common_params(q)
    params["limit"], params["offset"], params["threshold"] = q.limit, q.offset, 0.0
    sql = f"""SELECT p.asset_id, p.tier, p.score, d.doc
FROM (
    SELECT sc.key, d.asset_id, {_tier_expr()} AS tier, {_score_expr(q)} AS score
    FROM temp.search_scored sc CROSS JOIN search_docs d INDEXED BY search_docs_narrow
        ON d.key = sc.key
    WHERE {_score_expr(q)} >= :threshold
    ORDER BY score DESC, d.asset_id ASC
    LIMIT :limit OFFSET :offset
) p JOIN search_docs d ON d.key = p.key
ORDER BY p.score DESC, p.asset_id ASC"""
    return SqlQuery(sql, params)


def to_sql_ties(q: TieredQuery, threshold: float, need: int) -> SqlQuery:
    """The page as :func:`to_sql` computes it, when many hits tie at ``threshold``:
    those above it, and the first ``need`` of the ties found by walking the asset ids
    in order (cheaper than looking up every tie's asset id when ties are dense)."""
    params = _common_params(q)
    params.update(limit=q.limit, offset=q.offset, threshold=threshold, need=need)
    tier, score = _tier_expr(), _score_expr(q)
    sql = f"""SELECT p.asset_id, p.tier, p.score, d.doc
FROM (
    SELECT * FROM (
        SELECT sc.key, d.asset_id, {tier} AS tier, {score} AS score
        FROM temp.search_scored sc CROSS JOIN search_docs d INDEXED BY search_docs_narrow
            ON d.key = sc.key
        WHERE {score} > :threshold)
    UNION ALL
    SELECT * FROM (
        SELECT sc.key, d.asset_id, {tier} AS tier, {score} AS score
        FROM search_docs d CROSS JOIN temp.search_scored sc ON sc.key = d.key
        WHERE {score} = :threshold
        ORDER BY d.asset_id LIMIT :need)
    ORDER BY score DESC, asset_id ASC
    LIMIT :limit OFFSET :offset
) p JOIN search_docs d ON d.key = p.key
ORDER BY p.score DESC, p.asset_id ASC"""
    return SqlQuery(sql, params)


def to_sql_summary(q: TieredQuery, facet_size: int = 10) -> SqlQuery:
    """Counts per tier and the top smart and manual tags over the whole result set
    (after :func:`to_sql_scoring`): ``(kind, name, count)`` rows with kind 'tier',
    'smart' or 'manual'."""
    params = _common_params(q)
    params["facet_size"] = facet_size
    sql = """WITH counts(n1, n2, n3) AS MATERIALIZED (
    SELECT total(tier = 1), total(tier <> 1 AND mask = :full), total(tier <> 1 AND mask <> :full)
    FROM temp.search_scored
)
SELECT 'tier', '1', CAST(n1 AS INTEGER) FROM counts WHERE n1 > 0
UNION ALL
SELECT 'tier', '2', CAST(n2 AS INTEGER) FROM counts WHERE n2 > 0
UNION ALL
SELECT 'tier', '3', CAST(n3 AS INTEGER) FROM counts WHERE n3 > 0
UNION ALL
SELECT * FROM (
    SELECT 'smart', tag, n FROM temp.search_facets WHERE kind = 'smart' AND n > 0
    ORDER BY n DESC, tag LIMIT :facet_size)
UNION ALL
SELECT * FROM (
    SELECT 'manual', tag, n FROM temp.search_facets WHERE kind = 'manual' AND n > 0
    ORDER BY n DESC, tag LIMIT :facet_size)"""
    return SqlQuery(sql, params)
