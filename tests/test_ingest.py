"""Ingest: ids, change detection, sidecars, bad input, and a killed run resumed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from indexer.catalog import Catalog
from indexer.errors import SidecarError, TaxonomyError
from smarttags.service import SmartTags
from smarttags.settings import Settings

from .conftest import jpeg_bytes


def test_ingest_adds_assets_with_dam_paths(app: SmartTags, make_image: Callable[..., Path]) -> None:
    a = make_image("shoes/a.jpg", size=(80, 60))
    make_image("shoes/b.png", size=(30, 20), color=(0, 0, 255))
    report = app.ingest([a.parent.parent])
    assert (report.found, report.added, report.embedded, report.failed) == (2, 2, 2, [])
    asset = app.catalog.get_asset("/photos/shoes/a.jpg")
    assert (asset.format, asset.width, asset.height) == ("JPEG", 80, 60)
    assert asset.source == str(a)
    assert len(asset.sha256) == 64
    assert app.catalog.get_asset("/photos/shoes/b.png").format == "PNG"
    assert app.catalog.count_embeddings("fake") == 2


def test_prefix_option_sets_the_dam_path(app: SmartTags, make_image: Callable[..., Path]) -> None:
    a = make_image("x/a.jpg")
    app.ingest([a.parent], prefix="/dam/library/")
    assert [x.id for x in app.catalog.assets()] == ["/dam/library/a.jpg"]


def test_reingest_unchanged_changes_nothing(
    app: SmartTags, make_image: Callable[..., Path]
) -> None:
    root = make_image("a.jpg").parent
    make_image("b.jpg", color=(1, 2, 3))
    app.ingest([root])
    before = [(x.id, x.sha256, x.modified_at, x.content_version) for x in app.catalog.assets()]
    version = app.catalog.embeddings_version("fake")
    report = app.ingest([root])
    assert (report.unchanged, report.added, report.modified, report.embedded) == (2, 0, 0, 0)
    after = [(x.id, x.sha256, x.modified_at, x.content_version) for x in app.catalog.assets()]
    assert after == before
    assert app.catalog.embeddings_version("fake") == version


def test_changed_file_is_marked_modified_and_reembedded(
    app: SmartTags, make_image: Callable[..., Path]
) -> None:
    a = make_image("a.jpg", color=(255, 0, 0))
    app.ingest([a.parent])
    old = app.catalog.get_asset("/photos/a.jpg")
    old_vec = app.catalog.embedding(old.key, "fake")
    a.write_bytes(jpeg_bytes((64, 48), (0, 0, 255)))
    report = app.ingest([a.parent])
    assert (report.modified, report.embedded) == (1, 1)
    new = app.catalog.get_asset("/photos/a.jpg")
    assert new.sha256 != old.sha256
    assert new.content_version == 2
    assert new.modified_at > old.modified_at
    new_vec = app.catalog.embedding(new.key, "fake")
    assert old_vec is not None and new_vec is not None
    assert float(abs(new_vec - old_vec).max()) > 0.1


def test_touched_file_with_same_bytes_is_not_modified(
    app: SmartTags, make_image: Callable[..., Path]
) -> None:
    a = make_image("a.jpg")
    app.ingest([a.parent])
    os.utime(a, ns=(time.time_ns(), time.time_ns() + 10**9))
    report = app.ingest([a.parent])
    assert (report.modified, report.updated, report.embedded) == (0, 1, 0)
    assert app.catalog.get_asset("/photos/a.jpg").content_version == 1


def test_sidecar_and_manual_tags(
    app: SmartTags, make_image: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_image("a.jpg").parent
    make_image("b.jpg")
    tax = tmp_path / "tax.json"
    tax.write_text('[{"id": "apparel:shoes/boot", "titles": {"en": "Boot", "de": "Stiefel"}}]')
    app.import_taxonomy(tax)
    side = tmp_path / "meta.csv"
    side.write_text(
        "path,title,keywords,manual_tags\n"
        "a.jpg,Red boot,leather|winter,apparel:shoes/boot\n"
        "/photos/b.jpg,Blue thing,,\n"
    )
    app.ingest([root], sidecar=side)
    a = app.catalog.get_asset("/photos/a.jpg")
    assert (a.title, a.keywords, a.manual_tags) == (
        "Red boot",
        ("leather", "winter"),
        ("apparel:shoes/boot",),
    )
    assert app.catalog.get_asset("/photos/b.jpg").title == "Blue thing"


def test_unknown_manual_tag_is_named_and_nothing_is_written(
    app: SmartTags, make_image: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_image("a.jpg").parent
    side = tmp_path / "meta.jsonl"
    side.write_text('{"path": "a.jpg", "manual_tags": ["apparel:nope"]}\n')
    with pytest.raises(TaxonomyError, match=r"'apparel:nope'.*taxonomy import"):
        app.ingest([root], sidecar=side)
    assert app.catalog.count_assets() == 0


def test_bad_sidecar_is_an_error(
    app: SmartTags, make_image: Callable[..., Path], tmp_path: Path
) -> None:
    side = tmp_path / "meta.csv"
    side.write_text("file,title\na.jpg,x\n")
    with pytest.raises(SidecarError, match="path"):
        app.ingest([make_image("a.jpg").parent], sidecar=side)


def _bad_files(root: Path) -> dict[str, str]:
    """Every kind of bad input; returns asset id -> expected reason."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("this is a text file with a .jpg name\n" * 10)
    good = jpeg_bytes((300, 200))
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PCX")
    (root / "old.tif").write_bytes(buf.getvalue())
    from .test_images import png_header_only

    (root / "bomb.png").write_bytes(png_header_only(40_000, 40_000))
    (root / "unreadable.jpg").symlink_to("/proc/self/mem")  # stat works, read fails (EIO)
    (root / "dangling.jpg").symlink_to(root / "gone.jpg")
    (root / "self.jpg").symlink_to(root / "self.jpg")
    (root / "loop").symlink_to(root)  # a folder that contains itself
    (root / "readme.txt").write_text("not an image extension: ignored, not an error")
    p = "/photos/bad"
    return {
        f"{p}/empty.jpg": "empty",
        f"{p}/notes.jpg": "not-an-image",
        f"{p}/truncated.jpg": "corrupt",
        f"{p}/old.tif": "unsupported-format",
        f"{p}/bomb.png": "too-large",
        f"{p}/unreadable.jpg": "unreadable",
        f"{p}/dangling.jpg": "broken-symlink",
        f"{p}/self.jpg": "symlink-loop",
        f"{p}/loop": "symlink-loop",
    }


def test_bad_input_becomes_per_asset_errors_and_the_run_goes_on(
    app: SmartTags, make_image: Callable[..., Path]
) -> None:
    good = make_image("good1.jpg")
    make_image("good2.png")
    expected = _bad_files(good.parent / "bad")
    report = app.ingest([good.parent])
    got = {e.asset_id: e.reason for e in report.failed}
    assert got == expected
    assert report.added == 2
    assert {a.id for a in app.catalog.assets()} == {"/photos/good1.jpg", "/photos/good2.png"}
    assert {e.asset_id: e.reason for e in app.catalog.errors()} == expected
    for e in report.failed:
        assert e.message  # every error says why


def test_a_file_gone_bad_keeps_its_catalog_entry(
    app: SmartTags, make_image: Callable[..., Path]
) -> None:
    a = make_image("a.jpg")
    app.ingest([a.parent])
    before = app.catalog.get_asset("/photos/a.jpg")
    a.write_bytes(b"garbage" * 10)
    report = app.ingest([a.parent])
    assert [e.reason for e in report.failed] == ["not-an-image"]
    after = app.catalog.get_asset("/photos/a.jpg")
    assert after == before
    assert app.catalog.embedding(before.key, "fake") is not None
    a.write_bytes(jpeg_bytes((64, 48), (1, 2, 3)))  # fixed: the error is cleared
    report = app.ingest([a.parent])
    assert report.modified == 1 and app.catalog.errors() == []


def test_catalog_is_sqlite_wal(app: SmartTags) -> None:
    app.catalog.count_assets()
    mode = sqlite3.connect(app.settings.catalog_path).execute("PRAGMA journal_mode").fetchone()
    assert mode[0] == "wal"


@pytest.mark.real_model
@pytest.mark.slow
def test_killed_ingest_resumes_without_duplicates(tmp_path: Path) -> None:
    """kill -9 in the middle of an ingest, then a rerun finishes the job exactly once."""
    root = tmp_path / "many"
    root.mkdir()
    n = 120
    for i in range(n):
        (root / f"img{i:03d}.jpg").write_bytes(jpeg_bytes((96, 72), (i * 2 % 256, i, 255 - i)))
    home = tmp_path / "home"
    # The torch runtime is slow (~15 images/s here), so the kill lands mid-run.
    env = {
        **os.environ,
        "SMARTTAGS_HOME": str(home),
        "SMARTTAGS_RUNTIME": "torch",
        "SMARTTAGS_BATCH_SIZE": "4",
        "SMARTTAGS_THREADS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "smarttags", "ingest", str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    catalog = home / "catalog.sqlite3"
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if catalog.exists():
            try:
                with sqlite3.connect(catalog) as c:
                    query = "SELECT count(DISTINCT asset_key) FROM embeddings"
                    done = c.execute(query).fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= 8:
                break
        time.sleep(0.05)
    assert proc.poll() is None, f"ingest ended before it could be killed: {proc.stderr!r}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Catalog.open(catalog) as c:
        partial = c.count_assets()
    assert 8 <= partial < n
    settings = Settings(home=home, runtime="onnx", threads=2)
    with SmartTags(settings) as svc:
        report = svc.ingest([root])
        assert report.added == n - partial
        assert report.added + report.unchanged == n
        assert svc.catalog.count_assets() == n
        assert svc.catalog.missing_embeddings("efficientnet-lite0/center-crop-224") == []
        ids = [a.id for a in svc.catalog.assets()]
        assert len(ids) == len(set(ids)) == n
        assert svc.ingest([root]).unchanged == n
    with sqlite3.connect(catalog) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
