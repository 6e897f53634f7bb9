"""Forces each search plan of the embedded backend and checks it against the oracle.

The in-memory plan (``memory_plan``, the default; also with caches too small to keep
anything between searches, and with every fold by rank instead of over dense arrays) and
the SQL plan (tier-1 score classes loaded or walked, ``class_fill_max``), as
``tests/test_search_differential.py`` names them (``PLANS``).
This runs larger random corpora than the differential test (with small
``track_total_hits`` / ``facet_sample`` profiles among the queries, so every path runs)
and compares the whole result with ``ranking.explain.search``, scores to 1e-9, including
paging, and writes between searches by this and another connection (documents rewritten
with other content, deleted): the in-memory plan's caches are patched from the change
log.

    .venv/bin/python benchmarks/search/check_strategies.py
"""

from __future__ import annotations

import dataclasses
import random
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from indexer.backends.embedded import EmbeddedBackend  # noqa: E402
from ranking.document import SearchDocument  # noqa: E402
from ranking.explain import search  # noqa: E402
from ranking.query import TieredQuery  # noqa: E402
from ranking.results import SearchResult  # noqa: E402
from tests.test_search_differential import PLANS, configure, corpus, queries  # noqa: E402


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
            for n, plan in enumerate(PLANS):
                mp = pytest.MonkeyPatch()
                b = EmbeddedBackend(Path(tmp) / f"c{n}.sqlite3")
                configure(b, plan, mp)
                b.ensure_schema()
                b.upsert(docs)
                for q in qs:
                    check(b.search(q), docs, q)
                    checked += 1
                # Writes by this connection, then by another one.
                moved = [dataclasses.replace(docs[(i + 97) % len(docs)], asset_id=d.asset_id)
                         for i, d in enumerate(docs[:50])]  # fmt: skip
                b.upsert(moved)
                b.delete([docs[60].asset_id])
                other = EmbeddedBackend(b.path)
                other.delete([docs[61].asset_id])
                other.upsert(moved[:10][::-1])
                other.close()
                gone = {docs[60].asset_id, docs[61].asset_id}
                left = moved + [d for d in docs[50:] if d.asset_id not in gone]
                for q in qs[:30]:
                    check(b.search(q), left, q)
                    checked += 1
                b.close()
                mp.undo()
    print(f"ok: {checked} searches match the oracle under every plan ({len(PLANS)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
