"""Embedded search backend: bulk indexing throughput and three-tier query latency.

Builds a synthetic corpus (Zipf vocabulary, Zipf-popular smart tags) in a SQLite file
through ``EmbeddedBackend.upsert`` and times ``backend.search`` (page + tier counts +
facets) over a fixed query workload with the default profile, limit 20.

    .venv/bin/python benchmarks/search/latency.py --sizes 100000,1000000 \\
        --cache-dir /tmp/smarttags-search-bench

A built corpus is cached in ``--cache-dir`` under a name that includes the size, seed
and a hash of the schema, so a later run with the same index format skips the build
(the indexing rate printed is then the one recorded when it was built).
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import hashlib
import itertools
import json
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from indexer.backends.embedded import EmbeddedBackend  # noqa: E402
from ranking import sql as ranking_sql  # noqa: E402
from ranking.analysis import Analyzer  # noqa: E402
from ranking.document import SearchDocument, SmartTag, TagRef, build_document  # noqa: E402
from ranking.profile import RankingProfile  # noqa: E402
from ranking.query import TieredQuery  # noqa: E402

LETTERS = "abcdefghijklmnopqrstuvwxyz"
FORMATS = ("JPEG", "PNG", "TIFF", "PSD")


class CachedAnalyzer(Analyzer):
    """The same stems as :class:`Analyzer`, memoised (the vocabulary is small)."""

    def __init__(self, languages: tuple[str, ...] = ("en",)) -> None:
        super().__init__(languages)
        self._memo: dict[str, tuple[str, ...]] = {}

    def stems(self, word: str) -> tuple[str, ...]:
        s = self._memo.get(word)
        if s is None:
            s = self._memo[word] = super().stems(word)
        return s


class Zipf:
    """Draws ranks 0..n-1 with P(k) proportional to 1 / (k + 1) ** s."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        self.cum = list(itertools.accumulate(1.0 / (k + 1) ** s for k in range(n)))
        self.total = self.cum[-1]
        self.rng = rng

    def draw(self, k: int = 1) -> list[int]:
        r, cum, total = self.rng.random, self.cum, self.total
        return [bisect.bisect_left(cum, r() * total) for _ in range(k)]


def make_vocabulary(n: int, rng: random.Random) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        w = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 9)))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


class Corpus:
    """Deterministic synthetic assets; ``docs(start, n)`` yields documents by index."""

    def __init__(
        self, seed: int = 7, vocab_size: int = 20_000, n_tags: int = 2_000, exponent: float = 1.1
    ) -> None:
        rng = random.Random(seed)
        self.seed = seed
        self.an = CachedAnalyzer(("en",))
        self.vocab = make_vocabulary(vocab_size, rng)
        self.word_zipf = Zipf(vocab_size, exponent, rng)
        self.tags: list[tuple[str, dict[str, str], tuple[str, ...]]] = []
        for i in range(n_tags):
            title = " ".join(self.vocab[k] for k in self.word_zipf.draw(rng.randint(1, 2)))
            titles = {"en": title}
            terms = tuple(self.an.index_tokens(title))
            self.tags.append((f"t{i:04d}:{title.replace(' ', '-')}", titles, terms))
        self.exponent = exponent

    def words(self, z: Zipf, k: int) -> str:
        return " ".join(self.vocab[i] for i in z.draw(k))

    def docs(self, start: int, n: int) -> Iterator[SearchDocument]:
        rng = random.Random(self.seed * 1_000_003 + start)
        z = Zipf.__new__(Zipf)
        z.cum, z.total, z.rng = self.word_zipf.cum, self.word_zipf.total, rng
        tz = Zipf(len(self.tags), self.exponent, rng)
        for i in range(start, start + n):
            picked = dict.fromkeys(tz.draw(rng.randint(3, 8)))
            smart = [
                SmartTag(self.tags[t][0], round(rng.uniform(0.05, 1.0), 3), "bench@1",
                         rng.random() < 0.05, self.tags[t][1], self.tags[t][2])
                for t in picked
            ]  # fmt: skip
            manual = [
                TagRef(self.tags[t][0], self.tags[t][1], self.tags[t][2])
                for t in dict.fromkeys(tz.draw(rng.randint(0, 2)))
            ]
            yield build_document(
                self.an,
                asset_id=f"/lib/f{i % 997:03d}/asset-{i:07d}.jpg",
                title=self.words(z, rng.randint(2, 6)),
                description=self.words(z, rng.randint(5, 15)),
                keywords=self.words(z, rng.randint(0, 5)).split(),
                manual_tags=manual,
                smart_tags=smart,
                format=FORMATS[i % len(FORMATS)],
                width=1024,
                height=768,
                modified_at=1.7e9 + i,
            )

    def queries(self, n: int, seed: int = 11) -> list[str]:
        rng = random.Random(seed)
        z = Zipf.__new__(Zipf)
        z.cum, z.total, z.rng = self.word_zipf.cum, self.word_zipf.total, rng
        return [self.words(z, rng.randint(1, 3)) for _ in range(n)]


def schema_tag() -> str:
    return hashlib.sha1(ranking_sql.SCHEMA.encode()).hexdigest()[:10]


def build(path: Path, corpus: Corpus, size: int, batch: int) -> dict[str, float]:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    backend = EmbeddedBackend(path)
    backend.ensure_schema()
    t_gen = t_upsert = 0.0
    for start in range(0, size, batch):
        t0 = time.perf_counter()
        docs = list(corpus.docs(start, min(batch, size - start)))
        t1 = time.perf_counter()
        result = backend.upsert(docs)
        t2 = time.perf_counter()
        assert result.ok == len(docs) and not result.failed
        t_gen += t1 - t0
        t_upsert += t2 - t1
        if (start // batch) % 20 == 0:
            print(f"  {start + len(docs):>9} docs, {(start + len(docs)) / t_upsert:,.0f} docs/s "
                  f"upsert", flush=True)  # fmt: skip
    finish = getattr(backend, "finish_bulk", None)
    t3 = time.perf_counter()
    if finish is not None:
        finish()
    t_finish = time.perf_counter() - t3
    backend.close()
    return {"docs": size, "generate_s": t_gen, "upsert_s": t_upsert, "finish_s": t_finish,
            "docs_per_s": size / (t_upsert + t_finish)}  # fmt: skip


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def rss_mb() -> float:
    """This process's resident memory now (Linux), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Writes:
    """Another connection rewrites ``n`` documents (existing asset ids, other content:
    as a moderation or a small tagging cycle does) before every ``every``-th query;
    :meth:`restore` writes the original content back."""

    def __init__(self, path: Path, corpus: Corpus, size: int, every: int, n: int) -> None:
        self.backend = EmbeddedBackend(path)
        self.corpus, self.size, self.every, self.n = corpus, size, every, n
        self.rng = random.Random(5)
        self.touched: set[int] = set()

    def between(self, i: int) -> None:
        if i % self.every:
            return
        docs = []
        for _ in range(self.n):
            j, src = self.rng.randrange(self.size), self.rng.randrange(self.size)
            self.touched.add(j)
            d = next(self.corpus.docs(src, 1))
            docs.append(dataclasses.replace(d, asset_id=next(self.corpus.docs(j, 1)).asset_id))
        self.backend.upsert(docs)

    def restore(self) -> None:
        self.backend.upsert([next(self.corpus.docs(j, 1)) for j in sorted(self.touched)])
        self.backend.close()


def run_queries(
    path: Path,
    texts: list[str],
    repeat: int,
    profile: RankingProfile | None = None,
    warmup: list[str] | None = None,
    path_prefix: str | None = None,
    memory_plan: bool = True,
    writes: Writes | None = None,
    patch_max: int | None = None,
) -> dict[str, object]:
    """Time ``texts`` in a fresh backend, after 10 of them (the page cache) and then the
    ``warmup`` queries (other queries: a server's steady state) were run untimed; with
    ``writes``, another connection writes between queries (untimed)."""
    rss_before = rss_mb()
    backend = EmbeddedBackend(path)
    backend.memory_plan = memory_plan
    if patch_max is not None:
        backend.patch_max = patch_max
    queries = [TieredQuery.build(t, limit=20, profile=profile, path_prefix=path_prefix)
               for t in texts]  # fmt: skip
    t0 = time.perf_counter()
    for q in queries[: min(10, len(queries))]:  # warm the page cache
        backend.search(q)
    for t in warmup or []:
        backend.search(TieredQuery.build(t, limit=20, profile=profile, path_prefix=path_prefix))
    warmup_s = time.perf_counter() - t0
    best: list[float] = [float("inf")] * len(queries)
    totals: list[int] = [0] * len(queries)
    for _ in range(repeat):
        for i, q in enumerate(queries):
            if writes is not None:
                writes.between(i)
            t0 = time.perf_counter()
            r = backend.search(q)
            best[i] = min(best[i], time.perf_counter() - t0)
            totals[i] = r.total + (r.total_relation == "gte")  # 10,001: "more than 10,000"
    memory = backend._memory
    cached = {"meta_keys": memory.meta.rows, "filter_keys": memory.filters.rows,
              "tag_rows": memory.tags.rows}  # fmt: skip
    backend.close()
    ms = [b * 1000 for b in best]
    by_size: dict[str, list[float]] = {}
    for t, m in zip(totals, ms, strict=True):
        bucket = ("<1k" if t < 1_000 else "<=10k" if t <= 10_000 else ">10k")  # fmt: skip
        by_size.setdefault(bucket, []).append(m)
    return {
        "queries": len(ms),
        "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99), "mean_ms": statistics.fmean(ms),
        "max_ms": max(ms), "median_total": int(statistics.median(totals)),
        "warmup_queries": 10 + len(warmup or []), "warmup_s": warmup_s, "cached": cached,
        "rss_mb_before": rss_before, "rss_mb_after": rss_mb(),
        "by_result_size": {k: {"n": len(v), "p50_ms": percentile(v, 50),
                               "max_ms": max(v)} for k, v in sorted(by_size.items())},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000", help="comma-separated corpus sizes")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/smarttags-search-bench"))
    ap.add_argument("--rebuild", action="store_true", help="ignore a cached corpus")
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the workload this many times; each query's best time counts",
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--path-prefix",
        help="filter every query to this folder (assets are /lib/fNNN/..., 997 folders; "
        "/lib/f1 keeps about a tenth)",
    )
    ap.add_argument(
        "--write-every",
        type=int,
        help="another connection rewrites --write-docs documents before every N-th query "
        "(the original content is written back at the end)",
    )
    ap.add_argument("--write-docs", type=int, default=1)
    ap.add_argument("--patch-max", type=int, help="the backend's patch_max (0: drop caches)")
    ap.add_argument(
        "--sql-plan", action="store_true", help="rank by the SQL plan (memory_plan = False)"
    )
    ap.add_argument(
        "--warmup-queries",
        type=int,
        default=0,
        help="run this many other queries (same distribution, another seed) untimed first",
    )
    ap.add_argument("--track-total-hits", type=int, help="profile cap (default: the profile's)")
    ap.add_argument("--facet-sample", type=int, help="profile facet sample (default: profile's)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    corpus = Corpus(seed=args.seed)
    texts = corpus.queries(args.queries)
    warmup = corpus.queries(args.warmup_queries, seed=12) if args.warmup_queries else None
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, object] = {"schema": schema_tag()}
    for size in (int(s) for s in args.sizes.split(",")):
        path = args.cache_dir / f"corpus-{size}-s{args.seed}-{schema_tag()}.sqlite3"
        meta = path.with_suffix(".json")
        if args.rebuild or not (path.exists() and meta.exists()):
            print(f"building {size:,} docs in {path}", flush=True)
            stats = build(path, corpus, size, args.batch)
            meta.write_text(json.dumps(stats))
        else:
            stats = json.loads(meta.read_text())
            print(f"using cached {path}", flush=True)
        print(f"indexing: {stats['docs_per_s']:,.0f} docs/s (upsert {stats['upsert_s']:.1f} s, "
              f"generation {stats['generate_s']:.1f} s, excluded)", flush=True)  # fmt: skip
        bounds = {"track_total_hits": args.track_total_hits, "facet_sample": args.facet_sample}
        given = {k: v for k, v in bounds.items() if v is not None}
        writes = (Writes(path, corpus, size, args.write_every, args.write_docs)
                  if args.write_every else None)  # fmt: skip
        try:
            lat = run_queries(path, texts, args.repeat,
                              RankingProfile(**given) if given else None, warmup,
                              args.path_prefix, not args.sql_plan, writes,
                              args.patch_max)  # fmt: skip
        finally:
            if writes is not None:
                writes.restore()
        print(f"{size:>9,} docs: p50 {lat['p50_ms']:.1f} ms  p95 {lat['p95_ms']:.1f} ms  "
              f"p99 {lat['p99_ms']:.1f} ms  (max {lat['max_ms']:.1f}, "
              f"median total {lat['median_total']:,})", flush=True)  # fmt: skip
        print(f"  by result-set size: {json.dumps(lat['by_result_size'])}", flush=True)
        print(f"  warm-up: {lat['warmup_queries']} queries in {lat['warmup_s']:.1f} s; cached "
              f"after: {json.dumps(lat['cached'])}; RSS {lat['rss_mb_before']:.0f} -> "
              f"{lat['rss_mb_after']:.0f} MB",
              flush=True)  # fmt: skip
        out[str(size)] = {"index": stats, "latency": lat}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
