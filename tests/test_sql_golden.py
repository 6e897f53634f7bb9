"""Golden tests for the SQL translator: the exact SQL and parameters per query shape.

Set UPDATE_GOLDEN=1 to rewrite the files after an intended change, then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ranking.profile import RankingProfile
from ranking.query import TieredQuery
from ranking.sql import (
    SqlQuery,
    tier1_classes,
    to_sql,
    to_sql_class_count,
    to_sql_class_fill,
    to_sql_class_walk,
    to_sql_facets,
    to_sql_smart,
    to_sql_smart_count,
    to_sql_smart_rows,
    to_sql_threshold,
    to_sql_tier1,
    to_sql_tier1_count,
    to_sql_tier1_scan,
    to_sql_tier_counts,
    to_sql_top,
)
from ranking.sql_memory import (
    prefix_end,
    to_sql_asset_before,
    to_sql_asset_ids_of,
    to_sql_asset_order,
    to_sql_assets_after,
    to_sql_change_range,
    to_sql_changes_since,
    to_sql_docs_of,
    to_sql_facets_of,
    to_sql_format_keys,
    to_sql_meta_keys,
    to_sql_meta_of,
    to_sql_names_since,
    to_sql_path_keys,
    to_sql_prune_changes,
    to_sql_record_changes,
    to_sql_record_names,
    to_sql_smart_of,
    to_sql_tag_filter_keys,
    to_sql_tag_keys,
    to_sql_tag_terms,
    to_sql_tag_values,
)

GOLDEN = Path(__file__).parent / "golden" / "sql"

CASES: dict[str, TieredQuery] = {
    "single_term": TieredQuery.build("shoes"),
    "two_terms": TieredQuery.build("woman running"),
    "filters_and_paging": TieredQuery.build(
        "red boot", path_prefix="/clothing/shoes/", formats=("jpeg", "png"),
        tags=("apparel:winter",), offset=20, limit=10,
    ),
    "max_combine_two_languages": TieredQuery.build(
        "Schuhe", profile=RankingProfile(name="de", languages=("en", "de"), combine="max",
                                         confidence_floor=0.5, promotion_factor=2.0),
    ),
}  # fmt: skip


def render(q: TieredQuery) -> str:
    """Every statement the search plan may run, with its parameters."""
    classes = tier1_classes(q) or []
    score, expr = classes[0]
    steps: list[tuple[str, SqlQuery]] = [
        ("tier1_count", to_sql_tier1_count(q, 10_001)),
        *((f"class {i} count", to_sql_class_count(q, e, 16_385)) for i, (_, e) in
          enumerate(classes)),
        ("class 0 fill", to_sql_class_fill(q, expr, score)),
        ("class 0 walk", to_sql_class_walk(q, score, 1_000)),
        *((f"tier1 {i}", st) for i, st in enumerate(to_sql_tier1(q))),
        ("tier1_scan", to_sql_tier1_scan(q)),
        *((f"smart {i}", st) for i, st in enumerate(to_sql_smart(q))),
        ("tier_counts", to_sql_tier_counts(q, 10_001)),
        ("smart_rows", to_sql_smart_rows(q, 0, 16_384)),
        ("smart_count", to_sql_smart_count(q, 5_000)),
        ("smart_count tier 2", to_sql_smart_count(q, 100, every_from=len(q.terms) - 1)),
        ("threshold", to_sql_threshold(q, 999)),
        *((f"top {i}", st) for i, st in enumerate(to_sql_top(q, 1_000))),
        ("page", to_sql(q)),
        ("facets", to_sql_facets(q)),
        # The in-memory plan's reads (ranking.sql_memory).
        ("meta_keys", to_sql_meta_keys(q.terms[0].stems[0], ("keywords", "manual_tags"))),
        ("tag_keys", to_sql_tag_keys("x:red", q.profile.confidence_floor)),
        ("tag_values", to_sql_tag_values("x:red", q.profile.confidence_floor,
                                         q.profile.promotion_factor)),
        *((("path_keys", to_sql_path_keys(q.path_prefix)),) if q.path_prefix else ()),
        *((("format_keys", to_sql_format_keys(q.formats)),) if q.formats else ()),
        *((f"tag_filter_keys {t}", to_sql_tag_filter_keys(t, q.profile.confidence_floor))
          for t in q.tags),
        ("facets_of", to_sql_facets_of(q, "[3, 1, 2]")),
    ]  # fmt: skip
    return _text(steps)


def render_shared() -> str:
    """The statements that do not depend on the query (one golden file for all)."""
    return _text([
        ("tag_terms", to_sql_tag_terms()),
        ("asset_order", to_sql_asset_order()),
        ("asset_ids_of", to_sql_asset_ids_of("[3, 1, 2]")),
        ("asset_before", to_sql_asset_before("/clothing/b.jpg")),
        ("assets_after", to_sql_assets_after("/clothing/b.jpg", 3)),
        ("docs_of", to_sql_docs_of("[3, 1, 2]")),
        ("record_changes", to_sql_record_changes()),
        ("record_names", to_sql_record_names()),
        *((f"prune_changes {i}", st) for i, st in enumerate(to_sql_prune_changes(100_000))),
        ("names_since", to_sql_names_since(41)),
        ("change_range", to_sql_change_range()),
        ("changes_since", to_sql_changes_since(41)),
        ("meta_of", to_sql_meta_of("[3, 1, 2]")),
        ("smart_of", to_sql_smart_of("[3, 1, 2]")),
    ])  # fmt: skip


def _text(steps: list[tuple[str, SqlQuery]]) -> str:
    return "".join(
        f"-- {name}\n{st.sql.strip()}\n-- params\n"
        f"{json.dumps(st.params, indent=1, sort_keys=True)}\n"
        for name, st in steps
    )


@pytest.mark.parametrize("name", [*sorted(CASES), "_shared"])
def test_sql_matches_golden(name: str) -> None:
    path = GOLDEN / f"{name}.sql"
    text = render(CASES[name]) if name in CASES else render_shared()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text(), f"SQL for {name} changed; UPDATE_GOLDEN=1 if intended"


def test_translation_is_pure() -> None:
    q = CASES["two_terms"]
    assert to_sql(q) == to_sql(q)
    assert "woman" not in to_sql(q).sql  # values travel as parameters, never in the text


def test_prefix_end_bounds_every_id_under_the_prefix() -> None:
    end = prefix_end("/a/b/")
    assert end == "/a/b0"
    assert all("/a/b/" <= x < end for x in ("/a/b/", "/a/b/z", "/a/b/\U0010ffff\U0010ffff"))
    assert not "/a/b/" <= "/a/c/" < end
    assert prefix_end("/\U0010ffff") == "0"
