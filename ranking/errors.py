"""Errors raised by the ranking package."""

from __future__ import annotations


class RankingError(Exception):
    """Base class of every error the ranking package raises on purpose."""


class ProfileError(RankingError):
    """A ranking profile file or value is invalid."""


class QueryError(RankingError):
    """A search query is invalid (too long, bad paging, bad filter)."""


class JudgmentsError(RankingError):
    """A judgments file for evaluation is invalid."""
