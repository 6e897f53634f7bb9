"""The embedded (SQLite FTS5) backend against the shared contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.backends.embedded import EmbeddedBackend

from .contract.search_contract import SearchBackendContract


class TestEmbeddedContract(SearchBackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[EmbeddedBackend]:
        b = EmbeddedBackend(tmp_path / "catalog.sqlite3")
        b.ensure_schema()
        yield b
        b.close()


def test_the_term_table_of_earlier_versions_is_dropped(tmp_path: Path) -> None:
    """``search_term_smart`` (the SQL threshold algorithm's lists, before the in-memory
    plan) is dropped when an index written by an earlier version is opened; searches
    are unchanged."""
    import random
    import sqlite3

    from ranking.explain import search
    from ranking.query import TieredQuery

    from .test_search_differential import corpus, summary

    docs = corpus(random.Random(9), 120)
    path = tmp_path / "old.sqlite3"
    b = EmbeddedBackend(path)
    b.ensure_schema()
    b.upsert(docs)
    b.close()
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE search_term_smart (key INTEGER, term TEXT, bound REAL, "
                     "top REAL, PRIMARY KEY (key, term)) WITHOUT ROWID")  # fmt: skip
        conn.execute("CREATE INDEX search_term_smart_by_bound ON search_term_smart(term, bound)")
    b = EmbeddedBackend(path)
    b.ensure_schema()
    names = {r[0] for r in b._conn.execute("SELECT name FROM sqlite_master")}
    assert not {n for n in names if n.startswith("search_term_smart")}
    q = TieredQuery.build("red boot", limit=3)
    assert summary(b.search(q)) == summary(search(docs, q))
    b.close()


def test_index_memory_follows_writes(tmp_path: Path) -> None:
    """What the in-memory plan caches (smart-tag rows, metadata matches, filter keys,
    asset-id ranks) follows writes by this connection and by another one: documents
    rewritten with other content, new ones (new asset ids: the tie order changes) and
    deleted ones are patched in from the change log, or everything is dropped when the
    log is too far ahead; caches too small for one query still work."""
    import dataclasses
    import random

    from ranking.explain import search
    from ranking.profile import RankingProfile
    from ranking.query import TieredQuery

    from .contract.search_contract import doc, smart
    from .test_search_differential import corpus, summary

    docs = corpus(random.Random(11), 200)
    path = tmp_path / "c.sqlite3"
    b = EmbeddedBackend(path)
    b.ensure_schema()
    b.upsert(docs)
    profiles = [RankingProfile(languages=("en", "de"), facet_sample=5),
                RankingProfile(languages=("en", "de"), facet_sample=5, confidence_floor=0.5,
                               promotion_factor=2.0, combine="avg")]  # fmt: skip
    texts = ("red boot", "summer dress", "wool", "kid hat beach", "running shoe red")
    qs = [TieredQuery.build(t, profile=p, limit=5) for p in profiles for t in texts]
    qs += [TieredQuery.build(t, profile=profiles[0], limit=5, path_prefix="/a/",
                             tags=("x:red",)) for t in texts]  # fmt: skip
    qs += [TieredQuery.build(t, profile=profiles[0], limit=5) for t in ("linen", "wool red")]
    qs += [TieredQuery.build(t, limit=200) for t in texts]  # every tie in order

    def check(expected: dict[str, object]) -> None:
        for q in qs:
            want = summary(search(list(expected.values()), q))  # type: ignore[arg-type]
            assert summary(b.search(q)) == want, q.text

    def rewrite(first: int, n: int, shift: int) -> list:  # type: ignore[type-arg]
        """Documents ``first``.. with the content of those ``shift`` further on."""
        return [dataclasses.replace(docs[(i + shift) % len(docs)], asset_id=docs[i].asset_id)
                for i in range(first, first + n)]  # fmt: skip

    now = {d.asset_id: d for d in docs}
    check(now)
    memory = b._memory
    assert memory.tags.rows > 0 and memory.meta.rows > 0 and memory.filters.rows > 0
    # This connection: 20 rewritten, and 6 new assets with the content of existing ones
    # (ties with them) whose ids sort first, just after the original's, or last.
    where = ("/0{}", "{}x", "/z{}")
    new = [dataclasses.replace(d, asset_id=where[i % 3].format(d.asset_id))
           for i, d in enumerate(docs[50:56])]  # fmt: skip
    reads = memory.order_reads
    b.upsert(rewrite(0, 20, 100) + new)
    now |= {d.asset_id: d for d in rewrite(0, 20, 100) + new}
    check(now)
    assert memory.last_sync == "patched"
    assert memory.order_reads == reads  # the new assets were placed, the order not read again
    # Another connection: 30 deleted, 10 rewritten.
    other = EmbeddedBackend(path)
    other.delete([d.asset_id for d in docs[20:50]])
    for d in docs[20:50]:
        del now[d.asset_id]
    check(now)
    assert memory.last_sync == "patched"
    other.upsert(rewrite(60, 10, 7))
    now |= {d.asset_id: d for d in rewrite(60, 10, 7)}
    check(now)
    assert memory.last_sync == "patched"
    # A document that loses every word and tag it had: no cached list keeps it.
    gone = now[docs[70].asset_id]
    lone = doc(gone.asset_id, title="linen", smart_tags=[smart("x:linen", 0.9)])
    words = {w for t in texts for w in t.split()}
    held = {t for terms in gone.terms.values() for t in terms}
    held |= {t for s in gone.smart_tags for t in s.terms}
    assert words & held  # it matched some of the cached words before
    other = EmbeddedBackend(path)
    other.upsert([lone])
    now[lone.asset_id] = lone
    check(now)
    for word in [*sorted(words), "linen"]:
        hits = b.search(TieredQuery.build(word, profile=profiles[0], limit=200)).hits
        assert (lone.asset_id in [h.asset_id for h in hits]) == (word == "linen"), word
    assert memory.last_sync == "patched"
    # Too far behind the log: everything is dropped and read again.
    b.patch_max = 3
    other.upsert(rewrite(80, 10, 33))
    other.close()
    now |= {d.asset_id: d for d in rewrite(80, 10, 33)}
    check(now)
    assert memory.last_sync == "dropped"
    b.smart_memory_rows = 1  # evicts all but the current query's tags
    b.meta_memory_rows = 1  # and metadata matches
    check(now)
    b.close()
