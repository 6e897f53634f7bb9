"""Guideline checks: every error and warning, with the text a librarian reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.errors import GuidelineError, ModelSpecError, UnknownModelError
from training.guidelines import Finding
from training.service import TagModels
from training.spec import ModelSpec, load_spec

from .training_helpers import EMBEDDER, add_assets, clusters, open_catalog, taxonomy

TAGS = ("wear:type/shirt", "wear:type/shoe", "wear:type/hat")


@pytest.fixture
def lib(tmp_path: Path) -> tuple[TagModels, dict[str, list[str]]]:
    """A catalog with 3 tags x 40 stored examples and a model over the first two."""
    catalog = open_catalog(tmp_path)
    by_tag, vecs, ids, _ = clusters(dict.fromkeys(TAGS, 40), spread=0.8)
    add_assets(catalog, vecs, ids)
    taxonomy(catalog, [*TAGS, "wear:type/unused"])
    return TagModels(catalog, EMBEDDER), by_tag


def _spec(by_tag: dict[str, list[str]], counts: dict[str, int], name: str = "m") -> ModelSpec:
    return ModelSpec(
        name=name, title=name.upper(), examples={t: tuple(by_tag[t][:n]) for t, n in counts.items()}
    )


def _codes(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.level, f.code) for f in findings]


def _one(findings: list[Finding], code: str) -> Finding:
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, findings
    return found[0]


def test_a_clean_model_has_no_findings(lib: tuple[TagModels, dict[str, list[str]]]) -> None:
    tm, by_tag = lib
    tm.create(_spec(by_tag, {TAGS[0]: 30, TAGS[1]: 30}))
    assert tm.check("m") == []


def test_fewer_than_two_tags_is_an_error(lib: tuple[TagModels, dict[str, list[str]]]) -> None:
    tm, by_tag = lib
    tm.create(_spec(by_tag, {TAGS[0]: 30}))
    f = _one(tm.check("m"), "too-few-tags")
    assert f.level == "error"
    assert "tag model 'm' has 1 tag; a model needs at least 2" in f.message
    with pytest.raises(GuidelineError, match="cannot be trained") as err:
        tm.train("m")
    assert err.value.findings[0].code == "too-few-tags"
    assert tm.versions("m") == []  # an error stops training before a version exists


def test_more_than_fifty_tags_is_an_error(tmp_path: Path) -> None:
    catalog = open_catalog(tmp_path)
    tags = {f"wear:many/t{i:02d}": 1 for i in range(51)}
    by_tag, vecs, ids, _ = clusters(tags)
    add_assets(catalog, vecs, ids)
    taxonomy(catalog, list(tags))
    tm = TagModels(catalog, EMBEDDER)
    tm.create(ModelSpec(name="big", title="Big", examples={t: tuple(a) for t, a in by_tag.items()}))
    f = _one(tm.check("big"), "too-many-tags")
    assert "has 51 tags; at most 50 are allowed" in f.message


def test_more_than_fifty_examples_is_an_error(tmp_path: Path) -> None:
    catalog = open_catalog(tmp_path)
    by_tag, vecs, ids, _ = clusters({TAGS[0]: 51, TAGS[1]: 12})
    add_assets(catalog, vecs, ids)
    taxonomy(catalog, TAGS)
    tm = TagModels(catalog, EMBEDDER)
    tm.create(ModelSpec(name="m", title="M", examples={t: tuple(a) for t, a in by_tag.items()}))
    f = _one(tm.check("m"), "too-many-examples")
    assert f.tag == TAGS[0]
    assert f"tag {TAGS[0]!r} has 51 examples; at most 50 are allowed: remove 1" in f.message


def test_an_image_with_two_tags_of_one_model_is_an_error(
    lib: tuple[TagModels, dict[str, list[str]]],
) -> None:
    tm, by_tag = lib
    tm.create(_spec(by_tag, {TAGS[0]: 30, TAGS[1]: 30}))
    shared = by_tag[TAGS[0]][0]
    tm.add_examples("m", TAGS[1], [shared])
    f = _one(tm.check("m"), "two-tags")
    assert f.assets == (shared,)
    assert f"image {shared} is an example of both {TAGS[0]!r} and {TAGS[1]!r}" in f.message


def test_a_tag_used_by_another_model_is_an_error_naming_it(
    lib: tuple[TagModels, dict[str, list[str]]],
) -> None:
    tm, by_tag = lib
    tm.create(_spec(by_tag, {TAGS[0]: 30, TAGS[1]: 30}, name="first"))
    tm.create(_spec(by_tag, {TAGS[1]: 5, TAGS[2]: 30}, name="second"))
    f = _one(tm.check("second"), "tag-in-other-model")
    assert f"tag {TAGS[1]!r} is already used by tag model 'first'" in f.message
    assert f.tag == TAGS[1]


def test_examples_not_ingested_or_not_embedded_are_errors(tmp_path: Path) -> None:
    catalog = open_catalog(tmp_path)
    by_tag, vecs, ids, _ = clusters({TAGS[0]: 30, TAGS[1]: 30})
    add_assets(catalog, vecs[:55], ids[:55])
    add_assets(catalog, vecs[55:], ids[55:], embed=False)  # e.g. failed to decode
    taxonomy(catalog, TAGS)
    tm = TagModels(catalog, EMBEDDER)
    spec = ModelSpec(name="m", title="M", examples={t: tuple(a) for t, a in by_tag.items()})
    tm.create(spec)
    tm.add_examples("m", TAGS[0], ["/lib/nowhere/ghost.jpg"])
    findings = tm.check("m")
    missing = _one(findings, "not-ingested")
    assert missing.assets == ("/lib/nowhere/ghost.jpg",)
    assert "is not an ingested image: /lib/nowhere/ghost.jpg" in missing.message
    unusable = _one(findings, "not-embedded")
    assert unusable.tag == TAGS[1] and len(unusable.assets) == 5
    assert "5 examples of tag 'wear:type/shoe' could not be embedded" in unusable.message
    assert "smarttags errors" in unusable.message


def test_an_unknown_taxonomy_tag_and_a_tag_without_examples_are_errors(
    lib: tuple[TagModels, dict[str, list[str]]],
) -> None:
    tm, by_tag = lib
    tm.create(_spec(by_tag, {TAGS[0]: 30, TAGS[1]: 30}))
    tm.store.add_examples("m", "wear:type/ghost", [])
    findings = tm.check("m")
    assert "'wear:type/ghost' is not in the taxonomy" in _one(findings, "unknown-tag").message
    assert "has no examples" in _one(findings, "no-examples").message


def test_warnings_for_few_and_below_recommended_examples(
    lib: tuple[TagModels, dict[str, list[str]]],
) -> None:
    tm, by_tag = lib
    tm.create(_spec(by_tag, {TAGS[0]: 6, TAGS[1]: 20}))
    findings = tm.check("m")
    few = _one(findings, "few-examples")
    assert few.level == "warning" and few.tag == TAGS[0]
    assert "has 6 examples; it will be not completely trained" in few.message
    assert "add 4 more" in few.message
    below = _one(findings, "below-recommended")
    assert "has 20 examples; about 30 are recommended: add 10 more" in below.message
    outcome = tm.train("m")  # warnings do not stop training
    rows = {r["tag"]: r for r in outcome.report["tags"]}
    assert rows[TAGS[0]]["status"] == "not completely trained"
    assert rows[TAGS[0]]["reasons"] == ["only 6 examples (at least 10 needed)"]


def test_near_duplicate_examples_warn(tmp_path: Path) -> None:
    catalog = open_catalog(tmp_path)
    by_tag, vecs, ids, _ = clusters({TAGS[0]: 12, TAGS[1]: 12}, spread=0.8)
    vecs[1] = vecs[0] * 1.01  # the same photo, resaved
    add_assets(catalog, vecs, ids)
    taxonomy(catalog, TAGS)
    tm = TagModels(catalog, EMBEDDER)
    tm.create(ModelSpec(name="m", title="M", examples={t: tuple(a) for t, a in by_tag.items()}))
    f = _one(tm.check("m"), "near-duplicate")
    assert f.assets == (ids[0], ids[1])
    assert "are near-duplicates (cosine 1.000)" in f.message


def test_an_incoherent_tag_warns_to_add_five_of_each_kind(tmp_path: Path) -> None:
    catalog = open_catalog(tmp_path)
    by_tag, vecs, ids, centres = clusters({TAGS[0]: 30, TAGS[1]: 30}, spread=0.5)
    rng = np.random.default_rng(3)
    odd = rng.normal(size=centres.shape[1]) * 1.5  # a different kind of shoe: boots
    vecs[57:60] = odd + 0.3 * rng.normal(size=(3, centres.shape[1]))
    add_assets(catalog, vecs, ids)
    taxonomy(catalog, TAGS)
    tm = TagModels(catalog, EMBEDDER)
    tm.create(ModelSpec(name="m", title="M", examples={t: tuple(a) for t, a in by_tag.items()}))
    f = _one(tm.check("m"), "incoherent")
    assert f.tag == TAGS[1] and f.assets == tuple(ids[57:60])
    assert "visually distinct groups" in f.message
    assert "add at least 5 examples of each kind" in f.message


def test_confused_tags_warn_with_the_misclassified_examples(tmp_path: Path) -> None:
    catalog = open_catalog(tmp_path)
    by_tag, vecs, ids, centres = clusters({TAGS[0]: 30, TAGS[1]: 30, TAGS[2]: 30}, spread=0.4)
    rng = np.random.default_rng(4)
    # hats look like shirts: half the hat examples sit on the shirt cluster
    vecs[60:75] = centres[0] + 0.4 * rng.normal(size=(15, centres.shape[1]))
    add_assets(catalog, vecs, ids)
    taxonomy(catalog, TAGS)
    tm = TagModels(catalog, EMBEDDER)
    tm.create(ModelSpec(name="m", title="M", examples={t: tuple(a) for t, a in by_tag.items()}))
    confused = [f for f in tm.check("m") if f.code == "confused"]
    assert confused, "the hat tag must be reported as confused with the shirt tag"
    hat = next(f for f in confused if f.tag == TAGS[2])
    assert f"tag {TAGS[2]!r} is confused with {TAGS[0]!r}" in hat.message
    assert hat.assets and set(hat.assets) <= set(ids[60:75])


def test_spec_files_and_their_errors(tmp_path: Path) -> None:
    good = tmp_path / "m.yaml"
    good.write_text(
        "title: Shoe type\nfeatures: visual+colour\ntarget_precision: 0.95\n"
        "tags:\n  wear:type/shoe: [/lib/shoe/]\n  wear:type/hat:\n    - /lib/hat/000.jpg\n"
    )
    spec = load_spec(good)
    assert (spec.name, spec.features, spec.target_precision) == ("shoe-type", "visual+colour", 0.95)
    assert spec.examples["wear:type/hat"] == ("/lib/hat/000.jpg",)
    cases = {
        "title: X\ncolour: red\n": "unknown key 'colour'",
        "title: X\nfeatures: color\n": "unknown features 'color'",
        "title: X\ntarget_precision: 2\n": "target_precision 2 is out of range",
        "name: Bad Name\ntitle: X\n": "invalid tag model name 'Bad Name'",
        "tags: {}\n": "missing 'title'",
        "title: X\ntags: {a:b: 3}\n": "must be a list of asset paths",
        "title: [unclosed\n": "is not valid YAML",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ModelSpecError, match=message.replace("[", r"\[")):
            load_spec(bad)


def test_references_resolve_folders_ids_and_unknown_models(
    lib: tuple[TagModels, dict[str, list[str]]],
) -> None:
    tm, by_tag = lib
    assert tm.resolve(["/lib/shirt/"]) == sorted(by_tag[TAGS[0]])
    assert tm.resolve(["lib/shoe/000.jpg", "/src/lib/hat/001.jpg"]) == [
        "/lib/shoe/000.jpg",
        "/lib/hat/001.jpg",
    ]
    with pytest.raises(ModelSpecError, match="folder '/lib/boots/' holds no ingested images"):
        tm.resolve(["/lib/boots/"])
    tm.create(_spec(by_tag, {TAGS[0]: 3, TAGS[1]: 3}, name="known"))
    with pytest.raises(UnknownModelError, match="no tag model 'knwon'; tag models: known"):
        tm.check("knwon")
    with pytest.raises(ModelSpecError, match="exists already"):
        tm.create(_spec(by_tag, {TAGS[0]: 3}, name="known"))
