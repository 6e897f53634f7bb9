"""Tagging with the OpenSearch backend: an outage in the middle of a run loses nothing,
and a full reindex swaps the alias while searches keep working.

The outage test stops (SIGSTOP) and resumes (SIGCONT) its own osmem-server, so it
always runs against osmem, also when ``OPENSEARCH_URL`` points at a real cluster.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from indexer.backends.opensearch import OpenSearchBackend, RetryPolicy
from smarttags.service import SmartTags
from smarttags.settings import Settings

from .training_helpers import WEAR, wear_library

pytestmark = pytest.mark.opensearch

TAGS = WEAR


@pytest.fixture
def own_osmem() -> Iterator[Any]:
    try:
        from osmem_server import OsmemServer

        server = OsmemServer.start(japanese=False)
    except Exception as e:  # the test was selected: fail, never skip
        pytest.fail(f"could not start osmem-server for the outage test: {e}", pytrace=False)
    try:
        yield server
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.close()


def _service(tmp_path: Path, url: str, alias: str, **backend: Any) -> SmartTags:
    settings = Settings(
        home=tmp_path / "home", embedder="fake", backend="opensearch", opensearch_url=url,
        opensearch_alias=alias,
    )  # fmt: skip
    os_backend = OpenSearchBackend(url, alias, **backend)
    os_backend.ensure_schema()
    return SmartTags(settings, search_backend=os_backend)


def _hits(app: SmartTags, text: str) -> list[tuple[str, int]]:
    return [(h.asset_id, h.tier) for h in app.search(text, limit=200).hits]


def test_an_outage_mid_run_loses_nothing(tmp_path: Path, own_osmem: Any) -> None:
    quick = RetryPolicy(max_retries=1, initial_backoff=0.01, max_backoff=0.01)
    with _service(tmp_path, own_osmem.url, "st-outage", retry=quick, timeout=1.0) as app:
        wear_library(app)
        first = app.tag(["/lib/"])
        assert first.sync["error"] == "" and app.outbox_backlog().queued == 0
        before = _hits(app, "shoe")
        os.kill(own_osmem.pid, signal.SIGSTOP)  # the backend stops answering
        app.tag_models.add_examples("wear", TAGS[2], ["/lib/shoe/030.jpg"])
        app.tag_models.train("wear", activate=True)
        second = app.tag(["/lib/"])  # the catalog takes every change
        assert second.classified == 120 and second.changed_assets > 0
        assert second.sync["error"] and second.sync["queued"] == second.changed_assets
        backlog = app.outbox_backlog()
        assert backlog.queued == second.changed_assets and backlog.failing > 0
        assert app.status()["search_backlog"]["queued"] == backlog.queued
        os.kill(own_osmem.pid, signal.SIGCONT)  # back
        drained = app.reindex()
        assert drained.error == "" and drained.sent == second.changed_assets
        assert app.outbox_backlog().queued == 0
        after = _hits(app, "shoe")
        assert after != before  # version 2's tags arrived
    # the same as an index built from scratch out of the catalog
    with _service(tmp_path, own_osmem.url, "st-fresh") as fresh:
        fresh.reindex(full=True)
        assert _hits(fresh, "shoe") == after
        assert _hits(fresh, "hat") == _hits(_service(tmp_path, own_osmem.url, "st-outage"), "hat")


def test_full_reindex_swaps_the_alias(
    tmp_path: Path,
    opensearch_url: str,
    opensearch_backend_factory: Callable[..., OpenSearchBackend],
) -> None:
    alias = f"st-test-{uuid.uuid4().hex[:12]}"
    backend = opensearch_backend_factory(alias=alias)  # dropped after the test
    backend.ensure_schema()
    with _service(tmp_path, opensearch_url, alias) as app:
        wear_library(app)
        app.tag(["/lib/"])
        first = backend.alias_indices()
        expected = _hits(app, "shoe")
        result = app.reindex(full=True)
        assert result.full and result.sent == 120 and result.failed == []
        second = backend.alias_indices()
        assert len(second) == 1 and second != first
        assert backend.count() == 120
        assert _hits(app, "shoe") == expected
