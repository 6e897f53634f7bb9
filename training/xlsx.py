"""The training report as an Excel workbook: trained tags filled green, the others yellow.

Sheets: ``Tags`` (one row per tag), ``Model`` (summary), ``Confusion`` (the matrix) and
``Findings`` (guideline warnings). Written atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import ReportError
from .report import TRAINED

GREEN, YELLOW = "FFC6EFCE", "FFFFEB9C"  # Excel's "Good" and "Neutral" fills
TAG_COLUMNS = (
    ("Tag", "tag"),
    ("Title", "title"),
    ("Examples", "examples"),
    ("Status", "status"),
    ("Precision (CV)", "precision"),
    ("Precision with unknowns (CV)", "open_set_precision"),
    ("Recall (CV)", "recall"),
    ("Threshold", "threshold"),
    ("Most confused with", "confused_with"),
    ("Why not completely trained", "reasons"),
    ("Advice", "advice"),
)


def write_xlsx(report: dict[str, Any], path: Path) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    bold = Font(bold=True)
    fills = {
        TRAINED: PatternFill("solid", start_color=GREEN, end_color=GREEN),
        "other": PatternFill("solid", start_color=YELLOW, end_color=YELLOW),
    }
    wb = Workbook()
    ws = wb.active
    ws.title = "Tags"
    ws.append([title for title, _ in TAG_COLUMNS])
    for cell in ws[1]:
        cell.font = bold
    for row in report["tags"]:
        values = ["; ".join(row[key]) if key == "reasons" else row[key] for _, key in TAG_COLUMNS]
        ws.append(values)
        fill = fills[TRAINED] if row["status"] == TRAINED else fills["other"]
        for cell in ws[ws.max_row]:
            cell.fill = fill
    for letter, width in zip(
        "ABCDEFGHIJK", (34, 20, 10, 22, 14, 16, 12, 11, 34, 40, 80), strict=True
    ):
        ws.column_dimensions[letter].width = width
    ws.freeze_panes = "A2"

    cv = report["cross_validation"]
    summary = wb.create_sheet("Model")
    for key, value in (
        ("Model", report["model"]),
        ("Title", report["title"]),
        ("Version", report["version"]),
        ("Embedder", report["embedder"]),
        ("Features", report["features"]),
        ("Examples", report["examples"]),
        ("Target precision", report["target_precision"]),
        ("Cross-validated accuracy", cv["accuracy"]),
        ("Calibration error (ECE)", cv["ece"]),
        ("ECE among the tags", cv["ece_closed_set"]),
        ("ECE among the tags, before calibration", cv["ece_uncalibrated"]),
        ("Temperature", cv["temperature"]),
        ("Shrinkage", cv["shrinkage"]),
        ("Folds", cv["folds"]),
        ("Training seconds", report["seconds"]),
    ):
        summary.append([key, value])
        summary.cell(summary.max_row, 1).font = bold
    summary.column_dimensions["A"].width = 28
    summary.column_dimensions["B"].width = 40

    matrix = wb.create_sheet("Confusion")
    tags = report["confusion"]["tags"]
    matrix.append(["true \\ predicted", *tags])
    for tag, counts in zip(tags, report["confusion"]["matrix"], strict=True):
        matrix.append([tag, *counts])
        matrix.cell(matrix.max_row, 1).font = bold
    for i in range(len(tags)):
        matrix.cell(i + 2, i + 2).fill = fills[TRAINED]
    for cell in matrix[1]:
        cell.font = bold

    found = wb.create_sheet("Findings")
    found.append(["Level", "Code", "Tag", "Assets", "Message"])
    for f in report["findings"]:
        found.append([f["level"], f["code"], f["tag"], ", ".join(f["assets"]), f["message"]])
        if f["level"] == "warning":
            for cell in found[found.max_row]:
                cell.fill = fills["other"]
    for cell in found[1]:
        cell.font = bold

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".xlsx", dir=path.parent)
        os.close(fd)
        try:
            wb.save(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as e:
        raise ReportError(f"cannot write the report to {path}: {e}") from e
    return path
