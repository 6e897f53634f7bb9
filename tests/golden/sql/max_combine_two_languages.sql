-- scoring 0
DELETE FROM temp.search_scored
-- params
{}
-- scoring 1
INSERT INTO temp.search_scored(key, tier, mask, within, n)
SELECT key, 1, 0, weight, 1 FROM (
    SELECT rowid AS key, :w_title AS weight FROM search_meta WHERE search_meta MATCH :m0_0
    UNION ALL SELECT rowid AS key, :w_keywords AS weight FROM search_meta WHERE search_meta MATCH :m0_1
    UNION ALL SELECT rowid AS key, :w_description AS weight FROM search_meta WHERE search_meta MATCH :m0_2
    ORDER BY 1
) WHERE true
ON CONFLICT(key) DO UPDATE SET within = within + excluded.within
-- params
{
 "m0_0": "{title} : (\"schuhe\" OR \"schuh\")",
 "m0_1": "({keywords manual_tags} : (\"schuhe\" OR \"schuh\") NOT {title} : (\"schuhe\" OR \"schuh\"))",
 "m0_2": "({description} : (\"schuhe\" OR \"schuh\") NOT {title keywords manual_tags} : (\"schuhe\" OR \"schuh\"))",
 "w_description": 1.0,
 "w_keywords": 3.0,
 "w_title": 4.0
}
-- scoring 2
WITH q(qi, term) AS (VALUES (0, :t0_0), (0, :t0_1)),
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
ON CONFLICT(key) DO UPDATE SET mask = mask | excluded.mask, within = max(within, excluded.within), n = n + 1
    WHERE tier <> 1
-- params
{
 "floor": 0.5,
 "promotion": 2.0,
 "t0_0": "schuhe",
 "t0_1": "schuh"
}
-- facets 0
DELETE FROM temp.search_facets
-- params
{}
-- facets 1
INSERT INTO temp.search_facets(kind, tag, n)
SELECT 'smart', s.tag, 1 FROM temp.search_scored r
CROSS JOIN search_smart s ON s.key = r.key AND s.confidence >= :floor
WHERE true
ON CONFLICT(kind, tag) DO UPDATE SET n = n + 1
-- params
{
 "floor": 0.5
}
-- facets 2
INSERT INTO temp.search_facets(kind, tag, n)
SELECT 'manual', m.tag, 1 FROM temp.search_scored r
CROSS JOIN search_manual m ON m.key = r.key
WHERE true
ON CONFLICT(kind, tag) DO UPDATE SET n = n + 1
-- params
{}
-- facets_all 0
DELETE FROM temp.search_facets_all WHERE floor = :floor
-- params
{
 "floor": 0.5
}
-- facets_all 1
INSERT INTO temp.search_facets_all(floor, kind, tag, n)
SELECT :floor, 'smart', tag, count(*) FROM search_smart INDEXED BY search_smart_by_tag_conf
WHERE confidence >= :floor GROUP BY tag
-- params
{
 "floor": 0.5
}
-- facets_all 2
INSERT INTO temp.search_facets_all(floor, kind, tag, n)
SELECT :floor, 'manual', tag, count(*) FROM search_manual INDEXED BY search_manual_by_tag
GROUP BY tag
-- params
{
 "floor": 0.5
}
-- facets_complement 0
DELETE FROM temp.search_facets
-- params
{}
-- facets_complement 1
INSERT INTO temp.search_facets(kind, tag, n)
SELECT kind, tag, n FROM temp.search_facets_all WHERE floor = :floor
-- params
{
 "floor": 0.5
}
-- facets_complement 2
INSERT INTO temp.search_facets(kind, tag, n)
SELECT 'smart', s.tag, 0 FROM search_docs d INDEXED BY search_docs_narrow
CROSS JOIN search_smart s ON s.key = d.key AND s.confidence >= :floor
WHERE NOT EXISTS (SELECT 1 FROM temp.search_scored r WHERE r.key = d.key)
ON CONFLICT(kind, tag) DO UPDATE SET n = n - 1
-- params
{
 "floor": 0.5
}
-- facets_complement 3
INSERT INTO temp.search_facets(kind, tag, n)
SELECT 'manual', m.tag, 0 FROM search_docs d INDEXED BY search_docs_narrow
CROSS JOIN search_manual m ON m.key = d.key
WHERE NOT EXISTS (SELECT 1 FROM temp.search_scored r WHERE r.key = d.key)
ON CONFLICT(kind, tag) DO UPDATE SET n = n - 1
-- params
{}
-- threshold
WITH kth(score) AS MATERIALIZED (
    SELECT (CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + within) AS score FROM temp.search_scored ORDER BY score DESC LIMIT 1 OFFSET :last
)
SELECT (SELECT score FROM kth), CAST(total((CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + within) > (SELECT score FROM kth)) AS INTEGER),
       CAST(total((CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + within) = (SELECT score FROM kth)) AS INTEGER)
FROM temp.search_scored
-- params
{
 "b1": 3000.0,
 "b2": 2000.0,
 "b3": 1000.0,
 "full": 1,
 "last": 19
}
-- page
SELECT p.asset_id, p.tier, p.score, d.doc
FROM (
    SELECT sc.key, d.asset_id, CASE WHEN tier = 1 THEN 1 WHEN mask = :full THEN 2 ELSE 3 END AS tier, (CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + within) AS score
    FROM temp.search_scored sc CROSS JOIN search_docs d INDEXED BY search_docs_narrow
        ON d.key = sc.key
    WHERE (CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + within) >= :threshold
    ORDER BY score DESC, d.asset_id ASC
    LIMIT :limit OFFSET :offset
) p JOIN search_docs d ON d.key = p.key
ORDER BY p.score DESC, p.asset_id ASC
-- params
{
 "b1": 3000.0,
 "b2": 2000.0,
 "b3": 1000.0,
 "full": 1,
 "limit": 20,
 "offset": 0,
 "threshold": 0.0
}
-- ties
SELECT p.asset_id, p.tier, p.score, d.doc
FROM (
    SELECT * FROM (
        SELECT sc.key, d.asset_id, CASE WHEN tier = 1 THEN 1 WHEN mask = :full THEN 2 ELSE 3 END AS tier, (CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + within) AS score
        FROM temp.search_scored sc CROSS JOIN search_docs d INDEXED BY search_docs_narrow
            ON d.key = sc.key
        WHERE (CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + within) > :threshold)
    UNION ALL
    SELECT * FROM (
        SELECT sc.key, d.asset_id, CASE WHEN tier = 1 THEN 1 WHEN mask = :full THEN 2 ELSE 3 END AS tier, (CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + within) AS score
        FROM search_docs d CROSS JOIN temp.search_scored sc ON sc.key = d.key
        WHERE (CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + within) = :threshold
        ORDER BY d.asset_id LIMIT :need)
    ORDER BY score DESC, asset_id ASC
    LIMIT :limit OFFSET :offset
) p JOIN search_docs d ON d.key = p.key
ORDER BY p.score DESC, p.asset_id ASC
-- params
{
 "b1": 3000.0,
 "b2": 2000.0,
 "b3": 1000.0,
 "full": 1,
 "limit": 20,
 "need": 5,
 "offset": 0,
 "threshold": 3004.0
}
-- summary
WITH counts(n1, n2, n3) AS MATERIALIZED (
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
    ORDER BY n DESC, tag LIMIT :facet_size)
-- params
{
 "b1": 3000.0,
 "b2": 2000.0,
 "b3": 1000.0,
 "facet_size": 10,
 "full": 1
}
