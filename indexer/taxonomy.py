"""Reading taxonomy files (JSON, YAML, CSV) into validated tags.

A tag id is ``namespace:path/leaf`` (AEM style), e.g. ``apparel:shoes/casual-shoe``.
JSON/YAML: a list of tags, or ``{"tags": [...]}``; each tag has ``id``, and ``title``
(English) or ``titles`` (``{lang: title}``), and optional ``synonyms`` (a list, English,
or ``{lang: [..]}``). CSV: columns ``id``, ``title`` or ``title_<lang>``, and optional
``synonyms`` or ``synonyms_<lang>`` (``|``-separated).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import TaxonomyError
from .models import TaxonomyTag

TAG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*:[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\Z")
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?\Z")


class _YamlLoader(yaml.SafeLoader):
    """YAML 1.2 booleans only: ``no``, ``on``, ``yes`` stay strings (Norwegian is 'no')."""


_YamlLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def validate_tag_id(tag_id: str) -> str:
    if not TAG_ID.match(tag_id):
        raise TaxonomyError(
            f"invalid tag id {tag_id!r}; expected 'namespace:path/leaf' "
            "(letters, digits, '-', '_', '.'), e.g. 'apparel:shoes/casual-shoe'"
        )
    return tag_id


def load_taxonomy(path: Path) -> list[TaxonomyTag]:
    """Read and validate a taxonomy file; raises TaxonomyError naming the bad entry."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel writes a BOM
    except (OSError, UnicodeDecodeError) as e:
        raise TaxonomyError(f"cannot read taxonomy file {path}: {e}") from e
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as e:
            raise TaxonomyError(f"{path.name}: invalid JSON at line {e.lineno}: {e.msg}") from e
        entries = _entries(data, path.name)
    elif suffix in (".yaml", ".yml"):
        try:
            data = yaml.load(text, Loader=_YamlLoader)  # a SafeLoader subclass
        except yaml.YAMLError as e:
            raise TaxonomyError(f"{path.name}: invalid YAML: {e}") from e
        entries = _entries(data, path.name)
    elif suffix == ".csv":
        entries = _csv_entries(text, path.name)
    else:
        raise TaxonomyError(
            f"unsupported taxonomy file type {suffix or '(none)'!r} for {path.name}; "
            "use .json, .yaml/.yml or .csv"
        )
    tags: dict[str, TaxonomyTag] = {}
    for where, entry in entries:
        tag = _tag(entry, f"{path.name} {where}")
        if tag.id in tags:
            raise TaxonomyError(f"{path.name} {where}: duplicate tag id {tag.id!r}")
        tags[tag.id] = tag
    if not tags:
        raise TaxonomyError(f"{path.name}: no tags found")
    return list(tags.values())


def _entries(data: Any, name: str) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(data, dict) and "tags" in data:
        data = data["tags"]
    if not isinstance(data, list):
        raise TaxonomyError(f"{name}: expected a list of tags or an object with 'tags'")
    out = []
    for i, entry in enumerate(data, 1):
        if not isinstance(entry, dict):
            raise TaxonomyError(f"{name} entry {i}: expected an object with 'id', got {entry!r}")
        out.append((f"entry {i}", entry))
    return out


def _csv_entries(text: str, name: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    if "id" not in fields:
        raise TaxonomyError(f"{name}: the header needs an 'id' column (found: {', '.join(fields)})")
    out: list[tuple[str, dict[str, Any]]] = []
    for row in reader:
        line = f"line {reader.line_num}"
        titles: dict[str, str] = {}
        synonyms: dict[str, list[str]] = {}
        for col, value in row.items():
            if col is None:
                raise TaxonomyError(f"{name} {line}: more cells than header columns")
            value = (value or "").strip()
            if not value or col == "id":
                continue
            if col == "title":
                titles["en"] = value
            elif col.startswith("title_"):
                titles[col[6:]] = value
            elif col == "synonyms":
                synonyms["en"] = _split(value)
            elif col.startswith("synonyms_"):
                synonyms[col[9:]] = _split(value)
            else:
                raise TaxonomyError(
                    f"{name}: unknown column {col!r}; expected id, title, title_<lang>, "
                    "synonyms, synonyms_<lang>"
                )
        out.append(
            (line, {"id": (row.get("id") or "").strip(), "titles": titles, "synonyms": synonyms})
        )
    return out


def _split(value: str) -> list[str]:
    return [s.strip() for s in value.split("|") if s.strip()]


def _tag(entry: dict[str, Any], where: str) -> TaxonomyTag:
    unknown = set(entry) - {"id", "title", "titles", "synonyms"}
    if unknown:
        raise TaxonomyError(
            f"{where}: unknown key {sorted(unknown)[0]!r}; expected id, title, titles, synonyms"
        )
    tag_id = entry.get("id")
    if not isinstance(tag_id, str) or not tag_id:
        raise TaxonomyError(f"{where}: missing 'id'")
    try:
        validate_tag_id(tag_id)
    except TaxonomyError as e:
        raise TaxonomyError(f"{where}: {e}") from None
    titles: dict[str, str] = {}
    if isinstance(entry.get("title"), str):
        titles["en"] = entry["title"]
    raw_titles = entry.get("titles") or {}
    if not isinstance(raw_titles, dict):
        raise TaxonomyError(f"{where} ({tag_id}): 'titles' must map language to title")
    titles.update({str(k): str(v) for k, v in raw_titles.items()})
    if not titles:
        titles["en"] = tag_id.rsplit("/", 1)[-1].split(":")[-1].replace("-", " ")
    raw_syn = entry.get("synonyms") or {}
    if isinstance(raw_syn, list):
        raw_syn = {"en": raw_syn}
    if not isinstance(raw_syn, dict) or not all(isinstance(v, list) for v in raw_syn.values()):
        raise TaxonomyError(f"{where} ({tag_id}): 'synonyms' must be a list or {{lang: [...]}}")
    synonyms = {str(k): [str(s) for s in v] for k, v in raw_syn.items()}
    for lang in [*titles, *synonyms]:
        if not _LANG.match(lang):
            raise TaxonomyError(
                f"{where} ({tag_id}): {lang!r} is not a language code; use e.g. 'en', 'de', 'pt-BR'"
            )
    return TaxonomyTag(tag_id, titles, synonyms)
