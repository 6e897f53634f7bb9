"""Differential test: random assets and queries on both backends and the Python oracle.

Whole results must be identical to ``ranking.explain.search``: the page (asset ids and
tiers in order, scores to 1e-3, as OpenSearch scores are float32), the capped total, its
relation, the tier counts and the facets of the sample. Confidences are multiples of
1/64, so every score sum is exact in float32 and float64 alike and ties are real ties.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from indexer.backends.embedded import EmbeddedBackend
from ranking.backend import SearchBackend
from ranking.document import SearchDocument
from ranking.explain import search
from ranking.profile import RankingProfile
from ranking.query import TieredQuery
from ranking.results import SearchResult

from .contract.search_contract import doc, manual, smart

WORDS = [
    "red",
    "blue",
    "boot",
    "shoe",
    "dress",
    "summer",
    "winter",
    "leather",
    "running",
    "woman",
    "man",
    "kid",
    "hat",
    "wool",
    "beach",
    "party",
    "casual",
    "formal",
]
TAGS = {f"x:{w}": w for w in WORDS[:12]} | {
    "x:summer-dress": "summer dress",
    "x:running-shoe": "running shoe",
}


def corpus(rng: random.Random, n: int = 80) -> list[SearchDocument]:
    docs = []
    for i in range(n):

        def words(k: int) -> str:
            return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, k)))

        smart_tags = [
            smart(
                tag,
                rng.randint(3, 64) / 64,
                promoted=rng.random() < 0.1,
                titles={"en": TAGS[tag]},
            )
            for tag in rng.sample(sorted(TAGS), rng.randint(0, 4))
        ]
        manual_tags = [
            manual(t, {"en": TAGS[t]}) for t in rng.sample(sorted(TAGS), rng.randint(0, 1))
        ]
        folder = rng.choice(["/a/", "/a/b/", "/c/"])
        docs.append(
            doc(
                f"{folder}{i:03d}.jpg",
                title=words(3),
                description=words(5),
                keywords=words(2).split(),
                manual_tags=manual_tags,
                smart_tags=smart_tags,
                format=rng.choice(["JPEG", "PNG"]),
            )
        )
    return docs


def queries(rng: random.Random, n: int = 40) -> list[TieredQuery]:
    out = []
    for _ in range(n):
        cap = rng.choice([10_000, 60, 20, 5])
        profile = RankingProfile(
            track_total_hits=cap,
            facet_sample=min(cap, rng.choice([1_000, 30, 8, 1])),
            combine=rng.choice(["sum", "max", "avg"]),
            confidence_floor=rng.choice([0.0, 0.3, 0.5]),
            promotion_factor=rng.choice([1.0, 1.5, 3.0]),
            field_weights={
                "title": rng.randint(0, 5),
                "description": rng.randint(0, 5),
                "keywords": rng.randint(0, 5),
                "manual_tags": rng.randint(0, 5),
            },
        )
        text = " ".join(rng.sample(WORDS, rng.randint(1, 3)))
        kwargs: dict[str, object] = {}
        if rng.random() < 0.2:
            kwargs["path_prefix"] = rng.choice(["/a/", "/a/b/", "/c/"])
        if rng.random() < 0.15:
            kwargs["formats"] = (rng.choice(["JPEG", "PNG"]),)
        if rng.random() < 0.15:
            kwargs["tags"] = (rng.choice(sorted(TAGS)),)
        page = rng.choice([(0, 200), (0, 7), (3, 5), (12, 10)])
        out.append(TieredQuery.build(text, profile=profile, offset=page[0], limit=page[1],
                                     **kwargs))  # type: ignore[arg-type]  # fmt: skip
    return out


def summary(r: SearchResult) -> tuple[object, ...]:
    """Everything a search returns, scores to 1e-3."""
    return (
        [(h.asset_id, h.tier, round(h.score, 3)) for h in r.hits],
        (r.total, r.total_relation, r.tiers),
        [(f.tag, f.count) for f in r.smart_tag_facets],
        [(f.tag, f.count) for f in r.manual_tag_facets],
    )


def check(
    backend: SearchBackend, docs: list[SearchDocument], qs: Sequence[TieredQuery]
) -> list[tuple[object, ...]]:
    seen = []
    for q in qs:
        got = summary(backend.search(q))
        assert got == summary(search(docs, q)), (q.text, q.offset, q.limit, q.profile)
        seen.append(got)
    return seen


@pytest.mark.parametrize("class_fill_max", [16_384, 0], ids=["load", "walk"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_embedded_matches_the_oracle(tmp_path, seed: int, class_fill_max: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    docs, qs = corpus(rng), queries(rng)
    backend = EmbeddedBackend(tmp_path / "c.sqlite3")
    backend.class_fill_max = class_fill_max  # 0: every tier-1 class is walked
    backend.ensure_schema()
    backend.upsert(docs)
    results = check(backend, docs, qs)
    assert sum(len(r[0]) for r in results) > 50  # type: ignore[arg-type]  # they match things
    assert any(r[1][1] == "gte" for r in results)  # and some pass the cap


@pytest.mark.opensearch
@pytest.mark.parametrize("seed", [1, 2])
def test_backends_agree(tmp_path, opensearch_backend: SearchBackend, seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    docs, qs = corpus(rng), queries(rng)
    embedded = EmbeddedBackend(tmp_path / "c.sqlite3")
    embedded.ensure_schema()
    embedded.upsert(docs)
    assert opensearch_backend.upsert(docs).failed == []
    assert check(embedded, docs, qs) == check(opensearch_backend, docs, qs)
