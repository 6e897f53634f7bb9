"""The search backend contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .document import SearchDocument
from .query import TieredQuery
from .results import SearchResult


@dataclass
class BulkResult:
    """What a bulk write did. Failures are reported per document, never dropped."""

    ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (asset id, reason)


@runtime_checkable
class SearchBackend(Protocol):
    """A search index of :class:`SearchDocument` that answers :class:`TieredQuery`.

    Semantics every backend implements (and the shared contract suite checks):

    * ``upsert`` replaces whole documents by ``asset_id``; ``delete`` removes them
      (unknown ids are not an error). Writes are visible to the next ``search``.
    * ``search`` returns each matching asset once, in its best tier:
      tier 1 when every query term is in the metadata (title, description, keywords,
      manual tags' titles/synonyms; promoted smart tags count as manual); tier 2 when
      every term is in smart tags with confidence >= the profile's floor; tier 3 when any
      term is. Matching is on analysed tokens (``ranking.analysis``), never on query
      syntax.
    * Scores come from constant-score clauses and confidence features only (never from
      engine text statistics): ``tier_boost + within`` as :mod:`ranking.explain`
      defines; hits are ordered by score, then asset id ascending, so pages are stable.
    * Result-set bounds, as OpenSearch's ``track_total_hits`` and ``sampler``, from the
      profile: ``total`` is ``min(hits, track_total_hits)`` with ``total_relation``
      ``"gte"`` when there are more hits, else ``"eq"``; ``tiers`` are those of the
      first ``total`` hits in hit order (:func:`ranking.results.capped_counts`). Facets
      are the most frequent smart tags (at or above the floor) and manual tags of the
      top ``facet_sample`` hits in hit order (ties at its edge go by asset id).
      :func:`ranking.explain.search` computes the whole result, for tests.
    """

    name: str

    def ensure_schema(self) -> None:
        """Create the index/tables if missing. Idempotent."""
        ...

    def upsert(self, docs: Sequence[SearchDocument]) -> BulkResult: ...

    def delete(self, asset_ids: Sequence[str]) -> BulkResult: ...

    def count(self) -> int: ...

    def search(self, query: TieredQuery) -> SearchResult: ...

    def close(self) -> None: ...
