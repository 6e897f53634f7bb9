-- tag_terms
SELECT term, tag FROM search_tag_terms
-- params
{}
-- asset_order
SELECT group_concat(key, ' ') FROM (
    SELECT key FROM search_docs INDEXED BY sqlite_autoindex_search_docs_1 ORDER BY asset_id)
-- params
{}
-- asset_ids_of
SELECT d.key, d.asset_id FROM json_each(:keys) j
CROSS JOIN search_docs d ON d.key = j.value
-- params
{
 "keys": "[3, 1, 2]"
}
-- asset_before
SELECT key FROM search_docs INDEXED BY sqlite_autoindex_search_docs_1
WHERE asset_id < :asset_id ORDER BY asset_id DESC LIMIT 1
-- params
{
 "asset_id": "/clothing/b.jpg"
}
-- assets_after
SELECT key FROM search_docs INDEXED BY sqlite_autoindex_search_docs_1
WHERE asset_id > :asset_id ORDER BY asset_id LIMIT :limit
-- params
{
 "asset_id": "/clothing/b.jpg",
 "limit": 3
}
-- docs_of
SELECT d.key, d.asset_id, d.doc FROM json_each(:keys) j
CROSS JOIN search_docs d ON d.key = j.value
-- params
{
 "keys": "[3, 1, 2]"
}
-- record_changes
INSERT INTO search_changes(key, op)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:changes)
-- params
{
 "changes": "[]"
}
-- record_names
INSERT OR IGNORE INTO search_changed_names(seq, name)
SELECT :seq, value FROM json_each(:names)
-- params
{
 "names": "[]",
 "seq": 0
}
-- prune_changes 0
DELETE FROM search_changed_names WHERE seq <= (SELECT max(seq) FROM search_changes) - :keep
-- params
{
 "keep": 100000
}
-- prune_changes 1
DELETE FROM search_changes WHERE seq <= (SELECT max(seq) FROM search_changes) - :keep
-- params
{
 "keep": 100000
}
-- names_since
SELECT DISTINCT name FROM search_changed_names WHERE seq > :seq
-- params
{
 "seq": 41
}
-- change_range
SELECT coalesce((SELECT min(seq) FROM search_changes), 0),
       coalesce((SELECT max(seq) FROM search_changes), 0)
-- params
{}
-- changes_since
SELECT key, op FROM search_changes WHERE seq > :seq ORDER BY seq
-- params
{
 "seq": 41
}
-- meta_of
SELECT m.rowid, m.title, m.description, m.keywords, m.manual_tags
FROM json_each(:keys) j CROSS JOIN search_meta m ON m.rowid = j.value
-- params
{
 "keys": "[3, 1, 2]"
}
-- smart_of
SELECT s.key, s.tag, s.confidence, s.promoted
FROM json_each(:keys) j CROSS JOIN search_smart s ON s.key = j.value
-- params
{
 "keys": "[3, 1, 2]"
}
