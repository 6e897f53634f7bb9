"""Search end to end through the service and the CLI: catalog -> documents -> backend."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.errors import TaxonomyError
from ranking.errors import ProfileError, QueryError
from smarttags.cli import cli
from smarttags.service import SmartTags

TAXONOMY = """
- id: people:woman
  titles: {en: woman, de: Frau}
- id: activity:running
  titles: {en: running, de: Laufen}
  synonyms: {en: [jogging]}
- id: people:man
  titles: {en: man}
"""


@pytest.fixture
def tiered(app: SmartTags, make_image: Callable[..., Path], tmp_path: Path) -> SmartTags:
    """The tier example (A..E) in a real catalog, with smart tags written through its API."""
    for name, color in (
        ("a", (250, 0, 0)),
        ("b", (0, 250, 0)),
        ("c", (0, 0, 250)),
        ("d", (250, 250, 0)),
        ("e", (0, 250, 250)),
    ):
        root = make_image(f"{name}.jpg", color=color).parent
    tax = tmp_path / "tax.yaml"
    tax.write_text(TAXONOMY)
    app.import_taxonomy(tax)
    side = tmp_path / "meta.csv"
    side.write_text("path,title\na.jpg,Woman running\ne.jpg,A man walking\n")
    app.ingest([root], sidecar=side)
    c = app.catalog
    c.put_smart_tags(
        c.get_asset("/photos/b.jpg").key,
        [("people:woman", 0.9, "m@1"), ("activity:running", 0.8, "m@1")],
    )
    c.put_smart_tags(c.get_asset("/photos/c.jpg").key, [("people:woman", 0.95, "m@1")])
    c.put_smart_tags(c.get_asset("/photos/d.jpg").key, [("activity:running", 0.4, "m@1")])
    c.put_smart_tags(c.get_asset("/photos/e.jpg").key, [("people:man", 0.9, "m@1")])
    app.sync_search()
    return app


def test_tiers_from_the_catalog(tiered: SmartTags) -> None:
    result = tiered.search("woman running")
    assert [(h.asset_id, h.tier) for h in result.hits] == [
        ("/photos/a.jpg", 1),
        ("/photos/b.jpg", 2),
        ("/photos/c.jpg", 3),
        ("/photos/d.jpg", 3),
    ]
    assert [(f.tag, f.count) for f in result.smart_tag_facets] == [
        ("activity:running", 2),
        ("people:woman", 2),
    ]


@pytest.mark.parametrize("cache_mb", [0, 1])
def test_search_cache_setting(tiered: SmartTags, cache_mb: int) -> None:
    """SMARTTAGS_SEARCH_CACHE_MB sizes the embedded backend's caches; 0 ranks in SQL.
    Both give the same tiers."""
    settings = tiered.settings.model_copy(update={"search_cache_mb": cache_mb})
    with SmartTags(settings) as svc:
        backend = svc.search_backend
        assert backend.memory_plan is (cache_mb > 0)  # type: ignore[attr-defined]
        assert backend.meta_memory_rows == cache_mb * 2**20 * 4 // 7 // 4  # type: ignore[attr-defined]
        hits = svc.search("woman running").hits
    assert [(h.asset_id, h.tier) for h in hits] == [
        ("/photos/a.jpg", 1), ("/photos/b.jpg", 2), ("/photos/c.jpg", 3), ("/photos/d.jpg", 3)
    ]  # fmt: skip


def test_synonyms_and_promotion_from_the_catalog(tiered: SmartTags) -> None:
    assert [h.asset_id for h in tiered.search("jogging").hits] == ["/photos/b.jpg", "/photos/d.jpg"]
    key = tiered.catalog.get_asset("/photos/d.jpg").key
    tiered.catalog.set_promoted(key, "activity:running")
    tiered.sync_search(["/photos/d.jpg"])
    hits = tiered.search("jogging").hits
    assert [(h.asset_id, h.tier) for h in hits] == [("/photos/d.jpg", 1), ("/photos/b.jpg", 2)]


def test_profile_errors_name_the_problem(tiered: SmartTags, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('combine = "median"\n')
    with pytest.raises(ProfileError, match=r"bad.toml: combine"):
        tiered.profile(bad)
    de = tmp_path / "de.toml"
    de.write_text('languages = ["en", "de"]\n')
    with pytest.raises(ProfileError, match=r"language 'de'.*SMARTTAGS_LANGUAGES"):
        tiered.profile(de)
    close = tmp_path / "close.toml"
    close.write_text("tier_boosts = [300, 200, 100]\n")
    with pytest.raises(ProfileError, match="too close"):
        tiered.profile(close)


def test_query_limits(tiered: SmartTags) -> None:
    with pytest.raises(QueryError, match="no words"):
        tiered.search("!!!")
    with pytest.raises(QueryError, match="512"):
        tiered.search("a" * 513)
    with pytest.raises(QueryError, match="offset"):
        tiered.search("woman", offset=9990, limit=20)


def test_smart_tags_need_known_tags(tiered: SmartTags) -> None:
    with pytest.raises(TaxonomyError, match="'x:unknown'"):
        tiered.catalog.put_smart_tags(1, [("x:unknown", 0.5, "m@1")])


def test_search_eval_reindex_cli(tiered: SmartTags, tmp_path: Path) -> None:
    home = str(tiered.settings.home)
    env = {"SMARTTAGS_EMBEDDER": "fake"}
    run = CliRunner().invoke
    r = run(cli, ["--home", home, "search", "woman running", "--explain"], env=env)
    assert r.exit_code == 0, r.output
    assert "4 hits (tier 1: 1, tier 2: 1, tier 3: 2)" in r.output
    assert "'woman' in title" in r.output
    assert "smart tag people:woman 0.90 matches 'woman'" in r.output
    r = run(cli, ["--home", home, "search", "woman", "--json", "--path", "/photos/c"], env=env)
    data = json.loads(r.output)
    assert [h["asset"] for h in data["hits"]] == ["/photos/c.jpg"]
    judgments = tmp_path / "j.csv"
    judgments.write_text(
        "query,asset,grade\nwoman running,/photos/a.jpg,3\n"
        "woman running,/photos/b.jpg,2\nwoman,/photos/c.jpg,1\n"
    )
    strict = tmp_path / "strict.toml"
    strict.write_text("confidence_floor = 0.95\n")
    r = run(
        cli,
        ["--home", home, "eval", "--judgments", str(judgments), "--profile", str(strict), "--json"],
        env=env,
    )
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)["strict"]
    assert metrics["queries"] == 2 and 0 < metrics["ndcg@10"] < 1
    r = run(cli, ["--home", home, "eval", "--judgments", str(judgments)], env=env)
    assert r.exit_code == 0 and "ndcg@10" in r.output and "default" in r.output
    r = run(cli, ["--home", home, "reindex", "--json"], env=env)
    assert json.loads(r.output)["indexed"] == 0  # nothing queued: everything is in sync
    r = run(cli, ["--home", home, "reindex", "--full", "--json"], env=env)
    out = json.loads(r.output)
    assert (out["indexed"], out["failed"], out["queued"], out["full"]) == (5, [], 0, True)
    r = run(
        cli, ["--home", home, "search", "woman", "--profile", str(tmp_path / "nope.toml")], env=env
    )
    assert r.exit_code == 2


@pytest.mark.opensearch
def test_same_hits_on_opensearch_through_the_cli(tiered: SmartTags, opensearch_url: str) -> None:
    import uuid

    home = str(tiered.settings.home)
    env = {
        "SMARTTAGS_EMBEDDER": "fake",
        "SMARTTAGS_OPENSEARCH_URL": opensearch_url,
        "SMARTTAGS_OPENSEARCH_ALIAS": f"st-cli-{uuid.uuid4().hex[:8]}",
    }
    run = CliRunner().invoke
    r = run(cli, ["--home", home, "reindex", "--backend", "opensearch", "--json"], env=env)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)  # a new index: the first sync fills it completely
    assert (out["indexed"], out["failed"], out["full"]) == (5, [], True)
    hits = {}
    for backend in ("embedded", "opensearch"):
        r = run(
            cli,
            ["--home", home, "search", "woman running", "--backend", backend, "--json"],
            env=env,
        )
        assert r.exit_code == 0, r.output
        hits[backend] = [(h["asset"], h["tier"]) for h in json.loads(r.output)["hits"]]
    assert (
        hits["opensearch"]
        == hits["embedded"]
        == [("/photos/a.jpg", 1), ("/photos/b.jpg", 2), ("/photos/c.jpg", 3), ("/photos/d.jpg", 3)]
    )


def test_opensearch_backend_needs_a_url(tiered: SmartTags) -> None:
    r = CliRunner().invoke(
        cli,
        ["--home", str(tiered.settings.home), "search", "woman", "--backend", "opensearch"],
        env={"SMARTTAGS_EMBEDDER": "fake", "SMARTTAGS_OPENSEARCH_URL": ""},
    )
    assert r.exit_code == 1
    assert "SMARTTAGS_OPENSEARCH_URL" in r.output


def test_a_language_change_asks_for_a_reindex(tiered: SmartTags) -> None:
    from indexer.errors import BackendError
    from smarttags.settings import Settings

    settings = Settings(home=tiered.settings.home, embedder="fake", languages=("en", "de"))
    with SmartTags(settings) as svc:
        with pytest.raises(BackendError, match=r"holds stems of en but.*smarttags reindex"):
            svc.search("frau")
        assert svc.sync_search().failed == []  # the full reindex records en, de
        assert [h.asset_id for h in svc.search("frau").hits] == ["/photos/c.jpg", "/photos/b.jpg"]


def test_cli_shows_capped_totals(capsys) -> None:  # type: ignore[no-untyped-def]
    from ranking.results import SearchResult
    from smarttags.search_commands import _print_result

    _print_result(SearchResult((), 10_000, {1: 9_000, 2: 1_000}, total_relation="gte"), False, {})
    out = capsys.readouterr().out
    assert out.startswith("10,000+ hits (tier 1: 9,000, tier 2: 1,000; counted up to the first")
    _print_result(SearchResult((), 3, {3: 3}), False, {})
    assert capsys.readouterr().out == "3 hits (tier 3: 3)\n"
