"""The SQL reads of the embedded backend's in-memory plan (pure; golden-tested).

The in-memory plan (``indexer.backends.embedded_memory``) ranks with numpy over index
parts it reads once and caches: each statement here reads one part, most as one
``group_concat`` of integers (the fastest way to move many keys out of SQLite). The
page's documents and the sample's facets are then read by key, the keys passed as a
JSON array (``json_each``).
"""

from __future__ import annotations

from typing import Any

from .query import TieredQuery
from .sql import ASSET_ORDER_INDEX, SqlQuery, _facets, _phrase


def to_sql_meta_keys(stem: str, fields: tuple[str, ...]) -> SqlQuery:
    """The keys of the assets holding ``stem`` in one of ``fields``, space-separated."""
    expr = "{" + " ".join(fields) + "} : " + _phrase((stem,))
    return SqlQuery(
        "SELECT group_concat(rowid, ' ') FROM search_meta WHERE search_meta MATCH :expr",
        {"expr": expr},
    )


def _tag_where(tag: str, floor: float) -> tuple[str, dict[str, Any]]:
    where = """FROM search_smart INDEXED BY search_smart_by_tag_conf
WHERE tag = :tag AND confidence >= :floor"""
    return where, {"tag": tag, "floor": floor}


def to_sql_tag_keys(tag: str, floor: float) -> SqlQuery:
    """The keys of ``tag``'s rows at or above ``floor``, space-separated, in index order."""
    where, params = _tag_where(tag, floor)
    return SqlQuery(f"SELECT group_concat(key, ' ') {where}", params)


def to_sql_tag_values(tag: str, floor: float, promotion: float) -> SqlQuery:
    """The values :func:`ranking.sql.to_sql_smart` folds for the same rows as
    :func:`to_sql_tag_keys`, in the same order: the confidence, times ``promotion`` when
    promoted (read as doubles: exact)."""
    where, params = _tag_where(tag, floor)
    sql = f"SELECT confidence * (CASE WHEN promoted THEN :promotion ELSE 1.0 END) {where}"
    return SqlQuery(sql, {**params, "promotion": promotion})


def to_sql_tag_terms() -> SqlQuery:
    """Every ``(token, tag)``: the smart tags whose titles or synonyms hold a token."""
    return SqlQuery("SELECT term, tag FROM search_tag_terms", {})


def to_sql_asset_order() -> SqlQuery:
    """Every key in asset-id order (the order ties are broken in), space-separated."""
    return SqlQuery(
        f"""SELECT group_concat(key, ' ') FROM (
    SELECT key FROM search_docs INDEXED BY {ASSET_ORDER_INDEX} ORDER BY asset_id)""",
        {},
    )


def to_sql_asset_ids_of(keys: str) -> SqlQuery:
    """``(key, asset_id)`` of the documents whose keys are in the JSON array ``keys``."""
    sql = """SELECT d.key, d.asset_id FROM json_each(:keys) j
CROSS JOIN search_docs d ON d.key = j.value"""
    return SqlQuery(sql, {"keys": keys})


def to_sql_asset_before(asset_id: str) -> SqlQuery:
    """The key of the asset just before ``asset_id`` in asset-id order (an index seek)."""
    sql = f"""SELECT key FROM search_docs INDEXED BY {ASSET_ORDER_INDEX}
WHERE asset_id < :asset_id ORDER BY asset_id DESC LIMIT 1"""
    return SqlQuery(sql, {"asset_id": asset_id})


def to_sql_assets_after(asset_id: str, limit: int) -> SqlQuery:
    """The keys of the ``limit`` assets just after ``asset_id`` in asset-id order."""
    sql = f"""SELECT key FROM search_docs INDEXED BY {ASSET_ORDER_INDEX}
WHERE asset_id > :asset_id ORDER BY asset_id LIMIT :limit"""
    return SqlQuery(sql, {"asset_id": asset_id, "limit": limit})


def prefix_end(prefix: str) -> str:
    """The first string after every string starting with ``prefix`` (code point order,
    which is SQLite's BINARY order of UTF-8)."""
    for i in range(len(prefix) - 1, -1, -1):
        if ord(prefix[i]) < 0x10FFFF:
            return prefix[:i] + chr(ord(prefix[i]) + 1)
    return "\U0010ffff" * (len(prefix) + 1)


def to_sql_path_keys(prefix: str) -> SqlQuery:
    """The keys of the assets whose ids start with ``prefix`` (a range of the asset-id
    index), space-separated."""
    sql = """SELECT group_concat(key, ' ') FROM search_docs
WHERE asset_id >= :prefix AND asset_id < :end AND substr(asset_id, 1, length(:prefix)) = :prefix"""
    return SqlQuery(sql, {"prefix": prefix, "end": prefix_end(prefix)})


def to_sql_format_keys(formats: tuple[str, ...]) -> SqlQuery:
    """The keys of the assets in one of ``formats``, space-separated."""
    params = {f"format{i}": f for i, f in enumerate(formats)}
    marks = ", ".join(f":{name}" for name in params)
    sql = f"""SELECT group_concat(key, ' ') FROM search_docs INDEXED BY search_docs_narrow
WHERE format IN ({marks})"""
    return SqlQuery(sql, params)


def to_sql_tag_filter_keys(tag: str, floor: float) -> SqlQuery:
    """The keys of the assets with ``tag`` as a manual tag, or as a smart tag at or above
    ``floor`` (the tag filter), space-separated."""
    sql = """SELECT group_concat(key, ' ') FROM (
    SELECT key FROM search_manual WHERE tag = :tag
    UNION
    SELECT key FROM search_smart INDEXED BY search_smart_by_tag_conf
    WHERE tag = :tag AND confidence >= :floor)"""
    return SqlQuery(sql, {"tag": tag, "floor": floor})


def to_sql_docs_of(keys: str) -> SqlQuery:
    """``(key, asset_id, doc)`` of the assets whose keys are in the JSON array ``keys``."""
    sql = """SELECT d.key, d.asset_id, d.doc FROM json_each(:keys) j
CROSS JOIN search_docs d ON d.key = j.value"""
    return SqlQuery(sql, {"keys": keys})


def to_sql_facets_of(q: TieredQuery, keys: str, facet_size: int = 10) -> SqlQuery:
    """:func:`ranking.sql.to_sql_facets` of the assets whose keys are in the JSON array
    ``keys`` (the sample, ranked in memory)."""
    return _facets(q, "SELECT value FROM json_each(:keys)", {"keys": keys}, facet_size)


def to_sql_record_changes() -> SqlQuery:
    """Append ``(key, op)`` rows, given as a JSON array of pairs in ``:changes``, to
    ``search_changes`` (op: 'n' new document, 'u' replaced, 'd' deleted)."""
    sql = """INSERT INTO search_changes(key, op)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:changes)"""
    return SqlQuery(sql, {"changes": "[]"})


def to_sql_record_names() -> SqlQuery:
    """Log the names (``:names``, a JSON array: 's:' + token, 't:' + smart tag) a write's
    documents held or hold, under the sequence number of its last change (``:seq``)."""
    sql = """INSERT OR IGNORE INTO search_changed_names(seq, name)
SELECT :seq, value FROM json_each(:names)"""
    return SqlQuery(sql, {"seq": 0, "names": "[]"})


def to_sql_prune_changes(keep: int) -> list[SqlQuery]:
    """Drop all but the last ``keep`` changes and their names (a reader further behind
    starts over)."""
    where = "WHERE seq <= (SELECT max(seq) FROM search_changes) - :keep"
    return [SqlQuery(f"DELETE FROM search_changed_names {where}", {"keep": keep}),
            SqlQuery(f"DELETE FROM search_changes {where}", {"keep": keep})]  # fmt: skip


def to_sql_change_range() -> SqlQuery:
    """``(first, last)`` sequence numbers in ``search_changes`` (0, 0 when empty)."""
    # Two subqueries: SQLite answers a lone min() or max() of a key from the b-tree's
    # ends, but scans the table for both in one SELECT.
    sql = """SELECT coalesce((SELECT min(seq) FROM search_changes), 0),
       coalesce((SELECT max(seq) FROM search_changes), 0)"""
    return SqlQuery(sql, {})


def to_sql_changes_since(seq: int) -> SqlQuery:
    """``(key, op)`` of the changes after ``seq``, in order."""
    return SqlQuery("SELECT key, op FROM search_changes WHERE seq > :seq ORDER BY seq",
                    {"seq": seq})  # fmt: skip


def to_sql_names_since(seq: int) -> SqlQuery:
    """The names logged by the writes after ``seq`` (see :func:`to_sql_record_names`)."""
    return SqlQuery("SELECT DISTINCT name FROM search_changed_names WHERE seq > :seq",
                    {"seq": seq})  # fmt: skip


def to_sql_meta_of(keys: str) -> SqlQuery:
    """``(key, title, description, keywords, manual_tags)``: the stored tokens of the
    documents whose keys are in the JSON array ``keys``."""
    sql = """SELECT m.rowid, m.title, m.description, m.keywords, m.manual_tags
FROM json_each(:keys) j CROSS JOIN search_meta m ON m.rowid = j.value"""
    return SqlQuery(sql, {"keys": keys})


def to_sql_smart_of(keys: str) -> SqlQuery:
    """``(key, tag, confidence, promoted)``: the smart tags of the documents whose keys
    are in the JSON array ``keys``."""
    sql = """SELECT s.key, s.tag, s.confidence, s.promoted
FROM json_each(:keys) j CROSS JOIN search_smart s ON s.key = j.value"""
    return SqlQuery(sql, {"keys": keys})
