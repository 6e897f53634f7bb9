"""The OpenSearch DSL for representative queries, against golden files.

``UPDATE_GOLDEN=1 pytest tests/test_dsl_golden.py`` rewrites tests/golden/dsl/*.json;
review the diff before committing it. Without it a mismatch fails with a unified diff.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest

from ranking.analysis import Analyzer
from ranking.document import SmartTag, TagRef, build_document, tag_terms
from ranking.dsl import (
    document_to_source,
    sample_facets,
    source_to_document,
    tier_conditions,
    to_dsl,
    to_dsl_facet_sample,
)
from ranking.profile import RankingProfile
from ranking.query import TieredQuery

GOLDEN = Path(__file__).parent / "golden" / "dsl"

CASES: dict[str, TieredQuery] = {
    "single_term": TieredQuery.build("woman"),
    "multi_term": TieredQuery.build("Woman running shoes"),
    "filters": TieredQuery.build(
        "shirt",
        path_prefix="/clothing/",
        formats=("jpeg", "PNG"),
        tags=("color:red", "apparel:shirt"),
    ),
    "combine_avg": TieredQuery.build("red shirt", profile=RankingProfile(combine="avg")),
    "combine_max_promotion": TieredQuery.build(
        "casual shoes",
        profile=RankingProfile(
            name="promoted",
            combine="max",
            promotion_factor=2.0,
            confidence_floor=0.5,
            field_weights={"title": 5, "keywords": 2, "manual_tags": 3, "description": 0},
        ),
    ),
    "no_promotion": TieredQuery.build("dress", profile=RankingProfile(promotion_factor=1.0)),
    "paging_multilingual": TieredQuery.build(
        "running shoes",
        profile=RankingProfile(languages=("en", "de")),
        offset=40,
        limit=20,
    ),
}


def render(q: TieredQuery) -> str:
    return json.dumps(to_dsl(q), indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_dsl_matches_golden(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    got = render(CASES[name])
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"{path} is missing; run UPDATE_GOLDEN=1 pytest {__file__}", pytrace=False)
    want = path.read_text(encoding="utf-8")
    if got != want:
        diff = "".join(
            difflib.unified_diff(
                want.splitlines(keepends=True),
                got.splitlines(keepends=True),
                f"golden/dsl/{name}.json",
                "to_dsl()",
            )
        )
        pytest.fail(f"DSL for {name!r} changed (UPDATE_GOLDEN=1 to accept):\n{diff}", pytrace=False)


def test_golden_files_have_cases() -> None:
    """No stale golden files for cases that were removed."""
    assert {p.stem for p in GOLDEN.glob("*.json")} <= set(CASES)


def test_dsl_shape() -> None:
    q = CASES["multi_term"]
    body = to_dsl(q)
    assert body["sort"] == [{"_score": "desc"}, {"asset_id": "asc"}]
    assert body["from"] == 0 and body["size"] == 20 and body["track_total_hits"] == 10_000
    assert set(body["aggs"]) == {"tiers"}  # facets come from the sample
    assert "search_after" not in body
    text = json.dumps(body)
    for engine_text_query in ("query_string", "match", "multi_match", "simple_query_string"):
        assert f'"{engine_text_query}"' not in text
    tiers = body["query"]["bool"]["must"][0]["dis_max"]
    assert tiers["tie_breaker"] == 0.0 and len(tiers["queries"]) == 3
    assert "filter" not in body["query"]["bool"]  # no filters asked for
    assert set(tier_conditions(q)) == {1, 2, 3}


def test_paging_and_filters() -> None:
    body = to_dsl(CASES["paging_multilingual"])
    assert (body["from"], body["size"]) == (40, 20)
    # "shoes" stems differently in English and German: both stems are searched
    assert '"shoe"' in json.dumps(body)
    flt = to_dsl(CASES["filters"])["query"]["bool"]["filter"]
    assert flt[0] == {"prefix": {"asset_id": "/clothing/"}}
    assert flt[1] == {"terms": {"format": ["JPEG", "PNG"]}}
    assert len(flt) == 4  # path, formats, one clause per tag (all of)


def test_facet_sample_is_the_top_hits_in_hit_order() -> None:
    q = TieredQuery.build(
        "red shirt", profile=RankingProfile(track_total_hits=500, facet_sample=50), offset=40
    )
    body, sample = to_dsl(q), to_dsl_facet_sample(q)
    assert body["track_total_hits"] == 500
    assert sample["query"] == body["query"] and sample["sort"] == body["sort"]
    assert (sample["from"], sample["size"], sample["track_total_hits"]) == (0, 50, False)
    sources = [
        {"smart_tags": [{"tag": "x:red", "confidence": 0.9}, {"tag": "x:low", "confidence": 0.1}],
         "manual_tags": ["m:a"]},
        {"smart_tags": [{"tag": "x:red", "confidence": 0.5}, {"tag": "x:blue", "confidence": 0.5}]},
    ]  # fmt: skip
    assert sample_facets(sources, q) == ([("x:red", 2), ("x:blue", 1)], [("m:a", 1)])


def test_nested_score_mode_follows_combine() -> None:
    for combine in ("sum", "max", "avg"):
        q = TieredQuery.build("red shirt", profile=RankingProfile(combine=combine))
        text = json.dumps(to_dsl(q))
        assert f'"score_mode": "{combine}"' in text


def test_document_source_round_trip() -> None:
    an = Analyzer(("en", "de"))
    titles = {"en": "Running shoes", "de": "Laufschuhe"}
    doc = build_document(
        an,
        asset_id="/clothing/shoes/a.jpg",
        title="Women's running",
        description="A café in the rain",
        keywords=["sport", "city"],
        manual_tags=[TagRef("apparel:shoes", {"en": "Shoes"}, tag_terms(an, {"en": "Shoes"}, {}))],
        smart_tags=[
            SmartTag("apparel:running", 0.875, "m1@3", True, titles, tag_terms(an, titles, {})),
            SmartTag("color:red", 0.31, "m2@1", False, {"en": "red"}, ("red",)),
        ],
        format="jpeg",
        width=400,
        height=533,
        modified_at=1_700_000_000.25,
    )
    src = document_to_source(doc)
    assert json.loads(json.dumps(src)) == src
    assert src["manual_tags"] == ["apparel:running", "apparel:shoes"]  # promoted counts
    assert source_to_document(json.loads(json.dumps(src))) == doc
    assert source_to_document(document_to_source(source_to_document(src))) == doc
