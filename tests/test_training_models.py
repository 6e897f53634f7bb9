"""Training: the version lifecycle, calibration, the open-set rule, rollback and the diff."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from indexer.catalog import Catalog
from indexer.colour import DIM
from training.classifier import (
    LinearClassifier,
    _Lda,
    expected_calibration_error,
    fit,
    fit_temperature,
    softmax,
    threshold_for_precision,
)
from training.errors import TrainingError, UnknownModelError
from training.service import TagModels
from training.spec import ModelSpec

from .training_helpers import EMBEDDER, add_assets, clusters, open_catalog, taxonomy

TAGS = ("wear:type/shirt", "wear:type/shoe", "wear:type/hat")


def _library(
    tmp_path: Path, counts: dict[str, int], spread: float = 0.8, extra: int = 0
) -> tuple[Catalog, TagModels, dict[str, list[str]], np.ndarray]:
    """``counts`` examples per tag plus ``extra`` more photos of each tag (not examples)."""
    catalog = open_catalog(tmp_path)
    all_counts = {t: n + extra for t, n in counts.items()}
    by_tag, vecs, ids, centres = clusters(all_counts, spread=spread)
    add_assets(catalog, vecs, ids)
    taxonomy(catalog, list(counts))
    tm = TagModels(catalog, EMBEDDER)
    examples = {t: tuple(by_tag[t][:n]) for t, n in counts.items()}
    tm.create(ModelSpec(name="m", title="M", examples=examples))
    return catalog, tm, by_tag, centres


def test_lda_matches_scikit_learn_for_every_shrinkage() -> None:
    rng = np.random.default_rng(0)
    for n, d in ((300, 40), (45, 120)):  # more examples than dimensions, and fewer
        y = np.repeat(np.arange(3), n // 3)
        x = rng.normal(size=(n, d)) + 0.3 * y[:, None]
        lda = _Lda(x, y, 3)
        for s in (0.5, 0.9):
            ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=s, priors=[1 / 3] * 3)
            w, b = lda.solve(s)
            expected = ref.fit(x, y).decision_function(x) - np.log(1 / 3)
            assert np.abs(x @ w + b - expected).max() < 1e-8


def test_status_goes_pending_training_trained(tmp_path: Path) -> None:
    _, tm, _, _ = _library(tmp_path, dict.fromkeys(TAGS, 12))
    seen: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(tm.versions("m")[-1].status)
        return fit(*args, **kwargs)

    outcome = tm.train("m", fitter=spy)
    assert seen == ["training"]
    [v] = tm.versions("m")
    assert (v.version, v.status, v.active, v.reason) == (1, "trained", True, "")
    assert outcome.version == 1 and outcome.activated
    clf = tm.classifier("m", 1)
    assert clf.tags == tuple(sorted(TAGS)) and clf.weights.shape == (32, 3)


def test_a_failing_fit_leaves_a_failed_version_with_the_reason(tmp_path: Path) -> None:
    _, tm, _, _ = _library(tmp_path, dict.fromkeys(TAGS, 12))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError("out of memory while fitting")

    with pytest.raises(TrainingError, match="training version 1 of 'm' failed: MemoryError"):
        tm.train("m", fitter=broken)
    [v] = tm.versions("m")
    assert v.status == "failed" and "out of memory while fitting" in v.reason
    assert not v.active
    with pytest.raises(UnknownModelError, match="version 1 of 'm' is failed"):
        tm.activate("m", 1)


def test_non_finite_stored_vectors_fail_training_with_the_reason(tmp_path: Path) -> None:
    catalog, tm, by_tag, _ = _library(tmp_path, dict.fromkeys(TAGS, 12))
    key = catalog.asset_keys([by_tag[TAGS[0]][0]])[by_tag[TAGS[0]][0]]
    sha = catalog.file_state(by_tag[TAGS[0]][0])[3]  # type: ignore[index]
    with catalog.transaction():
        catalog.put_embeddings(EMBEDDER, [(key, sha, np.full(32, np.nan, np.float32))])
    with pytest.raises(TrainingError, match="not finite"):
        tm.train("m")
    assert tm.versions("m")[-1].status == "failed"


def test_a_killed_run_is_marked_failed(tmp_path: Path) -> None:
    catalog, _, _, _ = _library(tmp_path, dict.fromkeys(TAGS, 12))
    dead = TagModels(catalog, EMBEDDER, pid_alive=lambda pid: False)
    version = dead.store.new_version("m", EMBEDDER, pid=999_999)
    alive = TagModels(catalog, EMBEDDER, pid_alive=lambda pid: True)
    assert alive.versions("m")[0].status == "pending"  # its process still runs: left alone
    dead.store.set_status("m", version, "training")
    [v] = dead.versions("m")
    assert v.status == "failed" and "interrupted" in v.reason and "999999" in v.reason


def test_temperature_recovers_a_known_scale() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4000, 5)) * 3
    p = softmax(z / 2.0)
    y = np.array([rng.choice(5, p=row) for row in p])
    assert fit_temperature(z, y) == pytest.approx(2.0, rel=0.1)


def test_confidences_are_calibrated_on_held_out_examples(tmp_path: Path) -> None:
    _by_tag, vecs, _, _centres = clusters(dict.fromkeys(TAGS, 240), spread=2.2, seed=2)
    y = np.repeat(np.arange(3), 240)
    train = np.r_[[np.arange(i * 240, i * 240 + 40) for i in range(3)]].ravel()
    held = np.setdiff1d(np.arange(len(y)), train)
    result = fit(vecs[train], y[train], TAGS)
    proba = result.classifier.proba(vecs[held])
    correct = proba.argmax(axis=1) == y[held]
    assert 0.6 < correct.mean() < 0.98  # a task where calibration matters
    held_ece = expected_calibration_error(proba.max(axis=1), correct)
    raw_ece = expected_calibration_error(
        softmax(vecs[held] @ result.classifier.weights + result.classifier.bias).max(axis=1),
        correct,
    )
    assert held_ece < 0.06, held_ece
    assert held_ece < raw_ece
    assert 0.0 <= result.cv.ece < 0.1  # the reported, cross-fitted number


def test_open_set_photos_of_no_tag_get_none(tmp_path: Path) -> None:
    _by_tag, vecs, _, centres = clusters(dict.fromkeys(TAGS, 130), spread=0.9, seed=3)
    y = np.repeat(np.arange(3), 130)
    train = np.r_[[np.arange(i * 130, i * 130 + 30) for i in range(3)]].ravel()
    held = np.setdiff1d(np.arange(len(y)), train)
    result = fit(vecs[train], y[train], TAGS, target_precision=0.9)
    clf = result.classifier
    rng = np.random.default_rng(9)
    unknown = rng.normal(size=(300, centres.shape[1])) * 1.2  # fits none of the tags
    out = clf.predict(unknown.astype(np.float32))
    assert out.applied.mean() <= 0.1, out.applied.mean()
    assert (out.probability > 0.9).mean() > 0.3  # a plain softmax would have tagged them
    inside = clf.predict(vecs[held])
    given = inside.applied
    assert given.mean() > 0.5
    assert (inside.tag[given] == y[held][given]).mean() >= 0.9
    assert (clf.thresholds < 1.0).all()


def test_threshold_is_the_lowest_confidence_reaching_the_precision() -> None:
    conf = np.array([0.99, 0.95, 0.9, 0.85, 0.8, 0.7])
    correct = np.array([True, True, True, True, False, True])
    assert threshold_for_precision(conf, correct, 0.8) == 0.7  # 5 of 6 right
    assert threshold_for_precision(conf, correct, 0.9) == 0.85
    assert threshold_for_precision(conf, ~correct, 0.9) == 1.0  # never reached


def test_classifier_round_trips_through_bytes(tmp_path: Path) -> None:
    _, tm, _, _ = _library(tmp_path, dict.fromkeys(TAGS, 12))
    tm.train("m")
    clf = tm.classifier("m", 1)
    again = LinearClassifier.from_bytes(clf.to_bytes())
    x = np.random.default_rng(0).normal(size=(5, 32)).astype(np.float32)
    assert np.array_equal(again.predict(x).confidence, clf.predict(x).confidence)


def test_rollback_and_the_dry_run_diff(tmp_path: Path) -> None:
    catalog, tm, _by_tag, _ = _library(tmp_path, {TAGS[0]: 15, TAGS[1]: 15}, extra=25)
    assert tm.train("m").version == 1
    # Version 2 learns hats too: hats photos that v1 could not tag (or tagged wrongly) change.
    hat_by_tag, hat_vecs, hat_ids, _ = clusters({TAGS[2]: 40}, spread=0.8, seed=7)
    add_assets(catalog, hat_vecs, hat_ids)
    taxonomy(catalog, TAGS)
    tm.add_examples("m", TAGS[2], hat_by_tag[TAGS[2]][:15])
    outcome = tm.train("m")
    assert (outcome.version, outcome.activated) == (2, False)  # v1 stays active
    diff = tm.diff("m", 2)
    assert (diff.version, diff.against, diff.assets) == (2, 1, 120)
    keys, new, _ = tm.predict_catalog("m", 2)
    okeys, old, _ = tm.predict_catalog("m", 1)
    assert np.array_equal(keys, okeys)
    tags2, tags1 = tm.classifier("m", 2).tags, tm.classifier("m", 1).tags
    name2 = [tags2[i] if i >= 0 else None for i in new]
    name1 = [tags1[i] if i >= 0 else None for i in old]
    assert diff.changed == sum(a != b for a, b in zip(name1, name2, strict=True)) > 0
    hats = next(c for c in diff.tags if c.tag == TAGS[2])
    assert hats.gained == sum(n == TAGS[2] for n in name2) >= 30 and hats.lost == 0
    for change in diff.tags:
        assert change.gained == sum(
            b == change.tag and a != b for a, b in zip(name1, name2, strict=True)
        )
        assert change.lost == sum(
            a == change.tag and a != b for a, b in zip(name1, name2, strict=True)
        )
    tm.activate("m", 2)
    assert tm.store.get("m").active_version == 2
    tm.activate("m", 1)  # rollback
    assert [v.active for v in tm.versions("m")] == [True, False]
    assert tm.diff("m", 1).changed == 0
    with pytest.raises(UnknownModelError, match="has no version 7; its versions: 1, 2"):
        tm.activate("m", 7)


def test_a_version_refuses_vectors_of_another_embedder(tmp_path: Path) -> None:
    catalog, tm, _, _ = _library(tmp_path, dict.fromkeys(TAGS, 12))
    tm.train("m")
    other = TagModels(catalog, "efficientnet-lite0/center-crop-224")
    with pytest.raises(TrainingError, match="was trained on fake vectors"):
        other.classifier("m", 1)


def test_colour_models_use_the_stored_colour_statistics(tmp_path: Path) -> None:
    catalog = open_catalog(tmp_path)
    # Visual vectors say nothing about colour; the colour histograms do.
    rng = np.random.default_rng(5)
    n = 20
    vecs = rng.normal(size=(2 * n, 32)).astype(np.float32)
    colours = np.zeros((2 * n, DIM), np.float32)
    colours[:n, 0] = 1.0  # red
    colours[n:, 21] = 1.0  # blue
    colours += 0.05 * rng.random(size=colours.shape).astype(np.float32)
    ids = [f"/lib/red/{i}.jpg" for i in range(n)] + [f"/lib/blue/{i}.jpg" for i in range(n)]
    add_assets(catalog, vecs, ids, colours=colours)
    taxonomy(catalog, ["colour:red", "colour:blue"])
    tm = TagModels(catalog, EMBEDDER)
    examples = {"colour:red": tuple(ids[:n]), "colour:blue": tuple(ids[n:])}
    tm.create(ModelSpec(name="visual", title="V", examples=examples))
    visual = tm.train("visual").report["cross_validation"]["accuracy"]
    tm.store.delete("visual")  # a tag belongs to one model only
    tm.create(ModelSpec(name="colour", title="C", features="visual+colour", examples=examples))
    colour = tm.train("colour").report["cross_validation"]["accuracy"]
    assert colour == 1.0 and visual < 0.8, (colour, visual)


def test_colour_model_without_colour_statistics_cannot_train(tmp_path: Path) -> None:
    catalog = open_catalog(tmp_path)
    by_tag, vecs, ids, _ = clusters({TAGS[0]: 12, TAGS[1]: 12})
    add_assets(catalog, vecs, ids)  # no colour statistics stored
    taxonomy(catalog, TAGS)
    tm = TagModels(catalog, EMBEDDER)
    spec = ModelSpec(
        name="c", title="C", features="visual+colour",
        examples={t: tuple(a) for t, a in by_tag.items()},
    )  # fmt: skip
    tm.create(spec)
    findings = [f for f in tm.check("c") if f.code == "not-embedded"]
    assert len(findings) == 2
    assert "no current colour statistics" in findings[0].message
