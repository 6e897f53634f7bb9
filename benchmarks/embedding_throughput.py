"""Embedding throughput: raw forward (onnxruntime, torch) vs. end-to-end ingest, in one run.

Run from the repository root::

    .venv/bin/python benchmarks/embedding_throughput.py \
        [--dataset ../shared/datasets/clothing] [--limit N] \
        [--out benchmarks/results/embedding.json]

What it measures, with ``--repeats`` alternating rounds (each round runs every case once,
so a slow spell of the machine hits all cases alike):

1. ``raw_onnx``: images/s of ``embedder.embed(batch)`` on decoded, preprocessed tensors
   (one untimed warm-up batch first), onnxruntime, ``threads`` = the settings default.
2. ``raw_torch``: the same tensors through the torch eager runtime (fewer batches).
3. ``ingest``: end-to-end images/s of ``Ingester(...).run([images_dir])`` (read, hash,
   decode, preprocess, infer, store) into a fresh SQLite catalog in a temp dir.
4. Ratios: ingest / raw_onnx (target >= 0.75), raw_onnx / raw_torch (target >= 3).
5. Large photos: ``--large-count`` sample photos upscaled to ~12 MP JPEGs (q90) in a
   temp dir, ingested with JPEG draft mode (the normal path) and without it (the decoder
   is patched here, in this script only, to decode at full size), plus raw onnx on the
   tensors of the same photos.

Each measurement also records how much CPU the rest of the machine used meanwhile
(``others_cores``, from /proc/stat minus this process) so noise can be told from
regressions; ingest runs record where the main thread's time went.

The sample photos are read in place and never copied; temp files are deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import indexer.ingest as ingest_module
from indexer.catalog import Catalog
from indexer.embedders import EmbedderOptions, ImageEmbedder, create_embedder
from indexer.images import IMAGE_EXTENSIONS, decode
from indexer.ingest import Ingester, IngestOptions
from indexer.models import TaxonomyTag
from smarttags.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "clothing"
TARGET_INGEST_VS_RAW = 0.75
TARGET_ONNX_VS_TORCH = 3.0
EMBEDDER = "efficientnet-lite0"


# -- machine accounting ------------------------------------------------------


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat() -> tuple[float, float] | None:
    """(busy seconds, steal seconds) of all CPUs since boot, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy / _HZ, steal / _HZ


class Meter:
    """Wall time, this process's CPU time and the CPU the rest of the machine used."""

    def __enter__(self) -> Meter:
        self.stat0 = _proc_stat()
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.own_cpu = time.process_time() - self.cpu0
        stat1 = _proc_stat()
        self.others_cores: float | None = None
        self.steal_cores: float | None = None
        if self.stat0 is not None and stat1 is not None and self.wall > 0:
            busy = stat1[0] - self.stat0[0]
            self.others_cores = max(0.0, busy - self.own_cpu) / self.wall
            self.steal_cores = (stat1[1] - self.stat0[1]) / self.wall

    def record(self, images: int) -> dict[str, Any]:
        return {
            "images": images,
            "seconds": round(self.wall, 4),
            "images_per_s": round(images / self.wall, 2),
            "own_cores": round(self.own_cpu / self.wall, 2),
            "images_per_cpu_s": round(images / self.own_cpu, 2) if self.own_cpu > 0 else None,
            "others_cores": None if self.others_cores is None else round(self.others_cores, 2),
            "steal_cores": None if self.steal_cores is None else round(self.steal_cores, 2),
        }


def wait_for_quiet(max_wait: float, threshold: float, window: float = 0.5) -> dict[str, Any]:
    """Sleep until the rest of the machine uses at most ``threshold`` cores (one
    ``window``), or ``max_wait`` seconds have passed. Returns what was seen."""
    t0 = time.perf_counter()
    others = None
    while True:
        s0, c0, w0 = _proc_stat(), time.process_time(), time.perf_counter()
        time.sleep(window)
        s1, c1, w1 = _proc_stat(), time.process_time(), time.perf_counter()
        if s0 is None or s1 is None:
            break
        others = max(0.0, (s1[0] - s0[0]) - (c1 - c0)) / (w1 - w0)
        if others <= threshold or time.perf_counter() - t0 >= max_wait:
            break
    return {
        "waited_s": round(time.perf_counter() - t0, 2),
        "others_before": None if others is None else round(others, 2),
    }


def _run(cmd: Sequence[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    import onnxruntime
    import PIL

    try:
        import torch

        torch_version: str | None = torch.__version__
    except ImportError:
        torch_version = None
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    lscpu = dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition(":") for line in _run(["lscpu"]).splitlines())
    )
    dirty = _run(["git", "-C", str(REPO), "status", "--porcelain", "--", "indexer", "smarttags"])
    return {
        "git_commit": _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or None,
        "package_code_modified": bool(dirty),
        "nproc": _run(["nproc"]) or os.cpu_count(),
        "cpu_model": lscpu.get("Model name") or platform.processor(),
        "hypervisor": lscpu.get("Hypervisor vendor"),
        "memory_gib": mem_gib,
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch_version,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "platform": platform.platform(),
    }


# -- instrumented ingest (timing only; the work is the package's own) --------


class TimedEmbedder:
    """Delegates to an embedder and adds up the time spent in ``embed``."""

    def __init__(self, inner: ImageEmbedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.input_size = inner.input_size
        self.embed_s = 0.0

    def prepare(self, image: Image.Image) -> Any:
        return self.inner.prepare(image)

    def embed(self, batch: Sequence[Any]) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.inner.embed(batch)
        finally:
            self.embed_s += time.perf_counter() - t0


class TimedIngester(Ingester):
    """The real Ingester, with counters around its worker and batch steps."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self.read_wall_s = 0.0
        self.read_cpu_s = 0.0
        self.flush_s = 0.0
        self.process_start = 0.0
        self.process_end = 0.0

    def _read(self, cand: Any) -> Any:
        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            return super()._read(cand)
        finally:
            w, c = time.perf_counter() - w0, time.thread_time() - c0
            with self._lock:
                self.read_wall_s += w
                self.read_cpu_s += c

    def _flush(self, *args: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        try:
            super()._flush(*args, **kwargs)
        finally:
            self.flush_s += time.perf_counter() - t0

    def _process(self, *args: Any, **kwargs: Any) -> None:
        self.process_start = time.perf_counter()
        try:
            super()._process(*args, **kwargs)
        finally:
            self.process_end = time.perf_counter()


@contextmanager
def full_size_decoding() -> Iterator[None]:
    """Make the ingest decode at full size (no JPEG draft mode), for comparison only."""
    names = vars(ingest_module)
    original = names["decode"]

    def no_draft(data: bytes, *, max_pixels: int, min_side: int | None = None) -> Any:
        return original(data, max_pixels=max_pixels, min_side=None)

    names["decode"] = no_draft
    try:
        yield
    finally:
        names["decode"] = original


def run_ingest(
    embedder: ImageEmbedder,
    images_dir: Path,
    settings: Settings,
    threads: int,
    batch: int,
    count: int,
    taxonomy_tags: int = 0,
) -> dict[str, Any]:
    timed = TimedEmbedder(embedder)
    with tempfile.TemporaryDirectory(prefix="smarttags-bench-cat-") as tmp:
        catalog = Catalog.open(Path(tmp) / "catalog.sqlite3")
        try:
            if taxonomy_tags:  # untimed: a catalog whose taxonomy is already imported
                catalog.upsert_tags(
                    TaxonomyTag(f"bench:tags/t{i:06d}", {"en": f"tag {i}"})
                    for i in range(taxonomy_tags)
                )
            ingester = TimedIngester(
                catalog,
                timed,
                IngestOptions(
                    max_pixels=settings.max_pixels,
                    threads=threads,
                    batch_size=batch,
                    progress=False,
                ),
            )
            with Meter() as m:
                report = ingester.run([images_dir])
            stored = catalog.count_embeddings(embedder.name)
        finally:
            catalog.close()
    if report.failed or report.embedded != count or stored != count:
        raise SystemExit(
            f"ingest of {images_dir} embedded {report.embedded}/{count} (stored {stored}), "
            f"{len(report.failed)} failed: {[e.message for e in report.failed[:3]]}"
        )
    rec = m.record(report.embedded)
    process_s = ingester.process_end - ingester.process_start
    rec["breakdown_s"] = {
        "scan": round(ingester.process_start - m.t0, 4),
        "infer": round(timed.embed_s, 4),
        "store": round(ingester.flush_s - timed.embed_s, 4),
        "wait_for_decode": round(process_s - ingester.flush_s, 4),
        "decode_worker_cpu": round(ingester.read_cpu_s, 4),
        "decode_worker_wall": round(ingester.read_wall_s, 4),
    }
    return rec


# -- raw forward --------------------------------------------------------------


def run_raw(embedder: ImageEmbedder, tensors: Sequence[Any], batch: int) -> dict[str, Any]:
    embedder.embed(tensors[:batch])  # warm-up, untimed
    with Meter() as m:
        for i in range(0, len(tensors), batch):
            embedder.embed(tensors[i : i + batch])
    return m.record(len(tensors))


def prepare_tensors(
    embedder: ImageEmbedder, files: Sequence[Path], settings: Settings, *, draft: bool = True
) -> tuple[list[Any], dict[str, float]]:
    """Decode + preprocess on this thread; also the per-image CPU time of each step
    (this thread's CPU time, so other processes on the machine do not inflate it)."""
    tensors: list[Any] = []
    read_s = decode_s = prep_s = 0.0
    clock = time.thread_time
    for path in files:
        t0 = clock()
        data = path.read_bytes()
        t1 = clock()
        img = decode(
            data, max_pixels=settings.max_pixels, min_side=embedder.input_size if draft else None
        )
        t2 = clock()
        tensors.append(embedder.prepare(img.image))
        t3 = clock()
        read_s, decode_s, prep_s = read_s + t1 - t0, decode_s + t2 - t1, prep_s + t3 - t2
    n = max(1, len(files))
    return tensors, {
        "images": len(files),
        "read_ms": round(1000 * read_s / n, 3),
        "decode_ms": round(1000 * decode_s / n, 3),
        "preprocess_ms": round(1000 * prep_s / n, 3),
    }


# -- inputs --------------------------------------------------------------------


def list_images(images_dir: Path) -> list[Path]:
    return sorted(
        p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def linked_subset(files: Sequence[Path], folder: Path) -> Path:
    """A folder of symlinks to ``files`` (the originals are read in place, never copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f.name).symlink_to(f.resolve())
    return folder


def make_large(
    files: Sequence[Path], folder: Path, size: tuple[int, int], workers: int, noise: float
) -> int:
    """Upscale ``files`` to ``size`` (long side follows the photo) as JPEG q90 in ``folder``.

    ``noise`` > 0 adds Gaussian grain of that sigma (8-bit levels) so the files carry as
    much entropy-coded data as camera photos do; plain upscales compress unusually well.
    """
    folder.mkdir(parents=True, exist_ok=True)
    short, long = sorted(size)
    rng = np.random.default_rng(0)
    grain = np.rint(rng.normal(0.0, noise, (256, 256, 3))).astype(np.int16) if noise else None

    def one(path: Path) -> int:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
        target = (short, long) if rgb.height >= rgb.width else (long, short)
        big = rgb.resize(target, Image.Resampling.BICUBIC)
        if grain is not None:
            arr = np.asarray(big, dtype=np.int16)
            reps = (-(-arr.shape[0] // 256), -(-arr.shape[1] // 256), 1)
            arr += np.tile(grain, reps)[: arr.shape[0], : arr.shape[1]]
            big = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        out = folder / (path.stem + ".jpg")
        big.save(out, "JPEG", quality=90)
        return out.stat().st_size

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return sum(pool.map(one, files))


# -- summary -------------------------------------------------------------------


def _quiet(run: dict[str, Any], threshold: float) -> bool:
    return run["others_cores"] is not None and run["others_cores"] <= threshold


def summarise(runs: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    rates = [r["images_per_s"] for r in runs]
    quiet = [r["images_per_s"] for r in runs if _quiet(r, threshold)]
    return {
        "median": round(statistics.median(rates), 2),
        "best": round(max(rates), 2),
        "worst": round(min(rates), 2),
        "quiet_runs": len(quiet),
        "quiet_median": round(statistics.median(quiet), 2) if quiet else None,
        "runs": runs,
    }


def ratio(
    name: str,
    num: str,
    den: str,
    results: dict[str, Any],
    target: float | None,
    threshold: float,
) -> dict[str, Any]:
    """Per-round (paired) ratios and their median: the verdict uses the rounds in which
    both cases ran on a quiet machine when there are any, else all rounds."""
    a, b = results[num]["runs"], results[den]["runs"]
    pairs = list(zip(a, b, strict=False))
    paired = [x["images_per_s"] / y["images_per_s"] for x, y in pairs]
    quiet = [
        x["images_per_s"] / y["images_per_s"]
        for x, y in pairs
        if _quiet(x, threshold) and _quiet(y, threshold)
    ]
    out: dict[str, Any] = {
        "name": name,
        "of_medians": round(results[num]["median"] / results[den]["median"], 3),
        "of_best": round(results[num]["best"] / results[den]["best"], 3),
        "paired": [round(p, 3) for p in paired],
        "paired_median": round(statistics.median(paired), 3),
        "quiet_paired": [round(p, 3) for p in quiet],
        "quiet_paired_median": round(statistics.median(quiet), 3) if quiet else None,
        "target": target,
    }
    # Images per second of this process's CPU time: less sensitive to other load, since
    # both cases can use every core; a hint, not the verdict.
    eff = [
        x["images_per_cpu_s"] / y["images_per_cpu_s"]
        for x, y in pairs
        if x.get("images_per_cpu_s") and y.get("images_per_cpu_s")
    ]
    out["per_cpu_second_paired_median"] = round(statistics.median(eff), 3) if eff else None
    out["verdict_value"] = out["quiet_paired_median"] or out["paired_median"]
    out["verdict_from"] = "quiet rounds" if quiet else "all rounds (none quiet)"
    if target is not None:
        out["met"] = out["verdict_value"] >= target
    return out


def print_table(results: dict[str, Any], ratios: list[dict[str, Any]]) -> None:
    print()
    print(
        f"{'case (images/s)':<26} {'median':>7} {'best':>7} {'worst':>7} {'quiet med':>9}"
        "  runs [others_cores]"
    )
    for name, res in results.items():
        runs = " ".join(
            f"{r['images_per_s']:.1f}"
            + ("" if r["others_cores"] is None else f"[{r['others_cores']:.2f}]")
            for r in res["runs"]
        )
        qm = "-" if res["quiet_median"] is None else f"{res['quiet_median']:.1f}"
        print(
            f"{name:<26} {res['median']:>7.1f} {res['best']:>7.1f} {res['worst']:>7.1f}"
            f" {qm:>9}  {runs}"
        )
    print()
    print(
        f"{'ratio':<34} {'verdict':>7} {'target':>7}  {'of medians':>10} {'of best':>7}"
        f" {'per CPU-s':>9}  paired (all rounds) / (quiet rounds)"
    )
    for r in ratios:
        verdict = "" if r["target"] is None else ("  MET" if r["met"] else "  NOT MET")
        target = "" if r["target"] is None else f">={r['target']}"
        eff = r["per_cpu_second_paired_median"]
        print(
            f"{r['name']:<34} {r['verdict_value']:>7.3f} {target:>7}  "
            f"{r['of_medians']:>10.3f} {r['of_best']:>7.3f} "
            f"{'-' if eff is None else f'{eff:.3f}':>9}  {r['paired']} / "
            f"{r['quiet_paired']}{verdict}"
        )
    for name, res in results.items():
        if "breakdown_s" in res["runs"][0]:
            print(f"\n{name}: where the time went (seconds, per round)")
            for r in res["runs"]:
                print(
                    "   ", {"wall": r["seconds"], **r["breakdown_s"], "own_cores": r["own_cores"]}
                )


# -- main ----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--dataset",
        type=Path,
        default=DEFAULT_DATASET,
        help="the clothing sample (a folder with images/), or an images folder",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="ingest only the first N images (sorted by name); default: all",
    )
    p.add_argument(
        "--raw-images",
        type=int,
        default=640,
        help="tensors per raw onnx round (default 640 = 20 batches of 32)",
    )
    p.add_argument(
        "--torch-batches",
        type=int,
        default=2,
        help="batches per raw torch round (torch eager is slow)",
    )
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds per case")
    p.add_argument(
        "--large-count",
        type=int,
        default=64,
        help="photos to upscale for the large-photo case (0 skips it)",
    )
    p.add_argument("--large-size", default="3000x4000", help="size of the upscaled photos")
    p.add_argument(
        "--large-noise",
        type=float,
        default=0.0,
        help="Gaussian grain (sigma, 8-bit levels) added to the upscaled photos "
        "to make camera-like file sizes; default 0 (plain upscale)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="embedder and decode threads (default: the settings default)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="default: the settings default")
    p.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="where the ONNX export is cached (default: the settings' models dir)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=8.0,
        help="before each measurement wait up to this many seconds for the rest "
        "of the machine to go idle (0: do not wait)",
    )
    p.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.25,
        help="'quiet' = other processes use at most this many cores",
    )
    p.add_argument(
        "--taxonomy-tags",
        type=int,
        default=0,
        help="also ingest into a catalog holding this many taxonomy tags "
        "(case ingest_onnx_taxonomy; default 0: not run)",
    )
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "embedding.json")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    settings = Settings()
    threads = args.threads or settings.threads
    batch = args.batch_size or settings.batch_size
    models_dir = args.models_dir or settings.models_dir
    images_dir = args.dataset / "images" if (args.dataset / "images").is_dir() else args.dataset
    all_files = list_images(images_dir)
    if not all_files:
        raise SystemExit(f"no images in {images_dir}; pass --dataset")
    files = all_files[: args.limit] if args.limit else all_files
    raw_files = files[: args.raw_images]
    w, _, h = args.large_size.partition("x")
    large_size = (int(w), int(h))

    info = machine_info()
    print(
        f"machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, "
        f"Python {info['python']}, onnxruntime {info['onnxruntime']}, torch {info['torch']}"
    )
    print(
        f"threads={threads} batch={batch} ingest={len(files)} images from {images_dir}, "
        f"raw={len(raw_files)} tensors, repeats={args.repeats}"
    )

    t0 = time.perf_counter()
    onnx = create_embedder(EMBEDDER, EmbedderOptions(models_dir, runtime="onnx", threads=threads))
    load_onnx_s = time.perf_counter() - t0
    if getattr(onnx, "runtime", "onnx") != "onnx":
        raise SystemExit("the ONNX runtime is unavailable (the embedder fell back to torch)")
    tensors, decode_cost = prepare_tensors(onnx, raw_files, settings)
    print(f"one-thread CPU cost per image (sample): {decode_cost}")
    torch_emb: ImageEmbedder | None = None
    load_torch_s = None
    if not args.skip_torch:
        t0 = time.perf_counter()
        torch_emb = create_embedder(
            EMBEDDER, EmbedderOptions(models_dir, runtime="torch", threads=threads)
        )
        load_torch_s = time.perf_counter() - t0
        torch_tensors = tensors[: batch * args.torch_batches]
        torch_emb.embed(torch_tensors[:batch])  # first call is slow; then run_raw warms again
        same = np.abs(torch_emb.embed(tensors[:4]) - onnx.embed(tensors[:4])).max()
        print(f"max |onnx - torch| on 4 images: {same:.2e}")

    cases: dict[str, Callable[[], dict[str, Any]]] = {}
    tmp_root = Path(tempfile.mkdtemp(prefix="smarttags-bench-"))
    large_bytes = 0
    large_cost: dict[str, Any] = {}
    try:
        ingest_dir = (
            images_dir
            if len(files) == len(all_files)
            else linked_subset(files, tmp_root / "subset")
        )
        cases["raw_onnx"] = lambda: run_raw(onnx, tensors, batch)
        cases["ingest_onnx"] = lambda: run_ingest(
            onnx, ingest_dir, settings, threads, batch, len(files)
        )
        if args.taxonomy_tags > 0:
            cases["ingest_onnx_taxonomy"] = lambda: run_ingest(
                onnx, ingest_dir, settings, threads, batch, len(files), args.taxonomy_tags
            )
        if torch_emb is not None:
            te = torch_emb
            cases["raw_torch"] = lambda: run_raw(te, torch_tensors, batch)
        if args.large_count > 0:
            t0 = time.perf_counter()
            large_dir = tmp_root / "large"
            large_files = files[: args.large_count]
            large_bytes = make_large(large_files, large_dir, large_size, threads, args.large_noise)
            print(
                f"made {len(large_files)} {large_size[0]}x{large_size[1]} JPEGs "
                f"({large_bytes / len(large_files) / 2**20:.1f} MiB each) in "
                f"{time.perf_counter() - t0:.1f}s"
            )
            big = list_images(large_dir)
            large_tensors, large_cost["draft"] = prepare_tensors(onnx, big[:16], settings)
            _, large_cost["full_size"] = prepare_tensors(onnx, big[:8], settings, draft=False)
            large_tensors += prepare_tensors(onnx, big[16:], settings)[0]
            print(f"one-thread CPU cost per image (12 MP): {large_cost}")
            n_big = len(big)
            cases["large_raw_onnx"] = lambda: run_raw(onnx, large_tensors, batch)
            cases["large_ingest_draft"] = lambda: run_ingest(
                onnx, large_dir, settings, threads, batch, n_big
            )

            def no_draft() -> dict[str, Any]:
                with full_size_decoding():
                    return run_ingest(onnx, large_dir, settings, threads, batch, n_big)

            cases["large_ingest_full_decode"] = no_draft

        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
        for rnd in range(args.repeats):
            for name, fn in cases.items():
                time.sleep(0.3)  # let worker threads of the previous case go idle
                seen = (
                    wait_for_quiet(args.quiet_wait, args.quiet_threshold)
                    if args.quiet_wait > 0
                    else {}
                )
                rec = {**fn(), **seen}
                runs[name].append(rec)
                print(
                    f"round {rnd + 1}/{args.repeats} {name:<26} "
                    f"{rec['images_per_s']:8.1f} images/s  "
                    f"(own {rec['own_cores']} cores, others {rec['others_cores']})",
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    q = args.quiet_threshold
    results = {name: summarise(r, q) for name, r in runs.items()}
    ratios = [
        ratio("ingest / raw onnx", "ingest_onnx", "raw_onnx", results, TARGET_INGEST_VS_RAW, q)
    ]
    if "ingest_onnx_taxonomy" in results:
        ratios.append(
            ratio(
                f"ingest, {args.taxonomy_tags} tags / no tags",
                "ingest_onnx_taxonomy",
                "ingest_onnx",
                results,
                None,
                q,
            )
        )
    if "raw_torch" in results:
        ratios.append(
            ratio("raw onnx / raw torch", "raw_onnx", "raw_torch", results, TARGET_ONNX_VS_TORCH, q)
        )
    if "large_ingest_draft" in results:
        ratios += [
            ratio(
                "large: draft / full-size decode",
                "large_ingest_draft",
                "large_ingest_full_decode",
                results,
                None,
                q,
            ),
            ratio(
                "large: ingest (draft) / raw onnx",
                "large_ingest_draft",
                "large_raw_onnx",
                results,
                None,
                q,
            ),
        ]
    print_table(results, ratios)

    total_s = time.perf_counter() - started
    out = {
        "benchmark": "embedding_throughput",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": info,
        "config": {
            "embedder": EMBEDDER,
            "threads": threads,
            "batch_size": batch,
            "dataset": str(images_dir),
            "ingest_images": len(files),
            "raw_images": len(raw_files),
            "torch_images": len(tensors[: batch * args.torch_batches])
            if torch_emb is not None
            else 0,
            "repeats": args.repeats,
            "large_count": args.large_count,
            "large_size": list(large_size),
            "large_noise": args.large_noise,
            "large_mean_bytes": round(large_bytes / args.large_count) if args.large_count else 0,
            "models_dir": str(models_dir),
            "quiet_threshold_cores": q,
            "quiet_wait_s": args.quiet_wait,
            "taxonomy_tags": args.taxonomy_tags,
        },
        "setup": {
            "load_onnx_s": round(load_onnx_s, 3),
            "load_torch_s": None if load_torch_s is None else round(load_torch_s, 3),
            "one_thread_cost_ms": {"sample": decode_cost, **large_cost},
        },
        "results": results,
        "ratios": ratios,
        "total_seconds": round(total_s, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out} (total {total_s:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
