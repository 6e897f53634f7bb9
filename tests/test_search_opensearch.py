"""The OpenSearch backend against the shared contract (osmem-server, or OPENSEARCH_URL)."""

from __future__ import annotations

import pytest

from ranking.backend import SearchBackend

from .contract.search_contract import SearchBackendContract


@pytest.mark.opensearch
class TestOpenSearchContract(SearchBackendContract):
    @pytest.fixture
    def backend(self, opensearch_backend: SearchBackend) -> SearchBackend:
        return opensearch_backend
