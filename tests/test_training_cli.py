"""``smarttags models`` end to end through CliRunner, on ingested image files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from openpyxl import load_workbook

from indexer.colour import COLOUR_LABEL
from smarttags.cli import cli

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.setenv("SMARTTAGS_EMBEDDER", "fake")
    home = tmp_path / "home"

    def invoke(*args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(cli, ["--home", str(home), *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return invoke


@pytest.fixture
def photos(make_image: Callable[..., Path], tmp_path: Path) -> Path:
    """12 photos per colour, each a little different, and a taxonomy file."""
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        for i in range(12):
            jitter = tuple(int(np.clip(c + rng.integers(-25, 25), 0, 255)) for c in rgb)
            size = (int(rng.integers(40, 90)), int(rng.integers(40, 90)))
            make_image(f"{name}/{i:02d}.jpg", size=size, color=jitter)
    (tmp_path / "taxonomy.csv").write_text(
        "id,title\n" + "".join(f"colour:{c},{c.title()}\n" for c in COLOURS)
    )
    return tmp_path / "photos"


def _json(result: Result) -> Any:
    return json.loads(result.output)


def test_create_check_train_report_versions_activate_diff(
    run: Callable[..., Result], photos: Path, tmp_path: Path
) -> None:
    run("taxonomy", "import", str(tmp_path / "taxonomy.csv"))
    run("ingest", str(photos), "--json")
    status = _json(run("status", "--json"))
    assert status["embeddings"] == {"fake": 36, COLOUR_LABEL: 36}
    spec = tmp_path / "colours.yaml"
    spec.write_text(
        "title: Colour\nfeatures: visual+colour\ntags:\n"
        "  colour:red: [/photos/red/]\n  colour:green: [/photos/green/]\n"
    )
    created = _json(run("models", "create", str(spec), "--json"))
    assert created["tags"] == {"colour:green": 12, "colour:red": 12}
    assert "below-recommended" in {f["code"] for f in created["findings"]}
    assert all(f["level"] == "warning" for f in created["findings"])

    trained = _json(run("models", "train", "colour", "--json"))
    assert (trained["version"], trained["activated"]) == (1, True)
    assert trained["report"]["cross_validation"]["accuracy"] == 1.0

    # v2 learns blue too: a librarian adds it by folder on disk
    run("models", "add-examples", "colour", "colour:blue", str(photos / "blue"))
    xlsx = tmp_path / "v2.xlsx"
    text = run("models", "train", "colour", "--xlsx", str(xlsx)).output
    assert "version 2 trained" in text and "not activated" in text
    assert "colour:blue" in text and "Confusion matrix" in text
    assert load_workbook(xlsx)["Tags"]["A2"].value == "colour:blue"

    versions = _json(run("models", "versions", "colour", "--json"))
    assert [(v["version"], v["status"], v["active"]) for v in versions] == [
        (1, "trained", True),
        (2, "trained", False),
    ]
    diff = _json(run("models", "diff", "colour", "2", "--json"))
    assert diff["against"] == 1 and diff["assets"] == 36
    blue = next(t for t in diff["tags"] if t["tag"] == "colour:blue")
    assert blue["gained"] >= 6 and blue["lost"] == 0
    assert "gain colour:blue" in run("models", "diff", "colour", "2").output

    run("models", "activate", "colour", "2")
    assert _json(run("models", "list", "--json"))[0]["active_version"] == 2
    run("models", "activate", "colour", "1")  # rollback
    assert _json(run("models", "show", "colour", "--json"))["active_version"] == 1

    report = _json(run("models", "report", "colour", "--version", "2", "--format", "json"))
    assert report["version"] == 2 and len(report["tags"]) == 3
    out = tmp_path / "r.xlsx"
    run("models", "report", "colour", "--format", "xlsx", "--out", str(out))
    assert load_workbook(out)["Model"]["B3"].value == 1  # the active version's report


def test_create_from_flags_and_the_errors_a_user_sees(
    run: Callable[..., Result], photos: Path, tmp_path: Path
) -> None:
    run("taxonomy", "import", str(tmp_path / "taxonomy.csv"))
    run("ingest", str(photos))
    out = run(
        "models", "create", "--title", "Reds", "--example", "colour:red=/photos/red/",
        "--tag", "colour:green",
    ).output  # fmt: skip
    assert "created tag model 'reds': 2 tags, 12 examples" in out
    assert "tag 'colour:green' has no examples" in out
    check = run("models", "check", "reds", code=1)
    assert "1 error(s): 'reds' cannot be trained yet" in check.output
    train = run("models", "train", "reds", code=1)
    assert "tag model 'reds' cannot be trained (1 error)" in train.output
    run("models", "add-examples", "reds", "colour:green", "/photos/green/00.jpg")
    run("models", "add-examples", "reds", "colour:green", "/photos/red/00.jpg")
    two = run("models", "check", "reds", code=1).output
    assert "image /photos/red/00.jpg is an example of both" in two
    run("models", "remove-examples", "reds", "colour:green", "/photos/red/00.jpg")
    run("models", "check", "reds")  # only warnings now: exit code 0
    run("models", "remove-examples", "reds", "colour:green", "--all")
    assert list(_json(run("models", "show", "reds", "--json"))["tags"]) == ["colour:red"]
    run("models", "remove-examples", "reds", "colour:green", "--all", code=1)

    assert "no tag model 'blues'" in run("models", "train", "blues", code=1).output
    bad = run("models", "create", "--title", "X", "--example", "colour:red", code=2).output
    assert "expected TAG=ASSET" in bad
    assert "has no version 9" in run("models", "activate", "reds", "9", code=1).output
    missing = run(
        "models", "create", "--title", "Y", "--example", "colour:blue=/photos/none/", code=1
    ).output
    assert "folder '/photos/none/' holds no ingested images" in missing
    assert "Aborted" in run("models", "delete", "reds", code=1).output  # no confirmation
    run("models", "delete", "reds", "--yes")
    assert _json(run("models", "list", "--json")) == []


def test_ingest_backfills_colour_statistics_without_re_embedding(
    run: Callable[..., Result], photos: Path, tmp_path: Path
) -> None:
    """A catalog from before colour statistics gets them on the next ingest, no
    re-embedding."""
    import sqlite3

    run("ingest", str(photos))
    db = tmp_path / "home" / "catalog.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM embeddings WHERE embedder = ?", (COLOUR_LABEL,))
    again = _json(run("ingest", str(photos), "--json"))
    assert again["embedded"] == 0 and again["failed"] == 0
    assert _json(run("status", "--json"))["embeddings"][COLOUR_LABEL] == 36


def test_tag_moderate_and_reindex_from_the_cli(
    run: Callable[..., Result], photos: Path, tmp_path: Path
) -> None:
    run("taxonomy", "import", str(tmp_path / "taxonomy.csv"))
    run("ingest", str(photos / "red"), "--as", "/photos/red")
    run("ingest", str(photos / "blue"), "--as", "/photos/blue")
    spec = tmp_path / "colours.yaml"
    spec.write_text(
        "title: Colour\nfeatures: visual+colour\ntags:\n"
        "  colour:red: [/photos/red/00.jpg, /photos/red/01.jpg, /photos/red/02.jpg,"
        " /photos/red/03.jpg, /photos/red/04.jpg, /photos/red/05.jpg]\n"
        "  colour:blue: [/photos/blue/00.jpg, /photos/blue/01.jpg, /photos/blue/02.jpg,"
        " /photos/blue/03.jpg, /photos/blue/04.jpg, /photos/blue/05.jpg]\n"
    )
    run("models", "create", str(spec))
    run("models", "train", "colour")
    tagged = _json(run("tag", "/photos", "--json"))
    assert (tagged["assets"], tagged["classified"], tagged["models"]) == (24, 24, ["colour@1"])
    assert tagged["sync"]["error"] == "" and tagged["sync"]["queued"] == 0
    assert "24 skipped" in run("tag", "/photos").output  # unchanged, same version
    # new photos arrive and are tagged on upload
    up = _json(run("ingest", str(photos / "green"), "--as", "/photos/green", "--tag", "--json"))
    assert up["added"] == 12 and up["tagging"]["classified"] == 12
    listed = _json(run("tags", "list", "/photos/red/07.jpg", "--json"))
    red = [t for t in listed["smart_tags"] if t["tag"] == "colour:red"]
    assert red and 0 < red[0]["confidence"] <= 1 and red[0]["model_version"] == "colour@1"
    hits = _json(run("search", "red", "--json", "--limit", "50"))
    assert "/photos/red/07.jpg" in [h["asset"] for h in hits["hits"]]
    run("tags", "remove", "/photos/red/07.jpg", "colour:red")
    hits = _json(run("search", "red", "--json", "--limit", "50"))
    assert "/photos/red/07.jpg" not in [h["asset"] for h in hits["hits"]]
    run("tags", "promote", "/photos/red/08.jpg", "colour:red")
    top = _json(run("search", "red", "--json"))["hits"][0]
    assert (top["asset"], top["tier"]) == ("/photos/red/08.jpg", 1)
    text = run("tags", "list", "/photos/red/07.jpg").output
    assert "removed   colour:red  (never applied again)" in text
    dry = _json(run("tags", "bulk-remove", "colour:red", "--query", "red", "--json"))
    assert dry["dry_run"] and dry["removed"] == 0 and dry["with_tag"] >= 5
    done = _json(run("tags", "bulk-remove", "colour:red", "--query", "red", "--apply", "--json"))
    assert done["removed"] == dry["with_tag"]
    assert (
        "has no smart tag 'colour:red'"
        in run("tags", "remove", "/photos/red/07.jpg", "colour:red", code=1).output
    )
    full = _json(run("reindex", "--full", "--json"))
    assert full["full"] and full["indexed"] == 36 and full["queued"] == 0
    status = _json(run("status", "--json"))
    assert status["search_backlog"]["queued"] == 0 and status["tag_models"] == {"colour": 1}
