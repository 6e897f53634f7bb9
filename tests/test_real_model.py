"""The real default model (EfficientNet-Lite0 via ONNX) on the CC0 clothing sample."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from smarttags.cli import cli
from smarttags.service import SmartTags
from smarttags.settings import Settings

pytestmark = [pytest.mark.real_model, pytest.mark.slow]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, clothing: Path) -> tuple[Path, str]:
    """The README's demo, once per session: ingests all 1,549 photos with the real model."""
    home = tmp_path_factory.mktemp("demo-home")
    result = CliRunner().invoke(
        cli,
        ["--home", str(home), "demo", "--dataset", str(clothing)],
        env={"SMARTTAGS_EMBEDDER": "efficientnet-lite0", "SMARTTAGS_RUNTIME": "onnx"},
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return home, result.output


def test_demo_ingests_the_sample_and_shows_similar_images(
    demo_run: tuple[Path, str], clothing_labels: dict[str, str]
) -> None:
    _, out = demo_run
    assert f"{len(clothing_labels)} added" in out
    assert "0 failed" in out
    assert f"vector index: {len(clothing_labels)} vectors (exact)" in out
    assert "neighbours are Shoes" in out
    assert "15 garment tags" in out
    assert "search 'shoes': 10 hits, tiers {1: 10}" in out  # the hand-tagged ones
    assert "recall@100 0.100" in out


def test_shoe_neighbours_are_mostly_shoes(
    demo_run: tuple[Path, str], clothing_labels: dict[str, str]
) -> None:
    home, _ = demo_run
    shoes = sorted(f for f, label in clothing_labels.items() if label == "Shoes")
    precisions = []
    with SmartTags(Settings(home=home)) as svc:
        for f in shoes:
            hits = svc.similar(f"/clothing/{f}", k=10)
            assert len(hits) == 10
            assert all(-1.0 <= h.score <= 1.0 for h in hits)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            same = sum(
                clothing_labels[h.asset.id.removeprefix("/clothing/")] == "Shoes" for h in hits
            )
            precisions.append(same / 10)
    mean = sum(precisions) / len(precisions)
    majority = sum(p > 0.5 for p in precisions) / len(precisions)
    # Measured on this sample: mean precision@10 0.974, 99% of shoe photos with a majority.
    assert mean >= 0.93, mean
    assert majority >= 0.95, majority


def test_demo_trains_a_tag_model_and_prints_its_report(demo_run: tuple[Path, str]) -> None:
    home, out = demo_run
    assert "Tag model 'garment-type' (Garment type), version 1: 6 tags, 180 examples" in out
    accuracy = float(re.search(r"Cross-validated top-1 accuracy ([0-9.]+)", out)[1])  # type: ignore[index]
    precision = float(re.search(r"of them right \(([0-9.]+)%\)", out)[1])  # type: ignore[index]
    # Measured on this sample: cross-validated accuracy 0.917, dry-run precision 99.3%.
    assert accuracy >= 0.85, accuracy
    assert precision >= 95.0, precision
    assert "Confusion matrix" in out
    # tagging cycle, search with smart tags, moderation (measured: recall@100 0.100 -> 0.706)
    assert "1549 photos, model garment-type@1: 1549 classified, 0 skipped, 0 failed" in out
    recalls = [float(x) for x in re.findall(r"recall@100 ([0-9.]+)", out)]
    assert recalls[0] == pytest.approx(0.1) and recalls[1] >= 0.6, recalls
    assert re.search(r"tier 2 .* \(smart tag apparel:garment/shoes 0\.\d\d\)", out)
    assert re.search(r"search 'dress' tier 2, rank \d+ -> not found; remembered", out)
    assert re.search(r"search 'dress' tier 2, rank \d+ -> tier 1, rank \d+", out)
    with SmartTags(Settings(home=home)) as svc:
        [v] = svc.tag_models.versions("garment-type")
        assert (v.status, v.active) == ("trained", True)


def test_rerunning_the_demo_changes_nothing(demo_run: tuple[Path, str], clothing: Path) -> None:
    home, _ = demo_run
    result = CliRunner().invoke(cli, ["--home", str(home), "demo", "--dataset", str(clothing)])
    assert result.exit_code == 0, result.output
    assert "0 added, 1549 unchanged, 0 embedded" in result.output
