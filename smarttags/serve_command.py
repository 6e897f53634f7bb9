"""``smarttags serve`` (the HTTP API under uvicorn) and ``smarttags openapi`` (its spec)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .clikit import App, pass_app


def openapi_text(spec: dict[str, Any]) -> str:
    """The committed form of the spec: sorted keys, two-space indent, final newline."""
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
    @click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
    @click.option("--log-level", default="info", show_default=True,
                  type=click.Choice(["critical", "error", "warning", "info", "debug"]))  # fmt: skip
    @pass_app
    def serve(app: App, host: str, port: int, log_level: str) -> None:
        """Run the HTTP API (keys: SMARTTAGS_API_KEYS or SMARTTAGS_API_KEYS_FILE)."""
        import uvicorn

        from .api import create_app

        settings = app.settings()
        try:
            api = create_app(settings)
        except ValueError as e:
            raise click.ClickException(str(e)) from e
        if not len(api.state.keys):
            raise click.ClickException(
                'no API keys are configured; set SMARTTAGS_API_KEYS=\'{"KEY": "admin"}\' '
                "(roles: reader, editor, admin) or SMARTTAGS_API_KEYS_FILE"
            )
        click.echo(f"smarttags API on http://{host}:{port} (docs at /docs)", err=True)
        uvicorn.run(api, host=host, port=port, log_level=log_level)

    @cli.command()
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
                  help="Write to this file (default: stdout).")  # fmt: skip
    @pass_app
    def openapi(app: App, out: Path | None) -> None:
        """Print the HTTP API's OpenAPI spec (the committed openapi.json)."""
        from .api import create_app

        text = openapi_text(create_app(app.settings()).openapi())
        if out is None:
            click.echo(text, nl=False)
        else:
            out.write_text(text, encoding="utf-8")
            click.echo(f"OpenAPI spec written to {out}", err=True)
