"""Embedded metadata (XMP, IPTC, EXIF) and sidecar files."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image, ImageFile, IptcImagePlugin
from PIL.PngImagePlugin import PngInfo

from indexer.errors import SidecarError
from indexer.metadata import _exif_xp, load_sidecar, read_embedded
from indexer.models import Metadata

# --- helpers ------------------------------------------------------------------------------


def xmp_packet(description_body: str, attrs: str = "") -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" {attrs}>'
        f"{description_body}</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


FULL_XMP = xmp_packet(
    "<dc:title><rdf:Alt>"
    '<rdf:li xml:lang="de-DE">Roter Schuh</rdf:li>'
    '<rdf:li xml:lang="x-default"> Red shoe </rdf:li>'
    "</rdf:Alt></dc:title>"
    "<dc:description><rdf:Alt>"
    '<rdf:li xml:lang="fr-FR">Une chaussure</rdf:li>'
    '<rdf:li xml:lang="en-US">A shoe</rdf:li>'
    "</rdf:Alt></dc:description>"
    "<dc:subject><rdf:Bag>"
    "<rdf:li>shoe</rdf:li><rdf:li> red </rdf:li><rdf:li>shoe</rdf:li><rdf:li> </rdf:li>"
    "<rdf:li>Ünïcode</rdf:li>"
    "</rdf:Bag></dc:subject>"
)


def iptc_dataset(number: int, value: bytes) -> bytes:
    return b"\x1c\x02" + bytes([number]) + struct.pack(">H", len(value)) + value


def with_iptc(jpeg: bytes, datasets: bytes) -> bytes:
    """JPEG bytes with an APP13 Photoshop segment holding an IPTC-NAA resource (0x0404)."""
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00"  # empty, padded name
    resource += struct.pack(">I", len(datasets)) + datasets
    if len(datasets) % 2:
        resource += b"\x00"
    payload = b"Photoshop 3.0\x00" + resource
    segment = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + segment + jpeg[2:]


def jpeg_bytes(**save_args: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "JPEG", **save_args)
    return out.getvalue()


def open_bytes(data: bytes) -> ImageFile.ImageFile:
    return Image.open(io.BytesIO(data))


def write(tmp_path: Path, name: str, data: bytes) -> ImageFile.ImageFile:
    path = tmp_path / name
    path.write_bytes(data)
    return Image.open(path)


def xp(text: str) -> bytes:
    return text.encode("utf-16-le") + b"\x00\x00"


def exif_with(**tags: object) -> Image.Exif:
    exif = Image.Exif()
    codes = {"description": 0x010E, "xp_title": 0x9C9B, "xp_comment": 0x9C9C, "xp_keywords": 0x9C9E}
    for name, value in tags.items():
        exif[codes[name]] = value
    return exif


# --- XMP ----------------------------------------------------------------------------------


def test_jpeg_xmp_alt_bag_and_dedup(tmp_path: Path) -> None:
    with write(tmp_path, "a.jpg", jpeg_bytes(xmp=FULL_XMP)) as im:
        assert im.info["xmp"] == FULL_XMP  # Pillow writes and reads XMP for JPEG
        meta = read_embedded(im)
    assert meta == Metadata(
        title="Red shoe",  # x-default wins over the first entry
        description="Une chaussure",  # no x-default: the first
        keywords=("shoe", "red", "Ünïcode"),
        manual_tags=None,
    )


def test_xmp_attribute_form_and_several_descriptions() -> None:
    packet = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:title="Attr title"/>'
        b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"'
        b' dc:description="Attr description"><dc:subject><rdf:Seq><rdf:li>one</rdf:li>'
        b"<rdf:li>two</rdf:li></rdf:Seq></dc:subject></rdf:Description>"
        b"</rdf:RDF></x:xmpmeta>\x00\x00"
    )
    with open_bytes(jpeg_bytes(xmp=packet)) as im:
        meta = read_embedded(im)
    assert meta == Metadata(
        title="Attr title", description="Attr description", keywords=("one", "two")
    )


def test_xmp_as_str_with_declaration_and_plain_text() -> None:
    im = Image.new("RGB", (4, 4))
    im.info["xmp"] = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        + xmp_packet("<dc:title>Plain title</dc:title><dc:subject>single</dc:subject>").decode()
    )
    assert read_embedded(im) == Metadata(title="Plain title", keywords=("single",))


def test_xmp_rdf_value_items() -> None:
    im = Image.new("RGB", (4, 4))
    im.info["xmp"] = xmp_packet(
        "<dc:subject><rdf:Bag><rdf:li rdf:parseType='Resource'>\n  <rdf:value>v1</rdf:value>"
        "</rdf:li><rdf:li rdf:value='v2'/></rdf:Bag></dc:subject>"
    )
    assert read_embedded(im) == Metadata(keywords=("v1", "v2"))


def test_png_xmp_itxt(tmp_path: Path) -> None:
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", FULL_XMP.decode())
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG", pnginfo=info)
    with write(tmp_path, "a.png", out.getvalue()) as im:
        meta = read_embedded(im)
    assert (meta.title, meta.description) == ("Red shoe", "Une chaussure")
    assert meta.keywords == ("shoe", "red", "Ünïcode")


def test_png_is_not_decoded_to_read_metadata(tmp_path: Path) -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG")
    with write(tmp_path, "plain.png", out.getvalue()) as im:
        assert read_embedded(im) == Metadata()
        assert im.tile  # still not loaded: PngImageFile.getexif() would have decoded it


def test_webp_and_tiff_xmp(tmp_path: Path) -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "WEBP", xmp=FULL_XMP)
    with write(tmp_path, "a.webp", out.getvalue()) as im:
        assert read_embedded(im).title == "Red shoe"
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "TIFF", tiffinfo={700: FULL_XMP})  # no xmp= for TIFF
    with write(tmp_path, "a.tif", out.getvalue()) as im:
        assert read_embedded(im).keywords == ("shoe", "red", "Ünïcode")


@pytest.mark.parametrize(
    "bad",
    [
        b"<x:xmpmeta><rdf:RDF>not closed",
        b"\xff\xfe garbage",
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + xmp_packet("<dc:title>&a;</dc:title>"),
    ],
)
def test_malformed_xmp_is_ignored_and_exif_used(bad: bytes) -> None:
    data = jpeg_bytes(xmp=bad, exif=exif_with(description="From EXIF"))
    with open_bytes(data) as im:
        assert read_embedded(im) == Metadata(description="From EXIF")


def test_empty_xmp_values_fall_through_to_next_source() -> None:
    packet = xmp_packet(
        "<dc:title><rdf:Alt><rdf:li xml:lang='x-default'>  </rdf:li></rdf:Alt>"
        "</dc:title><dc:subject><rdf:Bag/></dc:subject>"
    )
    data = jpeg_bytes(xmp=packet, exif=exif_with(xp_title=xp("XP title"), xp_keywords=xp("k1;k2")))
    with open_bytes(data) as im:
        assert read_embedded(im) == Metadata(title="XP title", keywords=("k1", "k2"))


# --- IPTC ---------------------------------------------------------------------------------


def test_jpeg_iptc(tmp_path: Path) -> None:
    datasets = (
        iptc_dataset(0, b"\x00\x04")
        + iptc_dataset(5, "Été bleu".encode())
        + iptc_dataset(120, "Caf\xe9 au lait".encode("latin-1"))  # not UTF-8: latin-1
        + iptc_dataset(25, b"sky")
        + iptc_dataset(25, "caf\u00e9".encode())
        + iptc_dataset(25, b" sky ")
    )
    with write(tmp_path, "a.jpg", with_iptc(jpeg_bytes(), datasets)) as im:
        info = IptcImagePlugin.getiptcinfo(im)
        assert info is not None
        assert info[(2, 5)] == "Été bleu".encode()
        assert info[(2, 25)] == [b"sky", "café".encode(), b" sky "]
        meta = read_embedded(im)
    assert meta == Metadata(title="Été bleu", description="Café au lait", keywords=("sky", "café"))


def test_iptc_single_keyword_and_corrupt_block() -> None:
    with open_bytes(with_iptc(jpeg_bytes(), iptc_dataset(25, b"alone"))) as im:
        assert read_embedded(im) == Metadata(keywords=("alone",))
    corrupt = with_iptc(jpeg_bytes(exif=exif_with(xp_title=xp("Kept"))), b"\x1c\x63garbage!")
    with open_bytes(corrupt) as im:
        assert read_embedded(im) == Metadata(title="Kept")


# --- EXIF ---------------------------------------------------------------------------------


def test_jpeg_exif_description_and_xp_tags(tmp_path: Path) -> None:
    exif = exif_with(
        description="A red square",
        xp_title=xp("Título"),
        xp_keywords=xp("red; square;;red ;shape"),
        xp_comment=xp("unused"),
    )
    with write(tmp_path, "a.jpg", jpeg_bytes(exif=exif)) as im:
        assert isinstance(im.getexif()[0x9C9E], bytes)  # Pillow hands XP tags back as bytes
        meta = read_embedded(im)
    assert meta == Metadata(
        title="Título", description="A red square", keywords=("red", "square", "shape")
    )


def test_exif_utf8_description_and_xp_comment_fallback() -> None:
    # Pillow decodes EXIF ASCII as latin-1; UTF-8 written by other tools is recovered.
    with open_bytes(jpeg_bytes(exif=exif_with(description="Grüße".encode()))) as im:
        assert im.getexif()[0x010E] == "Grüße".encode().decode("latin-1")
        assert read_embedded(im).description == "Grüße"
    exif = exif_with(description="   ", xp_comment=xp("Comment text"))
    with open_bytes(jpeg_bytes(exif=exif)) as im:
        assert read_embedded(im).description == "Comment text"


def test_exif_xp_tuple_of_ints() -> None:
    assert _exif_xp(tuple(xp("Tuple kw"))) == "Tuple kw"
    assert _exif_xp(b"A\x00B") == "A"  # odd length: the dangling byte is dropped
    assert _exif_xp(12) is None


# --- priority and no metadata -------------------------------------------------------------


def test_priority_xmp_then_iptc_then_exif() -> None:
    packet = xmp_packet("", attrs='dc:title="XMP title"')
    exif = exif_with(
        description="EXIF description", xp_title=xp("EXIF title"), xp_keywords=xp("exif-kw")
    )
    datasets = (
        iptc_dataset(5, b"IPTC title")
        + iptc_dataset(120, b"IPTC caption")
        + iptc_dataset(25, b"iptc-kw")
    )
    with open_bytes(with_iptc(jpeg_bytes(xmp=packet, exif=exif), datasets)) as im:
        assert read_embedded(im) == Metadata(
            title="XMP title", description="IPTC caption", keywords=("iptc-kw",)
        )
    with open_bytes(jpeg_bytes(xmp=packet, exif=exif)) as im:
        assert read_embedded(im) == Metadata(
            title="XMP title", description="EXIF description", keywords=("exif-kw",)
        )


def test_no_metadata() -> None:
    with open_bytes(jpeg_bytes()) as im:
        assert read_embedded(im) == Metadata()
    assert read_embedded(Image.new("L", (2, 2))) == Metadata()


# --- sidecar: CSV -------------------------------------------------------------------------


def sidecar(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


def test_csv_sidecar(tmp_path: Path) -> None:
    text = (
        "\ufeff Path ,Title,description,keywords,manual_tags\r\n"
        './shoes/red.jpg,Red shoe,"Leather, size 42",red|shoe; leather|red,fashion:shoes\r\n'
        "\r\n"
        "/clothing/x.jpg,,,,\r\n"
        ' .\\winpath\\b.png ,"Two\nlines",  , | ,\r\n'
    )
    result = load_sidecar(sidecar(tmp_path, "metadata.csv", text))
    assert result == {
        "shoes/red.jpg": Metadata(
            title="Red shoe",
            description="Leather, size 42",
            keywords=("red", "shoe", "leather"),
            manual_tags=("fashion:shoes",),
        ),
        "/clothing/x.jpg": Metadata(),
        "winpath/b.png": Metadata(title="Two\nlines"),
    }


def test_csv_sidecar_some_columns_and_short_rows(tmp_path: Path) -> None:
    result = load_sidecar(sidecar(tmp_path, "m.csv", "path,keywords\na.jpg\nb.jpg,x;y\n"))
    assert result == {"a.jpg": Metadata(), "b.jpg": Metadata(keywords=("x", "y"))}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,title\na.jpg,A\nb.jpg,B\n,C\n", "line 4: missing 'path'"),
        ("path,title\n./,A\n", "line 2: missing 'path'"),
        (
            "path,titel\n",
            "line 1: unknown column 'titel' (expected one of: path, title, "
            "description, keywords, manual_tags)",
        ),
        ("path;title\n", "unknown column 'path;title'"),
        ("title,description\n", "line 1: the header row has no 'path' column"),
        ("path,title,Title\n", "line 1: column 'title' appears twice"),
        ("path,title\na.jpg,A\n./a.jpg,B\n", "line 3: duplicate path 'a.jpg' (also on line 2)"),
        ("path,title\na.jpg,A,extra\n", "line 2: 3 cells but the header has 2 columns"),
        ("\n\n", "empty; the first row must be a header"),
        ("path,title\na.jpg," + "x" * 200_000 + "\n", "line 2: invalid CSV (field larger"),
    ],
)
def test_csv_sidecar_errors(tmp_path: Path, text: str, message: str) -> None:
    path = sidecar(tmp_path, "metadata.csv", text)
    with pytest.raises(SidecarError) as info:
        load_sidecar(path)
    assert str(info.value).startswith(f"{path}")
    assert message in str(info.value)


# --- sidecar: JSON lines ------------------------------------------------------------------


def test_jsonl_sidecar(tmp_path: Path) -> None:
    text = (
        '{"path": "./a.jpg", "title": "A", "description": null, "keywords": ["x", " y", "x"]}\r\n'
        "\n"
        '{"path": "/dam/b.jpg", "title": "", "description": "", "keywords": "p|q;r",'
        ' "manual_tags": []}\n'
        '{"path": "c\\\\d.jpg", "manual_tags": ["t:1", "t:2"], "keywords": ""}\n'
        '{"path": "e.jpg", "title": "line\\u2028sep"}'
    )
    result = load_sidecar(sidecar(tmp_path, "meta.jsonl", text))
    assert result == {
        "a.jpg": Metadata(title="A", keywords=("x", "y")),
        "/dam/b.jpg": Metadata(title="", description="", keywords=("p", "q", "r"), manual_tags=()),
        "c/d.jpg": Metadata(keywords=(), manual_tags=("t:1", "t:2")),
        "e.jpg": Metadata(title="line\u2028sep"),
    }


def test_ndjson_extension_and_raw_line_separator(tmp_path: Path) -> None:
    text = '{"path": "a.jpg", "title": "x\u2028y"}\n'  # a raw U+2028 is valid inside JSON
    result = load_sidecar(sidecar(tmp_path, "meta.NDJSON", text))
    assert result == {"a.jpg": Metadata(title="x\u2028y")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"path": "a.jpg"}\n{"path": "b.jpg", }\n', "line 2: invalid JSON (Expecting"),
        ('["a.jpg"]\n', "line 1: expected a JSON object, got an array"),
        ("null\n", "line 1: expected a JSON object, got null"),
        (
            '{"path": "a.jpg", "tags": "x"}\n',
            "line 1: unknown key 'tags' (expected one of: "
            "path, title, description, keywords, manual_tags)",
        ),
        ('\n{"title": "no path"}\n', "line 2: missing 'path'"),
        ('{"path": 3}\n', "line 1: 'path' must be a string, got 3"),
        ('{"path": "a.jpg", "title": 5}\n', "line 1: 'title' must be a string or null, got 5"),
        ('{"path": "a.jpg", "keywords": [1]}\n', "line 1: 'keywords' must be a list of strings"),
        (
            '{"path": "a.jpg"}\n{"path": "./a.jpg"}\n',
            "line 2: duplicate path 'a.jpg' (also on line 1)",
        ),
    ],
)
def test_jsonl_sidecar_errors(tmp_path: Path, text: str, message: str) -> None:
    path = sidecar(tmp_path, "metadata.jsonl", text)
    with pytest.raises(SidecarError) as info:
        load_sidecar(path)
    assert str(info.value).startswith(f"{path}")
    assert message in str(info.value)


# --- sidecar: files -----------------------------------------------------------------------


def test_sidecar_unsupported_extension(tmp_path: Path) -> None:
    path = sidecar(tmp_path, "metadata.txt", "path\na.jpg\n")
    with pytest.raises(
        SidecarError,
        match=r"unsupported sidecar extension '\.txt'; use \.csv"
        r" or \.jsonl",
    ):
        load_sidecar(path)


def test_sidecar_unreadable(tmp_path: Path) -> None:
    with pytest.raises(SidecarError, match="cannot read") as info:
        load_sidecar(tmp_path / "missing.csv")
    assert isinstance(info.value.__cause__, FileNotFoundError)


@pytest.mark.parametrize("name", ["m.csv", "m.jsonl"])
def test_sidecar_not_utf8(tmp_path: Path, name: str) -> None:
    path = sidecar(tmp_path, name, b'path\n{"path": "caf\xe9.jpg"}\n')
    with pytest.raises(SidecarError) as info:
        load_sidecar(path)
    assert str(info.value) == (
        f"{path} line 2: not UTF-8 text (byte 0xe9); re-save the file as UTF-8"
    )
    assert isinstance(info.value.__cause__, UnicodeDecodeError)
