"""The embedded (SQLite FTS5) backend against the shared contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.backends.embedded import EmbeddedBackend

from .contract.search_contract import SearchBackendContract


class TestEmbeddedContract(SearchBackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[EmbeddedBackend]:
        b = EmbeddedBackend(tmp_path / "catalog.sqlite3")
        b.ensure_schema()
        yield b
        b.close()
