"""Tag models as a service: define, check, train, version, activate, diff.

Training works on the vectors stored in the catalog (no image is decoded again). Each
run records a version: Pending, then Training, then Trained (with its classifier and
report) or Failed (with the reason). A run that was killed is marked Failed the next
time the model's versions are read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.catalog import Catalog
from indexer.colour import COLOUR_LABEL
from indexer.errors import UnknownAssetError

from . import features as feats
from .classifier import LinearClassifier, fit
from .errors import GuidelineError, ModelSpecError, TrainingError, UnknownModelError
from .guidelines import (
    ExampleState,
    Finding,
    confusion_findings,
    feature_findings,
    static_findings,
)
from .report import build_report
from .spec import ModelSpec
from .store import ModelStore, ModelVersion, TagModel


@dataclass(frozen=True)
class TrainingOutcome:
    version: int
    activated: bool
    report: dict[str, Any]


@dataclass(frozen=True)
class TagChange:
    tag: str
    gained: int
    lost: int
    examples_gained: tuple[str, ...]
    examples_lost: tuple[str, ...]


@dataclass(frozen=True)
class VersionDiff:
    """What activating ``version`` instead of ``against`` would change over the catalog."""

    model: str
    version: int
    against: int | None
    assets: int  # assets compared
    changed: int  # assets whose tag from this model changes
    tags: tuple[TagChange, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "against": self.against,
            "assets": self.assets,
            "changed": self.changed,
            "tags": [
                {
                    "tag": c.tag,
                    "gained": c.gained,
                    "lost": c.lost,
                    "examples_gained": list(c.examples_gained),
                    "examples_lost": list(c.examples_lost),
                }
                for c in self.tags
            ],
        }


@dataclass(frozen=True)
class _Examples:
    assets: list[str]
    keys: list[int]
    y: np.ndarray
    tags: tuple[str, ...]


class TagModels:
    """Tag models of one catalog; ``embedder`` is the label of the shared embedder's
    vectors (``ImageEmbedder.name``)."""

    def __init__(
        self, catalog: Catalog, embedder: str, *, pid_alive: Callable[[int], bool] | None = None
    ) -> None:
        self.catalog = catalog
        self.embedder = embedder
        self.store = ModelStore(catalog)
        self._pid_alive = pid_alive or _pid_alive

    # -- definition --------------------------------------------------------

    def create(self, spec: ModelSpec) -> TagModel:
        resolved = {tag: self.resolve(refs) for tag, refs in spec.examples.items()}
        self.store.create(
            spec.name, spec.title, spec.description, spec.features, spec.target_precision
        )
        for tag, assets in resolved.items():
            self.store.add_examples(spec.name, tag, assets)
        return self.store.get(spec.name)

    def resolve(self, refs: Sequence[str]) -> list[str]:
        """Asset ids for references: asset ids, source file paths, DAM folders (every
        asset under them) or folders on disk. A reference that matches nothing is kept
        as given; the guideline check reports it as not ingested."""
        out: list[str] = []
        for ref in refs:
            ref = ref.strip()
            if not ref:
                continue
            folder = ref if ref.endswith("/") else ref + "/"
            under = self.catalog.ids_under(folder)
            if not under and os.path.isdir(ref):
                under = self.catalog.ids_under(
                    os.path.join(os.path.abspath(ref), ""), by_source=True
                )
            if under:
                out.extend(under)
                continue
            if ref.endswith("/") or os.path.isdir(ref):
                raise ModelSpecError(
                    f"folder {ref!r} holds no ingested images; ingest it first with "
                    "`smarttags ingest DIR`"
                )
            try:
                out.append(self.catalog.get_asset(ref).id)
            except UnknownAssetError:
                try:
                    out.append(self.catalog.get_asset(os.path.abspath(ref)).id)
                except UnknownAssetError:
                    out.append(ref)  # reported by the checks as not ingested
        return out

    def add_examples(self, name: str, tag: str, refs: Sequence[str]) -> int:
        return self.store.add_examples(name, tag, self.resolve(refs))

    def remove_examples(self, name: str, tag: str, refs: Sequence[str] | None) -> int:
        return self.store.remove_examples(name, tag, None if refs is None else self.resolve(refs))

    # -- checks ------------------------------------------------------------

    def check(self, name: str) -> list[Finding]:
        """Every guideline finding: errors first. Runs the cross-validation when the
        static checks pass, to find confused tags."""
        model = self.store.get(name)
        findings = static_findings(name, self._state(model))
        if any(f.level == "error" for f in findings):
            return _ordered(findings)
        ex = self._examples(model)
        x = self._features(model, ex.keys)
        findings += feature_findings(ex.assets, ex.y, ex.tags, feats.power_normalise(x))
        result = fit(x, ex.y, ex.tags, target_precision=model.target_precision)
        findings += confusion_findings(*_confusion(result.cv.oof_proba, ex))
        return _ordered(findings)

    def _state(self, model: TagModel) -> ExampleState:
        tags = list(model.tags)
        owners = self.store.owners(tags) if tags else {}
        state = ExampleState(
            tags=model.tags,
            not_in_taxonomy=self.catalog.unknown_tags(tags),
            other_owners={
                t: [m for m in names if m != model.name]
                for t, names in owners.items()
                if any(m != model.name for m in names)
            },
        )
        assets = sorted({a for ids in model.tags.values() for a in ids})
        keys = self.catalog.asset_keys(assets)
        state.not_ingested = {a for a in assets if a not in keys}
        for label in feats.labels_for(model.features, self.embedder):
            have = self.catalog.current_embeddings(list(keys.values()), label)
            what = "colour statistics" if label == COLOUR_LABEL else f"{label} vector"
            for asset, key in keys.items():
                if key not in have:
                    state.not_embedded.setdefault(asset, what)
        return state

    def _examples(self, model: TagModel) -> _Examples:
        tags = tuple(model.tags)
        keys = self.catalog.asset_keys(a for ids in model.tags.values() for a in ids)
        assets = [a for ids in model.tags.values() for a in ids]
        y = np.array([t for t, ids in enumerate(model.tags.values()) for _ in ids], np.int64)
        return _Examples(assets, [keys[a] for a in assets], y, tags)

    def _features(self, model: TagModel, keys: Sequence[int]) -> np.ndarray:
        parts, missing = feats.stored(
            self.catalog, keys, feats.labels_for(model.features, self.embedder)
        )
        if missing:
            raise TrainingError(
                f"{len(missing)} example(s) lost their stored vectors during training; "
                "run `smarttags ingest` again and retrain"
            )
        return feats.combine(model.features, parts)

    # -- training ----------------------------------------------------------

    def train(
        self, name: str, *, activate: bool | None = None, fitter: Callable[..., Any] = fit
    ) -> TrainingOutcome:
        """Check, then train a new version. ``activate``: None activates it when the
        model has no active version yet. Raises GuidelineError (no version is made) when
        a rule is broken; a failure during training leaves a Failed version."""
        model = self.store.get(name)
        self.versions(name)  # marks interrupted runs Failed
        findings = static_findings(name, self._state(model))
        errors = [f for f in findings if f.level == "error"]
        if errors:
            raise GuidelineError(name, errors)
        version = self.store.new_version(name, self.embedder, os.getpid())
        started = time.perf_counter()
        try:
            self.store.set_status(name, version, "training")
            ex = self._examples(model)
            x = self._features(model, ex.keys)
            findings += feature_findings(ex.assets, ex.y, ex.tags, feats.power_normalise(x))
            result = fitter(x, ex.y, ex.tags, target_precision=model.target_precision)
            confusion, _, misclassified = _confusion(result.cv.oof_proba, ex)
            findings += confusion_findings(confusion, ex.tags, misclassified)
            report = build_report(
                model=model,
                version=version,
                embedder=self.embedder,
                titles={t.id: t.title() for t in self.catalog.tags() if t.id in model.tags},
                assets=ex.assets,
                y=ex.y,
                fit=result,
                confusion=confusion,
                misclassified=misclassified,
                findings=_ordered(findings),
                seconds=time.perf_counter() - started,
            )
            self.store.set_status(
                name,
                version,
                "trained",
                report=report,
                classifier=result.classifier.to_bytes(),
            )
        except BaseException as e:
            reason = (
                "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
            )
            self.store.set_status(name, version, "failed", reason=reason)
            if isinstance(e, TrainingError | KeyboardInterrupt):
                raise
            raise TrainingError(f"training version {version} of {name!r} failed: {reason}") from e
        activated = activate if activate is not None else model.active_version is None
        if activated:
            self.store.activate(name, version)
        return TrainingOutcome(version, activated, report)

    # -- versions ----------------------------------------------------------

    def versions(self, name: str) -> list[ModelVersion]:
        out = self.store.versions(name)
        stale = [
            v
            for v in out
            if v.status in ("pending", "training")
            and v.pid is not None
            and not self._pid_alive(v.pid)
        ]
        for v in stale:
            self.store.set_status(
                name,
                v.version,
                "failed",
                reason=f"interrupted: the training process (pid {v.pid}) stopped before "
                "it finished",
            )
        return self.store.versions(name) if stale else out

    def report(self, name: str, version: int | None = None) -> dict[str, Any]:
        v = self._pick(name, version)
        report = self.store.report(name, v.version)
        if report is None:
            raise UnknownModelError(
                f"version {v.version} of {name!r} has no report (status {v.status}"
                f"{': ' + v.reason if v.reason else ''})"
            )
        return report

    def _pick(self, name: str, version: int | None) -> ModelVersion:
        versions = self.versions(name)
        if version is not None:
            return self.store.version(name, version)
        model = self.store.get(name)
        for v in reversed(versions):
            if v.version == model.active_version or (
                model.active_version is None and v.status == "trained"
            ):
                return v
        if versions:
            return versions[-1]
        raise UnknownModelError(
            f"tag model {name!r} has no versions yet; train it with `smarttags models train {name}`"
        )

    def activate(self, name: str, version: int) -> None:
        v = self.store.version(name, version)
        if v.status != "trained":
            raise UnknownModelError(
                f"version {version} of {name!r} is {v.status}"
                f"{' (' + v.reason + ')' if v.reason else ''}; only a trained version can be "
                "activated"
            )
        self.store.activate(name, version)

    def classifier(self, name: str, version: int) -> LinearClassifier:
        v = self.store.version(name, version)
        blob = self.store.classifier_blob(name, version)
        if blob is None or v.status != "trained":
            raise UnknownModelError(f"version {version} of {name!r} is {v.status}, not trained")
        if v.embedder != self.embedder:
            raise TrainingError(
                f"version {version} of {name!r} was trained on {v.embedder} vectors but the "
                f"catalog now uses {self.embedder}; train a new version"
            )
        return LinearClassifier.from_bytes(blob)

    # -- applying ----------------------------------------------------------

    def predict_catalog(
        self, name: str, version: int, chunk: int = 8192
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(asset keys, tag index or -1 for no tag, confidence) over every asset with
        current features."""
        model = self.store.get(name)
        clf = self.classifier(name, version)
        labels = feats.labels_for(model.features, self.embedder)
        keys_out, tag_out, conf_out = [], [], []
        for keys, vectors in self.catalog.iter_embeddings(self.embedder, chunk):
            parts = [vectors]
            if len(labels) > 1:
                extra = self.catalog.current_embeddings(keys.tolist(), labels[1])
                have = np.array([int(k) in extra for k in keys], bool)
                keys, parts = keys[have], [vectors[have]]
                if not len(keys):
                    continue
                parts.append(np.stack([extra[int(k)] for k in keys]))
            pred = clf.predict(feats.combine(model.features, parts))
            keys_out.append(keys)
            tag_out.append(np.where(pred.applied, pred.tag, -1))
            conf_out.append(pred.confidence)
        if not keys_out:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(keys_out), np.concatenate(tag_out), np.concatenate(conf_out)

    def diff(self, name: str, version: int, against: int | None = None) -> VersionDiff:
        """Dry run: which assets would gain or lose which tag if ``version`` replaced
        ``against`` (default: the active version; none: every tag is a gain)."""
        model = self.store.get(name)
        against = model.active_version if against is None else against
        keys, new, _ = self.predict_catalog(name, version)
        new_tags = self.classifier(name, version).tags
        if against is not None and against != version:
            okeys, old_idx, _ = self.predict_catalog(name, against)
            old_tags = self.classifier(name, against).tags
            old_by_key = dict(zip(okeys.tolist(), old_idx.tolist(), strict=True))
            old = [old_by_key.get(k, -1) for k in keys.tolist()]
            old_names = [old_tags[i] if i >= 0 else None for i in old]
        elif against == version:
            old_names = [new_tags[i] if i >= 0 else None for i in new.tolist()]
        else:
            old_names = [None] * len(keys)
        new_names = [new_tags[i] if i >= 0 else None for i in new.tolist()]
        ids = self.ids_for_keys(keys.tolist())
        gained: dict[str, list[str]] = {}
        lost: dict[str, list[str]] = {}
        changed = 0
        for key, o, n in zip(keys.tolist(), old_names, new_names, strict=True):
            if o == n:
                continue
            changed += 1
            if n is not None:
                gained.setdefault(n, []).append(ids[key])
            if o is not None:
                lost.setdefault(o, []).append(ids[key])
        tags = sorted(set(gained) | set(lost))
        return VersionDiff(
            model=name,
            version=version,
            against=against,
            assets=len(keys),
            changed=changed,
            tags=tuple(
                TagChange(
                    t,
                    len(gained.get(t, [])),
                    len(lost.get(t, [])),
                    tuple(gained.get(t, [])[:5]),
                    tuple(lost.get(t, [])[:5]),
                )
                for t in tags
            ),
        )

    def ids_for_keys(self, keys: list[int]) -> dict[int, str]:
        """Asset key -> asset id."""
        out: dict[int, str] = {}
        conn = self.catalog.connection
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows = conn.execute(
                f"SELECT key, id FROM assets WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            out.update({r[0]: r[1] for r in rows})
        return out


def _confusion(
    proba: np.ndarray, ex: _Examples
) -> tuple[np.ndarray, tuple[str, ...], dict[int, list[tuple[str, int]]]]:
    """Out-of-fold confusion matrix (rows: true tag), the tags, and per tag its
    misclassified examples with the tag they went to."""
    k = len(ex.tags)
    pred = proba.argmax(axis=1)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (ex.y, pred), 1)
    wrong: dict[int, list[tuple[str, int]]] = {}
    for i in np.flatnonzero(pred != ex.y):
        wrong.setdefault(int(ex.y[i]), []).append((ex.assets[i], int(pred[i])))
    return confusion, ex.tags, wrong


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: f.level != "error")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
