"""Bulk indexing documents/s for both search backends, side by side, on one corpus.

    .venv/bin/python benchmarks/search/bulk_index.py [--docs 20000] [--rounds 3]

The embedded backend writes a fresh SQLite file; the OpenSearch backend writes to
``OPENSEARCH_URL`` if set, else to an osmem-server started here (an in-memory
OpenSearch-compatible server: its speed is NOT OpenSearch's, so its number measures
our client path, bulk chunking and retries, not a cluster). Rounds alternate the two
backends so machine noise hits both alike. Document generation is excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.search.latency import Corpus  # noqa: E402
from indexer.backends.embedded import EmbeddedBackend  # noqa: E402
from indexer.backends.opensearch import OpenSearchBackend  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2_000)
    args = ap.parse_args(argv)
    docs = list(Corpus(seed=7).docs(0, args.docs))
    server = None
    url = os.environ.get("OPENSEARCH_URL")
    if not url:
        from osmem_server import OsmemServer

        server = OsmemServer.start(japanese=False)
        url = server.url
    rates: dict[str, list[float]] = {"embedded": [], "opensearch": []}
    try:
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                emb = EmbeddedBackend(Path(tmp) / "c.sqlite3")
                emb.ensure_schema()
                t = time.perf_counter()
                for i in range(0, len(docs), args.batch):
                    assert not emb.upsert(docs[i : i + args.batch]).failed
                rates["embedded"].append(len(docs) / (time.perf_counter() - t))
                emb.close()
            osb = OpenSearchBackend(url, f"bench-{uuid.uuid4().hex[:8]}")
            osb.ensure_schema()
            t = time.perf_counter()
            for i in range(0, len(docs), args.batch):
                assert not osb.upsert(docs[i : i + args.batch]).failed
            rates["opensearch"].append(len(docs) / (time.perf_counter() - t))
            assert osb.count() == len(docs)
            osb.drop()
            osb.close()
    finally:
        if server is not None:
            server.close()
    out = {
        name: {"median_docs_per_s": round(statistics.median(r)), "runs": [round(x) for x in r]}
        for name, r in rates.items()
    }
    out["server"] = "OPENSEARCH_URL" if not server else "osmem-server (in-memory)"  # type: ignore[assignment]
    print(json.dumps({"docs": len(docs), **out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
