"""The three-tier query as a frozen, backend-neutral value."""

from __future__ import annotations

from dataclasses import dataclass, field

from .analysis import Analyzer, QueryTerm
from .errors import QueryError
from .profile import RankingProfile

MAX_QUERY_CHARS = 512
MAX_LIMIT = 200
MAX_WINDOW = 10_000  # offset + limit, as OpenSearch's default max_result_window


@dataclass(frozen=True)
class TieredQuery:
    """What to search for; translators turn it into OpenSearch DSL or SQL.

    Tier 1: every term in the metadata (title, description, keywords, manual tags' titles
    and synonyms), across fields. Tier 2: every term in smart tags at or above the
    profile's confidence floor. Tier 3: any term in such smart tags. An asset appears
    once, in its best tier; within a tier, by score, then by asset id.
    Filters: ``path_prefix`` (folder), ``formats`` (any of), ``tags`` (all of: manual,
    or smart at or above the floor).
    """

    text: str
    terms: tuple[QueryTerm, ...]
    profile: RankingProfile = field(default_factory=RankingProfile)
    path_prefix: str | None = None
    formats: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    offset: int = 0
    limit: int = 20

    @classmethod
    def build(
        cls,
        text: str,
        *,
        profile: RankingProfile | None = None,
        path_prefix: str | None = None,
        formats: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
        offset: int = 0,
        limit: int = 20,
    ) -> TieredQuery:
        """Analyse ``text`` with the profile's languages and validate everything."""
        profile = profile or RankingProfile()
        if len(text) > MAX_QUERY_CHARS:
            raise QueryError(
                f"query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}"
            )
        terms = Analyzer(profile.languages).query_terms(text)
        if not terms:
            raise QueryError(f"query {text!r} has no words to search for")
        if len(terms) > profile.max_terms:
            raise QueryError(
                f"query has {len(terms)} distinct words; profile {profile.name!r} allows "
                f"{profile.max_terms} (max_terms)"
            )
        if not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit {limit} is out of range; use 1 to {MAX_LIMIT}")
        if offset < 0 or offset + limit > MAX_WINDOW:
            raise QueryError(
                f"offset {offset} + limit {limit} is out of range; pages reach at most "
                f"{MAX_WINDOW} hits deep: narrow the query instead"
            )
        if path_prefix is not None and not path_prefix.startswith("/"):
            raise QueryError(f"path prefix {path_prefix!r} must start with '/', e.g. /clothing")
        return cls(
            text=text,
            terms=terms,
            profile=profile,
            path_prefix=path_prefix,
            formats=tuple(sorted({f.upper() for f in formats})),
            tags=tuple(sorted(set(tags))),
            offset=offset,
            limit=limit,
        )
