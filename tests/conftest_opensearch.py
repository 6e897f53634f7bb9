"""Fixtures for the OpenSearch backend (a pytest plugin module).

``opensearch_url`` is ``OPENSEARCH_URL`` when set (a real cluster), else an
osmem-server started for the session. No server is a FAILURE, never a skip: a test
marked ``opensearch`` that was selected must run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from indexer.backends.opensearch import OpenSearchBackend, RetryPolicy
from indexer.errors import BackendError

#: Quick retries for tests (a real deployment keeps the defaults).
TEST_RETRY = RetryPolicy(max_retries=3, initial_backoff=0.01, max_backoff=0.05)


def _check_reachable(url: str) -> None:
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[url], timeout=10, max_retries=0)
    try:
        client.info()
    except Exception as e:
        pytest.fail(f"OPENSEARCH_URL={url} is set but not reachable: {e}", pytrace=False)
    finally:
        client.close()


@pytest.fixture(scope="session")
def opensearch_url() -> Iterator[str]:
    """A running OpenSearch-compatible server: ``OPENSEARCH_URL``, else osmem-server."""
    url = os.environ.get("OPENSEARCH_URL")
    if url:
        _check_reachable(url)
        yield url
        return
    try:
        from osmem_server import OsmemServer
    except ImportError:
        pytest.fail(
            "tests marked 'opensearch' need a server: `pip install osmem-server` "
            "(in the [test] extra) or set OPENSEARCH_URL to a cluster",
            pytrace=False,
        )
    try:
        server = OsmemServer.start(japanese=False)
    except Exception as e:
        pytest.fail(
            f"could not start osmem-server ({e}); set OPENSEARCH_URL to a cluster "
            "or deselect with -m 'not opensearch'",
            pytrace=False,
        )
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def opensearch_backend_factory(
    opensearch_url: str,
) -> Iterator[Callable[..., OpenSearchBackend]]:
    """Make backends on unique aliases (``st-test-<hex>``); all are dropped afterwards.

    ``factory(url=None, alias=None, **kwargs)``; the schema is NOT ensured.
    """
    made: list[OpenSearchBackend] = []

    def factory(
        url: str | None = None, alias: str | None = None, **kwargs: Any
    ) -> OpenSearchBackend:
        kwargs.setdefault("retry", TEST_RETRY)
        backend = OpenSearchBackend(
            url or opensearch_url, alias or f"st-test-{uuid.uuid4().hex[:12]}", **kwargs
        )
        made.append(backend)
        return backend

    yield factory
    errors = []
    for backend in made:
        cleaner = OpenSearchBackend(opensearch_url, backend.alias, retry=TEST_RETRY)
        try:
            cleaner.drop()
        except BackendError as e:
            errors.append(str(e))
        finally:
            cleaner.close()
            backend.close()
    if errors:
        pytest.fail("cleaning up test indices failed: " + "; ".join(errors), pytrace=False)


@pytest.fixture
def opensearch_backend(
    opensearch_backend_factory: Callable[..., OpenSearchBackend],
) -> OpenSearchBackend:
    """A fresh backend on its own alias, schema ensured, dropped after the test."""
    backend = opensearch_backend_factory()
    backend.ensure_schema()
    return backend
