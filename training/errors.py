"""Errors raised by the training package."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .guidelines import Finding


class TrainingError(Exception):
    """Base class of every error the training package raises on purpose."""


class ModelSpecError(TrainingError):
    """A tag model definition (file or flags) is invalid."""


class ModelExistsError(ModelSpecError):
    """A tag model by that name exists already."""


class UnknownModelError(TrainingError):
    """No tag model (or version) by that name."""


class GuidelineError(TrainingError):
    """The model breaks guideline rules that stop training; ``findings`` lists them."""

    def __init__(self, model: str, findings: list[Finding]) -> None:
        lines = "\n".join(f"  - {f.message}" for f in findings)
        super().__init__(
            f"tag model {model!r} cannot be trained ({len(findings)} "
            f"error{'s' if len(findings) != 1 else ''}):\n{lines}"
        )
        self.findings = findings


class FitError(TrainingError):
    """The classifier could not be fitted (bad features, numerical failure)."""


class ReportError(TrainingError):
    """A training report could not be written."""
