"""The CLI through click's CliRunner: JSON output, exit codes, error messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from smarttags.cli import cli


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    monkeypatch.setenv("SMARTTAGS_EMBEDDER", "fake")
    home = tmp_path / "home"

    def invoke(*args: str, code: int = 0) -> object:
        result = CliRunner().invoke(cli, ["--home", str(home), *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return invoke


def _json(result: object) -> object:
    return json.loads(result.output)  # type: ignore[attr-defined]


def test_ingest_list_show_similar_as_json(
    run: Callable[..., object], make_image: Callable[..., Path]
) -> None:
    root = make_image("red1.jpg", color=(250, 0, 0)).parent
    make_image("red2.jpg", color=(240, 10, 0))
    make_image("blue.jpg", color=(0, 0, 250))
    report = _json(run("ingest", str(root), "--json"))
    assert isinstance(report, dict)
    assert (report["added"], report["embedded"], report["failed"]) == (3, 3, 0)
    listed = _json(run("assets", "list", "--json"))
    assert [a["id"] for a in listed] == [
        "/photos/blue.jpg",
        "/photos/red1.jpg",  # type: ignore
        "/photos/red2.jpg",
    ]
    shown = _json(run("assets", "show", "/photos/red1.jpg", "--json"))
    assert shown["format"] == "JPEG"  # type: ignore[index]
    hits = _json(run("similar", "/photos/red1.jpg", "-k", "2", "--json"))
    assert [h["asset"] for h in hits] == ["/photos/red2.jpg", "/photos/blue.jpg"]  # type: ignore
    status = _json(run("status", "--json"))
    assert status["assets"] == 3 and status["embeddings"]["fake"] == 3  # type: ignore[index]
    rebuilt = _json(run("vectors", "rebuild", "--json"))
    assert rebuilt["count"] == 3 and rebuilt["kind"] == "exact"  # type: ignore[index]


def test_errors_command_lists_failed_files(
    run: Callable[..., object], make_image: Callable[..., Path]
) -> None:
    root = make_image("ok.jpg").parent
    (root / "broken.jpg").write_bytes(b"")
    text = run("ingest", str(root))
    assert "1 failed" in text.output  # type: ignore[attr-defined]
    rows = _json(run("errors", "--json"))
    assert [(r["asset_id"], r["reason"]) for r in rows] == [  # type: ignore[union-attr]
        ("/photos/broken.jpg", "empty")
    ]


def test_taxonomy_import_and_list(run: Callable[..., object], tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text("- id: apparel:shoes/boot\n  titles: {en: Boot, de: Stiefel}\n")
    assert _json(run("taxonomy", "import", str(f), "--json")) == {"imported": 1}
    rows = _json(run("taxonomy", "list", "--json"))
    assert rows == [
        {"id": "apparel:shoes/boot", "titles": {"en": "Boot", "de": "Stiefel"}, "synonyms": {}}
    ]


def test_usage_errors_exit_2(run: Callable[..., object]) -> None:
    run("ingest", code=2)
    run("similar", "x", "-k", "0", code=2)
    run("ingest", "/no/such/folder", code=2)
    run("nonsense", code=2)


def test_runtime_errors_exit_1_naming_the_value(run: Callable[..., object], tmp_path: Path) -> None:
    r = run("similar", "/nope.jpg", code=1)
    assert "no asset '/nope.jpg'" in r.output  # type: ignore[attr-defined]
    bad = tmp_path / "t.json"
    bad.write_text('[{"id": "no colon"}]')
    r = run("taxonomy", "import", str(bad), code=1)
    assert "invalid tag id 'no colon'" in r.output  # type: ignore[attr-defined]


def test_bad_settings_are_named(
    run: Callable[..., object], monkeypatch: pytest.MonkeyPatch, make_image: Callable[..., Path]
) -> None:
    monkeypatch.setenv("SMARTTAGS_BATCH_SIZE", "0")
    r = run("status", code=1)
    assert "SMARTTAGS_BATCH_SIZE" in r.output  # type: ignore[attr-defined]
    monkeypatch.setenv("SMARTTAGS_BATCH_SIZE", "8")
    monkeypatch.setenv("SMARTTAGS_EMBEDDER", "efficientnet-lite")
    r = run("ingest", str(make_image("a.jpg").parent), code=1)
    out = r.output  # type: ignore[attr-defined]
    assert "unknown embedder 'efficientnet-lite'" in out and "efficientnet-lite0" in out


def test_settings_are_not_built_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTTAGS_BATCH_SIZE", "not a number")
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
