"""What every CLI command shares: the app context, error mapping, JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from indexer.errors import IndexerError
from ranking.errors import RankingError
from training.errors import TrainingError

from .service import SmartTags
from .settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

#: Errors that are the user's to fix: shown as one line, exit code 1.
USER_ERRORS: tuple[type[Exception], ...] = (IndexerError, RankingError, TrainingError)


class App:
    """What commands share: settings overrides and the service, built on first use."""

    def __init__(self, home: Path | None) -> None:
        self._overrides: dict[str, Any] = {} if home is None else {"home": home}
        self._service: SmartTags | None = None

    def override(self, **values: Any) -> None:
        """Command options that win over the environment (before the service is built)."""
        self._overrides.update({k: v for k, v in values.items() if v is not None})

    def settings(self) -> Settings:
        try:
            return Settings(**self._overrides)
        except ValidationError as e:
            problems = "; ".join(
                f"SMARTTAGS_{'_'.join(map(str, err['loc'])).upper()}: {err['msg']}"
                for err in e.errors()
            )
            raise click.ClickException(f"invalid settings: {problems}") from e

    def service(self) -> SmartTags:
        if self._service is None:
            self._service = SmartTags(self.settings())
        return self._service

    def close(self) -> None:
        if self._service is not None:
            self._service.close()


class SmartTagsGroup(click.Group):
    """Turns the packages' errors into ClickException in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as e:
            raise click.ClickException(str(e)) from e
        except KeyboardInterrupt:
            raise click.ClickException(
                "interrupted; the catalog keeps every finished batch, run the command again "
                "to finish"
            ) from None


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")(f)


def backend_option(f: F) -> F:
    return click.option(
        "--backend", type=click.Choice(["embedded", "opensearch"]), default=None,
        help="Search backend (default: $SMARTTAGS_BACKEND or embedded).",
    )(f)  # fmt: skip


def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


pass_app = click.make_pass_decorator(App)
