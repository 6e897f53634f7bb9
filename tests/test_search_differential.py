"""Differential test: random assets and queries on both backends and the Python oracle.

Tier membership must be identical; order is compared after rounding scores to 1e-3
(OpenSearch scores are float32) with ties broken by asset id, as the contract says.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from indexer.backends.embedded import EmbeddedBackend
from ranking.backend import SearchBackend
from ranking.document import SearchDocument
from ranking.explain import facets, rank
from ranking.profile import RankingProfile
from ranking.query import TieredQuery
from ranking.results import Hit

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
                round(rng.uniform(0.05, 1.0), 2),
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
        profile = RankingProfile(
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
        out.append(TieredQuery.build(text, profile=profile, limit=200, **kwargs))  # type: ignore[arg-type]
    return out


def normalised(hits: Sequence[Hit]) -> list[tuple[int, float, str]]:
    return sorted((h.tier, -round(h.score, 3), h.asset_id) for h in hits)


def check(backend: SearchBackend, docs: list[SearchDocument], qs: list[TieredQuery]) -> list:
    seen = []
    for q in qs:
        got = backend.search(q)
        expected = rank(docs, q)
        assert got.total == len(expected), q.text
        assert normalised(got.hits) == normalised(expected), (q.text, q.profile)
        smart, manual = facets(docs, q)
        assert [(f.tag, f.count) for f in got.smart_tag_facets] == smart, q.text
        assert [(f.tag, f.count) for f in got.manual_tag_facets] == manual, q.text
        scores = [round(h.score, 3) for h in got.hits]
        assert scores == sorted(scores, reverse=True), q.text
        seen.append(normalised(got.hits))
    return seen


# (complement_share, ties_walk_min): the embedded backend picks its facet and paging
# strategies by result-set size; these force each one on a small corpus.
STRATEGIES = [(0.5, 1_000), (-1.0, 0), (2.0, 0), (-1.0, 10**9), (2.0, 10**9)]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: f"share{s[0]}-walk{s[1]}")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_embedded_matches_the_oracle(tmp_path, seed: int, strategy: tuple[float, int]) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    docs, qs = corpus(rng), queries(rng)
    backend = EmbeddedBackend(tmp_path / "c.sqlite3")
    backend.complement_share, backend.ties_walk_min = strategy
    backend.ensure_schema()
    backend.upsert(docs)
    results = check(backend, docs, qs)
    assert sum(len(r) for r in results) > 100  # the random queries do match things


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
