"""The training report: its JSON content, the terminal table and the Excel workbook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from training.report import NOT_COMPLETE, TRAINED, render_table
from training.service import TagModels
from training.spec import ModelSpec
from training.xlsx import GREEN, YELLOW, write_xlsx

from .training_helpers import EMBEDDER, add_assets, clusters, open_catalog, taxonomy

TAGS = ("wear:type/hat", "wear:type/shirt", "wear:type/shoe")


@pytest.fixture
def report(tmp_path: Path) -> dict[str, Any]:
    """A trained model: two well-trained tags and one with only 6 examples."""
    catalog = open_catalog(tmp_path)
    by_tag, vecs, ids, _ = clusters({TAGS[0]: 6, TAGS[1]: 30, TAGS[2]: 30}, spread=0.8)
    add_assets(catalog, vecs, ids)
    taxonomy(catalog, TAGS)
    tm = TagModels(catalog, EMBEDDER)
    tm.create(
        ModelSpec(name="wear", title="Wear", examples={t: tuple(a) for t, a in by_tag.items()})
    )
    out = tm.train("wear").report
    assert tm.report("wear") == json.loads(json.dumps(out))  # stored as given
    return out


def test_report_has_every_per_tag_and_per_model_field(report: dict[str, Any]) -> None:
    assert (report["model"], report["version"], report["examples"]) == ("wear", 1, 66)
    rows = {r["tag"]: r for r in report["tags"]}
    assert list(rows) == list(TAGS)
    hat, shirt = rows[TAGS[0]], rows[TAGS[1]]
    assert (hat["examples"], hat["status"]) == (6, NOT_COMPLETE)
    assert hat["reasons"] == ["only 6 examples (at least 10 needed)"]
    assert "add 24 more examples" in hat["advice"]
    assert (shirt["examples"], shirt["status"], shirt["reasons"]) == (30, TRAINED, [])
    for r in rows.values():
        assert 0 < r["threshold"] < 1 and 0 <= r["recall"] <= 1
        assert r["precision"] is None or 0 <= r["precision"] <= 1
        assert "confused_with" in r and "misclassified" in r
    matrix = report["confusion"]["matrix"]
    assert report["confusion"]["tags"] == list(TAGS)
    assert [sum(row) for row in matrix] == [6, 30, 30]
    cv = report["cross_validation"]
    assert 0 <= cv["ece"] <= 1 and cv["accuracy"] == pytest.approx(
        sum(matrix[i][i] for i in range(3)) / 66, abs=1e-4
    )
    assert {f["code"] for f in report["findings"]} >= {"few-examples"}


def test_terminal_table_colours_trained_green_and_the_rest_yellow(report: dict[str, Any]) -> None:
    text = render_table(report, style=True)
    hat_line = next(
        line for line in text.splitlines() if line.startswith("\x1b") and TAGS[0] in line
    )
    shirt_line = next(line for line in text.splitlines() if TAGS[1] in line and "\x1b" in line)
    assert hat_line.startswith("\x1b[33m")  # yellow
    assert shirt_line.startswith("\x1b[32m")  # green
    plain = render_table(report, style=False)
    assert "\x1b" not in plain and "Confusion matrix" in plain and "Advice:" in plain


def test_xlsx_cells_and_fills(report: dict[str, Any], tmp_path: Path) -> None:
    path = write_xlsx(report, tmp_path / "out" / "wear.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["Tags", "Model", "Confusion", "Findings"]
    tags = wb["Tags"]
    header = [c.value for c in tags[1]]
    assert header[:5] == ["Tag", "Title", "Examples", "Status", "Precision (CV)"]
    by_tag = {row[0].value: row for row in tags.iter_rows(min_row=2)}
    assert set(by_tag) == set(TAGS)
    hat, shirt = by_tag[TAGS[0]], by_tag[TAGS[1]]
    col = {name: i for i, name in enumerate(header)}
    assert hat[col["Examples"]].value == 6 and hat[col["Status"]].value == NOT_COMPLETE
    assert hat[col["Why not completely trained"]].value == "only 6 examples (at least 10 needed)"
    assert shirt[col["Status"]].value == TRAINED
    assert shirt[col["Threshold"]].value == report["tags"][1]["threshold"]
    assert all(c.fill.fgColor.rgb == YELLOW for c in hat)
    assert all(c.fill.fgColor.rgb == GREEN for c in shirt)
    model = {r[0].value: r[1].value for r in wb["Model"].iter_rows()}
    assert model["Model"] == "wear" and model["Examples"] == 66
    assert model["Calibration error (ECE)"] == report["cross_validation"]["ece"]
    confusion = [[c.value for c in row] for row in wb["Confusion"].iter_rows()]
    assert confusion[0] == ["true \\ predicted", *TAGS]
    assert [row[1:] for row in confusion[1:]] == report["confusion"]["matrix"]
    findings = list(wb["Findings"].iter_rows(min_row=2, values_only=True))
    assert ("warning", "few-examples", TAGS[0]) in [f[:3] for f in findings]


def test_xlsx_to_an_unwritable_place_is_a_clear_error(
    report: dict[str, Any], tmp_path: Path
) -> None:
    from training.errors import ReportError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match="cannot write the report to"):
        write_xlsx(report, blocker / "r.xlsx")
