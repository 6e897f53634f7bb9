"""The ``smarttags`` command line: thin click commands over :class:`SmartTags`.

Conventions: ``--home`` (or SMARTTAGS_HOME) picks the data directory; ``--json`` on
every command that lists or reports; exit code 2 for usage errors, 1 for runtime
errors, each message naming the bad value and the fix. Progress goes to stderr.
"""

from __future__ import annotations

from pathlib import Path

import click

from . import commands, demo, model_commands, search_commands, serve_command, tag_commands
from .clikit import App, SmartTagsGroup


@click.group(cls=SmartTagsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory (catalog, vectors, model cache). Default: $SMARTTAGS_HOME or "
    "~/.smarttags.",
)
@click.version_option(package_name="smarttags")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """Few-shot smart tags for image libraries."""
    app = App(home)
    ctx.obj = app
    ctx.call_on_close(app.close)


commands.register(cli)
search_commands.register(cli)
model_commands.register(cli)
tag_commands.register(cli)
demo.register(cli)
serve_command.register(cli)


def main() -> None:
    cli(prog_name="smarttags")
