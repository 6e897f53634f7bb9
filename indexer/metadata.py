"""Descriptive metadata: embedded in images (XMP, IPTC, EXIF) and from sidecar files."""

from __future__ import annotations

import csv
import io
import json
import pathlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from PIL import Image, ImageFile, IptcImagePlugin

from .errors import SidecarError
from .models import Metadata

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_CONTAINERS = (f"{_RDF}Alt", f"{_RDF}Bag", f"{_RDF}Seq")
_LI = f"{_RDF}li"

#: Columns (CSV) and keys (JSON lines) of a sidecar file.
SIDECAR_FIELDS = ("path", "title", "description", "keywords", "manual_tags")
_LIST_SPLIT = re.compile(r"[|;]")
_JSON_TYPES: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


def read_embedded(im: Image.Image) -> Metadata:
    """Title, description and keywords embedded in ``im``: XMP first, then IPTC, then EXIF.

    Each field comes from the first source with a non-empty value. Best effort: a source
    that cannot be read is skipped, never raised. ``manual_tags`` is always None.
    """
    result = Metadata()
    for reader in (_read_xmp, _read_iptc, _read_exif):
        try:
            result = result.merged_over(reader(im))
        except Exception:  # best effort: a bad metadata block must never fail an ingest
            continue
    return result


def _clean(text: str | None) -> str | None:
    """Stripped text, or None when empty."""
    if text is None:
        return None
    text = text.replace("\x00", "").strip()
    return text or None


def _unique(items: Iterable[str | None]) -> tuple[str, ...]:
    """Stripped, non-empty, deduplicated items in order."""
    return tuple(dict.fromkeys(t for item in items if (t := _clean(item)) is not None))


def _first(items: Iterable[str | None]) -> str | None:
    return next((t for item in items if (t := _clean(item))), None)


# --- XMP ----------------------------------------------------------------------------------


def _read_xmp(im: Image.Image) -> Metadata:
    raw: Any = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if not raw:
        raw = getattr(im, "tag_v2", {}).get(700)  # TIFF
    if isinstance(raw, tuple):
        raw = raw[0] if len(raw) == 1 and not isinstance(raw[0], int) else bytes(raw)
    if isinstance(raw, bytes):
        raw = raw.strip(b"\x00 \t\r\n")
        probe = raw
    elif isinstance(raw, str):
        raw = raw.strip("\x00 \t\r\n")
        probe = raw.encode("utf-8", "replace")
    else:
        return Metadata()
    if not probe or b"<!DOCTYPE" in probe or b"<!ENTITY" in probe:
        return Metadata()  # XMP never needs a DTD; refuse entity tricks outright
    root = ET.fromstring(raw)  # raises ParseError on malformed XML; read_embedded swallows it
    title = description = None
    keywords: tuple[str, ...] = ()
    for desc in root.iter(f"{_RDF}Description"):
        title = title or _first(_xmp_values(desc, "title"))
        description = description or _first(_xmp_values(desc, "description"))
        keywords = keywords or _unique(_xmp_values(desc, "subject"))
    return Metadata(title=title, description=description, keywords=keywords or None)


def _xmp_values(desc: ET.Element, name: str) -> list[str | None]:
    """A dc property's values: the attribute form, rdf:Alt/Bag/Seq items, or plain text.

    Items with ``xml:lang="x-default"`` come first; the rest keep their order.
    """
    attr = desc.get(_DC + name)
    if attr is not None:
        return [attr]
    prop = desc.find(_DC + name)
    if prop is None:
        return []
    items = [li for tag in _CONTAINERS for box in prop.findall(tag) for li in box.findall(_LI)]
    if not items:
        return [prop.text]
    items.sort(key=lambda li: (li.get(_XML_LANG) or "").lower() != "x-default")
    value = f"{_RDF}value"
    return [_clean(li.text) or li.findtext(value) or li.get(value) for li in items]


# --- IPTC and EXIF ------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _iptc_values(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [_decode(item) for item in items if isinstance(item, bytes)]


def _read_iptc(im: Image.Image) -> Metadata:
    if not isinstance(im, ImageFile.ImageFile):
        return Metadata()
    info = IptcImagePlugin.getiptcinfo(im)
    if not info:
        return Metadata()
    return Metadata(
        title=_first(_iptc_values(info.get((2, 5)))),
        description=_first(_iptc_values(info.get((2, 120)))),
        keywords=_unique(_iptc_values(info.get((2, 25)))) or None,
    )


def _exif_ascii(value: object) -> str | None:
    """An EXIF ASCII tag; Pillow decodes it as latin-1, but writers often store UTF-8."""
    if isinstance(value, bytes):
        return _clean(_decode(value))
    if not isinstance(value, str):
        return None
    try:
        return _clean(value.encode("latin-1").decode("utf-8"))
    except UnicodeError:
        return _clean(value)


def _exif_xp(value: object) -> str | None:
    """A Windows XP tag: UTF-16LE bytes (or a tuple of byte values)."""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, tuple):
        value = bytes(value)
    if not isinstance(value, bytes):
        return None
    return _clean(value[: len(value) // 2 * 2].decode("utf-16-le", "replace"))


def _read_exif(im: Image.Image) -> Metadata:
    if im.format == "PNG" and "exif" not in im.info:
        return Metadata()  # PngImageFile.getexif() would decode the whole image to look
    exif = im.getexif()
    keywords = _exif_xp(exif.get(0x9C9E))
    return Metadata(
        title=_exif_xp(exif.get(0x9C9B)),
        description=_exif_ascii(exif.get(0x010E)) or _exif_xp(exif.get(0x9C9C)),
        keywords=(_unique(keywords.split(";")) or None) if keywords else None,
    )


# --- sidecar files ------------------------------------------------------------------------


def load_sidecar(path: pathlib.Path) -> dict[str, Metadata]:
    """Metadata per image from a ``.csv`` or ``.jsonl``/``.ndjson`` sidecar file.

    Keys are the normalised ``path`` values: forward slashes, stripped, no leading ``./``;
    a leading ``/`` (a DAM path) is kept, otherwise the path is relative to the ingest root.
    Raises SidecarError naming the file, the line and the fix.
    """
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise SidecarError(f"{path}: unsupported sidecar extension {suffix!r}; use .csv or .jsonl")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SidecarError(f"{path}: cannot read ({e.strerror or e}); check the path") from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SidecarError(
            f"{path} line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); "
            "re-save the file as UTF-8"
        ) from e
    rows = _csv_rows(path, text) if suffix == ".csv" else _jsonl_rows(path, text)
    result: dict[str, Metadata] = {}
    first_line: dict[str, int] = {}
    for line, key, meta in rows:
        if key in result:
            raise SidecarError(
                f"{path} line {line}: duplicate path {key!r} (also on line {first_line[key]}); "
                "keep one row per image"
            )
        result[key] = meta
        first_line[key] = line
    return result


def _normalise_path(value: str) -> str:
    key = value.strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:].lstrip("/")
    return key


def _split_list(text: str) -> tuple[str, ...]:
    return _unique(_LIST_SPLIT.split(text))


def _check_keys(path: pathlib.Path, line: int, names: Iterable[str], what: str) -> None:
    for name in names:
        if name not in SIDECAR_FIELDS:
            hint = "; the file must be comma-separated" if ";" in name else ""
            raise SidecarError(
                f"{path} line {line}: unknown {what} {name!r} "
                f"(expected one of: {', '.join(SIDECAR_FIELDS)}){hint}"
            )


def _missing_path(path: pathlib.Path, line: int) -> SidecarError:
    return SidecarError(
        f"{path} line {line}: missing 'path'; give the image path relative to the ingest root, "
        "or a DAM path starting with /"
    )


def _csv_rows(path: pathlib.Path, text: str) -> list[tuple[int, str, Metadata]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[tuple[int, str, Metadata]] = []
    end = 0
    try:
        for cells in reader:
            line, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in cells]
                _check_keys(path, line, header, "column")
                dupes = sorted({name for name in header if header.count(name) > 1})
                if dupes:
                    raise SidecarError(f"{path} line {line}: column {dupes[0]!r} appears twice")
                if "path" not in header:
                    raise SidecarError(f"{path} line {line}: the header row has no 'path' column")
                continue
            if len(cells) > len(header):
                raise SidecarError(
                    f"{path} line {line}: {len(cells)} cells but the header has "
                    f"{len(header)} columns; quote cells that contain commas"
                )
            row = {name: cell.strip() for name, cell in zip(header, cells, strict=False)}
            key = _normalise_path(row.get("path", ""))
            if not key:
                raise _missing_path(path, line)
            kw, tags = row.get("keywords"), row.get("manual_tags")
            meta = Metadata(
                title=row.get("title") or None,
                description=row.get("description") or None,
                keywords=(_split_list(kw) or None) if kw else None,
                manual_tags=(_split_list(tags) or None) if tags else None,
            )
            rows.append((line, key, meta))
    except csv.Error as e:
        raise SidecarError(f"{path} line {reader.line_num}: invalid CSV ({e})") from e
    if header is None:
        raise SidecarError(f"{path}: empty; the first row must be a header with a 'path' column")
    return rows


def _json_text(path: pathlib.Path, line: int, obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value.strip() if value is not None else None
    raise SidecarError(f"{path} line {line}: {name!r} must be a string or null, got {value!r}")


def _json_list(
    path: pathlib.Path, line: int, obj: dict[str, Any], name: str
) -> tuple[str, ...] | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return _split_list(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return _unique(value)
    raise SidecarError(
        f"{path} line {line}: {name!r} must be a list of strings or a '|'-separated string, "
        f"got {value!r}"
    )


def _jsonl_rows(path: pathlib.Path, text: str) -> list[tuple[int, str, Metadata]]:
    rows: list[tuple[int, str, Metadata]] = []
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise SidecarError(
                f"{path} line {line}: invalid JSON ({e.msg} at column {e.colno}); "
                "write one JSON object per line"
            ) from e
        if not isinstance(obj, dict):
            got = _JSON_TYPES.get(type(obj), "null")
            raise SidecarError(
                f"{path} line {line}: expected a JSON object, got {got} "
                f"{raw.strip()[:40]!r}; write one object per line"
            )
        _check_keys(path, line, obj, "key")
        value = obj.get("path")
        if value is not None and not isinstance(value, str):
            raise SidecarError(f"{path} line {line}: 'path' must be a string, got {value!r}")
        key = _normalise_path(value or "")
        if not key:
            raise _missing_path(path, line)
        meta = Metadata(
            title=_json_text(path, line, obj, "title"),
            description=_json_text(path, line, obj, "description"),
            keywords=_json_list(path, line, obj, "keywords"),
            manual_tags=_json_list(path, line, obj, "manual_tags"),
        )
        rows.append((line, key, meta))
    return rows
