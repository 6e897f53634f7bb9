"""The OpenSearch search backend: opensearch-py against a cluster (or osmem-server in tests).

Documents go to a versioned index (``<alias>-000001``, ``-000002``...) behind an alias;
the schema comes from ``opensearch-config/index-template.json``; a full reindex builds
the next index, loads it, swaps the alias in one ``update_aliases`` call and deletes the
old index, so searches never see a half-built index. Bulk writes retry throttling
(429), server errors (5xx), timeouts and connection errors with exponential backoff,
and report every document that still fails, with the reason, in ``BulkResult.failed``.

Queries are rendered by :func:`ranking.dsl.to_dsl` and, for the facets,
:func:`ranking.dsl.to_dsl_facet_sample` (two searches, each retried); the tier of
a hit comes from its score (:func:`ranking.explain.tier_of`) and its ``why`` from
:func:`ranking.explain.evaluate` on the stored document.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from indexer.errors import BackendError
from ranking.backend import BulkResult
from ranking.document import SearchDocument
from ranking.dsl import (
    document_to_source,
    sample_facets,
    source_to_document,
    to_dsl,
    to_dsl_facet_sample,
)
from ranking.explain import evaluate, tier_of
from ranking.query import TieredQuery
from ranking.results import FacetCount, Hit, SearchResult, Why, capped_counts

__all__ = [
    "DEFAULT_ALIAS",
    "BackendError",
    "OpenSearchBackend",
    "RetryPolicy",
    "load_index_template",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_ALIAS = "smarttags-assets"
#: Where the schema lives: the repository's top-level ``opensearch-config/`` folder.
#: ``SMARTTAGS_OPENSEARCH_CONFIG`` (a folder) overrides it, e.g. for a wheel install.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "opensearch-config"
#: Where a wheel would carry it as package data (see opensearch-config/README.md).
PACKAGED_CONFIG_DIR = Path(__file__).resolve().parent / "opensearch-config"
TEMPLATE_FILE = "index-template.json"
#: HTTP statuses worth retrying: throttling and server-side trouble.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_ALIAS = re.compile(r"^[a-z0-9][a-z0-9._-]{0,200}$")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: ``initial_backoff * 2**(n-1)``, at most ``max_backoff``."""

    max_retries: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return float(min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1)))


def _opensearchpy() -> ModuleType:
    try:
        import opensearchpy
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise BackendError(
            "the opensearch search backend needs opensearch-py: `pip install opensearch-py`"
        ) from e
    return opensearchpy


def config_dir() -> Path:
    """``SMARTTAGS_OPENSEARCH_CONFIG``, else the repository's folder, else the packaged one."""
    env = os.environ.get("SMARTTAGS_OPENSEARCH_CONFIG")
    if env:
        return Path(env)
    if not CONFIG_DIR.is_dir() and PACKAGED_CONFIG_DIR.is_dir():
        return PACKAGED_CONFIG_DIR
    return CONFIG_DIR


def load_index_template(directory: Path | None = None) -> dict[str, Any]:
    """The index template from ``opensearch-config/`` (a fresh copy each call)."""
    path = (directory or config_dir()) / TEMPLATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BackendError(
            f"cannot read the OpenSearch index template {path}: {e.strerror or e}; "
            "set SMARTTAGS_OPENSEARCH_CONFIG to the opensearch-config folder"
        ) from e
    except json.JSONDecodeError as e:
        raise BackendError(f"OpenSearch index template {path} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or "template" not in data:
        raise BackendError(f"OpenSearch index template {path} has no 'template' section")
    return data


def _describe(e: Exception) -> str:
    """A one-line reason from an opensearch-py exception."""
    status = getattr(e, "status_code", None)
    info = getattr(e, "info", None)
    if isinstance(info, Mapping) and isinstance(info.get("error"), Mapping):
        err = info["error"]
        root = (err.get("root_cause") or [{}])[0]
        reason = err.get("reason") or root.get("reason") or ""
        return f"{status} {err.get('type', '')}: {reason}".strip()
    if status not in (None, "N/A"):
        return f"{status} {getattr(e, 'error', '') or e}"
    return f"{type(e).__name__}: {e}"


def _item_reason(info: Mapping[str, Any]) -> str:
    """A one-line reason for a failed bulk item (item error or whole-request exception)."""
    status = info.get("status")
    err = info.get("error")
    if isinstance(err, Mapping):
        reason = f"{status} {err.get('type', 'error')}: {err.get('reason', '')}"
        cause = err.get("caused_by")
        if isinstance(cause, Mapping) and cause.get("reason"):
            reason += f" ({cause.get('type', '')}: {cause['reason']})"
        return reason
    exc = info.get("exception")
    if isinstance(exc, Exception):
        return _describe(exc)
    return f"{status} {err}"


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


class OpenSearchBackend:
    """:class:`ranking.backend.SearchBackend` on OpenSearch (name ``"opensearch"``).

    ``client`` is an ``opensearchpy.OpenSearch`` or a URL (``http://host:9200``); a
    client made from a URL does no retries of its own (this class retries, bounded by
    ``retry``) and is closed by :meth:`close`. ``alias`` names the alias searches and
    writes go through; its indices are ``<alias>-NNNNNN`` and its index template is
    named ``alias`` with pattern ``<alias>-*``. ``refresh`` is passed to bulk writes
    (``"wait_for"``: the next search sees them without forcing a refresh).
    """

    name = "opensearch"

    def __init__(
        self,
        client: Any,
        alias: str = DEFAULT_ALIAS,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        chunk_size: int = 500,
        max_chunk_bytes: int = 10 * 1024 * 1024,
        refresh: bool | str = "wait_for",
        config: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not _ALIAS.match(alias):
            raise BackendError(
                f"alias {alias!r} is not a valid index name: use lower-case letters, "
                "digits, '-', '_' or '.', e.g. smarttags-assets"
            )
        if chunk_size < 1:
            raise BackendError(f"chunk_size must be at least 1, got {chunk_size}")
        self._os = _opensearchpy()
        self.alias = alias
        self.retry = retry or RetryPolicy()
        self.chunk_size = chunk_size
        self.max_chunk_bytes = max_chunk_bytes
        self.refresh = refresh
        self._config = config
        self._sleep = sleep
        if isinstance(client, str):
            self.url = client.rstrip("/")
            try:
                self.client: Any = self._os.OpenSearch(
                    hosts=[self.url], timeout=timeout, max_retries=0, retry_on_timeout=False
                )
            except Exception as e:
                raise BackendError(f"cannot make an OpenSearch client for {self.url}: {e}") from e
            self._owns_client = True
        else:
            self.client = client
            self.url = self._client_url(client)
            self._owns_client = False

    # -- plumbing ---------------------------------------------------------------------

    @staticmethod
    def _client_url(client: Any) -> str:
        hosts = getattr(getattr(client, "transport", None), "hosts", None) or []
        urls = []
        for h in hosts:
            if isinstance(h, Mapping):
                scheme = h.get("scheme") or ("https" if h.get("use_ssl") else "http")
                urls.append(f"{scheme}://{h.get('host', 'localhost')}:{h.get('port', 9200)}")
        return ", ".join(urls) or "the OpenSearch cluster"

    def _retryable(self, e: Exception) -> bool:
        if isinstance(e, self._os.exceptions.ConnectionError):  # includes timeouts
            return True
        return getattr(e, "status_code", None) in RETRYABLE_STATUS

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, retried on throttling, 5xx and connection trouble."""
        for attempt in range(self.retry.max_retries + 1):
            if attempt:
                self._sleep(self.retry.delay(attempt))
            try:
                return fn(*args, **kwargs)
            except self._os.exceptions.OpenSearchException as e:
                if self._retryable(e) and attempt < self.retry.max_retries:
                    log.info("%s on %s failed (%s); retrying", what, self.url, _describe(e))
                    continue
                tries = f" after {attempt + 1} attempts" if attempt else ""
                hint = ""
                if getattr(e, "status_code", None) == 404 and "index_not_found" in str(e):
                    hint = " (create the index first: ensure_schema() or a full reindex)"
                raise BackendError(
                    f"{what} on {self.url} failed{tries}: {_describe(e)}{hint}"
                ) from e
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def template_name(self) -> str:
        return self.alias

    def index_name(self, number: int) -> str:
        return f"{self.alias}-{number:06d}"

    def template(self) -> dict[str, Any]:
        """The index template body for this alias (pattern ``<alias>-*``)."""
        tpl = copy.deepcopy(load_index_template(self._config))
        tpl["index_patterns"] = [f"{self.alias}-*"]
        return tpl

    def schema_version(self) -> int:
        return int(self.template().get("_meta", {}).get("schema_version", 0))

    def _put_template(self) -> None:
        self._call(
            f"putting index template {self.template_name!r}",
            self.client.indices.put_index_template,
            name=self.template_name,
            body=self.template(),
        )

    def _numbered_indices(self) -> dict[int, str]:
        """Existing ``<alias>-NNNNNN`` indices by number."""
        found = self._call(
            f"listing indices {self.alias}-*",
            self.client.indices.get,
            index=f"{self.alias}-*",
            allow_no_indices=True,
            ignore_unavailable=True,
        )
        pattern = re.compile(re.escape(self.alias) + r"-(\d{6})$")
        out = {}
        for name in found or {}:
            m = pattern.match(name)
            if m:
                out[int(m.group(1))] = name
        return out

    def _next_index(self) -> str:
        numbers = self._numbered_indices()
        return self.index_name(max(numbers, default=0) + 1)

    def alias_indices(self) -> list[str]:
        """The indices behind the alias (empty when the alias does not exist)."""
        exists = self._call(
            f"checking alias {self.alias!r}", self.client.indices.exists_alias, name=self.alias
        )
        if not exists:
            return []
        found = self._call(
            f"reading alias {self.alias!r}", self.client.indices.get_alias, name=self.alias
        )
        return sorted(found or {})

    def _create_index(self, index: str, aliases: Mapping[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"aliases": dict(aliases)} if aliases else {}
        self._call(f"creating index {index!r}", self.client.indices.create, index=index, body=body)

    # -- SearchBackend ----------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Put the index template; create ``<alias>-000001`` behind the alias if missing."""
        self._put_template()
        current = self.alias_indices()
        if current:
            self._check_version(current)
            return
        exists = self._call(
            f"checking index {self.alias!r}", self.client.indices.exists, index=self.alias
        )
        if exists:
            raise BackendError(
                f"{self.alias!r} on {self.url} is an index, not an alias; run a full reindex "
                "into a new index after deleting it, or choose another alias"
            )
        index = self._next_index()
        try:
            self._create_index(index, {self.alias: {}})
        except BackendError as e:
            if "resource_already_exists" in str(e) and self.alias_indices():
                return  # another process created it first
            raise

    def _check_version(self, indices: Sequence[str]) -> None:
        want = self.schema_version()
        mappings = self._call(
            f"reading mappings of {self.alias!r}",
            self.client.indices.get_mapping,
            index=self.alias,
        )
        for index in indices:
            meta = (mappings.get(index, {}).get("mappings", {}) or {}).get("_meta") or {}
            have = meta.get("schema_version")
            if have != want:
                log.warning(
                    "index %s has schema version %s, opensearch-config has %s: "
                    "run a full reindex to apply it",
                    index,
                    have,
                    want,
                )

    def upsert(self, docs: Sequence[SearchDocument]) -> BulkResult:
        """Index (replace) whole documents by asset id; visible to the next search."""
        actions = (
            {
                "_op_type": "index",
                "_index": self.alias,
                "_id": d.asset_id,
                "_source": document_to_source(d),
            }
            for d in docs
        )
        return self._bulk(actions, refresh=self.refresh)

    def delete(self, asset_ids: Sequence[str]) -> BulkResult:
        """Delete documents by asset id; unknown ids count as done."""
        actions = (
            {"_op_type": "delete", "_index": self.alias, "_id": asset_id} for asset_id in asset_ids
        )
        return self._bulk(actions, refresh=self.refresh)

    def count(self) -> int:
        resp = self._call(f"counting {self.alias!r}", self.client.count, index=self.alias)
        return int(resp["count"])

    def search(self, query: TieredQuery) -> SearchResult:
        """The page, tier counts and total (capped, :func:`ranking.results.capped_counts`)
        and the facets of the top ``facet_sample`` hits (a second search)."""
        main, sample = (
            self._call(f"searching {self.alias!r}", self.client.search, index=self.alias,
                       body=body)
            for body in (to_dsl(query), to_dsl_facet_sample(query))
        )  # fmt: skip
        hits = []
        for h in main["hits"]["hits"]:
            score = h.get("_score")
            if score is None:
                score = h["sort"][0]
            doc = source_to_document(h["_source"])
            explained = evaluate(doc, query)
            hits.append(
                Hit(
                    asset_id=doc.asset_id,
                    tier=tier_of(float(score), query),
                    score=float(score),
                    why=explained.why if explained else Why(),
                )
            )
        buckets = main.get("aggregations", {}).get("tiers", {}).get("buckets", {})
        exact = {k: int(buckets.get(str(k), {}).get("doc_count", 0)) for k in (1, 2, 3)}
        total, relation, tiers = capped_counts(exact, query.profile.track_total_hits)
        smart, manual = sample_facets((h.get("_source") or {} for h in sample["hits"]["hits"]),
                                      query)  # fmt: skip
        return SearchResult(
            hits=tuple(hits),
            total=total,
            tiers=tiers,
            smart_tag_facets=tuple(FacetCount(t, n) for t, n in smart),
            manual_tag_facets=tuple(FacetCount(t, n) for t, n in manual),
            total_relation=relation,
        )

    def close(self) -> None:
        if self._owns_client:
            try:
                self.client.close()
            except Exception as e:  # closing must not mask the caller's error
                log.debug("closing the OpenSearch client for %s: %s", self.url, e)

    # -- bulk -------------------------------------------------------------------------

    def _bulk(self, actions: Iterable[dict[str, Any]], *, refresh: bool | str) -> BulkResult:
        """Send ``actions`` in chunks; retry what is retryable; report every failure."""
        helpers = self._os.helpers
        kwargs: dict[str, Any] = {}
        if refresh:
            kwargs["refresh"] = "true" if refresh is True else refresh
        result = BulkResult()
        for batch in _batches(actions, self.chunk_size):
            pending = batch
            for attempt in range(self.retry.max_retries + 1):
                if attempt:
                    self._sleep(self.retry.delay(attempt))
                retry: list[dict[str, Any]] = []
                try:
                    outcomes = helpers.streaming_bulk(
                        self.client,
                        pending,
                        chunk_size=len(pending),
                        max_chunk_bytes=self.max_chunk_bytes,
                        raise_on_error=False,
                        raise_on_exception=False,
                        max_retries=0,
                        **kwargs,
                    )
                    for action, outcome in itertools.zip_longest(pending, outcomes):
                        if action is None:
                            continue
                        if outcome is None:
                            result.failed.append((action["_id"], "no answer in the bulk response"))
                            continue
                        ok, item = outcome
                        op, info = next(iter(item.items()))
                        status = info.get("status")
                        if ok or (op == "delete" and status == 404):
                            result.ok += 1
                        elif self._item_retryable(info) and attempt < self.retry.max_retries:
                            retry.append(action)
                        else:
                            reason = _item_reason(info)
                            if self._item_retryable(info):
                                reason += f" (gave up after {attempt + 1} attempts)"
                            result.failed.append((str(action["_id"]), reason))
                except self._os.exceptions.OpenSearchException as e:
                    raise BackendError(f"bulk write to {self.url} failed: {_describe(e)}") from e
                if not retry:
                    break
                log.info(
                    "bulk write to %s: retrying %d of %d documents",
                    self.url,
                    len(retry),
                    len(batch),
                )
                pending = retry
        if result.failed:
            log.warning(
                "bulk write to %s: %d failed, first: %s: %s",
                self.url,
                len(result.failed),
                *result.failed[0],
            )
        return result

    def _item_retryable(self, info: Mapping[str, Any]) -> bool:
        exc = info.get("exception")
        if isinstance(exc, self._os.exceptions.ConnectionError):
            return True
        return info.get("status") in RETRYABLE_STATUS

    # -- reindex and housekeeping -----------------------------------------------------

    def full_reindex(self, docs: Iterable[SearchDocument], *, max_failures: int = 0) -> BulkResult:
        """Build the next versioned index from ``docs``, then swap the alias to it.

        Searches keep using the old index until the single ``update_aliases`` call that
        removes it from the alias and adds the new one; the old index is deleted after.
        With more than ``max_failures`` failed documents the new index is deleted, the
        alias is left alone, and :class:`BackendError` names the first failures.
        """
        new = self.start_reindex()
        try:
            result = self.write_index(new, docs)
            if len(result.failed) > max_failures:
                first = "; ".join(f"{i}: {r}" for i, r in result.failed[:3])
                raise BackendError(
                    f"full reindex into {new} on {self.url}: {len(result.failed)} documents "
                    f"failed (allowed {max_failures}); the alias still points to "
                    f"{', '.join(self.alias_indices()) or 'nothing'}. First failures: {first}"
                )
            self.finish_reindex(new)
        except BaseException:
            # keep the new index if the swap did happen (e.g. a timeout after success)
            try:
                swapped = new in self.alias_indices()
            except BackendError:
                swapped = True  # cannot tell: better an orphan index than a dangling alias
            if not swapped:
                self._delete_quietly(new)
            raise
        return result

    def start_reindex(self, resume: str | None = None) -> str:
        """The index a full reindex writes to: ``resume`` when it is a numbered index of
        this alias that the alias does not point to yet (a reindex that was stopped),
        else a new one. Orphans of earlier stopped runs are deleted."""
        self._put_template()
        old = self.alias_indices()
        if not old and self._call(
            f"checking index {self.alias!r}", self.client.indices.exists, index=self.alias
        ):
            raise BackendError(f"{self.alias!r} on {self.url} is an index, not an alias")
        numbered = self._numbered_indices()
        orphans = [i for i in numbered.values() if i not in old and i != resume]
        for index in orphans:
            self._delete_quietly(index)
        if resume is not None and resume in numbered.values() and resume not in old:
            return resume
        new = self._next_index()
        self._create_index(new)
        return new

    def write_index(self, index: str, docs: Iterable[SearchDocument]) -> BulkResult:
        """Bulk-write ``docs`` straight into ``index`` (a reindex target, not the alias)."""
        actions = (
            {
                "_op_type": "index",
                "_index": index,
                "_id": d.asset_id,
                "_source": document_to_source(d),
            }
            for d in docs
        )
        return self._bulk(actions, refresh=False)

    def finish_reindex(self, new: str) -> None:
        """Refresh ``new``, point the alias at it in one atomic call, drop the old ones."""
        old = [i for i in self.alias_indices() if i != new]
        self._call(f"refreshing {new}", self.client.indices.refresh, index=new)
        swap: list[dict[str, Any]] = [{"remove": {"index": i, "alias": self.alias}} for i in old]
        swap.append({"add": {"index": new, "alias": self.alias}})
        try:
            self._call(
                f"swapping alias {self.alias!r} to {new}",
                self.client.indices.update_aliases,
                body={"actions": swap},
            )
        except BackendError:
            # a retried swap fails if the first try did succeed (its index is gone)
            if self.alias_indices() != [new]:
                raise
        for index in old:
            self._delete_quietly(index)

    def _delete_quietly(self, index: str) -> None:
        try:
            self._call(f"deleting index {index}", self.client.indices.delete, index=index)
        except BackendError as e:
            log.warning("%s (delete it by hand)", e)

    def drop(self) -> None:
        """Delete every ``<alias>-NNNNNN`` index and the index template (tests, uninstall)."""
        for index in self._numbered_indices().values():
            self._call(f"deleting index {index}", self.client.indices.delete, index=index)
        exists = self._call(
            f"checking index template {self.template_name!r}",
            self.client.indices.exists_index_template,
            name=self.template_name,
        )
        if exists:
            self._call(
                f"deleting index template {self.template_name!r}",
                self.client.indices.delete_index_template,
                name=self.template_name,
            )

    def __enter__(self) -> OpenSearchBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
