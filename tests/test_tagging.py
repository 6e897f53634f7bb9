"""Tagging cycles and moderation on real SQLite, with the embedded search backend."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import BusyError, CatalogError
from smarttags.locks import exclusive
from smarttags.service import SmartTags
from smarttags.settings import Settings
from training.spec import ModelSpec
from training.tagging import TaggingCycle

from .training_helpers import WEAR, add_assets, clusters, taxonomy, wear_library

TAGS = WEAR
HOUR = 3600.0


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[SmartTags]:
    """3 garment types x 40 photos with stored vectors; a model trained on 15 of each."""
    settings = Settings(home=tmp_path / "home", embedder="fake", threads=1)
    with SmartTags(settings) as app:
        wear_library(app)
        yield app


def _smart(app: SmartTags, asset: str) -> dict[str, tuple[float, str, bool]]:
    key = app.catalog.get_asset(asset).key
    return {t: (c, v, p) for t, c, v, p in app.catalog.smart_tags(key)}


def _keys(app: SmartTags) -> list[int]:
    return [a.key for a in app.catalog.assets()]


def test_skip_rules_follow_the_clock(svc: SmartTags) -> None:
    now = [1_000_000.0]
    cycle = TaggingCycle(svc.catalog, svc.tag_models, svc.outbox, clock=lambda: now[0])
    first = cycle.run(_keys(svc))
    assert (first.classified, first.skipped, first.failed) == (120, 0, [])
    assert first.models == ["wear@1"] and first.tags_written > 60
    now[0] += 1 * HOUR
    assert (cycle.run(_keys(svc)).classified, cycle.run(_keys(svc)).skipped) == (0, 120)
    now[0] += 23.5 * HOUR  # 24.5 hours after the first cycle
    assert cycle.run(_keys(svc), periodic=True).skipped == 120  # periodic: 6 months
    assert cycle.run(_keys(svc)).classified == 120  # on demand: older than 24 hours
    now[0] += 30 * 24 * HOUR
    assert cycle.run(_keys(svc), periodic=True).skipped == 120
    now[0] += 160 * 24 * HOUR  # 190 days
    assert cycle.run(_keys(svc), periodic=True).classified == 120
    # a changed asset is classified again at once; the others are skipped
    asset = svc.catalog.get_asset("/lib/hat/020.jpg")
    with svc.catalog.transaction():
        svc.catalog.connection.execute(
            "UPDATE assets SET content_version = content_version + 1 WHERE key = ?", (asset.key,)
        )
    now[0] += HOUR
    again = cycle.run(_keys(svc), periodic=True)
    assert (again.classified, again.skipped) == (1, 119)


def test_a_new_model_version_reapplies_without_decoding_any_image(
    svc: SmartTags, monkeypatch: pytest.MonkeyPatch
) -> None:
    import indexer.images
    import indexer.ingest

    svc.tag(["/lib/"])
    before = _smart(svc, "/lib/shoe/030.jpg")
    assert before["wear:type/shoe"][1] == "wear@1"

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a new model version must not decode images")

    monkeypatch.setattr(indexer.images, "decode", no_decoding)
    monkeypatch.setattr(indexer.ingest, "decode", no_decoding)
    svc.tag_models.add_examples("wear", TAGS[2], ["/lib/shoe/030.jpg", "/lib/shoe/031.jpg"])
    assert svc.tag_models.train("wear", activate=True).version == 2
    report = svc.tag(["/lib/"])
    assert (report.classified, report.skipped, report.models) == (120, 0, ["wear@2"])
    assert _smart(svc, "/lib/shoe/030.jpg")["wear:type/shoe"][1] == "wear@2"
    assert svc.tag(["/lib/"]).skipped == 120


def test_moderation_survives_retagging_and_reindexing(svc: SmartTags) -> None:
    svc.tag(["/lib/"])
    assert "wear:type/shoe" in _smart(svc, "/lib/shoe/025.jpg")
    svc.remove_smart_tag("/lib/shoe/025.jpg", "wear:type/shoe")
    svc.promote_smart_tag("/lib/hat/025.jpg", "wear:type/hat")
    hits = {h.asset_id: h.tier for h in svc.search("shoe", limit=200).hits}
    assert "/lib/shoe/025.jpg" not in hits  # visible in search at once
    assert svc.search("hat", limit=1).hits[0].asset_id == "/lib/hat/025.jpg"  # tier 1
    assert svc.search("hat", limit=1).hits[0].tier == 1
    # a new version and an on-demand cycle: the removal and the promotion hold
    svc.tag_models.add_examples("wear", TAGS[0], ["/lib/hat/030.jpg"])
    svc.tag_models.train("wear", activate=True)
    report = svc.tag(["/lib/"])
    assert report.classified == 120
    assert "wear:type/shoe" not in _smart(svc, "/lib/shoe/025.jpg")
    _conf, version, promoted = _smart(svc, "/lib/hat/025.jpg")["wear:type/hat"]
    assert promoted and version == "wear@1"  # untouched by the new version
    svc.reindex(full=True)
    assert "/lib/shoe/025.jpg" not in {h.asset_id for h in svc.search("shoe", limit=200).hits}
    top = svc.search("hat", limit=1).hits[0]
    assert (top.asset_id, top.tier) == ("/lib/hat/025.jpg", 1)
    _, removed = svc.moderation.smart_tags("/lib/shoe/025.jpg")
    assert [r.tag for r in removed] == ["wear:type/shoe"]


def test_deleting_a_model_removes_its_smart_tags_and_skip_state(svc: SmartTags) -> None:
    svc.tag(["/lib/"])
    svc.promote_smart_tag("/lib/hat/025.jpg", "wear:type/hat")
    assert svc.search("shoe").total > 10
    changed = svc.delete_tag_model("wear")
    assert changed > 60
    assert svc.search("shoe").total == 0
    assert _smart(svc, "/lib/hat/025.jpg")["wear:type/hat"][2]  # promoted: kept, as manual
    wear_library_model(svc)
    again = svc.tag(["/lib/"])
    assert (again.classified, again.skipped) == (120, 0)  # a new model is never skipped


def wear_library_model(app: SmartTags) -> None:
    ids = {t: tuple(a.id for a in app.catalog.assets(f"/lib/{t.rsplit('/', 1)[1]}/")[:15])
           for t in TAGS}  # fmt: skip
    app.tag_models.create(ModelSpec(name="wear", title="Wear", examples=ids))
    app.tag_models.train("wear")


def test_moderation_errors_name_the_asset_and_its_tags(svc: SmartTags) -> None:
    svc.tag(["/lib/"])
    with pytest.raises(CatalogError, match=r"asset /lib/hat/025.jpg has no smart tag 'x:y'"):
        svc.remove_smart_tag("/lib/hat/025.jpg", "x:y")
    with pytest.raises(Exception, match=r"no asset '/lib/nope\.jpg'"):
        svc.promote_smart_tag("/lib/nope.jpg", TAGS[0])
    with pytest.raises(Exception, match="'/elsewhere' is neither a DAM path"):
        svc.tag(["/elsewhere"])


def test_bulk_remove_over_a_search_with_a_dry_run(svc: SmartTags) -> None:
    svc.tag(["/lib/"])
    shoes = svc.search("shoe", limit=200)
    n = sum(1 for h in shoes.hits if "wear:type/shoe" in _smart(svc, h.asset_id))
    assert n > 10
    dry = svc.bulk_remove_smart_tag("wear:type/shoe", "shoe", path="/lib/shoe/")
    assert (dry["dry_run"], dry["removed"], dry["with_tag"]) == (True, 0, n)
    assert svc.search("shoe", limit=200).total == shoes.total  # nothing changed
    done = svc.bulk_remove_smart_tag("wear:type/shoe", "shoe", path="/lib/shoe/", dry_run=False)
    assert done["removed"] == n
    assert svc.search("shoe", path_prefix="/lib/shoe/").total == 0
    svc.tag_models.train("wear", activate=True)
    svc.tag(["/lib/"])
    assert svc.search("shoe", path_prefix="/lib/shoe/").total == 0  # never back


def test_assets_without_vectors_fail_and_the_run_goes_on(svc: SmartTags) -> None:
    add_assets(svc.catalog, np.zeros((2, 32), np.float32), ["/lib/new/a.jpg", "/lib/new/b.jpg"],
               embed=False)  # fmt: skip
    report = svc.tag(["/lib/"])
    assert report.classified == 120 and len(report.failed) == 2
    assert (
        report.failed[0][0] == "/lib/new/a.jpg" and "no current fake vector" in report.failed[0][1]
    )


def test_a_second_tagging_run_is_refused_and_searches_keep_working(svc: SmartTags) -> None:
    svc.tag(["/lib/"])
    with exclusive(svc.settings.home, "a tagging run"):
        with pytest.raises(BusyError, match=r"a tagging run \(pid \d+, since .*\) is running"):
            svc.tag(["/lib/"])
        assert svc.search("shoe").total > 0
    assert svc.tag(["/lib/"]).skipped == 120


def test_a_stopped_full_reindex_resumes(svc: SmartTags, monkeypatch: pytest.MonkeyPatch) -> None:
    from indexer.errors import BackendError
    from smarttags import search_sync

    svc.tag(["/lib/"])
    monkeypatch.setattr(search_sync, "BATCH", 25)
    backend = svc.search_backend
    real = backend.upsert
    calls = [0]

    def flaky(docs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 3:
            raise BackendError("connection reset (simulated)")
        return real(docs)

    monkeypatch.setattr(backend, "upsert", flaky)
    with pytest.raises(BackendError, match="simulated"):
        svc.reindex(full=True)
    again = svc.reindex(full=True)
    assert again.resumed and again.sent == 120 - 50  # two batches were done before
    assert backend.count() == 120 and svc.outbox_backlog().queued == 0


@pytest.mark.slow
def test_killed_tagging_run_resumes_to_the_same_end_state(tmp_path: Path) -> None:
    """kill -9 in the middle of `smarttags tag`, rerun: the catalog and the search index
    end exactly as after one uninterrupted run."""
    import shutil
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    home = tmp_path / "home"
    settings = Settings(home=home, embedder="fake")
    with SmartTags(settings) as app:
        by_tag, vecs, ids, _ = clusters(dict.fromkeys(TAGS, 14_000), spread=1.5, dim=64)
        add_assets(app.catalog, vecs, ids)
        taxonomy(app.catalog, TAGS)
        examples = {t: tuple(by_tag[t][:20]) for t in TAGS}
        app.tag_models.create(ModelSpec(name="wear", title="Wear", examples=examples))
        app.tag_models.train("wear")
        app.reindex(full=True)
    reference = tmp_path / "reference"
    shutil.copytree(home, reference)
    env = {**os.environ, "SMARTTAGS_EMBEDDER": "fake"}
    cmd = [sys.executable, "-m", "smarttags", "--home", str(home), "tag", "/lib/"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = home / "catalog.sqlite3"
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(db, timeout=0.1) as c:
                done = c.execute("SELECT count(*) FROM tagging_state").fetchone()[0]
        except sqlite3.OperationalError:
            pass
        if done >= 8192:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr!r}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as c:
        partial = c.execute("SELECT count(*) FROM tagging_state").fetchone()[0]
    assert 8192 <= partial <= 42_000
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    whole = subprocess.run(
        [*cmd[:4], str(reference), *cmd[5:]], env=env, capture_output=True, text=True, timeout=300
    )
    assert whole.returncode == 0, whole.stderr

    def end_state(path: Path) -> tuple[object, ...]:
        with SmartTags(Settings(home=path, embedder="fake")) as app:
            conn = app.catalog.connection
            tags = conn.execute(
                "SELECT a.id, s.tag_id, round(s.confidence, 6), s.model_version FROM smart_tags s "
                "JOIN assets a ON a.key = s.asset_key ORDER BY a.id"
            ).fetchall()
            states = conn.execute("SELECT count(*) FROM tagging_state").fetchone()[0]
            hits = [(h.asset_id, h.tier, round(h.score, 6)) for h in app.search("hat").hits]
            return tags, states, app.outbox_backlog().queued, app.search_backend.count(), hits

    resumed, uninterrupted = end_state(home), end_state(reference)
    assert resumed == uninterrupted
    assert resumed[1] == 42_000 and resumed[2] == 0 and resumed[3] == 42_000
