-- tier1_count
SELECT count(*) FROM (SELECT search_meta.rowid FROM search_meta WHERE search_meta MATCH :expr LIMIT :limit)
-- params
{
 "expr": "(\"schuhe\" OR \"schuh\")",
 "floor": 0.5,
 "limit": 10001
}
-- class 0 count
SELECT count(*) FROM (SELECT search_meta.rowid FROM search_meta WHERE search_meta MATCH :expr LIMIT :limit)
-- params
{
 "expr": "{title} : (\"schuhe\" OR \"schuh\")",
 "floor": 0.5,
 "limit": 16385
}
-- class 1 count
SELECT count(*) FROM (SELECT search_meta.rowid FROM search_meta WHERE search_meta MATCH :expr LIMIT :limit)
-- params
{
 "expr": "({keywords manual_tags} : (\"schuhe\" OR \"schuh\") NOT {title} : (\"schuhe\" OR \"schuh\"))",
 "floor": 0.5,
 "limit": 16385
}
-- class 2 count
SELECT count(*) FROM (SELECT search_meta.rowid FROM search_meta WHERE search_meta MATCH :expr LIMIT :limit)
-- params
{
 "expr": "({description} : (\"schuhe\" OR \"schuh\") NOT {title keywords manual_tags} : (\"schuhe\" OR \"schuh\"))",
 "floor": 0.5,
 "limit": 16385
}
-- class 0 fill
INSERT INTO temp.search_scored(key, tier, mask, within, n)
SELECT search_meta.rowid, 1, 0, :within, 1 FROM search_meta WHERE search_meta MATCH :expr
-- params
{
 "expr": "{title} : (\"schuhe\" OR \"schuh\")",
 "floor": 0.5,
 "within": 4.0
}
-- class 0 walk
INSERT INTO temp.search_scored(key, tier, mask, within, n)
SELECT d.key, 1, 0, :within, 1
FROM search_docs d INDEXED BY sqlite_autoindex_search_docs_1
CROSS JOIN search_meta_content c ON c.id = d.key
WHERE (CASE WHEN instr(' ' || c.c0 || ' ', :s0_0) OR instr(' ' || c.c0 || ' ', :s0_1) THEN :w0 WHEN instr(' ' || c.c2 || ' ', :s0_0) OR instr(' ' || c.c2 || ' ', :s0_1) THEN :w2 WHEN instr(' ' || c.c3 || ' ', :s0_0) OR instr(' ' || c.c3 || ' ', :s0_1) THEN :w3 WHEN instr(' ' || c.c1 || ' ', :s0_0) OR instr(' ' || c.c1 || ' ', :s0_1) THEN :w1 ELSE -1.0 END) >= 0
    AND abs((CASE WHEN instr(' ' || c.c0 || ' ', :s0_0) OR instr(' ' || c.c0 || ' ', :s0_1) THEN :w0 WHEN instr(' ' || c.c2 || ' ', :s0_0) OR instr(' ' || c.c2 || ' ', :s0_1) THEN :w2 WHEN instr(' ' || c.c3 || ' ', :s0_0) OR instr(' ' || c.c3 || ' ', :s0_1) THEN :w3 WHEN instr(' ' || c.c1 || ' ', :s0_0) OR instr(' ' || c.c1 || ' ', :s0_1) THEN :w1 ELSE -1.0 END) - :within) < 1e-9
ORDER BY d.asset_id LIMIT :need
-- params
{
 "floor": 0.5,
 "need": 1000,
 "s0_0": " schuhe ",
 "s0_1": " schuh ",
 "w0": 4.0,
 "w1": 1.0,
 "w2": 3.0,
 "w3": 3.0,
 "within": 4.0
}
-- tier1 0
DELETE FROM temp.search_scored
-- params
{}
-- tier1 1
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
-- tier1_scan
INSERT INTO temp.search_scored(key, tier, mask, within, n)
SELECT search_meta.rowid, 1, 0, (CASE WHEN instr(' ' || c.c0 || ' ', :s0_0) OR instr(' ' || c.c0 || ' ', :s0_1) THEN :w0 WHEN instr(' ' || c.c2 || ' ', :s0_0) OR instr(' ' || c.c2 || ' ', :s0_1) THEN :w2 WHEN instr(' ' || c.c3 || ' ', :s0_0) OR instr(' ' || c.c3 || ' ', :s0_1) THEN :w3 WHEN instr(' ' || c.c1 || ' ', :s0_0) OR instr(' ' || c.c1 || ' ', :s0_1) THEN :w1 ELSE -1.0 END), 1
FROM search_meta CROSS JOIN search_meta_content c ON c.id = search_meta.rowid WHERE search_meta MATCH :expr
-- params
{
 "expr": "(\"schuhe\" OR \"schuh\")",
 "floor": 0.5,
 "s0_0": " schuhe ",
 "s0_1": " schuh ",
 "w0": 4.0,
 "w1": 1.0,
 "w2": 3.0,
 "w3": 3.0
}
-- smart 0
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
-- tier_counts
SELECT (SELECT count(*) FROM (SELECT 1 FROM temp.search_scored WHERE tier = 1 LIMIT :limit)), (SELECT count(*) FROM (SELECT 1 FROM temp.search_scored WHERE tier <> 1 AND mask = :full LIMIT :limit)), (SELECT count(*) FROM (SELECT 1 FROM temp.search_scored WHERE tier <> 1 AND mask <> :full LIMIT :limit))
-- params
{
 "b1": 3000.0,
 "b2": 2000.0,
 "b3": 1000.0,
 "full": 1,
 "limit": 10001
}
-- smart_rows
SELECT count(*) FROM (
    SELECT 1 FROM search_smart s INDEXED BY search_smart_by_tag_conf
    WHERE s.tag IN (SELECT tag FROM search_tag_terms WHERE term IN (:t0_0, :t0_1)) AND s.confidence >= :floor LIMIT :limit)
-- params
{
 "floor": 0.5,
 "limit": 16384,
 "t0_0": "schuhe",
 "t0_1": "schuh"
}
-- smart_count
SELECT count(*) FROM (
    SELECT DISTINCT h.key FROM search_smart h INDEXED BY search_smart_by_tag_conf
    WHERE h.tag IN (SELECT tag FROM search_tag_terms WHERE term IN (:t0_0, :t0_1)) AND h.confidence >= :floor
        AND NOT EXISTS (SELECT 1 FROM temp.search_scored r
            WHERE r.key = h.key AND r.tier = 1)
    LIMIT :limit
)
-- params
{
 "floor": 0.5,
 "limit": 5000,
 "t0_0": "schuhe",
 "t0_1": "schuh"
}
-- smart_count tier 2
SELECT count(*) FROM (
    SELECT DISTINCT h.key FROM search_smart h INDEXED BY search_smart_by_tag_conf
    WHERE h.tag IN (SELECT tag FROM search_tag_terms WHERE term IN (:t0_0, :t0_1)) AND h.confidence >= :floor
        AND NOT EXISTS (SELECT 1 FROM temp.search_scored r
            WHERE r.key = h.key AND r.tier = 1)
    LIMIT :limit
)
-- params
{
 "floor": 0.5,
 "limit": 100,
 "t0_0": "schuhe",
 "t0_1": "schuh"
}
-- threshold
SELECT (CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + within) AS score FROM temp.search_scored
ORDER BY score DESC LIMIT 1 OFFSET :last
-- params
{
 "b1": 3000.0,
 "b2": 2000.0,
 "b3": 1000.0,
 "full": 1,
 "last": 999
}
-- top 0
DELETE FROM temp.search_top
-- params
{}
-- top 1
INSERT INTO temp.search_top(key, asset_id, tier, score)
SELECT * FROM (
    SELECT sc.key, d.asset_id, CASE WHEN tier = 1 THEN 1 WHEN mask = :full THEN 2 ELSE 3 END AS tier, (CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + within) AS score
    FROM temp.search_scored sc CROSS JOIN search_docs d INDEXED BY search_docs_narrow
        ON d.key = sc.key
    WHERE (CASE WHEN tier = 1 THEN :b1 WHEN mask = :full THEN :b2 ELSE :b3 END + within) >= :threshold
    ORDER BY score DESC, d.asset_id ASC
    LIMIT :k)
-- params
{
 "b1": 3000.0,
 "b2": 2000.0,
 "b3": 1000.0,
 "full": 1,
 "k": 1000,
 "threshold": 0.0
}
-- page
SELECT t.asset_id, t.tier, t.score, d.doc
FROM temp.search_top t CROSS JOIN search_docs d ON d.key = t.key
WHERE t.pos > :offset AND t.pos <= :end
ORDER BY t.pos
-- params
{
 "end": 20,
 "offset": 0
}
-- facets
WITH top(key) AS MATERIALIZED (
    SELECT key FROM temp.search_top WHERE pos <= :sample
)
SELECT * FROM (
    SELECT 'smart', s.tag, count(*) AS n FROM top
    CROSS JOIN search_smart s ON s.key = top.key AND s.confidence >= :floor
    GROUP BY s.tag ORDER BY n DESC, s.tag LIMIT :facet_size)
UNION ALL
SELECT * FROM (
    SELECT 'manual', m.tag, count(*) AS n FROM top
    CROSS JOIN search_manual m ON m.key = top.key
    GROUP BY m.tag ORDER BY n DESC, m.tag LIMIT :facet_size)
-- params
{
 "facet_size": 10,
 "floor": 0.5,
 "sample": 1000
}
-- meta_keys
SELECT group_concat(rowid, ' ') FROM search_meta WHERE search_meta MATCH :expr
-- params
{
 "expr": "{keywords manual_tags} : \"schuhe\""
}
-- tag_keys
SELECT group_concat(key, ' ') FROM search_smart INDEXED BY search_smart_by_tag_conf
WHERE tag = :tag AND confidence >= :floor
-- params
{
 "floor": 0.5,
 "tag": "x:red"
}
-- tag_values
SELECT confidence * (CASE WHEN promoted THEN :promotion ELSE 1.0 END) FROM search_smart INDEXED BY search_smart_by_tag_conf
WHERE tag = :tag AND confidence >= :floor
-- params
{
 "floor": 0.5,
 "promotion": 2.0,
 "tag": "x:red"
}
-- facets_of
WITH top(key) AS MATERIALIZED (
    SELECT value FROM json_each(:keys)
)
SELECT * FROM (
    SELECT 'smart', s.tag, count(*) AS n FROM top
    CROSS JOIN search_smart s ON s.key = top.key AND s.confidence >= :floor
    GROUP BY s.tag ORDER BY n DESC, s.tag LIMIT :facet_size)
UNION ALL
SELECT * FROM (
    SELECT 'manual', m.tag, count(*) AS n FROM top
    CROSS JOIN search_manual m ON m.key = top.key
    GROUP BY m.tag ORDER BY n DESC, m.tag LIMIT :facet_size)
-- params
{
 "facet_size": 10,
 "floor": 0.5,
 "keys": "[3, 1, 2]"
}
