"""Plain value types shared by the indexer modules."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaxonomyTag:
    """A taxonomy tag: ``namespace:path/leaf`` with titles per language and synonyms."""

    id: str
    titles: dict[str, str]
    synonyms: dict[str, list[str]] = field(default_factory=dict)

    def title(self, lang: str = "en") -> str:
        if lang in self.titles:
            return self.titles[lang]
        return next(iter(self.titles.values()), self.id.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class Metadata:
    """Descriptive metadata of an asset. ``None`` means "not given" (keep what is stored)."""

    title: str | None = None
    description: str | None = None
    keywords: tuple[str, ...] | None = None
    manual_tags: tuple[str, ...] | None = None

    def merged_over(self, base: Metadata) -> Metadata:
        """This metadata where given, ``base`` elsewhere."""
        return Metadata(
            title=self.title if self.title is not None else base.title,
            description=self.description if self.description is not None else base.description,
            keywords=self.keywords if self.keywords is not None else base.keywords,
            manual_tags=self.manual_tags if self.manual_tags is not None else base.manual_tags,
        )


@dataclass(frozen=True)
class FileFacts:
    """What one decode of a file tells: bytes' hash, format, size, embedded metadata."""

    source: str
    size: int
    mtime_ns: int
    sha256: str
    format: str
    width: int
    height: int
    metadata: Metadata


@dataclass(frozen=True)
class Asset:
    """An asset as stored in the catalog."""

    key: int
    id: str
    source: str
    sha256: str
    size: int
    mtime_ns: int
    format: str
    width: int
    height: int
    title: str
    description: str
    keywords: tuple[str, ...]
    manual_tags: tuple[str, ...]
    created_at: float
    modified_at: float
    content_version: int


@dataclass(frozen=True)
class AssetError:
    """A file that could not be ingested, and why."""

    source: str
    asset_id: str
    stage: str
    reason: str
    message: str
    at: float
