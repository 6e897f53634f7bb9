"""Guideline checks on a tag model before (and after) training.

Errors stop training; warnings do not. Every message names the tag, the assets and what
to do. The rules (``../shared/DESIGN.md``): 2 to 50 tags; 10 to 50 examples per tag
(about 30 recommended); an image carries at most one tag within a model; a tag belongs
to one model only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_TAGS, MAX_TAGS = 2, 50
MIN_EXAMPLES, RECOMMENDED_EXAMPLES, MAX_EXAMPLES = 10, 30, 50
NEAR_DUPLICATE = 0.98  # cosine of the stored vectors
KIND_MIN = 5  # fewer examples than this of one visual kind: add more of that kind
CONFUSED_SHARE = 0.2  # a tag whose examples go to one other tag this often is confused
#: A split-off group is "visually distinct" when it lies at least this far from the
#: rest, on the scale of (distance between tags - distance within tags) of the model.
DISTINCT_GAP = 1.0


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    code: str
    message: str
    tag: str | None = None
    assets: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "code": self.code,
            "tag": self.tag,
            "assets": list(self.assets),
            "message": self.message,
        }


@dataclass
class ExampleState:
    """What the catalog knows about a model's examples, gathered by the caller."""

    tags: dict[str, tuple[str, ...]]  # tag -> example asset ids
    not_in_taxonomy: list[str] = field(default_factory=list)
    other_owners: dict[str, list[str]] = field(default_factory=dict)  # tag -> other models
    not_ingested: set[str] = field(default_factory=set)
    not_embedded: dict[str, str] = field(default_factory=dict)  # asset -> what is missing


def static_findings(model: str, state: ExampleState) -> list[Finding]:
    """Every check that needs no features: counts, overlaps, ownership, availability."""
    out: list[Finding] = []
    tags = state.tags
    hint = f"`smarttags models add-examples {model} TAG ASSET...`"
    if len(tags) < MIN_TAGS:
        out.append(
            Finding(
                "error",
                "too-few-tags",
                f"tag model {model!r} has {len(tags)} tag{'s' * (len(tags) != 1)}; a model "
                f"needs at least {MIN_TAGS}: add one with {hint}",
            )
        )
    if len(tags) > MAX_TAGS:
        out.append(
            Finding(
                "error",
                "too-many-tags",
                f"tag model {model!r} has {len(tags)} tags; at most {MAX_TAGS} are allowed: "
                "split it into models of one visual aspect each",
            )
        )
    for tag in state.not_in_taxonomy:
        out.append(
            Finding(
                "error",
                "unknown-tag",
                f"tag {tag!r} is not in the taxonomy; add it to the taxonomy file and run "
                "`smarttags taxonomy import FILE`",
                tag,
            )
        )
    for tag, owners in sorted(state.other_owners.items()):
        out.append(
            Finding(
                "error",
                "tag-in-other-model",
                f"tag {tag!r} is already used by tag model {', '.join(map(repr, owners))}; a "
                f"tag belongs to one model only: remove it from one of them",
                tag,
            )
        )
    seen: dict[str, str] = {}
    for tag, assets in tags.items():
        for asset in assets:
            if asset in seen:
                out.append(
                    Finding(
                        "error",
                        "two-tags",
                        f"image {asset} is an example of both {seen[asset]!r} and {tag!r}; an "
                        "image carries at most one tag within a model: remove it from one "
                        f"(`smarttags models remove-examples {model} TAG {asset}`)",
                        tag,
                        (asset,),
                    )
                )
            else:
                seen[asset] = tag
    for tag, assets in tags.items():
        missing = [a for a in assets if a in state.not_ingested]
        if missing:
            out.append(
                Finding(
                    "error",
                    "not-ingested",
                    f"{_count(missing, 'example')} of tag {tag!r} "
                    f"{'is not an ingested image' if len(missing) == 1 else 'are not ingested'}"
                    f": {_list(missing)}; ingest them with `smarttags ingest` or remove them",
                    tag,
                    tuple(missing),
                )
            )
        unusable = [a for a in assets if a in state.not_embedded]
        if unusable:
            what = sorted({state.not_embedded[a] for a in unusable})
            out.append(
                Finding(
                    "error",
                    "not-embedded",
                    f"{_count(unusable, 'example')} of tag {tag!r} could not be embedded (no "
                    f"current {' or '.join(what)}): {_list(unusable)}; see `smarttags errors`, "
                    "run `smarttags ingest` on their folders again, or remove them",
                    tag,
                    tuple(unusable),
                )
            )
        n = len(assets)
        if n > MAX_EXAMPLES:
            out.append(
                Finding(
                    "error",
                    "too-many-examples",
                    f"tag {tag!r} has {n} examples; at most {MAX_EXAMPLES} are allowed: remove "
                    f"{n - MAX_EXAMPLES} (`smarttags models remove-examples {model} {tag} ...`)",
                    tag,
                )
            )
        elif n == 0:
            out.append(
                Finding(
                    "error",
                    "no-examples",
                    f"tag {tag!r} has no examples; add {MIN_EXAMPLES} to {MAX_EXAMPLES} "
                    f"(about {RECOMMENDED_EXAMPLES}) with {hint}",
                    tag,
                )
            )
        elif n < MIN_EXAMPLES:
            out.append(
                Finding(
                    "warning",
                    "few-examples",
                    f"tag {tag!r} has {n} example{'s' * (n != 1)}; it will be not completely "
                    f"trained until it has at least {MIN_EXAMPLES}: add {MIN_EXAMPLES - n} more "
                    f"(about {RECOMMENDED_EXAMPLES} are recommended)",
                    tag,
                )
            )
        elif n < RECOMMENDED_EXAMPLES:
            out.append(
                Finding(
                    "warning",
                    "below-recommended",
                    f"tag {tag!r} has {n} examples; about {RECOMMENDED_EXAMPLES} are "
                    f"recommended: add {RECOMMENDED_EXAMPLES - n} more for better accuracy",
                    tag,
                )
            )
    return out


def feature_findings(
    assets: list[str], y: np.ndarray, tags: tuple[str, ...], x: np.ndarray
) -> list[Finding]:
    """Near-duplicate examples and incoherent tags, from the examples' unit vectors ``x``."""
    out: list[Finding] = []
    sim = x @ x.T
    within, between = _typical_distances(sim, y, len(tags))
    for t, tag in enumerate(tags):
        idx = np.flatnonzero(y == t)
        if len(idx) < 2:
            continue
        s = sim[np.ix_(idx, idx)]
        pairs = [
            (assets[idx[i]], assets[idx[j]], float(s[i, j]))
            for i, j in zip(*np.triu_indices(len(idx), 1), strict=True)
            if s[i, j] >= NEAR_DUPLICATE
        ]
        for a, b, c in pairs[:10]:
            out.append(
                Finding(
                    "warning",
                    "near-duplicate",
                    f"examples {a} and {b} of tag {tag!r} are near-duplicates (cosine {c:.3f}); "
                    "they teach the model the same thing: replace one with a different photo",
                    tag,
                    (a, b),
                )
            )
        group = distinct_group(1.0 - s, within, between)
        if group:
            ids = tuple(assets[idx[i]] for i in group)
            out.append(
                Finding(
                    "warning",
                    "incoherent",
                    f"tag {tag!r}: its examples split into visually distinct groups, one of "
                    f"only {len(ids)} ({_list(list(ids))}); add at least {KIND_MIN} examples "
                    "of each kind, or remove the odd ones",
                    tag,
                    ids,
                )
            )
    return out


def _typical_distances(sim: np.ndarray, y: np.ndarray, k: int) -> tuple[float, float]:
    """Mean cosine distance between two examples of one tag, and of two different tags."""
    same = y[:, None] == y[None, :]
    off = ~np.eye(len(y), dtype=bool)
    d = 1.0 - sim
    within = float(d[same & off].mean()) if (same & off).any() else 0.0
    between = float(d[~same].mean()) if (~same).any() else within
    return within, between


def distinct_group(d: np.ndarray, within: float, between: float) -> list[int]:
    """A small group (2 to KIND_MIN - 1 examples) that average-linkage clustering splits
    off a tag's examples, when it is tight and lies as far from the rest as another tag
    would; ``[]`` otherwise. ``d`` holds the tag's pairwise cosine distances."""
    n = len(d)
    if n < KIND_MIN + 2 or between <= within:
        return []
    small, big = _two_clusters(d)
    if not 2 <= len(small) < KIND_MIN:
        return []
    rest = d[np.ix_(big, big)][np.triu_indices(len(big), 1)].mean()
    inner = d[np.ix_(small, small)][np.triu_indices(len(small), 1)].mean()
    gap = (d[np.ix_(small, big)].mean() - rest) / (between - within)
    return sorted(small) if gap >= DISTINCT_GAP and inner < rest else []


def _two_clusters(d: np.ndarray) -> tuple[list[int], list[int]]:
    """Average-linkage agglomeration down to two clusters: (smaller, larger)."""
    link = d.astype(np.float64).copy()
    np.fill_diagonal(link, np.inf)
    members = {i: [i] for i in range(len(d))}
    active = list(range(len(d)))
    while len(active) > 2:
        sub = link[np.ix_(active, active)]
        i, j = np.unravel_index(int(np.argmin(sub)), sub.shape)
        a, b = active[i], active[j]
        na, nb = len(members[a]), len(members[b])
        link[a, :] = (link[a, :] * na + link[b, :] * nb) / (na + nb)
        link[:, a] = link[a, :]
        link[a, a] = np.inf
        members[a] += members.pop(b)
        active.remove(b)
    first, second = (members[a] for a in active)
    return (first, second) if len(first) <= len(second) else (second, first)


def confusion_findings(
    confusion: np.ndarray,
    tags: tuple[str, ...],
    misclassified: dict[int, list[tuple[str, int]]],
) -> list[Finding]:
    """Tags whose cross-validated examples often go to one other tag."""
    out: list[Finding] = []
    for t, tag in enumerate(tags):
        row = confusion[t].astype(np.float64)
        n = row.sum()
        if n == 0:
            continue
        off = row.copy()
        off[t] = -1
        o = int(off.argmax())
        if off[o] >= 2 and off[o] / n >= CONFUSED_SHARE:
            ids = [a for a, p in misclassified.get(t, []) if p == o]
            out.append(
                Finding(
                    "warning",
                    "confused",
                    f"tag {tag!r} is confused with {tags[o]!r}: {int(off[o])} of its {int(n)} "
                    f"examples were predicted as {tags[o]!r} in cross-validation"
                    + (f" ({_list(ids)})" if ids else "")
                    + f"; add examples that show what tells {tag!r} from {tags[o]!r}",
                    tag,
                    tuple(ids),
                )
            )
    return out


def _count(items: list[str], noun: str) -> str:
    return f"{len(items)} {noun}{'s' * (len(items) != 1)}"


def _list(items: list[str], most: int = 5) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")
