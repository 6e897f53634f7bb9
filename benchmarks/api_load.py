"""HTTP API load: search throughput and latency through ``smarttags serve`` on loopback.

Builds (or reuses, from ``benchmarks/search/latency.py``'s cache) a synthetic corpus of
``--size`` documents straight into the embedded search backend, copies it into a temp
home as the catalog, starts ``smarttags serve`` there as a separate process (uvicorn,
one worker, ``SMARTTAGS_API_THREADS`` service threads), warms it up, then runs
``--threads`` client threads (httpx, keep-alive) issuing ``GET /v1/search`` over the
latency benchmark's query workload for ``--seconds``. Prints and writes (``--json``)
requests/s, latency percentiles, errors, and the machine's load during the run.

    .venv/bin/python benchmarks/api_load.py --size 100000 --threads 8 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.search.latency import Corpus, build, percentile, schema_tag  # noqa: E402

KEY = "bench-reader-key"


def cpu_seconds() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, in seconds, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / hz, sum(fields) / hz


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (float(parts[11]) + float(parts[12])) / os.sysconf("SC_CLK_TCK")


def corpus_file(cache: Path, size: int, seed: int) -> Path:
    path = cache / f"corpus-{size}-s{seed}-{schema_tag()}.sqlite3"
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        cache.mkdir(parents=True, exist_ok=True)
        print(f"building {size:,} docs in {path}", flush=True)
        meta.write_text(json.dumps(build(path, Corpus(seed=seed), size, 5_000)))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, port: int, api_threads: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SMARTTAGS_API_KEYS": json.dumps({KEY: "reader"}),
        "SMARTTAGS_EMBEDDER": "fake",
        "SMARTTAGS_API_THREADS": str(api_threads),
    }
    cmd = [sys.executable, "-m", "smarttags", "--home", str(home), "serve", "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the server did not become healthy within 60 s")


def load(base: str, queries: list[str], threads: int, seconds: float) -> dict[str, object]:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=30) as c:
            n = i
            while time.perf_counter() < stop:
                q = queries[n % len(queries)]
                n += threads
                t0 = time.perf_counter()
                r = c.get("/v1/search", params={"q": q, "limit": 20})
                latencies[i].append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors[i] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    ms = [x * 1000 for lat in latencies for x in lat]
    return {
        "requests": len(ms), "errors": sum(errors), "seconds": round(wall, 2),
        "requests_per_s": round(len(ms) / wall, 1),
        "p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1),
        "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms), 1),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/smarttags-search-bench"))
    ap.add_argument("--threads", type=int, default=8, help="client threads")
    ap.add_argument("--api-threads", type=int, default=4, help="server service threads")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    source = corpus_file(args.cache_dir, args.size, args.seed)
    queries = Corpus(seed=args.seed).queries(args.queries)
    with tempfile.TemporaryDirectory(prefix="smarttags-api-load-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        shutil.copyfile(source, home / "catalog.sqlite3")
        port = free_port()
        proc = start_server(home, port, args.api_threads)
        try:
            base = f"http://127.0.0.1:{port}"
            load(base, queries, args.threads, args.warmup)
            busy0, total0 = cpu_seconds()
            server0 = process_cpu(proc.pid)
            load0 = os.getloadavg()[0]
            result = load(base, queries, args.threads, args.seconds)
            busy1, total1 = cpu_seconds()
            server_cpu = process_cpu(proc.pid) - server0
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    cores = os.cpu_count() or 1
    wall = (total1 - total0) / cores
    result.update({
        "size": args.size, "client_threads": args.threads, "api_threads": args.api_threads,
        "cores": cores, "loadavg_1m_before": round(load0, 2),
        "server_cores": round(server_cpu / wall, 2),
        "machine_busy_cores": round((busy1 - busy0) / wall, 2),
    })  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
