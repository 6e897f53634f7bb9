"""The search backend contract: every backend's test class subclasses this mixin.

A subclass provides a ``backend`` fixture: an empty, schema-ready backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from ranking.analysis import Analyzer
from ranking.backend import SearchBackend
from ranking.document import SearchDocument, SmartTag, TagRef, build_document, tag_terms
from ranking.explain import evaluate
from ranking.profile import RankingProfile
from ranking.query import TieredQuery

AN = Analyzer(("en", "de"))


def smart(
    tag: str, confidence: float, *, promoted: bool = False, titles: Mapping[str, str] | None = None
) -> SmartTag:
    titles = dict(titles or {"en": tag.rsplit("/", 1)[-1].split(":")[-1]})
    return SmartTag(tag, confidence, "m1@1", promoted, titles, tag_terms(AN, titles, {}))


def manual(tag: str, titles: Mapping[str, str]) -> TagRef:
    return TagRef(tag, dict(titles), tag_terms(AN, titles, {}))


def doc(asset_id: str, **kw: object) -> SearchDocument:
    return build_document(AN, asset_id=asset_id, **kw)  # type: ignore[arg-type]


def query(text: str, **kw: object) -> TieredQuery:
    profile = kw.pop("profile", RankingProfile(languages=("en", "de")))
    return TieredQuery.build(text, profile=profile, **kw)  # type: ignore[arg-type]


def ids(backend: SearchBackend, q: TieredQuery) -> list[str]:
    return [h.asset_id for h in backend.search(q).hits]


TIER_EXAMPLE = [
    doc("/a", title="woman running"),
    doc("/b", smart_tags=[smart("people:woman", 0.9), smart("activity:running", 0.8)]),
    doc("/c", smart_tags=[smart("people:woman", 0.95)]),
    doc("/d", smart_tags=[smart("activity:running", 0.4)]),
    doc("/e", title="man walking", smart_tags=[smart("activity:walking", 0.99)]),
]


class SearchBackendContract:
    """Semantics every backend must have (see ranking.backend.SearchBackend)."""

    def _load(self, backend: SearchBackend, docs: Sequence[SearchDocument]) -> None:
        result = backend.upsert(list(docs))
        assert result.failed == []
        assert result.ok == len(docs)

    def _check_oracle(
        self, backend: SearchBackend, docs: Sequence[SearchDocument], q: TieredQuery
    ) -> None:
        """Every hit's tier and score are those ranking.explain computes."""
        by_id = {d.asset_id: d for d in docs}
        for h in backend.search(q).hits:
            expected = evaluate(by_id[h.asset_id], q)
            assert expected is not None, h
            assert h.tier == expected.tier, (h, expected)
            assert h.score == pytest.approx(expected.score, abs=1e-3)

    def test_the_tier_example(self, backend: SearchBackend) -> None:
        self._load(backend, TIER_EXAMPLE)
        q = query("woman running")
        result = backend.search(q)
        assert [(h.asset_id, h.tier) for h in result.hits] == [
            ("/a", 1),
            ("/b", 2),
            ("/c", 3),
            ("/d", 3),
        ]
        assert result.total == 4 and result.tiers == {1: 1, 2: 1, 3: 2}
        assert result.total_relation == "eq"
        b = result.hits[1]
        assert sorted((t.tag, t.confidence) for t in b.why.tags) == [
            ("activity:running", 0.8),
            ("people:woman", 0.9),
        ]
        assert result.hits[0].why.fields == {"woman": ("title",), "running": ("title",)}
        self._check_oracle(backend, TIER_EXAMPLE, q)

    def test_writes_replace_whole_documents(self, backend: SearchBackend) -> None:
        self._load(backend, [doc("/x", title="red boot"), doc("/y", title="red hat")])
        assert backend.count() == 2
        self._load(backend, [doc("/x", title="blue boot")])
        assert backend.count() == 2
        assert ids(backend, query("red")) == ["/y"]
        assert ids(backend, query("blue")) == ["/x"]

    def test_delete(self, backend: SearchBackend) -> None:
        self._load(backend, [doc("/x", title="red boot"), doc("/y", title="red hat")])
        result = backend.delete(["/x", "/never-there"])
        assert result.failed == []
        assert backend.count() == 1
        assert ids(backend, query("red")) == ["/y"]

    def test_query_syntax_is_just_words(self, backend: SearchBackend) -> None:
        self._load(backend, [doc("/x", title="title foo and bar"), doc("/y", title="foo")])
        q = query('title:foo AND (bar OR "baz*" -x) ~2 ^3 \\ / [ ] { }')
        assert ids(backend, q) == []  # "baz" and "x" are words too: no asset has them all
        assert ids(backend, query("title:foo AND (bar")) == ["/x"]

    def test_stemming(self, backend: SearchBackend) -> None:
        self._load(backend, [doc("/x", title="Running shoes"), doc("/y", description="a runner")])
        assert ids(backend, query("run shoe")) == ["/x"]
        assert ids(backend, query("runs")) == ["/x"]
        assert ids(backend, query("RUNNING")) == ["/x"]

    def test_tag_titles_in_several_languages(self, backend: SearchBackend) -> None:
        shoe = smart("apparel:shoe", 0.8, titles={"en": "shoe", "de": "Schuh"})
        self._load(
            backend,
            [
                doc("/s", smart_tags=[shoe]),
                doc("/m", manual_tags=[manual("apparel:hat", {"en": "hat", "de": "Hüte"})]),
            ],
        )
        assert ids(backend, query("schuh")) == ["/s"]
        assert ids(backend, query("Schuhe")) == ["/s"]
        assert ids(backend, query("hute")) == ["/m"]
        assert backend.search(query("hut")).hits[0].tier == 1

    def test_promotion(self, backend: SearchBackend) -> None:
        docs = [
            doc("/p", smart_tags=[smart("x:boot", 0.5, promoted=True)]),
            doc("/q", smart_tags=[smart("x:boot", 0.7)]),
            doc("/r", smart_tags=[smart("x:hat", 0.6, promoted=True)]),
        ]
        self._load(backend, docs)
        # A promoted tag counts as a manual tag: the metadata tier.
        result = backend.search(query("boot"))
        assert [(h.asset_id, h.tier) for h in result.hits] == [("/p", 1), ("/q", 2)]
        # In the smart tiers, promotion multiplies the confidence: /r 0.9, /p 0.75, /q 0.7.
        q = query("boot hat")
        assert [(h.asset_id, h.tier) for h in backend.search(q).hits] == [
            ("/r", 3),
            ("/p", 3),
            ("/q", 3),
        ]
        self._check_oracle(backend, docs, q)

    def test_confidence_floor(self, backend: SearchBackend) -> None:
        self._load(
            backend,
            [
                doc("/low", smart_tags=[smart("x:boot", 0.2)]),
                doc("/high", smart_tags=[smart("x:boot", 0.9)]),
            ],
        )
        assert ids(backend, query("boot")) == ["/high"]
        lenient = RankingProfile(languages=("en", "de"), confidence_floor=0.1)
        assert ids(backend, query("boot", profile=lenient)) == ["/high", "/low"]

    def test_combine_modes(self, backend: SearchBackend) -> None:
        docs = [
            doc("/two", smart_tags=[smart("x:red", 0.6), smart("x:boot", 0.6)]),
            doc("/one", smart_tags=[smart("x:red", 0.9)]),
        ]
        self._load(backend, docs)
        for how, expected in (
            ("sum", ["/two", "/one"]),
            ("max", ["/one", "/two"]),
            ("avg", ["/one", "/two"]),
        ):
            p = RankingProfile(languages=("en", "de"), combine=how)  # type: ignore[arg-type]
            q = query("red boot shoe", profile=p)
            assert ids(backend, q) == expected, how
            self._check_oracle(backend, docs, q)

    def test_field_weights_order_tier_one(self, backend: SearchBackend) -> None:
        docs = [
            doc("/desc", description="boot"),
            doc("/title", title="boot"),
            doc("/kw", keywords=["boot"]),
        ]
        self._load(backend, docs)
        assert ids(backend, query("boot")) == ["/title", "/kw", "/desc"]
        p = RankingProfile(
            languages=("en", "de"), field_weights={"description": 9, "title": 1, "keywords": 2}
        )
        assert ids(backend, query("boot", profile=p)) == ["/desc", "/kw", "/title"]

    def test_filters(self, backend: SearchBackend) -> None:
        docs = [
            doc(
                "/clothing/shoes/a.jpg",
                title="boot",
                format="jpeg",
                manual_tags=[manual("x:winter", {"en": "winter"})],
            ),
            doc(
                "/clothing/shoes/b.png",
                title="boot",
                format="PNG",
                smart_tags=[smart("x:winter", 0.8)],
            ),
            doc(
                "/clothing/hats/c.jpg",
                title="boot",
                format="JPEG",
                smart_tags=[smart("x:winter", 0.1)],
            ),
            doc("/other/d.jpg", title="boot", format="JPEG"),
        ]
        self._load(backend, docs)
        assert ids(backend, query("boot", path_prefix="/clothing/shoes/")) == [
            "/clothing/shoes/a.jpg",
            "/clothing/shoes/b.png",
        ]
        assert ids(backend, query("boot", formats=("png",))) == ["/clothing/shoes/b.png"]
        assert ids(backend, query("boot", tags=("x:winter",))) == [
            "/clothing/shoes/a.jpg",
            "/clothing/shoes/b.png",
        ]
        assert ids(backend, query("boot", path_prefix="/clothing", formats=("JPEG",))) == [
            "/clothing/hats/c.jpg",
            "/clothing/shoes/a.jpg",
        ]

    def test_stable_paging(self, backend: SearchBackend) -> None:
        docs = [doc(f"/p/{i:02d}", title="boot") for i in range(25)]
        self._load(backend, docs)
        pages = [ids(backend, query("boot", offset=o, limit=10)) for o in (0, 10, 20)]
        assert [len(p) for p in pages] == [10, 10, 5]
        flat = [i for p in pages for i in p]
        assert flat == sorted(d.asset_id for d in docs)
        assert backend.search(query("boot", offset=20, limit=10)).total == 25

    def test_facets(self, backend: SearchBackend) -> None:
        self._load(
            backend,
            [
                doc(
                    "/1",
                    title="boot",
                    smart_tags=[smart("x:red", 0.9), smart("x:leather", 0.1)],
                    manual_tags=[manual("x:winter", {"en": "winter"})],
                ),
                doc("/2", title="boot", smart_tags=[smart("x:red", 0.8)]),
                doc("/3", title="boot", smart_tags=[smart("x:blue", 0.8)]),
                doc("/4", title="hat", smart_tags=[smart("x:blue", 0.9)]),
            ],
        )
        result = backend.search(query("boot"))
        assert [(f.tag, f.count) for f in result.smart_tag_facets] == [("x:red", 2), ("x:blue", 1)]
        assert [(f.tag, f.count) for f in result.manual_tag_facets] == [("x:winter", 1)]

    def test_no_match_is_empty(self, backend: SearchBackend) -> None:
        self._load(backend, TIER_EXAMPLE)
        result = backend.search(query("zebra"))
        assert (result.hits, result.total, result.tiers) == ((), 0, {})
        assert result.total_relation == "eq"

    def test_totals_are_exact_up_to_the_cap(self, backend: SearchBackend) -> None:
        docs = [doc(f"/t1/{i:02d}", title="boot") for i in range(6)]
        docs += [doc(f"/t2/{i:02d}", smart_tags=[smart("x:boot", 0.5 + i / 100)]) for i in range(4)]
        self._load(backend, docs)

        def result(cap: int, sample: int = 1) -> tuple[int, str, dict[int, int]]:
            p = RankingProfile(languages=("en", "de"), track_total_hits=cap, facet_sample=sample)
            r = backend.search(query("boot", profile=p, limit=3))
            return r.total, r.total_relation, r.tiers

        assert result(10_000, 1_000) == (10, "eq", {1: 6, 2: 4})
        assert result(10) == (10, "eq", {1: 6, 2: 4})  # exactly at the cap: still exact
        assert result(8) == (8, "gte", {1: 6, 2: 2})  # the first 8 hits, in hit order
        assert result(6) == (6, "gte", {1: 6})
        assert result(2) == (2, "gte", {1: 2})
        p = RankingProfile(languages=("en", "de"), track_total_hits=2, facet_sample=2)
        page = backend.search(query("boot", profile=p, offset=5, limit=3))
        assert [h.asset_id for h in page.hits] == ["/t1/05", "/t2/03", "/t2/02"]  # past the cap

    def test_facets_count_the_top_hits(self, backend: SearchBackend) -> None:
        docs = [
            doc("/d", title="boot", smart_tags=[smart("x:red", 0.9)]),
            doc("/b", title="boot", smart_tags=[smart("x:blue", 0.9)]),
            doc("/c", title="boot", smart_tags=[smart("x:blue", 0.9)]),
            doc("/a", description="boot", smart_tags=[smart("x:red", 0.9)]),
            doc("/e", smart_tags=[smart("x:boot", 0.9)], manual_tags=[manual("m:x", {"en": "x"})]),
        ]
        self._load(backend, docs)
        for sample, smart_facets in (
            (1, [("x:blue", 1)]),  # /b, /c and /d tie on score: asset id decides
            (3, [("x:blue", 2), ("x:red", 1)]),
            (4, [("x:blue", 2), ("x:red", 2)]),
            (5, [("x:blue", 2), ("x:red", 2), ("x:boot", 1)]),
        ):
            p = RankingProfile(languages=("en", "de"), facet_sample=sample)
            r = backend.search(query("boot", profile=p, limit=1))
            assert [(f.tag, f.count) for f in r.smart_tag_facets] == smart_facets, sample
            assert [(f.tag, f.count) for f in r.manual_tag_facets] == (
                [("m:x", 1)] if sample == 5 else []
            )
