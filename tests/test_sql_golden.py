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
    to_sql,
    to_sql_facets,
    to_sql_facets_all,
    to_sql_facets_complement,
    to_sql_scoring,
    to_sql_summary,
    to_sql_threshold,
    to_sql_ties,
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
    """Every statement of the search plan, in order, with its parameters."""
    steps: list[tuple[str, SqlQuery]] = [
        *((f"scoring {i}", st) for i, st in enumerate(to_sql_scoring(q))),
        *((f"facets {i}", st) for i, st in enumerate(to_sql_facets(q))),
        *((f"facets_all {i}", st) for i, st in enumerate(to_sql_facets_all(q))),
        *((f"facets_complement {i}", st) for i, st in enumerate(to_sql_facets_complement(q))),
        ("threshold", to_sql_threshold(q)),
        ("page", to_sql(q)),
        ("ties", to_sql_ties(q, 3004.0, 5)),
        ("summary", to_sql_summary(q)),
    ]
    return "".join(
        f"-- {name}\n{st.sql.strip()}\n-- params\n"
        f"{json.dumps(st.params, indent=1, sort_keys=True)}\n"
        for name, st in steps
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_sql_matches_golden(name: str) -> None:
    path = GOLDEN / f"{name}.sql"
    text = render(CASES[name])
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text(), f"SQL for {name} changed; UPDATE_GOLDEN=1 if intended"


def test_translation_is_pure() -> None:
    q = CASES["two_terms"]
    assert to_sql(q) == to_sql(q)
    assert "woman" not in to_sql(q).sql  # values travel as parameters, never in the text
