"""Taxonomy files (JSON, YAML, CSV) into validated tags, and the catalog's taxonomy table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.catalog import Catalog
from indexer.errors import TaxonomyError
from indexer.models import TaxonomyTag
from indexer.taxonomy import load_taxonomy, validate_tag_id

SHOE = TaxonomyTag(
    "apparel:shoes/casual-shoe",
    {"en": "Casual shoe", "de": "Freizeitschuh"},
    {"en": ["sneaker", "trainer"], "de": ["Turnschuh"]},
)
# No title given: the title is derived from the leaf, dashes become spaces.
SHIRT = TaxonomyTag("apparel:tops/t-shirt", {"en": "t shirt"}, {})


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def fails(path: Path) -> str:
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(path)
    return str(info.value)


# --- reading ------------------------------------------------------------------------------


def test_json_list(tmp_path: Path) -> None:
    data = [
        {
            "id": SHOE.id,
            "title": "Casual shoe",
            "titles": {"de": "Freizeitschuh"},
            "synonyms": {"en": ["sneaker", "trainer"], "de": ["Turnschuh"]},
        },
        {"id": SHIRT.id},
    ]
    tags = load_taxonomy(write(tmp_path, "t.json", json.dumps(data)))
    assert tags == [SHOE, SHIRT]


def test_json_object_with_tags_and_list_synonyms(tmp_path: Path) -> None:
    data = {
        "tags": [
            {
                "id": "apparel:bags",
                "titles": {"en": "Bags", "pt-BR": "Bolsas"},
                "synonyms": ["handbag", "purse"],
            },
        ]
    }
    tags = load_taxonomy(write(tmp_path, "t.json", json.dumps(data)))
    assert tags == [
        TaxonomyTag(
            "apparel:bags", {"en": "Bags", "pt-BR": "Bolsas"}, {"en": ["handbag", "purse"]}
        ),
    ]
    assert tags[0].title("pt-BR") == "Bolsas"
    assert tags[0].title("fr") == "Bags"  # falls back to the first title


def test_yaml(tmp_path: Path) -> None:
    text = """
tags:
  - id: apparel:shoes/casual-shoe
    title: Casual shoe
    titles:
      de: Freizeitschuh
    synonyms:
      en: [sneaker, trainer]
      de: [Turnschuh]
  - id: apparel:tops/t-shirt
"""
    for suffix in (".yaml", ".yml"):
        assert load_taxonomy(write(tmp_path, "t" + suffix, text)) == [SHOE, SHIRT]


def test_yaml_plain_list(tmp_path: Path) -> None:
    text = "- id: brand:acme\n  title: ACME\n- id: brand:globex\n  title: Globex\n"
    assert load_taxonomy(write(tmp_path, "t.yaml", text)) == [
        TaxonomyTag("brand:acme", {"en": "ACME"}, {}),
        TaxonomyTag("brand:globex", {"en": "Globex"}, {}),
    ]


def test_csv(tmp_path: Path) -> None:
    text = (
        "id,title,title_de,synonyms,synonyms_de\n"
        "apparel:shoes/casual-shoe,Casual shoe,Freizeitschuh, sneaker | trainer |,Turnschuh\n"
        "\n"
        "apparel:tops/t-shirt,,,,\n"
    )
    assert load_taxonomy(write(tmp_path, "t.csv", text)) == [SHOE, SHIRT]


def test_csv_quoted_cells_and_short_rows(tmp_path: Path) -> None:
    text = 'id,title,synonyms\n"apparel:hats","Hats, caps","cap|""beanie"""\napparel:belts\n'
    assert load_taxonomy(write(tmp_path, "t.CSV", text)) == [
        TaxonomyTag("apparel:hats", {"en": "Hats, caps"}, {"en": ["cap", '"beanie"']}),
        TaxonomyTag("apparel:belts", {"en": "belts"}, {}),
    ]


def test_tag_order_is_file_order(tmp_path: Path) -> None:
    data = [{"id": f"ns:t{i}"} for i in (3, 1, 2)]
    tags = load_taxonomy(write(tmp_path, "t.json", json.dumps(data)))
    assert [t.id for t in tags] == ["ns:t3", "ns:t1", "ns:t2"]


@pytest.mark.parametrize(
    "tag_id",
    [
        "apparel:shoes/casual-shoe",
        "a:b",
        "ns.v2:x_y/z.1",
        "9:9/9",
    ],
)
def test_valid_ids(tag_id: str) -> None:
    assert validate_tag_id(tag_id) == tag_id


@pytest.mark.parametrize(
    "tag_id",
    [
        "shoes",
        "apparel:",
        ":shoes",
        "apparel:shoes/",
        "apparel:shoes//x",
        "apparel:sh oes",
        "apparel:shoes/ä",
        "-ns:x",
        "a:b:c",
        "",
    ],
)
def test_invalid_ids(tag_id: str) -> None:
    with pytest.raises(TaxonomyError, match="expected 'namespace:path/leaf'") as info:
        validate_tag_id(tag_id)
    assert f"invalid tag id {tag_id!r}" in str(info.value)


# --- errors -------------------------------------------------------------------------------


def test_invalid_id_names_the_id_and_entry(tmp_path: Path) -> None:
    data = [{"id": "ns:ok"}, {"id": "Casual Shoe"}]
    msg = fails(write(tmp_path, "t.json", json.dumps(data)))
    assert msg.startswith("t.json entry 2: invalid tag id 'Casual Shoe'")
    assert "e.g. 'apparel:shoes/casual-shoe'" in msg


def test_invalid_id_in_csv_names_the_line(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, "t.csv", "id,title\nns:ok,OK\nbad id,Bad\n"))
    assert msg.startswith("t.csv line 3: invalid tag id 'bad id'")


def test_duplicate_id(tmp_path: Path) -> None:
    data = [{"id": "ns:a"}, {"id": "ns:b"}, {"id": "ns:a", "title": "again"}]
    msg = fails(write(tmp_path, "t.json", json.dumps(data)))
    assert msg == "t.json entry 3: duplicate tag id 'ns:a'"


def test_duplicate_id_csv(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, "t.csv", "id\nns:a\nns:a\n"))
    assert msg == "t.csv line 3: duplicate tag id 'ns:a'"


def test_unknown_key(tmp_path: Path) -> None:
    data = [{"id": "ns:a", "label": "A", "zzz": 1}]
    msg = fails(write(tmp_path, "t.json", json.dumps(data)))
    assert msg == ("t.json entry 1: unknown key 'label'; expected id, title, titles, synonyms")


def test_unknown_column(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, "t.csv", "id,name\nns:a,A\n"))
    assert msg == (
        "t.csv: unknown column 'name'; expected id, title, title_<lang>, synonyms, synonyms_<lang>"
    )


def test_csv_without_id_column(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, "t.csv", "tag,title\nns:a,A\n"))
    assert msg == "t.csv: the header needs an 'id' column (found: tag, title)"


def test_csv_more_cells_than_columns(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, "t.csv", "id,title\nns:a,A\nns:b,B,extra\n"))
    assert msg == "t.csv line 3: more cells than header columns"


@pytest.mark.parametrize(
    ("entry", "lang"),
    [
        ({"id": "ns:a", "titles": {"english": "A"}}, "english"),
        ({"id": "ns:a", "titles": {"EN": "A"}}, "EN"),
        ({"id": "ns:a", "title": "A", "synonyms": {"e": ["x"]}}, "e"),
        ({"id": "ns:a", "titles": {"pt_BR": "A"}}, "pt_BR"),
    ],
)
def test_bad_language_code(tmp_path: Path, entry: dict[str, object], lang: str) -> None:
    msg = fails(write(tmp_path, "t.json", json.dumps([entry])))
    assert msg == (
        f"t.json entry 1 (ns:a): {lang!r} is not a language code; use e.g. 'en', 'de', 'pt-BR'"
    )


def test_bad_language_code_csv_column(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, "t.csv", "id,title_german\nns:a,A\n"))
    assert msg == (
        "t.csv line 2 (ns:a): 'german' is not a language code; use e.g. 'en', 'de', 'pt-BR'"
    )


@pytest.mark.parametrize("synonyms", ["sneaker", {"en": "sneaker"}, 5, {"en": ["a"], "de": "b"}])
def test_bad_synonyms_type(tmp_path: Path, synonyms: object) -> None:
    data = [{"id": "ns:a", "synonyms": synonyms}]
    msg = fails(write(tmp_path, "t.json", json.dumps(data)))
    assert msg == "t.json entry 1 (ns:a): 'synonyms' must be a list or {lang: [...]}"


def test_bad_titles_type(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, "t.json", json.dumps([{"id": "ns:a", "titles": ["A"]}])))
    assert msg == "t.json entry 1 (ns:a): 'titles' must map language to title"


@pytest.mark.parametrize("name", ["t.txt", "t.xml", "taxonomy"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    msg = fails(write(tmp_path, name, "[]"))
    suffix = Path(name).suffix or "(none)"
    assert msg == (
        f"unsupported taxonomy file type {suffix!r} for {name}; use .json, .yaml/.yml or .csv"
    )


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    text = '[\n  {"id": "ns:a"},\n  {"id": "ns:b",}\n]\n'
    msg = fails(write(tmp_path, "t.json", text))
    assert msg.startswith("t.json: invalid JSON at line 3: ")


def test_invalid_yaml(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, "t.yaml", "tags: [\n  - id: a\n"))
    assert msg.startswith("t.yaml: invalid YAML: ")


def test_empty_files(tmp_path: Path) -> None:
    assert fails(write(tmp_path, "e.json", "")) == (
        "e.json: invalid JSON at line 1: Expecting value"
    )
    assert fails(write(tmp_path, "e.yaml", "")) == (
        "e.yaml: expected a list of tags or an object with 'tags'"
    )
    assert fails(write(tmp_path, "e.csv", "")) == (
        "e.csv: the header needs an 'id' column (found: )"
    )
    assert fails(write(tmp_path, "l.json", "[]")) == "l.json: no tags found"
    assert fails(write(tmp_path, "o.json", '{"tags": []}')) == "o.json: no tags found"
    assert fails(write(tmp_path, "h.csv", "id,title\n")) == "h.csv: no tags found"


def test_not_a_list(tmp_path: Path) -> None:
    assert fails(write(tmp_path, "t.json", '{"id": "ns:a"}')) == (
        "t.json: expected a list of tags or an object with 'tags'"
    )
    assert fails(write(tmp_path, "t.yaml", "tags: ns:a\n")) == (
        "t.yaml: expected a list of tags or an object with 'tags'"
    )


def test_entry_not_an_object(tmp_path: Path) -> None:
    assert fails(write(tmp_path, "t.json", '[{"id": "ns:a"}, "ns:b"]')) == (
        "t.json entry 2: expected an object with 'id', got 'ns:b'"
    )


@pytest.mark.parametrize("entry", [{"title": "A"}, {"id": ""}, {"id": 7}, {"id": None}])
def test_missing_id(tmp_path: Path, entry: dict[str, object]) -> None:
    msg = fails(write(tmp_path, "t.json", json.dumps([{"id": "ns:ok"}, entry])))
    assert msg == "t.json entry 2: missing 'id'"


def test_missing_id_csv(tmp_path: Path) -> None:
    assert fails(write(tmp_path, "t.csv", "id,title\n,Nameless\n")) == (
        "t.csv line 2: missing 'id'"
    )


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert fails(missing).startswith(f"cannot read taxonomy file {missing}: ")
    latin1 = tmp_path / "l.csv"
    latin1.write_bytes("id,title\nns:a,Stra\xdfe\n".encode("latin-1"))
    assert fails(latin1).startswith(f"cannot read taxonomy file {latin1}: ")


# --- the catalog's taxonomy ----------------------------------------------------------------


def test_catalog_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    bags = TaxonomyTag("apparel:bags", {"en": "Bags", "ja": "バッグ"}, {"en": ["handbag"]})
    with Catalog.open(path) as cat:
        assert cat.tags() == []
        assert cat.upsert_tags([SHOE, SHIRT, bags]) == 3
        # Sorted by id; unicode survives.
        assert cat.tags() == [bags, SHOE, SHIRT]
        assert cat.unknown_tags(["apparel:tops/t-shirt", "x:y", "apparel:bags", "a:b", "x:y"]) == [
            "a:b",
            "x:y",
        ]
        assert cat.unknown_tags([]) == []
        assert cat.stats()["taxonomy_tags"] == 3
    # Re-import (another process, same file): titles and synonyms change, no duplicates.
    renamed = TaxonomyTag(SHOE.id, {"en": "Sneaker"}, {})
    new = TaxonomyTag("apparel:hats", {"en": "Hats"}, {})
    with Catalog.open(path) as cat:
        assert cat.upsert_tags([renamed, new]) == 2
        assert cat.tags() == [bags, new, renamed, SHIRT]
        assert cat.stats()["taxonomy_tags"] == 4
        assert cat.unknown_tags([SHOE.id, "apparel:hats"]) == []


def test_catalog_import_from_file(tmp_path: Path) -> None:
    csv_path = write(tmp_path, "t.csv", "id,title,title_de\nns:a,A,Ä\nns:b,B,\n")
    with Catalog.open(tmp_path / "c.sqlite3") as cat:
        assert cat.upsert_tags(load_taxonomy(csv_path)) == 2
        write(tmp_path, "t.csv", "id,title\nns:a,A2\n")
        assert cat.upsert_tags(load_taxonomy(csv_path)) == 1
        assert cat.tags() == [
            TaxonomyTag("ns:a", {"en": "A2"}, {}),
            TaxonomyTag("ns:b", {"en": "B"}, {}),
        ]


def test_regressions_newline_bom_norwegian(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="invalid tag id"):
        validate_tag_id("ns:a\n")
    csv_file = tmp_path / "bom.csv"
    csv_file.write_bytes("\ufeffid,title\nns:a,A\n".encode())
    assert [t.id for t in load_taxonomy(csv_file)] == ["ns:a"]
    yml = tmp_path / "no.yaml"
    yml.write_text("- id: ns:sko\n  titles: {no: Sko, en: Shoe}\n")
    assert load_taxonomy(yml)[0].titles == {"no": "Sko", "en": "Shoe"}
