"""Where does end-to-end ingest lose to the raw forward? A small what-if matrix.

Run from the repository root (about 2 minutes on an idle 2-core machine)::

    .venv/bin/python benchmarks/ingest_scheduling.py [--rounds 2] [--out FILE]

Alternating rounds of, on the clothing sample:

* raw onnx forward with onnxruntime's intra-op spin-waiting on
  (``session.intra_op.allow_spinning=1``, onnxruntime's default) and off (``=0``);
* end-to-end ingest for each spinning setting with ``threads`` decode workers (today)
  and with one decode worker.

Diagnostic only: both sessions are built here (same options as the package otherwise)
and swapped into the embedder's private ``_session``; nothing in the package changes.
Shares its helpers with ``embedding_throughput.py`` (same folder).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from embedding_throughput import (
    DEFAULT_DATASET,
    EMBEDDER,
    REPO,
    list_images,
    machine_info,
    prepare_tensors,
    run_ingest,
    run_raw,
    wait_for_quiet,
)

from indexer.embedders import EmbedderOptions, create_embedder
from indexer.embedders.efficientnet import EXPORT_VERSION
from smarttags.settings import Settings


def onnx_session(path: Path, threads: int, spin: bool) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def step_costs(files: Sequence[Path], settings: Settings, repeats: int = 3) -> dict[str, float]:
    """CPU ms per image of each step of the ingest worker, best of ``repeats`` passes
    (this thread's CPU time, so other processes inflate it less than wall time)."""
    import hashlib
    import io

    import numpy as np
    from PIL import Image, ImageOps

    from indexer.embedders.efficientnet import INPUT_SIZE, preprocess
    from indexer.images import decode
    from indexer.metadata import read_embedded

    datas = [f.read_bytes() for f in files]
    decoded = [decode(d, max_pixels=settings.max_pixels, min_side=INPUT_SIZE) for d in datas]
    tensor = preprocess(decoded[0].image)
    small = Image.new("RGB", (INPUT_SIZE, INPUT_SIZE), (90, 120, 150))

    def jpeg_only(data: bytes) -> None:
        im = Image.open(io.BytesIO(data))
        im.draft("RGB", (INPUT_SIZE, INPUT_SIZE))
        im.load()

    steps: dict[str, tuple[Callable[[Any], Any], Sequence[Any]]] = {
        "read_file": (lambda f: f.read_bytes(), files),
        "sha256": (lambda d: hashlib.sha256(d).hexdigest(), datas),
        "jpeg_decode_only": (jpeg_only, datas),
        "decode()": (
            lambda d: decode(d, max_pixels=settings.max_pixels, min_side=INPUT_SIZE),
            datas,
        ),
        "exif_transpose": (lambda d: ImageOps.exif_transpose(d.info), decoded),
        "read_embedded": (lambda d: read_embedded(d.info), decoded),
        "preprocess()": (lambda d: preprocess(d.image), decoded),
        # preprocess() of a 224x224 image is its normalising part alone (the resize of an
        # image already at 224 is a copy); the rest of preprocess() is the resize.
        "preprocess() at 224x224": (lambda i: preprocess(small), range(len(files))),
        "np.stack per image (batch 32)": (
            lambda i: np.stack([tensor] * 32),
            range(max(1, len(files) // 32)),
        ),
    }
    out: dict[str, float] = {}
    for name, (fn, items) in steps.items():
        best = float("inf")
        for _ in range(repeats):
            t0 = time.thread_time()
            for item in items:
                fn(item)
            best = min(best, (time.thread_time() - t0) / len(items))
        if name.startswith("np.stack"):
            best /= 32
        out[name] = round(1000 * best, 3)
    out["resize (difference)"] = round(out["preprocess()"] - out["preprocess() at 224x224"], 3)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--raw-images", type=int, default=640)
    p.add_argument("--quiet-wait", type=float, default=15.0)
    p.add_argument("--quiet-threshold", type=float, default=0.25)
    p.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "ingest_scheduling.json"
    )
    args = p.parse_args(argv)

    settings = Settings()
    threads, batch = settings.threads, settings.batch_size
    images_dir = args.dataset / "images" if (args.dataset / "images").is_dir() else args.dataset
    files = list_images(images_dir)
    emb = create_embedder(
        EMBEDDER, EmbedderOptions(settings.models_dir, runtime="onnx", threads=threads)
    )
    model = settings.models_dir / f"efficientnet-lite0-pooled-v{EXPORT_VERSION}.onnx"
    sessions = {spin: onnx_session(model, threads, spin) for spin in (True, False)}
    tensors, _ = prepare_tensors(emb, files[: args.raw_images], settings)
    costs = step_costs(files[:200], settings)
    print("CPU ms per image, one thread (best of 3 passes over 200 photos):")
    for name, ms in costs.items():
        print(f"    {name:<32} {ms:7.3f}")

    cases: dict[str, tuple[bool, Callable[[], dict[str, Any]]]] = {}
    for spin in (True, False):
        tag = "spin on" if spin else "spin off"
        cases[f"raw onnx, {tag}"] = (spin, lambda: run_raw(emb, tensors, batch))
        for workers in sorted({threads, 1}, reverse=True):
            cases[f"ingest, {tag}, {workers} decode worker(s)"] = (
                spin,
                partial(run_ingest, emb, images_dir, settings, workers, batch, len(files)),
            )

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
    for rnd in range(args.rounds):
        for name, (spin, fn) in cases.items():
            emb._session = sessions[spin]  # type: ignore[attr-defined]
            time.sleep(0.3)
            seen = wait_for_quiet(args.quiet_wait, args.quiet_threshold)
            rec = {**fn(), **seen}
            runs[name].append(rec)
            print(
                f"round {rnd + 1} {name:<40} {rec['images_per_s']:7.1f} images/s "
                f"(others {rec['others_cores']})",
                flush=True,
            )

    print()
    summary = {}
    for name, rs in runs.items():
        quiet = [r["images_per_s"] for r in rs if (r["others_cores"] or 0) <= args.quiet_threshold]
        summary[name] = {
            "runs": [r["images_per_s"] for r in rs],
            "others_cores": [r["others_cores"] for r in rs],
            "quiet_median": round(statistics.median(quiet), 2) if quiet else None,
        }
        print(
            f"{name:<40} quiet median {summary[name]['quiet_median']}  "
            f"all {summary[name]['runs']}  others {summary[name]['others_cores']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "ingest_scheduling",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "threads": threads,
        "batch_size": batch,
        "images": len(files),
        "step_cpu_ms": costs,
        "summary": summary,
        "runs": runs,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
