"""The OpenSearch backend against osmem-server (or a real cluster with OPENSEARCH_URL).

Every search is checked against :mod:`ranking.explain`, the definition of the tiers.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from indexer.backends.opensearch import (
    CONFIG_DIR,
    OpenSearchBackend,
    RetryPolicy,
    load_index_template,
)
from indexer.errors import BackendError
from ranking.analysis import Analyzer
from ranking.backend import SearchBackend
from ranking.document import SearchDocument, SmartTag, TagRef, build_document, tag_terms
from ranking.dsl import source_to_document
from ranking.explain import evaluate, rank
from ranking.profile import RankingProfile
from ranking.query import TieredQuery
from ranking.results import FacetCount, SearchResult

pytestmark = pytest.mark.opensearch

AN = Analyzer(("en",))
Factory = Callable[..., OpenSearchBackend]


def smart(
    tag: str, confidence: float, promoted: bool = False, title: str | None = None
) -> SmartTag:
    titles = {"en": title or tag.split(":")[-1]}
    return SmartTag(tag, confidence, "m@1", promoted, titles, tag_terms(AN, titles, {}))


def manual(tag: str, title: str | None = None) -> TagRef:
    titles = {"en": title or tag.split(":")[-1]}
    return TagRef(tag, titles, tag_terms(AN, titles, {}))


def doc(asset_id: str, **kw: Any) -> SearchDocument:
    return build_document(AN, asset_id=asset_id, **kw)


def tier_example() -> list[SearchDocument]:
    return [
        doc("/e", title="a red car", smart_tags=[smart("car", 0.9)]),
        doc("/d", smart_tags=[smart("running", 0.4)]),
        doc("/c", smart_tags=[smart("woman", 0.95)]),
        doc("/b", smart_tags=[smart("woman", 0.9), smart("running", 0.8)]),
        doc("/a", title="woman running", format="jpeg"),
    ]


def assert_agrees_with_oracle(
    result: SearchResult, docs: list[SearchDocument], q: TieredQuery
) -> None:
    """Hits, order, tiers, scores, totals and facets as ranking.explain defines them."""
    by_id = {d.asset_id: d for d in docs}
    expected = rank(docs, q)
    # exact ties in real numbers may differ in the last bits: order by score to 1e-3
    expected.sort(key=lambda h: (-round(h.score, 3), h.asset_id))
    page = expected[q.offset : q.offset + q.limit]
    assert [h.asset_id for h in result.hits] == [h.asset_id for h in page]
    for got, want in zip(result.hits, page, strict=True):
        oracle = evaluate(by_id[got.asset_id], q)
        assert oracle is not None
        assert got.tier == oracle.tier == want.tier, got.asset_id
        assert got.score == pytest.approx(oracle.score, abs=1e-3), got.asset_id
        assert got.why == oracle.why
    assert result.total == len(expected)
    assert result.tiers == dict(sorted(Counter(h.tier for h in expected).items()))
    matched = [by_id[h.asset_id] for h in expected]
    floor = q.profile.confidence_floor
    smart_counts = Counter(
        t for d in matched for t in {s.tag for s in d.smart_tags if s.confidence >= floor}
    )
    manual_counts = Counter(t for d in matched for t in {m.tag for m in d.manual_tags})

    def top(counts: Counter[str]) -> tuple[FacetCount, ...]:
        best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        return tuple(FacetCount(t, n) for t, n in best)

    assert result.smart_tag_facets == top(smart_counts)
    assert result.manual_tag_facets == top(manual_counts)


# -- schema -------------------------------------------------------------------------------


def test_template_file() -> None:
    tpl = load_index_template()
    assert (CONFIG_DIR / "README.md").exists()
    assert tpl["index_patterns"] == ["smarttags-assets-*"]
    assert tpl["_meta"]["schema_version"] == 1
    assert tpl["template"]["mappings"]["_meta"]["schema_version"] == 1
    props = tpl["template"]["mappings"]["properties"]
    for f in ("asset_id", "path", "format", "terms_title", "terms_description",
              "terms_keywords", "terms_manual_tags", "manual_tags"):  # fmt: skip
        assert props[f]["type"] == "keyword", f
    assert props["smart_tags"]["type"] == "nested"
    assert set(props["smart_tags"]["properties"]) >= {
        "tag", "confidence", "promoted", "model_version", "terms"
    }  # fmt: skip
    assert "analysis" in tpl["template"]["settings"]


def test_ensure_schema_creates_template_index_and_alias(
    opensearch_backend_factory: Factory,
) -> None:
    backend = opensearch_backend_factory()
    assert isinstance(backend, SearchBackend) and backend.name == "opensearch"
    assert backend.alias_indices() == []
    backend.ensure_schema()
    first = f"{backend.alias}-000001"
    assert backend.alias_indices() == [first]
    tpl = backend.client.indices.get_index_template(name=backend.alias)["index_templates"][0]
    assert tpl["index_template"]["index_patterns"] == [f"{backend.alias}-*"]
    mapping = backend.client.indices.get_mapping(index=first)[first]["mappings"]
    assert mapping["_meta"] == {"schema_version": 1}
    assert mapping["dynamic"] == "strict"
    assert mapping["properties"]["smart_tags"]["type"] == "nested"
    backend.ensure_schema()  # idempotent
    assert backend.alias_indices() == [first]
    assert backend.count() == 0


def test_ensure_schema_refuses_an_index_named_like_the_alias(
    opensearch_backend_factory: Factory,
) -> None:
    backend = opensearch_backend_factory()
    backend.client.indices.create(index=backend.alias)
    try:
        with pytest.raises(BackendError, match="is an index, not an alias"):
            backend.ensure_schema()
    finally:
        backend.client.indices.delete(index=backend.alias)


def test_search_before_schema_is_a_clear_error(opensearch_backend_factory: Factory) -> None:
    backend = opensearch_backend_factory()
    with pytest.raises(BackendError, match=backend.alias):
        backend.search(TieredQuery.build("woman"))


# -- writes ---------------------------------------------------------------------------------


def test_upsert_replace_delete_count(opensearch_backend: OpenSearchBackend) -> None:
    docs = tier_example()
    result = opensearch_backend.upsert(docs)
    assert (result.ok, result.failed) == (5, [])
    assert opensearch_backend.count() == 5
    stored = opensearch_backend.client.get(index=opensearch_backend.alias, id="/b")["_source"]
    assert source_to_document(stored) == docs[3]

    # replace: /e now has "woman" in its title
    assert opensearch_backend.upsert([doc("/e", title="woman")]).ok == 1
    assert opensearch_backend.count() == 5
    hits = opensearch_backend.search(TieredQuery.build("woman")).hits
    assert [h.asset_id for h in hits][:2] == ["/a", "/e"]
    assert opensearch_backend.search(TieredQuery.build("car")).total == 0

    deleted = opensearch_backend.delete(["/a", "/nope"])
    assert (deleted.ok, deleted.failed) == (2, [])
    assert opensearch_backend.count() == 4
    assert "/a" not in {
        h.asset_id for h in opensearch_backend.search(TieredQuery.build("woman")).hits
    }


def test_bulk_reports_each_failed_document(opensearch_backend: OpenSearchBackend) -> None:
    good = doc("/good", title="woman")
    bad_width = dataclasses.replace(doc("/bad-width", title="woman"), width="wide")  # type: ignore[arg-type]
    result = opensearch_backend.upsert([good, bad_width, doc("/good2", title="man")])
    assert result.ok == 2
    assert [i for i, _ in result.failed] == ["/bad-width"]
    assert "400" in result.failed[0][1] and "width" in result.failed[0][1]

    # a source the strict mapping refuses, through the same bulk layer
    raw = [{"_op_type": "index", "_index": opensearch_backend.alias, "_id": "/x",
            "_source": {"asset_id": "/x", "colour": "red"}}]  # fmt: skip
    strict = opensearch_backend._bulk(raw, refresh=True)
    assert strict.ok == 0 and strict.failed[0][0] == "/x"
    assert "strict" in strict.failed[0][1]
    assert opensearch_backend.count() == 2
    assert [h.asset_id for h in opensearch_backend.search(TieredQuery.build("woman")).hits] == [
        "/good"
    ]


# -- retries, through a stub HTTP server on loopback ----------------------------------------------


class FlakyProxy:
    """Forwards requests to ``upstream``; ``fail(path_part, status, times)`` injects errors."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.rules: list[list[Any]] = []  # [path part, status, times left]
        self.seen: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                status, headers, payload = proxy.answer(self.command, self.path, body, self.headers)
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, path_part: str, status: int, times: int) -> None:
        self.rules.append([path_part, status, times])

    def answer(
        self, method: str, path: str, body: bytes | None, headers: Any
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        for rule in self.rules:
            if rule[0] in path and rule[2] > 0:
                rule[2] -= 1
                self.failed[rule[0]] += 1
                self.seen[rule[0]] += 1
                kind = "too_many_requests" if rule[1] == 429 else "unavailable"
                err = {"error": {"type": kind, "reason": f"injected {rule[1]}"}, "status": rule[1]}
                return rule[1], [("Content-Type", "application/json")], json.dumps(err).encode()
        for rule in self.rules:
            if rule[0] in path:
                self.seen[rule[0]] += 1
        host = self.upstream.hostname or "127.0.0.1"
        conn = http.client.HTTPConnection(host, self.upstream.port, timeout=30)
        try:
            ctype = headers.get("Content-Type") or "application/json"
            conn.request(method, path, body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            payload = resp.read()
            keep = [(k, v) for k, v in resp.getheaders() if k.lower() == "content-type"]
            return resp.status, keep, payload
        finally:
            conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky(opensearch_url: str) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(opensearch_url)
    yield proxy
    proxy.close()


def test_bulk_retries_429_then_succeeds(
    opensearch_backend_factory: Factory, flaky: FlakyProxy
) -> None:
    sleeps: list[float] = []
    retry = RetryPolicy(max_retries=3, initial_backoff=0.01, max_backoff=1.0)
    backend = opensearch_backend_factory(url=flaky.url, retry=retry, sleep=sleeps.append)
    backend.ensure_schema()
    flaky.fail("/_bulk", 429, times=2)
    result = backend.upsert(tier_example())
    assert (result.ok, result.failed) == (5, [])
    assert flaky.failed["/_bulk"] == 2 and flaky.seen["/_bulk"] == 3
    assert sleeps == [0.01, 0.02]  # exponential backoff
    assert backend.count() == 5


def test_bulk_gives_up_after_bounded_retries_and_reports_every_doc(
    opensearch_backend_factory: Factory, flaky: FlakyProxy
) -> None:
    sleeps: list[float] = []
    retry = RetryPolicy(max_retries=2, initial_backoff=0.5, max_backoff=0.75)
    backend = opensearch_backend_factory(url=flaky.url, retry=retry, sleep=sleeps.append)
    backend.ensure_schema()
    flaky.fail("/_bulk", 503, times=100)
    result = backend.upsert(tier_example())
    assert result.ok == 0
    assert sorted(i for i, _ in result.failed) == ["/a", "/b", "/c", "/d", "/e"]
    assert all("503" in r and "gave up after 3 attempts" in r for _, r in result.failed)
    assert flaky.seen["/_bulk"] == 3
    assert sleeps == [0.5, 0.75]  # capped by max_backoff


def test_reads_retry_too(opensearch_backend_factory: Factory, flaky: FlakyProxy) -> None:
    backend = opensearch_backend_factory(url=flaky.url, sleep=lambda s: None)
    backend.ensure_schema()
    backend.upsert(tier_example())
    flaky.fail("/_search", 429, times=2)
    flaky.fail("/_count", 502, times=1)
    assert backend.search(TieredQuery.build("woman")).hits[0].asset_id == "/a"
    assert backend.count() == 5
    assert flaky.failed == Counter({"/_search": 2, "/_count": 1})


def test_unreachable_server_is_a_backend_error_naming_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    backend = OpenSearchBackend(url, "st-test-nowhere", retry=RetryPolicy(1, 0.0, 0.0))
    with pytest.raises(BackendError, match=f"127.0.0.1:{port}.*after 2 attempts"):
        backend.count()
    result = backend.upsert([doc("/a", title="x")])
    assert result.ok == 0 and result.failed[0][0] == "/a"
    assert "gave up after 2 attempts" in result.failed[0][1]
    backend.close()


# -- full reindex -------------------------------------------------------------------------------


def test_full_reindex_swaps_the_alias_atomically(opensearch_backend: OpenSearchBackend) -> None:
    backend = opensearch_backend
    backend.upsert(tier_example())
    q = TieredQuery.build("woman running", profile=RankingProfile(confidence_floor=0.3))
    before = [h.asset_id for h in backend.search(q).hits]
    assert before == ["/a", "/b", "/c", "/d"]
    seen_during: list[list[str]] = []

    def new_docs() -> Iterator[SearchDocument]:
        for i, d in enumerate(tier_example()):
            if i == 2:  # mid-load: searches still go to the old, complete index
                seen_during.append([h.asset_id for h in backend.search(q).hits])
            yield d
        yield doc("/f", title="running woman")

    result = backend.full_reindex(new_docs())
    assert (result.ok, result.failed) == (6, [])
    assert seen_during == [before]
    assert backend.alias_indices() == [f"{backend.alias}-000002"]
    assert backend._numbered_indices() == {2: f"{backend.alias}-000002"}
    assert [h.asset_id for h in backend.search(q).hits] == ["/a", "/f", "/b", "/c", "/d"]

    backend.full_reindex(iter([doc("/z", title="woman running")]))
    assert backend._numbered_indices() == {3: f"{backend.alias}-000003"}
    assert [h.asset_id for h in backend.search(q).hits] == ["/z"]
    assert backend.count() == 1
    backend.ensure_schema()  # the alias exists: nothing new is created
    assert backend._numbered_indices() == {3: f"{backend.alias}-000003"}


def test_full_reindex_with_failures_keeps_the_old_index(
    opensearch_backend: OpenSearchBackend,
) -> None:
    backend = opensearch_backend
    backend.upsert(tier_example())
    bad = dataclasses.replace(doc("/bad"), height="tall")  # type: ignore[arg-type]
    with pytest.raises(BackendError, match=r"1 documents failed.*/bad"):
        backend.full_reindex([doc("/new", title="woman"), bad])
    assert backend._numbered_indices() == {1: f"{backend.alias}-000001"}
    assert backend.count() == 5
    result = backend.full_reindex([doc("/new", title="woman"), bad], max_failures=1)
    assert result.ok == 1 and [i for i, _ in result.failed] == ["/bad"]
    # the failed attempt's index was deleted, so its number is used again
    assert backend.alias_indices() == [f"{backend.alias}-000002"]
    assert backend.count() == 1


def test_full_reindex_creates_the_alias_when_missing(opensearch_backend_factory: Factory) -> None:
    backend = opensearch_backend_factory()
    backend.full_reindex(tier_example())
    assert backend.alias_indices() == [f"{backend.alias}-000001"]
    assert backend.count() == 5


# -- search: the three tiers ---------------------------------------------------------------------


def test_tier_example(opensearch_backend: OpenSearchBackend) -> None:
    docs = tier_example()
    opensearch_backend.upsert(docs)
    q = TieredQuery.build("woman running", profile=RankingProfile(confidence_floor=0.3))
    result = opensearch_backend.search(q)
    assert [(h.asset_id, h.tier) for h in result.hits] == [
        ("/a", 1), ("/b", 2), ("/c", 3), ("/d", 3)
    ]  # fmt: skip
    assert result.total == 4 and result.tiers == {1: 1, 2: 1, 3: 2}
    assert result.hits[0].why.fields == {"woman": ("title",), "running": ("title",)}
    assert [t.tag for t in result.hits[1].why.tags] == ["running", "woman"]
    assert_agrees_with_oracle(result, docs, q)
    # above the floor only: D's 0.4 "running" drops out at 0.5
    q5 = TieredQuery.build("woman running", profile=RankingProfile(confidence_floor=0.5))
    r5 = opensearch_backend.search(q5)
    assert [h.asset_id for h in r5.hits] == ["/a", "/b", "/c"]
    assert_agrees_with_oracle(r5, docs, q5)


def test_promotion_and_manual_tags(opensearch_backend: OpenSearchBackend) -> None:
    docs = [
        doc("/p", smart_tags=[smart("dress", 0.6, promoted=True)]),
        doc("/q", smart_tags=[smart("dress", 0.85)]),
        doc("/r", manual_tags=[manual("dress")], keywords=["summer"]),
        doc("/s", description="a dress", smart_tags=[smart("dress", 0.99)]),
    ]
    opensearch_backend.upsert(docs)
    for combine in ("sum", "max", "avg"):
        q = TieredQuery.build("dress", profile=RankingProfile(combine=combine))
        result = opensearch_backend.search(q)
        # promoted = manual (tier 1, weight 3), then the description (weight 1)
        assert [(h.asset_id, h.tier) for h in result.hits] == [
            ("/p", 1), ("/r", 1), ("/s", 1), ("/q", 2)
        ]  # fmt: skip
        assert_agrees_with_oracle(result, docs, q)
    q = TieredQuery.build("dress summer")
    assert_agrees_with_oracle(opensearch_backend.search(q), docs, q)


VOCAB = ["woman", "man", "running", "shoes", "red", "shirt", "dress", "casual", "city", "beach"]
PROFILES = [
    RankingProfile(),
    RankingProfile(combine="max", confidence_floor=0.5, promotion_factor=2.0),
    RankingProfile(
        combine="avg",
        confidence_floor=0.0,
        field_weights={"title": 5, "keywords": 2, "manual_tags": 3, "description": 0},
    ),
]


def random_corpus(n: int, seed: int = 7) -> list[SearchDocument]:
    rnd = random.Random(seed)
    docs = []
    for i in range(n):

        def words(k: int) -> str:
            return " ".join(rnd.sample(VOCAB, k))

        tags = rnd.sample(VOCAB, rnd.randint(0, 4))
        docs.append(
            doc(
                f"/{rnd.choice(['clothing', 'people', 'clothing/shoes'])}/{i:03d}.jpg",
                title=words(rnd.randint(0, 2)),
                description=words(rnd.randint(0, 3)),
                keywords=rnd.sample(VOCAB, rnd.randint(0, 2)),
                manual_tags=[manual(f"s:{t}", t) for t in rnd.sample(VOCAB, rnd.randint(0, 1))],
                smart_tags=[
                    # confidences on a 0.05 grid: distinct scores differ by more than 1e-3
                    smart(f"s:{t}", rnd.randint(1, 20) * 0.05, promoted=rnd.random() < 0.1, title=t)
                    for t in tags
                ],
                format=rnd.choice(["jpeg", "png", "tiff"]),
            )
        )
    return docs


@pytest.fixture
def corpus(opensearch_backend: OpenSearchBackend) -> list[SearchDocument]:
    docs = random_corpus(80)
    result = opensearch_backend.upsert(docs)
    assert (result.ok, result.failed) == (80, [])
    return docs


@pytest.mark.parametrize("profile", PROFILES, ids=["default", "max-promote2", "avg-floor0"])
@pytest.mark.parametrize(
    "text", ["woman", "running shoes", "red shirt woman", "beach city casual dress"]
)
def test_search_agrees_with_explain(
    opensearch_backend: OpenSearchBackend,
    corpus: list[SearchDocument],
    profile: RankingProfile,
    text: str,
) -> None:
    for kwargs in (
        {"limit": 200},
        {"limit": 7, "offset": 7},
        {"path_prefix": "/clothing/", "formats": ("jpeg", "PNG")},
        {"tags": ("s:woman",)},
        {"tags": ("s:red", "s:shirt")},
        {"tags": ("s:dress",)},
    ):
        q = TieredQuery.build(text, profile=profile, **kwargs)
        assert_agrees_with_oracle(opensearch_backend.search(q), corpus, q)


def test_pages_are_stable_and_complete(
    opensearch_backend: OpenSearchBackend, corpus: list[SearchDocument]
) -> None:
    full = opensearch_backend.search(TieredQuery.build("woman running", limit=200))
    paged: list[str] = []
    for offset in range(0, full.total, 9):
        page = opensearch_backend.search(TieredQuery.build("woman running", offset=offset, limit=9))
        assert page.total == full.total and page.tiers == full.tiers
        paged.extend(h.asset_id for h in page.hits)
    assert paged == [h.asset_id for h in full.hits]
    assert len(set(paged)) == len(paged)
