"""Tag model definitions: a YAML/JSON file or CLI flags, validated into a :class:`ModelSpec`.

File format::

    name: garment-type            # optional: a slug; default: the title, slugified
    title: Garment type
    description: What the garment is, one tag per photo
    features: visual              # visual (default) or visual+colour (colour aspects)
    target_precision: 0.9         # per-tag thresholds aim at this precision
    tags:
      apparel:garment/shoes:      # taxonomy id -> example assets
        - /clothing/shoes/        # a folder (every ingested asset under it)
        - /clothing/x.jpg         # an asset id (DAM path) or a source file path

``tags`` may also be a list of ``{id: ..., examples: [...]}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ModelSpecError

FEATURES = ("visual", "visual+colour")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64]


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise ModelSpecError(
            f"invalid tag model name {name!r}; use lower-case letters, digits, '-' and '_' "
            "(up to 64), e.g. 'garment-type'"
        )
    return name


def validate_precision(value: Any) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        p = float("nan")
    if not 0.5 <= p < 1.0:
        raise ModelSpecError(
            f"target_precision {value!r} is out of range; use a number from 0.5 to 0.99"
        )
    return p


@dataclass(frozen=True)
class ModelSpec:
    """A tag model as defined by its author: tags and the example references per tag."""

    name: str
    title: str
    description: str = ""
    features: str = "visual"
    target_precision: float = 0.9
    #: taxonomy tag id -> example references (asset ids, source paths or folders)
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_name(self.name)
        if not self.title.strip():
            raise ModelSpecError(f"tag model {self.name!r} needs a title")
        if self.features not in FEATURES:
            raise ModelSpecError(
                f"unknown features {self.features!r} for tag model {self.name!r}; choose one "
                f"of: {', '.join(FEATURES)} (visual+colour is for colour aspects)"
            )
        validate_precision(self.target_precision)


def load_spec(path: Path) -> ModelSpec:
    """Read a tag model file (.yaml, .yml or .json); errors name the file and the fix."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelSpecError(f"cannot read tag model file {path}: {e}") from e
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ModelSpecError(f"{path} is not valid {path.suffix.lstrip('.').upper()}: {e}") from e
    if not isinstance(data, dict):
        raise ModelSpecError(f"{path}: expected a mapping with title and tags at the top level")
    try:
        return spec_from_mapping(data)
    except ModelSpecError as e:
        raise ModelSpecError(f"{path}: {e}") from e


def spec_from_mapping(data: dict[str, Any]) -> ModelSpec:
    known = {"name", "title", "description", "features", "target_precision", "tags"}
    extra = sorted(set(data) - known)
    if extra:
        raise ModelSpecError(
            f"unknown key {', '.join(map(repr, extra))}; allowed: {', '.join(sorted(known))}"
        )
    title = str(data.get("title") or "").strip()
    if not title:
        raise ModelSpecError("missing 'title'")
    name = str(data.get("name") or slugify(title))
    return ModelSpec(
        name=name,
        title=title,
        description=str(data.get("description") or ""),
        features=str(data.get("features") or "visual"),
        target_precision=validate_precision(data.get("target_precision", 0.9)),
        examples=_examples(data.get("tags")),
    )


def _examples(tags: Any) -> dict[str, tuple[str, ...]]:
    if tags is None:
        return {}
    if isinstance(tags, list):
        out: dict[str, tuple[str, ...]] = {}
        for i, entry in enumerate(tags):
            if isinstance(entry, str):
                out[entry] = ()
            elif isinstance(entry, dict) and "id" in entry:
                out[str(entry["id"])] = _refs(entry["id"], entry.get("examples"))
            else:
                raise ModelSpecError(
                    f"tags[{i}] must be a tag id or {{id: ..., examples: [...]}}, got {entry!r}"
                )
        return out
    if isinstance(tags, dict):
        return {str(t): _refs(t, refs) for t, refs in tags.items()}
    raise ModelSpecError(f"'tags' must be a mapping of tag id to examples, got {tags!r}")


def _refs(tag: Any, refs: Any) -> tuple[str, ...]:
    if refs is None:
        return ()
    if isinstance(refs, str):
        return (refs,)
    if isinstance(refs, list) and all(isinstance(r, str) for r in refs):
        return tuple(refs)
    raise ModelSpecError(f"examples of tag {tag!r} must be a list of asset paths, got {refs!r}")
