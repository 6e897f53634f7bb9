"""The search document: everything a backend indexes for one asset."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .analysis import Analyzer


@dataclass(frozen=True)
class TagRef:
    """A taxonomy tag on an asset, with the tokens of its titles and synonyms."""

    tag: str
    titles: Mapping[str, str]
    terms: tuple[str, ...]


@dataclass(frozen=True)
class SmartTag:
    """A smart tag on an asset: (tag, confidence, model version), maybe promoted."""

    tag: str
    confidence: float
    model_version: str
    promoted: bool
    titles: Mapping[str, str]
    terms: tuple[str, ...]


@dataclass(frozen=True)
class SearchDocument:
    """One asset as the search backends see it. ``terms`` holds the analysed tokens."""

    asset_id: str
    title: str = ""
    description: str = ""
    keywords: tuple[str, ...] = ()
    manual_tags: tuple[TagRef, ...] = ()
    smart_tags: tuple[SmartTag, ...] = ()
    format: str = ""
    width: int = 0
    height: int = 0
    modified_at: float = 0.0
    terms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.asset_id


def tag_terms(
    analyzer: Analyzer, titles: Mapping[str, str], synonyms: Mapping[str, Sequence[str]]
) -> tuple[str, ...]:
    """Tokens of a tag's titles and synonyms in every language."""
    text = " ".join([*titles.values(), *(s for syns in synonyms.values() for s in syns)])
    return tuple(analyzer.index_tokens(text))


def build_document(
    analyzer: Analyzer,
    *,
    asset_id: str,
    title: str = "",
    description: str = "",
    keywords: Iterable[str] = (),
    manual_tags: Iterable[TagRef] = (),
    smart_tags: Iterable[SmartTag] = (),
    format: str = "",
    width: int = 0,
    height: int = 0,
    modified_at: float = 0.0,
) -> SearchDocument:
    """A document with its metadata tokens analysed. Promoted smart tags count as manual."""
    smart = tuple(sorted(smart_tags, key=lambda s: s.tag))
    manual = {t.tag: t for t in manual_tags}
    for s in smart:
        if s.promoted and s.tag not in manual:
            manual[s.tag] = TagRef(s.tag, s.titles, s.terms)
    manual_refs = tuple(sorted(manual.values(), key=lambda t: t.tag))
    kw = tuple(keywords)
    terms = {
        "title": tuple(analyzer.index_tokens(title)),
        "description": tuple(analyzer.index_tokens(description)),
        "keywords": tuple(analyzer.index_tokens(" ".join(kw))),
        "manual_tags": tuple(dict.fromkeys(t for ref in manual_refs for t in ref.terms)),
    }
    return SearchDocument(
        asset_id=asset_id, title=title, description=description, keywords=kw,
        manual_tags=manual_refs, smart_tags=smart, format=format.upper(), width=width,
        height=height, modified_at=modified_at, terms=terms,
    )  # fmt: skip
