"""Forces each search strategy of the embedded backend and checks it against the oracle.

The backend picks, per search, whether to score every hit or only the top ones, for
a tier-1 score class whether to load it whole or walk asset ids (``class_fill_max``),
and for the smart tiers whether to score every hit or find the top ones with the
threshold algorithm (``smart_top_max``, ``smart_top_batch``, ``smart_top_gain``), and
whether to fold them in memory (``smart_memory_rows``).
This runs larger random corpora than the differential test (with small
``track_total_hits`` / ``facet_sample`` profiles among the queries, so every path runs)
and compares the whole result with ``ranking.explain.search``, scores to 1e-9, including
paging and writes between searches by this and another connection.

    .venv/bin/python benchmarks/search/check_strategies.py
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from indexer.backends.embedded import EmbeddedBackend  # noqa: E402
from ranking.document import SearchDocument  # noqa: E402
from ranking.explain import search  # noqa: E402
from ranking.query import TieredQuery  # noqa: E402
from ranking.results import SearchResult  # noqa: E402
from tests.test_search_differential import corpus, queries  # noqa: E402

#: (class_fill_max, smart_top_max, smart_top_batch, smart_top_gain, smart_memory_rows):
#: the defaults; walk every tier-1 class (and load tier 1 by FTS5 arms only, never
#: scanning); the threshold algorithm whenever allowed, in its own rounds and in rounds
#: of one row (SQL only); every smart hit scored, folded in memory (any size) and by SQL.
_ROWS = EmbeddedBackend.smart_memory_rows
STRATEGIES = [
    (EmbeddedBackend.class_fill_max, EmbeddedBackend.smart_top_max, None, 4, _ROWS),
    (0, EmbeddedBackend.smart_top_max, None, 4, _ROWS),
    (EmbeddedBackend.class_fill_max, EmbeddedBackend.smart_top_max, None, 0, _ROWS),
    (EmbeddedBackend.class_fill_max, EmbeddedBackend.smart_top_max, 1, 0, 0),
    (EmbeddedBackend.class_fill_max, 0, None, 0, _ROWS),
    (EmbeddedBackend.class_fill_max, 0, None, 0, 0),
]
#: Strategies run with tier 1 in SQL too (``meta_memory_rows`` = 0), not only in memory.
SQL_TIER1 = (0, 1, 3, 5)


def summary(r: SearchResult) -> tuple[object, ...]:
    page = [(h.asset_id, h.tier, round(h.score, 9)) for h in r.hits]
    return page, r.total, r.total_relation, r.tiers, r.smart_tag_facets, r.manual_tag_facets


def check(got: SearchResult, docs: list[SearchDocument], q: TieredQuery) -> None:
    assert summary(got) == summary(search(docs, q)), q


def main() -> int:
    checked = 0
    for seed in range(1, 9):
        rng = random.Random(seed)
        docs, qs = corpus(rng, 300), queries(rng, 60)
        qs += [
            TieredQuery.build(q.text, profile=q.profile, path_prefix=q.path_prefix,
                              formats=q.formats, tags=q.tags, offset=o, limit=n)
            for q in qs[:20] for o, n in ((0, 5), (7, 3), (30, 20))
        ]  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            runs = [(s, True) for s in STRATEGIES] + [(STRATEGIES[i], False) for i in SQL_TIER1]
            for n, ((fill_max, top_max, batch, gain, rows), meta) in enumerate(runs):
                b = EmbeddedBackend(Path(tmp) / f"c{n}.sqlite3")
                b.ensure_schema()
                b.upsert(docs)
                b.class_fill_max, b.smart_top_max = fill_max, top_max
                b.tier1_scan_max = b.tier1_scan_max if fill_max else 0
                b.smart_top_batch, b.smart_top_gain = batch, gain
                b.smart_memory_rows, b.smart_memory_min = rows, 0
                b.meta_memory_rows = b.meta_memory_rows if meta else 0
                for q in qs:
                    check(b.search(q), docs, q)
                    checked += 1
                # Writes by this connection, then by another one.
                b.upsert(docs[:50][::-1])
                b.delete([docs[60].asset_id])
                other = EmbeddedBackend(b.path)
                other.delete([docs[61].asset_id])
                other.close()
                gone = {docs[60].asset_id, docs[61].asset_id}
                left = [d for d in docs if d.asset_id not in gone]
                for q in qs[:30]:
                    check(b.search(q), left, q)
                    checked += 1
                b.close()
    print(f"ok: {checked} searches match the oracle under every strategy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
