"""Pure translation of a :class:`TieredQuery` to SQLite SQL over the embedded schema.

The embedded backend stores metadata tokens in an FTS5 table (one column per metadata
field); smart tags are a plain table indexed by tag, and ``search_tag_terms`` maps a
token to the tags whose titles or synonyms hold it. The SQL computes exactly the scores
of :mod:`ranking.explain`, with constant per-field weights and confidences only.

A search is a short plan run in one read transaction on one connection; it fills the
connection's ``temp.search_scored`` with the hits it needs, each with its tier and score,
then reads the page and the facets from there. What it needs is bounded by the profile:
counts stop at ``track_total_hits`` and facets sample the top ``facet_sample`` hits, so
with K = max(offset + limit, facet_sample) only the top K hits must be found:

1. :func:`to_sql_tier1_count` counts tier 1 up to max(cap, K) + 1 (FTS5 stops there).
2. More than that: tier 1 alone fills the page, the sample and the cap. Its scores take
   few values (sums of field weights), so :func:`tier1_classes` lists them best first
   as FTS5 expressions, and each class is counted (:func:`to_sql_class_count`) and,
   while fewer than K hits are found, either loaded whole (:func:`to_sql_class_fill`)
   or, when large, walked in asset-id order (:func:`to_sql_class_walk`, which tests the
   stored tokens) until enough are found: ties in a class go by asset id.
3. Otherwise tier 1 is loaded: with several terms by :func:`to_sql_tier1_scan` (one
   FTS5 query, each row scored from its stored tokens), with one by :func:`to_sql_tier1`
   (per query term, the fields grouped by weight, best first, so ``{fields} : term NOT
   {better fields} : term`` yields each document once with the largest weight of a
   field holding the term). When it holds fewer than K hits, :func:`to_sql_smart` adds
   every smart-tag hit, folded per asset by an upsert (terms covered as a bit mask);
   else :func:`to_sql_smart_count` only counts the smart tiers up to the cap.
4. :func:`to_sql_threshold` finds the K-th score, :func:`to_sql_top` orders the hits
   from there up once (score, then asset id, fetching asset ids for those only), and
   :func:`to_sql` (the page) and :func:`to_sql_facets` (the sample's facets) read it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from .analysis import QueryTerm
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
CREATE TABLE IF NOT EXISTS search_changes (  -- the keys each write changed, in order
    seq INTEGER PRIMARY KEY AUTOINCREMENT,       -- (readers patch their caches from it)
    key INTEGER NOT NULL,
    op TEXT NOT NULL                             -- 'n' new, 'u' replaced, 'd' deleted
);
CREATE TABLE IF NOT EXISTS search_changed_names (  -- per write (the seq of its last
    seq INTEGER NOT NULL,                          -- change), the tokens ('s:') and smart
    name TEXT NOT NULL,                            -- tags ('t:') its documents held or
    PRIMARY KEY (seq, name)                        -- hold: the cached lists it changed
) WITHOUT ROWID;
DROP TABLE IF EXISTS search_term_smart;  -- the threshold algorithm's lists of earlier versions
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
CREATE TEMP TABLE IF NOT EXISTS search_top (  -- the top hits in hit order
    pos INTEGER PRIMARY KEY,
    key INTEGER NOT NULL,
    asset_id TEXT NOT NULL,
    tier INTEGER NOT NULL,
    score REAL NOT NULL
);
DROP TABLE IF EXISTS temp.search_facets;
DROP TABLE IF EXISTS temp.search_qtags;
DROP TABLE IF EXISTS temp.search_cand;
DROP TABLE IF EXISTS temp.search_facets_all;
"""

#: FTS5's own table of the stored column values (``c0``.. in column order, by ``id``).
META_CONTENT = "search_meta_content"
#: The index of ``search_docs``'s UNIQUE ``asset_id``: the order ties are broken in.
ASSET_ORDER_INDEX = "sqlite_autoindex_search_docs_1"


@dataclass(frozen=True)
class SqlQuery:
    """A statement and its parameters (named, so the golden files read well)."""

    sql: str
    params: dict[str, Any]

    def args(self) -> tuple[str, dict[str, Any]]:
        """``(sql, params)``, as ``sqlite3.Connection.execute`` takes them."""
        return self.sql, self.params


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


def _every(q: TieredQuery) -> str:
    """FTS5: every query term in some metadata field (tier 1 membership)."""
    return " AND ".join(_phrase(t.stems) for t in q.terms)


def _meta_stream(q: TieredQuery, params: dict[str, Any]) -> str:
    """FROM/WHERE of the FTS5 rows matching ``:expr`` that pass the filters."""
    where = _filters(q, params)
    if not where:
        return "FROM search_meta WHERE search_meta MATCH :expr"
    return ("FROM search_meta CROSS JOIN search_docs d ON d.key = search_meta.rowid\n"
            f"WHERE search_meta MATCH :expr AND {where}")  # fmt: skip


def to_sql_tier1_count(q: TieredQuery, limit: int) -> SqlQuery:
    """How many assets are in tier 1 (after filters), counting at most ``limit``."""
    params: dict[str, Any] = {"expr": _every(q), "limit": limit,
                              "floor": q.profile.confidence_floor}  # fmt: skip
    sql = f"SELECT count(*) FROM (SELECT search_meta.rowid {_meta_stream(q, params)} LIMIT :limit)"
    return SqlQuery(sql, params)


def tier1_classes(q: TieredQuery, max_combinations: int = 64) -> list[tuple[float, str]] | None:
    """Tier 1's distinct scores, best first, each with the FTS5 expression of its assets:
    per term, the weight class of the best field holding it; None when there are more
    than ``max_combinations`` combinations of classes."""
    weights = q.profile.field_weights
    classes = sorted({weights[f] for f in METADATA_FIELDS}, reverse=True)
    if len(classes) ** len(q.terms) > max_combinations:
        return None
    options: list[list[tuple[float, str]]] = []
    for term in q.terms:
        phrase, better, opts = _phrase(term.stems), list[str](), list[tuple[float, str]]()
        for w in classes:
            fields = [f for f in METADATA_FIELDS if weights[f] == w]
            expr = "{" + " ".join(fields) + "} : " + phrase
            if better:
                expr = f"({expr} NOT {{{' '.join(better)}}} : {phrase})"
            better.extend(fields)
            opts.append((w, expr))
        options.append(opts)
    by_score: dict[float, list[str]] = {}
    for combo in itertools.product(*options):
        score = 0.0
        for w, _ in combo:  # summed in term order, as ranking.explain sums them
            score += w
        by_score.setdefault(score, []).append(" AND ".join(e for _, e in combo))
    return [
        (score, " OR ".join(f"({e})" for e in exprs) if len(exprs) > 1 else exprs[0])
        for score, exprs in sorted(by_score.items(), reverse=True)
    ]


def to_sql_class_count(q: TieredQuery, expr: str, limit: int) -> SqlQuery:
    """How many assets (after filters) match a :func:`tier1_classes` expression, at most
    ``limit``."""
    params: dict[str, Any] = {"expr": expr, "limit": limit,
                              "floor": q.profile.confidence_floor}  # fmt: skip
    sql = f"SELECT count(*) FROM (SELECT search_meta.rowid {_meta_stream(q, params)} LIMIT :limit)"
    return SqlQuery(sql, params)


def to_sql_class_fill(q: TieredQuery, expr: str, score: float) -> SqlQuery:
    """Every asset of one tier-1 class into ``temp.search_scored``."""
    params: dict[str, Any] = {"expr": expr, "within": score,
                              "floor": q.profile.confidence_floor}  # fmt: skip
    sql = ("INSERT INTO temp.search_scored(key, tier, mask, within, n)\n"
           f"SELECT search_meta.rowid, 1, 0, :within, 1 {_meta_stream(q, params)}")  # fmt: skip
    return SqlQuery(sql, params)


def to_sql_class_walk(q: TieredQuery, score: float, need: int) -> SqlQuery:
    """The first ``need`` assets in asset-id order whose tier-1 score is ``score`` into
    ``temp.search_scored``, testing each asset's stored tokens (cheaper than loading a
    large class to sort it by asset id)."""
    p = q.profile
    params: dict[str, Any] = {"within": score, "need": need, "floor": p.confidence_floor}
    best = _best_weights(q, params)
    where = [f"{b} >= 0" for b in best]
    where.append(f"abs({' + '.join(best)} - :within) < 1e-9")
    if q.path_prefix is not None:  # the prefix's range of the asset-id index
        params["prefix_end"] = q.path_prefix[:-1] + chr(ord(q.path_prefix[-1]) + 1)
        where.append("d.asset_id >= :prefix AND d.asset_id < :prefix_end")
    flt = _filters(q, params)
    if flt:
        where.append(flt)
    conditions = "\n    AND ".join(where)
    sql = f"""INSERT INTO temp.search_scored(key, tier, mask, within, n)
SELECT d.key, 1, 0, :within, 1
FROM search_docs d INDEXED BY {ASSET_ORDER_INDEX}
CROSS JOIN {META_CONTENT} c ON c.id = d.key
WHERE {conditions}
ORDER BY d.asset_id LIMIT :need"""
    return SqlQuery(sql, params)


def _best_weights(q: TieredQuery, params: dict[str, Any]) -> list[str]:
    """Per query term, SQL for the largest weight of a field holding it (-1 when none),
    testing the stored tokens of ``search_meta_content`` ``c`` (fields by weight, best
    first, so the first field holding the term decides)."""
    weights = q.profile.field_weights
    order = sorted(range(len(METADATA_FIELDS)), key=lambda j: -weights[METADATA_FIELDS[j]])
    best = []
    for i, term in enumerate(q.terms):
        arms = []
        for j in order:
            params[f"w{j}"] = weights[METADATA_FIELDS[j]]
            has = []
            for k, stem in enumerate(term.stems):
                params[f"s{i}_{k}"] = f" {stem} "
                has.append(f"instr(' ' || c.c{j} || ' ', :s{i}_{k})")
            arms.append(f"WHEN {' OR '.join(has)} THEN :w{j}")
        best.append(f"(CASE {' '.join(arms)} ELSE -1.0 END)")
    return best


def to_sql_tier1_scan(q: TieredQuery) -> SqlQuery:
    """Every tier-1 asset that passes the filters into ``temp.search_scored``: one FTS5
    query for the assets holding every term, each scored by testing its stored tokens
    (per term, the largest weight of a field holding it; summed in term order)."""
    p = q.profile
    params: dict[str, Any] = {"expr": _every(q), "floor": p.confidence_floor}
    within = " + ".join(_best_weights(q, params))
    # The stored columns from FTS5's content table: cheaper than through the FTS5 table.
    stream = _meta_stream(q, params).replace(
        "FROM search_meta",
        f"FROM search_meta CROSS JOIN {META_CONTENT} c ON c.id = search_meta.rowid",
        1,
    )
    sql = f"""INSERT INTO temp.search_scored(key, tier, mask, within, n)
SELECT search_meta.rowid, 1, 0, {within}, 1
{stream}"""
    return SqlQuery(sql, params)


def _filter_delete(q: TieredQuery) -> list[SqlQuery]:
    params: dict[str, Any] = {"floor": q.profile.confidence_floor}
    where = _filters(q, params)
    if not where:
        return []
    return [SqlQuery(f"""DELETE FROM temp.search_scored AS sc WHERE NOT EXISTS (
    SELECT 1 FROM search_docs d WHERE d.key = sc.key AND {where}
)""", params)]  # fmt: skip


def to_sql_tier1(q: TieredQuery) -> list[SqlQuery]:
    """Empty ``temp.search_scored`` and load every tier-1 asset that passes the filters
    (the temp tables must exist: :data:`TEMP_SCHEMA`)."""
    return [SqlQuery("DELETE FROM temp.search_scored", {}), _tier1(q), *_filter_delete(q)]


def to_sql_smart(q: TieredQuery) -> list[SqlQuery]:
    """Add every smart-tag hit that passes the filters (after :func:`to_sql_tier1`)."""
    return [_smart(q), *_filter_delete(q)]


def _term_tags(terms: dict[int, QueryTerm], params: dict[str, Any]) -> str:
    """SQL list of the tags whose titles or synonyms hold a stem of one of ``terms``
    (query terms by index)."""
    marks = []
    for i, term in terms.items():
        for j, stem in enumerate(term.stems):
            params[f"t{i}_{j}"] = stem
            marks.append(f":t{i}_{j}")
    return f"(SELECT tag FROM search_tag_terms WHERE term IN ({', '.join(marks)}))"


def to_sql_smart_rows(q: TieredQuery, term: int, limit: int) -> SqlQuery:
    """How many smart-tag rows at or above the floor match query term ``term``, counting at
    most ``limit`` (to pick the rarest term for :func:`to_sql_smart_count`)."""
    params: dict[str, Any] = {"floor": q.profile.confidence_floor, "limit": limit}
    tags = _term_tags({term: q.terms[term]}, params)
    sql = f"""SELECT count(*) FROM (
    SELECT 1 FROM search_smart s INDEXED BY search_smart_by_tag_conf
    WHERE s.tag IN {tags} AND s.confidence >= :floor LIMIT :limit)"""
    return SqlQuery(sql, params)


def to_sql_smart_count(q: TieredQuery, limit: int, every_from: int | None = None) -> SqlQuery:
    """How many assets not in tier 1 of ``temp.search_scored`` that pass the filters have
    a smart tag (at or above the floor) matching a query term, counting at most ``limit``.
    With ``every_from`` (a term index, best the rarest): only those whose smart tags
    match every term (tier 2), streamed from the tags of that term."""
    params: dict[str, Any] = {"floor": q.profile.confidence_floor, "limit": limit}
    where = []
    if every_from is None:
        tags = _term_tags(dict(enumerate(q.terms)), params)
    else:
        tags = _term_tags({every_from: q.terms[every_from]}, params)
        for i, term in enumerate(q.terms):
            if i != every_from:
                where.append(f"""EXISTS (SELECT 1 FROM search_smart s2 WHERE s2.key = h.key
        AND +s2.tag IN {_term_tags({i: term}, params)} AND s2.confidence >= :floor)""")
    flt = _filters(q, params)
    if flt:
        where.append(f"EXISTS (SELECT 1 FROM search_docs d WHERE d.key = h.key AND {flt})")
    conditions = "".join(f"\n        AND {w}" for w in where)
    sql = f"""SELECT count(*) FROM (
    SELECT DISTINCT h.key FROM search_smart h INDEXED BY search_smart_by_tag_conf
    WHERE h.tag IN {tags} AND h.confidence >= :floor
        AND NOT EXISTS (SELECT 1 FROM temp.search_scored r
            WHERE r.key = h.key AND r.tier = 1){conditions}
    LIMIT :limit
)"""
    return SqlQuery(sql, params)


def to_sql_tier_counts(q: TieredQuery, limit: int) -> SqlQuery:
    """Hits per tier in ``temp.search_scored``, each counted up to ``limit``:
    ``(n1, n2, n3)``."""
    params = _common_params(q)
    params["limit"] = limit
    part = "(SELECT count(*) FROM (SELECT 1 FROM temp.search_scored WHERE {} LIMIT :limit))"
    conds = ("tier = 1", "tier <> 1 AND mask = :full", "tier <> 1 AND mask <> :full")
    return SqlQuery("SELECT " + ", ".join(part.format(c) for c in conds), params)


def to_sql_threshold(q: TieredQuery, last: int) -> SqlQuery:
    """The score of the hit at 0-based position ``last`` in ``temp.search_scored``
    (no row when there are fewer hits): hits from there up are the top ``last + 1``."""
    params = _common_params(q)
    params["last"] = last
    sql = f"""SELECT {_score_expr(q)} AS score FROM temp.search_scored
ORDER BY score DESC LIMIT 1 OFFSET :last"""
    return SqlQuery(sql, params)


def _top(q: TieredQuery) -> str:
    """The hits scoring at least ``:threshold``, best first, as (key, asset_id, tier, score)."""
    return f"""SELECT sc.key, d.asset_id, {_tier_expr()} AS tier, {_score_expr(q)} AS score
    FROM temp.search_scored sc CROSS JOIN search_docs d INDEXED BY search_docs_narrow
        ON d.key = sc.key
    WHERE {_score_expr(q)} >= :threshold
    ORDER BY score DESC, d.asset_id ASC"""


def to_sql_top(q: TieredQuery, k: int) -> list[SqlQuery]:
    """The first ``k`` hits of ``temp.search_scored`` (those scoring at least
    ``:threshold``; 0 takes all) in hit order into ``temp.search_top``, numbered from 1
    (``pos``), so the page and the facet sample read them without ordering again."""
    params = _common_params(q)
    params["k"], params["threshold"] = k, 0.0
    sql = f"""INSERT INTO temp.search_top(key, asset_id, tier, score)
SELECT * FROM (
    {_top(q)}
    LIMIT :k)"""
    return [SqlQuery("DELETE FROM temp.search_top", {}), SqlQuery(sql, params)]


def to_sql(q: TieredQuery) -> SqlQuery:
    """One page of hits from ``temp.search_top`` (:func:`to_sql_top`): ``(asset_id, tier,
    score, doc)`` rows, best first; documents are read for the page only."""
    params: dict[str, Any] = {"offset": q.offset, "end": q.offset + q.limit}
    sql = """SELECT t.asset_id, t.tier, t.score, d.doc
FROM temp.search_top t CROSS JOIN search_docs d ON d.key = t.key
WHERE t.pos > :offset AND t.pos <= :end
ORDER BY t.pos"""
    return SqlQuery(sql, params)


def _facets(q: TieredQuery, top: str, params: dict[str, Any], facet_size: int) -> SqlQuery:
    """The top smart tags (at or above the floor) and manual tags of the assets ``top``
    selects (a ``SELECT key``)."""
    params = {**params, "floor": q.profile.confidence_floor, "facet_size": facet_size}
    sql = f"""WITH top(key) AS MATERIALIZED (
    {top}
)
SELECT * FROM (
    SELECT 'smart', s.tag, count(*) AS n FROM top
    CROSS JOIN search_smart s ON s.key = top.key AND s.confidence >= :floor
    GROUP BY s.tag ORDER BY n DESC, s.tag LIMIT :facet_size)
UNION ALL
SELECT * FROM (
    SELECT 'manual', m.tag, count(*) AS n FROM top
    CROSS JOIN search_manual m ON m.key = top.key
    GROUP BY m.tag ORDER BY n DESC, m.tag LIMIT :facet_size)"""
    return SqlQuery(sql, params)


def to_sql_facets(q: TieredQuery, facet_size: int = 10) -> SqlQuery:
    """The top smart tags (at or above the floor) and manual tags of the first
    ``facet_sample`` hits of ``temp.search_top`` (:func:`to_sql_top`): ``(kind, tag,
    count)`` rows, kind 'smart' or 'manual', by count, then tag."""
    top = "SELECT key FROM temp.search_top WHERE pos <= :sample"
    return _facets(q, top, {"sample": q.profile.facet_sample}, facet_size)
