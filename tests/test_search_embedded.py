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
    asset-id ranks) is read again after a write by this connection or another one (which
    gives the rewritten documents new keys), and caches too small for one query still
    work."""
    import random

    from ranking.explain import search
    from ranking.profile import RankingProfile
    from ranking.query import TieredQuery

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

    def check(expected: list) -> None:  # type: ignore[type-arg]
        for q in qs:
            assert summary(b.search(q)) == summary(search(expected, q)), q.text

    check(docs)
    memory = b._memory
    assert memory.tags.rows > 0 and memory.meta.rows > 0 and memory.filters.rows > 0
    b.upsert(docs[:40][::-1])  # this connection
    check(docs)
    other = EmbeddedBackend(path)  # another connection
    other.delete([d.asset_id for d in docs[:30]])
    other.close()
    check(docs[30:])
    b.smart_memory_rows = 1  # evicts all but the current query's tags
    b.meta_memory_rows = 1  # and metadata matches
    check(docs[30:])
    b.close()
