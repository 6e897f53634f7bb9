"""Forces each search strategy of the embedded backend and checks it against the oracle.

The backend picks, per search, how to count facets (result set directly, or every
asset's counts less the others') and how to find the page (look up hits at or above the
page's last score, or walk asset ids through dense ties). The differential test only
reaches the defaults; this runs every combination on random corpora and compares the
full page order, scores, totals and facets with ``ranking.explain``, including paging,
writes between searches (the cached all-asset counts must follow them) and a second
connection's writes.

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
from ranking.explain import facets, rank  # noqa: E402
from ranking.query import TieredQuery  # noqa: E402
from ranking.results import SearchResult  # noqa: E402
from tests.test_search_differential import corpus, queries  # noqa: E402

#: (complement_share, ties_walk_min): default, always/never complement x always/never walk.
STRATEGIES = [(0.5, 1_000), (-1.0, 0), (2.0, 0), (-1.0, 10**9), (2.0, 10**9)]


def check(got: SearchResult, docs: list[SearchDocument], q: TieredQuery) -> None:
    hits = rank(docs, q)
    assert got.total == len(hits), q
    want = [(h.asset_id, h.tier, round(h.score, 9)) for h in hits[q.offset : q.offset + q.limit]]
    assert [(h.asset_id, h.tier, round(h.score, 9)) for h in got.hits] == want, q
    smart, manual = facets(docs, q)
    assert [(f.tag, f.count) for f in got.smart_tag_facets] == smart, q
    assert [(f.tag, f.count) for f in got.manual_tag_facets] == manual, q


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
            for share, walk in STRATEGIES:
                b = EmbeddedBackend(Path(tmp) / f"c{share}-{walk}.sqlite3")
                b.ensure_schema()
                b.upsert(docs)
                b.complement_share, b.ties_walk_min = share, walk
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
