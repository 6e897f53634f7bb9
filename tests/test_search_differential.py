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

from indexer.backends import embedded_memory
from indexer.backends.embedded import EmbeddedBackend
from ranking.backend import SearchBackend
from ranking.document import SearchDocument
from ranking.explain import search
from ranking.profile import RankingProfile
from ranking.query import TieredQuery
from ranking.results import SearchResult

from .contract.search_contract import doc, manual, query, smart

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


#: The in-memory plan (with caches too small to keep anything between searches, and
#: with every fold by rank instead of over dense arrays by key), and the SQL plan with
#: tier-1 score classes loaded or walked.
PLANS = ["memory", "memory-evict", "memory-sparse", "sql-load", "sql-walk"]


def configure(backend: EmbeddedBackend, plan: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if plan.startswith("memory"):
        if plan == "memory-evict":
            backend.meta_memory_rows = backend.smart_memory_rows = 3
        if plan == "memory-sparse":  # never over dense arrays by key
            monkeypatch.setattr(embedded_memory, "TIER1_DENSE", 0)
            monkeypatch.setattr(embedded_memory, "FOLD_DENSE", 0)

        def sql_plan(q: TieredQuery) -> None:
            pytest.fail(f"the SQL plan ran for {q.text!r}")

        monkeypatch.setattr(backend, "_search", sql_plan)
        return
    backend.memory_plan = False
    walk = plan == "sql-walk"
    backend.class_fill_max = 0 if walk else 16_384  # 0: every class is walked
    backend.tier1_scan_max = 0 if walk else 10_000  # 0: tier 1 by FTS5 arms only


@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_embedded_matches_the_oracle(tmp_path, monkeypatch, seed: int, plan: str) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    docs, qs = corpus(rng), queries(rng)
    backend = EmbeddedBackend(tmp_path / "c.sqlite3")
    configure(backend, plan, monkeypatch)
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


@pytest.mark.parametrize("plan", PLANS)
def test_larger_corpora_and_small_samples(tmp_path, monkeypatch, plan: str) -> None:  # type: ignore[no-untyped-def]
    """Larger corpora (sparse folds and tier-1 intersections happen), small facet
    samples and pages, smart tags only (tier 1 empty), the same word twice, and words
    sharing tags: every plan gives the oracle's results."""
    for seed in (4, 5):
        rng = random.Random(seed)
        docs = corpus(rng, 400)
        qs = [
            TieredQuery.build(q.text, profile=RankingProfile(**{
                **q.profile.model_dump(), "facet_sample": min(s, q.profile.track_total_hits)}),
                              path_prefix=q.path_prefix, formats=q.formats, tags=q.tags,
                              offset=o, limit=n)
            for q in queries(rng, 30) for s, o, n in ((1, 0, 3), (10, 2, 5), (40, 0, 10))
        ]  # fmt: skip
        tagged = [doc(f"/t/{i:03d}", smart_tags=list(d.smart_tags)) for i, d in enumerate(docs)]
        small = RankingProfile(languages=("en", "de"), facet_sample=5)
        tag_qs = [query(t, limit=5, profile=small) for t in ("red red", "boot red boot",
                  "summer dress summer", "running shoe", "shoe running red")]  # fmt: skip
        for name, d, q in (("c", docs, qs), ("t", tagged, qs + tag_qs)):
            backend = EmbeddedBackend(tmp_path / f"{name}{seed}.sqlite3")
            configure(backend, plan, monkeypatch)
            backend.ensure_schema()
            backend.upsert(d)
            check(backend, d, q)
            backend.close()
