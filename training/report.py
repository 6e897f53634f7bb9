"""The training report: per tag and per model, as a JSON-able dict and a terminal table.

Per tag: examples, status (trained, or not completely trained and why), cross-validated
precision and recall at the tag's threshold, the threshold, the tag it is most confused
with, and advice naming the misclassified examples. Per model: the confusion matrix,
cross-validated accuracy and calibration error, and every guideline finding.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .classifier import NEVER, Fit
from .guidelines import MIN_EXAMPLES, RECOMMENDED_EXAMPLES, Finding

if TYPE_CHECKING:
    from .store import TagModel

TRAINED, NOT_COMPLETE = "trained", "not completely trained"
#: Below this cross-validated recall at the threshold a tag is not completely trained.
MIN_RECALL = 0.25


def build_report(
    *,
    model: TagModel,
    version: int,
    embedder: str,
    titles: dict[str, str],
    assets: list[str],
    y: np.ndarray,
    fit: Fit,
    confusion: np.ndarray,
    misclassified: dict[int, list[tuple[str, int]]],
    findings: list[Finding],
    seconds: float,
) -> dict[str, Any]:
    clf, cv = fit.classifier, fit.cv
    tags = clf.tags
    best, conf = cv.predicted, cv.confidence
    rows = []
    for t, tag in enumerate(tags):
        n = int((y == t).sum())
        thr = float(clf.thresholds[t])
        given = (best == t) & (conf >= thr)
        tp = int((given & (y == t)).sum())
        precision = tp / int(given.sum()) if given.any() else None
        unknown_given = int(((cv.unknown_predicted == t) & (cv.unknown_confidence >= thr)).sum())
        open_precision = tp / (int(given.sum()) + unknown_given) if given.any() else None
        recall = tp / n if n else 0.0
        off = confusion[t].astype(np.float64).copy()
        off[t] = -1
        other = int(off.argmax())
        confused = tags[other] if off[other] > 0 else None
        wrong = [(a, tags[p]) for a, p in misclassified.get(t, [])]
        reasons = []
        if n < MIN_EXAMPLES:
            reasons.append(f"only {n} examples (at least {MIN_EXAMPLES} needed)")
        if thr >= NEVER:
            reasons.append(
                f"cross-validated precision never reaches {model.target_precision:.2f}, so "
                "it is never applied"
            )
        elif recall < MIN_RECALL:
            reasons.append(
                f"only {recall:.0%} of its examples are recognised at precision "
                f"{model.target_precision:.2f}"
            )
        rows.append(
            {
                "tag": tag,
                "title": titles.get(tag, tag),
                "examples": n,
                "status": NOT_COMPLETE if reasons else TRAINED,
                "reasons": reasons,
                "precision": None if precision is None else round(precision, 4),
                "open_set_precision": None if open_precision is None else round(open_precision, 4),
                "recall": round(recall, 4),
                "threshold": round(thr, 4),
                "confused_with": confused,
                "confused_count": int(max(off[other], 0)),
                "misclassified": [{"asset": a, "predicted": p} for a, p in wrong],
                "advice": _advice(tag, n, confused, wrong, findings),
            }
        )
    return {
        "model": model.name,
        "title": model.title,
        "version": version,
        "embedder": embedder,
        "features": model.features,
        "trained_at": time.time(),
        "seconds": round(seconds, 3),
        "examples": len(y),
        "target_precision": model.target_precision,
        "cross_validation": {
            "folds": int(cv.folds.max()) + 1,
            "shrinkage": cv.shrinkage,
            "accuracy": round(cv.accuracy, 4),
            "accuracy_by_shrinkage": {str(k): round(v, 4) for k, v in cv.grid_accuracy.items()},
            "temperature": round(clf.temperature, 4),
            "ece": round(cv.ece, 4),
            "ece_closed_set": round(cv.ece_closed, 4),
            "ece_uncalibrated": round(cv.ece_uncalibrated, 4),
        },
        "tags": rows,
        "confusion": {"tags": list(tags), "matrix": confusion.tolist()},
        "findings": [f.as_dict() for f in findings],
    }


def _advice(
    tag: str, n: int, confused: str | None, wrong: list[tuple[str, str]], findings: list[Finding]
) -> str:
    parts = []
    if n < RECOMMENDED_EXAMPLES:
        parts.append(f"add {RECOMMENDED_EXAMPLES - n} more examples")
    if confused and wrong:
        ids = ", ".join([a for a, p in wrong if p == confused][:5])
        parts.append(
            f"add examples that show what tells it from {confused!r}; these were taken for "
            f"another tag: {ids}"
        )
    for f in findings:
        if f.tag == tag and f.code in ("incoherent", "near-duplicate"):
            parts.append(f.message.split("; ", 1)[-1])
    return "; ".join(dict.fromkeys(parts)) or "none: the tag is well trained"


def render_table(report: dict[str, Any], style: bool = True) -> str:
    """The report as terminal text: trained tags green, the others yellow."""
    import click

    def paint(text: str, colour: str) -> str:
        return click.style(text, fg=colour) if style else text

    cv = report["cross_validation"]
    lines = [
        f"Tag model {report['model']!r} ({report['title']}), version {report['version']}: "
        f"{len(report['tags'])} tags, {report['examples']} examples, trained in "
        f"{report['seconds']:.1f}s",
        f"Cross-validated top-1 accuracy {cv['accuracy']:.3f} ({cv['folds']} folds); "
        f"calibration error (ECE, held-out folds) of the confidences {cv['ece']:.3f}; "
        f"among the tags {cv['ece_closed_set']:.3f} ({cv['ece_uncalibrated']:.3f} before "
        f"calibration); target precision {report['target_precision']}",
        "",
    ]
    width = max([len(r["tag"]) for r in report["tags"]] + [3])
    header = (
        f"{'tag':<{width}}  {'examples':>8}  {'precision':>9}  {'recall':>6}  "
        f"{'threshold':>9}  {'status':<22}  confused with"
    )
    lines.append(header)
    for r in report["tags"]:
        prec = "-" if r["precision"] is None else f"{r['precision']:.2f}"
        line = (
            f"{r['tag']:<{width}}  {r['examples']:>8}  {prec:>9}  {r['recall']:>6.2f}  "
            f"{r['threshold']:>9.2f}  {r['status']:<22}  {r['confused_with'] or '-'}"
        )
        lines.append(paint(line, "green" if r["status"] == TRAINED else "yellow"))
    lines.append("")
    lines.append("Advice:")
    for r in report["tags"]:
        why = f" ({'; '.join(r['reasons'])})" if r["reasons"] else ""
        lines.append(f"  {r['tag']}{why}: {r['advice']}")
    warnings = [f for f in report["findings"] if f["level"] == "warning"]
    if warnings:
        lines.append("")
        lines.append(f"Guideline warnings ({len(warnings)}):")
        lines.extend(paint(f"  - {f['message']}", "yellow") for f in warnings)
    lines.append("")
    lines.append("Confusion matrix (rows: true tag, columns: predicted, cross-validated):")
    tags = report["confusion"]["tags"]
    lines.append(" " * (width + 2) + " ".join(f"{i:>4}" for i in range(len(tags))))
    for i, (tag, row) in enumerate(zip(tags, report["confusion"]["matrix"], strict=True)):
        lines.append(f"{tag:<{width}}  " + " ".join(f"{v:>4}" for v in row) + f"   [{i}]")
    return "\n".join(lines)
