-- page
WITH q(qi, term) AS (VALUES (0, :t0_0)),
w(col, weight) AS (VALUES ('title', :w_title), ('description', :w_description), ('keywords', :w_keywords), ('manual_tags', :w_manual_tags)),
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
    SELECT p.key, c.n, sum(eff) AS within
    FROM per_tag p JOIN covered c ON c.key = p.key
    GROUP BY p.key
),
scored(key, tier, score) AS (
    SELECT key, 1, score FROM tier1
    UNION ALL
    SELECT key, CASE WHEN n = :nterms THEN 2 ELSE 3 END,
           CASE WHEN n = :nterms THEN :b2 ELSE :b3 END + within
    FROM smart WHERE key NOT IN (SELECT key FROM tier1)
)
SELECT d.asset_id, sc.tier, sc.score, d.doc
FROM scored sc JOIN search_docs d ON d.key = sc.key
WHERE 1
ORDER BY sc.score DESC, d.asset_id ASC
LIMIT :limit OFFSET :offset
-- params
{
 "b1": 3000.0,
 "b2": 2000.0,
 "b3": 1000.0,
 "floor": 0.3,
 "limit": 20,
 "nterms": 1,
 "offset": 0,
 "promotion": 1.5,
 "t0_0": "shoe",
 "w_description": 1.0,
 "w_keywords": 3.0,
 "w_manual_tags": 3.0,
 "w_title": 4.0
}
-- summary
WITH q(qi, term) AS (VALUES (0, :t0_0)),
w(col, weight) AS (VALUES ('title', :w_title), ('description', :w_description), ('keywords', :w_keywords), ('manual_tags', :w_manual_tags)),
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
    SELECT p.key, c.n, sum(eff) AS within
    FROM per_tag p JOIN covered c ON c.key = p.key
    GROUP BY p.key
),
scored(key, tier, score) AS (
    SELECT key, 1, score FROM tier1
    UNION ALL
    SELECT key, CASE WHEN n = :nterms THEN 2 ELSE 3 END,
           CASE WHEN n = :nterms THEN :b2 ELSE :b3 END + within
    FROM smart WHERE key NOT IN (SELECT key FROM tier1)
),
result AS (
    SELECT sc.key, sc.tier FROM scored sc JOIN search_docs d ON d.key = sc.key WHERE 1
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
    GROUP BY m.tag ORDER BY n DESC, m.tag LIMIT :facet_size)
-- params
{
 "b1": 3000.0,
 "b2": 2000.0,
 "b3": 1000.0,
 "facet_size": 10,
 "floor": 0.3,
 "nterms": 1,
 "promotion": 1.5,
 "t0_0": "shoe",
 "w_description": 1.0,
 "w_keywords": 3.0,
 "w_manual_tags": 3.0,
 "w_title": 4.0
}
