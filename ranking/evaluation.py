"""Offline evaluation of ranking profiles against judgment lists.

A judgments file lists graded relevance per (query, asset): CSV with a header
``query,asset,grade`` or JSON lines with those keys; grade 0 means not relevant,
higher is better (e.g. 0-3). Metrics: nDCG@10 (exponential gain), P@10, MRR and
recall@100, averaged over queries.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import JudgmentsError

Judgments = dict[str, dict[str, float]]  # query -> asset -> grade


def load_judgments(path: Path) -> Judgments:
    """Read a judgments file; errors name the file, the line and the bad value."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise JudgmentsError(f"cannot read judgments {path}: {e}") from e
    rows: list[tuple[int, Mapping[str, object]]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        missing = {"query", "asset", "grade"} - set(reader.fieldnames or [])
        if missing:
            raise JudgmentsError(
                f"{path.name}: the header needs query, asset, grade (missing {sorted(missing)})"
            )
        rows = [(reader.line_num, row) for row in reader]
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise JudgmentsError(f"{path.name} line {n}: invalid JSON: {e.msg}") from e
                if not isinstance(obj, dict):
                    raise JudgmentsError(f"{path.name} line {n}: expected an object")
                rows.append((n, obj))
    else:
        raise JudgmentsError(f"judgments {path.name}: use a .csv or .jsonl file")
    out: Judgments = {}
    for n, row in rows:
        query, asset, grade = row.get("query"), row.get("asset"), row.get("grade")
        if not isinstance(query, str) or not query.strip():
            raise JudgmentsError(f"{path.name} line {n}: missing query")
        if not isinstance(asset, str) or not asset.strip():
            raise JudgmentsError(f"{path.name} line {n}: missing asset")
        try:
            g = float(grade)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise JudgmentsError(
                f"{path.name} line {n}: grade {grade!r} is not a number (use 0 to 3)"
            ) from None
        if g < 0:
            raise JudgmentsError(f"{path.name} line {n}: grade {g:g} is negative")
        out.setdefault(query.strip(), {})[asset.strip()] = g
    if not out:
        raise JudgmentsError(f"{path.name}: no judgments found")
    return out


def ndcg_at(ranked: Sequence[str], grades: Mapping[str, float], k: int = 10) -> float:
    def dcg(gs: Sequence[float]) -> float:
        return sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(gs))

    ideal = dcg(sorted(grades.values(), reverse=True)[:k])
    return dcg([grades.get(a, 0.0) for a in ranked[:k]]) / ideal if ideal > 0 else 0.0


def precision_at(ranked: Sequence[str], grades: Mapping[str, float], k: int = 10) -> float:
    return sum(grades.get(a, 0.0) > 0 for a in ranked[:k]) / k


def reciprocal_rank(ranked: Sequence[str], grades: Mapping[str, float]) -> float:
    return next((1.0 / (i + 1) for i, a in enumerate(ranked) if grades.get(a, 0.0) > 0), 0.0)


def recall_at(ranked: Sequence[str], grades: Mapping[str, float], k: int = 100) -> float:
    relevant = {a for a, g in grades.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


@dataclass(frozen=True)
class Metrics:
    ndcg10: float
    p10: float
    mrr: float
    recall100: float
    queries: int

    def as_dict(self) -> dict[str, float]:
        return {"ndcg@10": self.ndcg10, "p@10": self.p10, "mrr": self.mrr,
                "recall@100": self.recall100, "queries": self.queries}  # fmt: skip


def evaluate(judgments: Judgments, search: Callable[[str], Sequence[str]]) -> Metrics:
    """Average the metrics over the judged queries; ``search`` returns ranked asset ids."""
    rows = []
    for query, grades in sorted(judgments.items()):
        ranked = list(search(query))
        rows.append((ndcg_at(ranked, grades), precision_at(ranked, grades),
                     reciprocal_rank(ranked, grades), recall_at(ranked, grades)))  # fmt: skip
    n = len(rows)
    mean = [sum(r[i] for r in rows) / n for i in range(4)]
    return Metrics(mean[0], mean[1], mean[2], mean[3], queries=n)
