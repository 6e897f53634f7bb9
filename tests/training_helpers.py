"""A catalog with synthetic stored vectors, for fast tag-model tests.

Assets are real catalog rows and the vectors real stored embeddings; only the pixels are
skipped (the classifier works on stored vectors, never on images). End-to-end tests with
ingested images and the real model live in test_training_cli.py and test_real_model.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.catalog import Catalog
from indexer.colour import COLOUR_LABEL, DIM
from indexer.models import FileFacts, Metadata, TaxonomyTag
from smarttags.service import SmartTags
from training.spec import ModelSpec

EMBEDDER = "fake"
D = 32


def add_assets(
    catalog: Catalog,
    vectors: np.ndarray,
    ids: Sequence[str],
    *,
    colours: np.ndarray | None = None,
    embed: bool = True,
) -> list[int]:
    """Catalog rows for ``ids`` with ``vectors`` stored as current embeddings."""
    keys = []
    with catalog.transaction():
        for asset_id in ids:
            sha = hashlib.sha256(asset_id.encode()).hexdigest()
            facts = FileFacts(f"/src{asset_id}", 1, 1, sha, "JPEG", 8, 8, Metadata())
            keys.append(catalog.upsert_asset(asset_id, facts, Metadata())[0])
        if embed:
            shas = [hashlib.sha256(a.encode()).hexdigest() for a in ids]
            catalog.put_embeddings(EMBEDDER, list(zip(keys, shas, vectors, strict=True)))
            if colours is not None:
                catalog.put_embeddings(COLOUR_LABEL, list(zip(keys, shas, colours, strict=True)))
    return keys


def clusters(
    counts: dict[str, int], *, spread: float = 0.35, seed: int = 0, dim: int = D
) -> tuple[dict[str, list[str]], np.ndarray, list[str], np.ndarray]:
    """Examples per tag drawn around one random centre per tag: (tag -> ids, vectors, ids,
    centres)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(counts), dim))
    by_tag: dict[str, list[str]] = {}
    vecs, ids = [], []
    for c, (tag, n) in enumerate(counts.items()):
        leaf = tag.rsplit("/", 1)[-1]
        for i in range(n):
            asset = f"/lib/{leaf}/{i:03d}.jpg"
            by_tag.setdefault(tag, []).append(asset)
            ids.append(asset)
            vecs.append(centres[c] + spread * rng.normal(size=dim))
    return by_tag, np.array(vecs, np.float32), ids, centres


def taxonomy(catalog: Catalog, tags: Sequence[str]) -> None:
    catalog.upsert_tags(TaxonomyTag(t, {"en": t.rsplit("/", 1)[-1].title()}) for t in tags)


def grey_colours(n: int) -> np.ndarray:
    out = np.zeros((n, DIM), np.float32)
    out[:, -1] = 1.0
    return out


def open_catalog(tmp_path: Path) -> Catalog:
    return Catalog.open(tmp_path / "catalog.sqlite")


WEAR = ("wear:type/hat", "wear:type/shirt", "wear:type/shoe")


def wear_library(app: SmartTags) -> None:
    """3 garment types x 40 assets with stored vectors; model 'wear' trained on 15 of
    each and active."""
    by_tag, vecs, ids, _ = clusters(dict.fromkeys(WEAR, 40), spread=0.8)
    add_assets(app.catalog, vecs, ids)
    taxonomy(app.catalog, WEAR)
    examples = {t: tuple(by_tag[t][:15]) for t in WEAR}
    app.tag_models.create(ModelSpec(name="wear", title="Wear", examples=examples))
    app.tag_models.train("wear")
