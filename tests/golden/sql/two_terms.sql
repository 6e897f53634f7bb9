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
 "full": 3,
 "limit": 20,
 "offset": 0,
 "threshold": 0.0
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
 "full": 3
}
