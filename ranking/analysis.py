"""Text analysis, done once in Python for documents and queries alike.

Both search backends index the tokens this module produces and match query tokens
exactly, so "running" finds "run" the same way in SQLite and in OpenSearch (whose own
english analyzer and FTS5's porter tokenizer disagree on edge cases such as "women's").

A token is lower-cased, accent-folded, split on anything that is not a letter or
digit, with a trailing possessive "'s" dropped, then stemmed (Snowball) in every
configured language; a query term matches when any of its stems is indexed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .errors import RankingError

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*", re.UNICODE)

#: ISO 639-1 code -> Snowball algorithm name.
LANGUAGES = {
    "en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian",
    "nl": "dutch", "pt": "portuguese", "sv": "swedish", "da": "danish", "no": "norwegian",
    "fi": "finnish", "ru": "russian",
}  # fmt: skip


@lru_cache(maxsize=32)
def _stemmer(algorithm: str) -> Any:
    try:
        import snowballstemmer
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise RankingError("stemming needs `pip install snowballstemmer`") from e
    return snowballstemmer.stemmer(algorithm)


def fold(text: str) -> str:
    """Lower-case and strip accents (café -> cafe)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """Folded words of ``text``; "women's" -> "women", "t-shirt" -> "t", "shirt"."""
    out: list[str] = []
    for w in _WORD.findall(fold(text)):
        if w.endswith("'s"):
            w = w[:-2]
        out.extend(p for p in w.split("'") if p)
    return out


@dataclass(frozen=True)
class QueryTerm:
    """One query word and the stems it matches (one per configured language)."""

    text: str
    stems: tuple[str, ...]


class Analyzer:
    """Stems words in the given languages (first language first)."""

    def __init__(self, languages: Iterable[str] = ("en",)) -> None:
        self.languages = tuple(dict.fromkeys(languages))
        if not self.languages:
            raise RankingError("at least one language is needed, e.g. languages = ['en']")
        unknown = [lang for lang in self.languages if lang not in LANGUAGES]
        if unknown:
            raise RankingError(
                f"unsupported language {unknown[0]!r}; choose from {', '.join(LANGUAGES)}"
            )
        self._stemmers = [_stemmer(LANGUAGES[lang]) for lang in self.languages]

    def stems(self, word: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.stemWord(word) for s in self._stemmers))

    def index_tokens(self, text: str) -> list[str]:
        """Every stem of every word, deduplicated, in order: what a document field indexes."""
        return list(dict.fromkeys(s for w in words(text) for s in self.stems(w)))

    def query_terms(self, text: str) -> tuple[QueryTerm, ...]:
        """The query's words (deduplicated by stems), each with its stems."""
        seen: set[tuple[str, ...]] = set()
        out = []
        for w in words(text):
            stems = self.stems(w)
            if stems not in seen:
                seen.add(stems)
                out.append(QueryTerm(w, stems))
        return tuple(out)
