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


def test_an_index_from_before_the_term_table_is_backfilled(tmp_path: Path) -> None:
    """``search_term_smart`` (the threshold algorithm's lists) is derived from the stored
    smart tags when an index written before it existed is opened."""
    import random
    import sqlite3

    from ranking.explain import search
    from ranking.profile import RankingProfile
    from ranking.query import TieredQuery

    from .test_search_differential import corpus, summary

    docs = corpus(random.Random(9), 200)
    path = tmp_path / "old.sqlite3"
    b = EmbeddedBackend(path)
    b.ensure_schema()
    b.upsert(docs)
    rows = b._conn.execute("SELECT * FROM search_term_smart ORDER BY key, term").fetchall()
    b.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE search_term_smart")
    b = EmbeddedBackend(path)
    b.ensure_schema()
    again = b._conn.execute("SELECT * FROM search_term_smart ORDER BY key, term").fetchall()
    assert again == rows  # confidences are multiples of 1/64: the sums are exact
    b.smart_top_gain = 0
    profile = RankingProfile(languages=("en", "de"), facet_sample=3)
    for text in ("red boot", "summer dress", "wool", "kid hat beach"):
        q = TieredQuery.build(text, profile=profile, limit=3)
        assert summary(b.search(q)) == summary(search(docs, q))
    b.close()
