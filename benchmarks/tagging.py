"""Tagging throughput: retagging stored embeddings after a model change, and tagging new
photos against the raw embedding rate, measured side by side in one run.

Run from the repository root::

    .venv/bin/python benchmarks/tagging.py [--assets 100000] [--dim 1280] \
        [--out benchmarks/results/tagging.json]

1. **Retag** (target >= 50,000 assets/s, no image decoded): a catalog in a temp dir with
   ``--assets`` synthetic assets and stored ``--dim``-d vectors (15 "types" as Gaussian
   clusters), one tag model of 15 tags x 30 examples. Version 1 is trained, activated
   and applied; then version 2 (one example more) is trained and activated, and the
   timed cycle re-applies it to every asset: read vectors, classify, write smart tags,
   skip state and search outbox entries, per chunk in one transaction. The search
   sync that follows (documents to the embedded backend) is timed separately.
2. **New photos** (``--photos`` from the clothing sample, default 320): ``smarttags
   ingest --tag`` end to end (read, decode, embed, store, classify with a model
   trained on the same sample, write, sync) against the raw ONNX forward pass on the
   same photos' tensors, in alternating rounds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from indexer.catalog import Catalog
from indexer.models import FileFacts, Metadata, TaxonomyTag
from smarttags.service import SmartTags
from smarttags.settings import Settings
from training.spec import ModelSpec

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared/datasets/clothing"


def build_catalog(home: Path, n: int, dim: int, types: int = 15) -> dict[str, list[str]]:
    """``n`` assets with stored vectors labelled ``fake`` in ``home``; ids per type."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(types, dim)).astype(np.float32)
    catalog = Catalog.open(home / "catalog.sqlite3")
    by_type: dict[str, list[str]] = {}
    chunk = 5000
    for start in range(0, n, chunk):
        rows = []
        with catalog.transaction():
            for i in range(start, min(n, start + chunk)):
                t = i % types
                asset = f"/bench/t{t:02d}/{i:07d}.jpg"
                sha = hashlib.sha256(asset.encode()).hexdigest()
                facts = FileFacts(f"/src{asset}", 1, 1, sha, "JPEG", 8, 8, Metadata())
                key, _ = catalog.upsert_asset(asset, facts, Metadata(title=f"photo {i}"))
                vec = centres[t] + 1.5 * rng.normal(size=dim).astype(np.float32)
                rows.append((key, sha, np.abs(vec)))
                by_type.setdefault(f"bench:type/t{t:02d}", []).append(asset)
            catalog.put_embeddings("fake", rows)
    catalog.upsert_tags(TaxonomyTag(t, {"en": f"type {t[-2:]}"}) for t in by_type)
    catalog.close()
    return by_type


def retag(n: int, dim: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="st-bench-tag-") as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        by_type = build_catalog(home, n, dim)
        built = time.perf_counter() - t0
        with SmartTags(Settings(home=home, embedder="fake")) as svc:
            svc.reindex(full=True)  # the search index holds every asset
            svc.vector_index()  # the FAISS index, as ingest keeps it after embedding
            examples = {t: tuple(ids[:30]) for t, ids in by_type.items()}
            svc.tag_models.create(ModelSpec(name="types", title="Types", examples=examples))
            svc.tag_models.train("types")
            first = svc.tag(["/bench/"])
            sync1 = first.sync
            extra = next(iter(by_type))
            svc.tag_models.add_examples("types", extra, [by_type[extra][40]])
            started = time.perf_counter()
            svc.tag_models.train("types", activate=True)
            trained = time.perf_counter() - started
        # cold: a fresh process (the CLI): the FAISS index file is memory-mapped
        with SmartTags(Settings(home=home, embedder="fake")) as svc:
            started = time.perf_counter()
            report = svc.tag(["/bench/"], sync=False)
            seconds = time.perf_counter() - started
            started = time.perf_counter()
            sync = svc.sync_pending()
            sync_seconds = time.perf_counter() - started
            # warm: the same process again (pages of the index already read)
            svc.tag_models.train("types", activate=True)
            started = time.perf_counter()
            warm = svc.tag(["/bench/"], sync=False)
            warm_seconds = time.perf_counter() - started
        return {
            "assets": n,
            "dim": dim,
            "catalog_build_seconds": round(built, 1),
            "first_cycle": first.as_dict() | {"sync": sync1},
            "train_v2_seconds": round(trained, 2),
            "retag_seconds": round(seconds, 3),
            "retag_assets_per_s": round(report.classified / seconds),
            "retag": report.as_dict(),
            "warm_retag_seconds": round(warm_seconds, 3),
            "warm_retag_assets_per_s": round(warm.classified / warm_seconds),
            "sync_seconds": round(sync_seconds, 2),
            "sync_docs_per_s": round(sync.sent / sync_seconds) if sync_seconds else None,
        }


def new_photos(count: int, rounds: int) -> dict[str, Any]:
    """``ingest --tag`` of ``count`` sample photos vs. the raw ONNX forward on them."""
    import csv
    import shutil

    from indexer.embedders import EmbedderOptions, create_embedder
    from indexer.images import decode

    with (DATASET / "labels.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["label"] not in ("Other", "Not sure")]
    rng = np.random.default_rng(1)
    chosen = [rows[i] for i in rng.permutation(len(rows))]
    train_rows, test_rows = chosen[:300], chosen[300 : 300 + count]
    results: dict[str, list[float]] = {"raw_onnx": [], "ingest_tag": []}
    with tempfile.TemporaryDirectory(prefix="st-bench-new-") as tmp:
        tmpdir = Path(tmp)
        base = tmpdir / "base"
        with SmartTags(Settings(home=base)) as svc:
            train_dir = tmpdir / "train"
            train_dir.mkdir()
            for r in train_rows:
                os.symlink(DATASET / r["file"], train_dir / Path(r["file"]).name)
            svc.ingest([train_dir], prefix="/train", progress=False)
            labels = sorted({r["label"] for r in train_rows})
            svc.catalog.upsert_tags(
                TaxonomyTag(f"bench:garment/{lab.lower()}", {"en": lab}) for lab in labels
            )
            examples: dict[str, list[str]] = {}
            for r in train_rows:
                examples.setdefault(f"bench:garment/{r['label'].lower()}", []).append(
                    f"/train/{Path(r['file']).name}"
                )
            spec = {t: tuple(a[:30]) for t, a in examples.items() if len(a) >= 10}
            svc.tag_models.create(ModelSpec(name="garment", title="Garment", examples=spec))
            svc.tag_models.train("garment")
        emb = create_embedder(
            "efficientnet-lite0", EmbedderOptions(models_dir=base / "models", threads=2)
        )
        tensors = [
            emb.prepare(decode((DATASET / r["file"]).read_bytes(), max_pixels=10**8,
                               min_side=224).image)
            for r in test_rows
        ]  # fmt: skip
        emb.embed(tensors[:32])  # warm-up
        for _ in range(rounds):
            started = time.perf_counter()
            for i in range(0, len(tensors), 32):
                emb.embed(tensors[i : i + 32])
            results["raw_onnx"].append(len(tensors) / (time.perf_counter() - started))
            home = tmpdir / "round"
            shutil.copytree(base, home, dirs_exist_ok=False)
            new_dir = tmpdir / "new"
            new_dir.mkdir()
            for r in test_rows:
                os.symlink(DATASET / r["file"], new_dir / Path(r["file"]).name)
            with SmartTags(Settings(home=home)) as svc:
                started = time.perf_counter()
                report = svc.ingest([new_dir], prefix="/new", progress=False, tag=True)
                seconds = time.perf_counter() - started
            assert report.tagging is not None and report.tagging["classified"] == len(test_rows)
            results["ingest_tag"].append(len(test_rows) / seconds)
            shutil.rmtree(home)
            shutil.rmtree(new_dir)
    ratios = [a / b for a, b in zip(results["ingest_tag"], results["raw_onnx"], strict=True)]
    return {
        "photos": len(test_rows),
        "rounds": results,
        "median_images_per_s": {k: round(statistics.median(v), 1) for k, v in results.items()},
        "ratio_ingest_tag_over_raw": [round(r, 3) for r in ratios],
        "median_ratio": round(statistics.median(ratios), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assets", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--photos", type=int, default=320)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-photos", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/tagging.json")
    args = ap.parse_args()
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_before": os.getloadavg(),
    }
    out["retag"] = r = retag(args.assets, args.dim)
    print(
        f"retag {r['assets']} assets (dim {r['dim']}) after a model change: "
        f"{r['retag_seconds']} s = {r['retag_assets_per_s']:,} assets/s "
        f"({r['retag']['tags_written']} smart tags written); with the FAISS index in memory "
        f"{r['warm_retag_seconds']} s = {r['warm_retag_assets_per_s']:,} assets/s; search sync of "
        f"{r['retag']['changed_assets']} changed docs {r['sync_seconds']} s"
    )
    if not args.skip_photos:
        out["new_photos"] = p = new_photos(args.photos, args.rounds)
        print(
            f"new photos: ingest --tag {p['median_images_per_s']['ingest_tag']} img/s vs raw "
            f"onnx {p['median_images_per_s']['raw_onnx']} img/s: ratio {p['median_ratio']}"
        )
    out["load_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
