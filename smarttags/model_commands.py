"""``smarttags models``: define tag models, check them, train, report, version, diff."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from training.guidelines import Finding
from training.report import render_table
from training.spec import FEATURES, ModelSpec, load_spec, slugify, spec_from_mapping
from training.xlsx import write_xlsx

from .clikit import App, emit, json_option, pass_app


def _print_findings(findings: list[Finding]) -> None:
    for f in findings:
        colour = "red" if f.level == "error" else "yellow"
        click.secho(f"  {f.level}: {f.message}", fg=colour, err=f.level == "error")


def _parse_examples(pairs: tuple[str, ...], tags: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {t: [] for t in tags}
    for pair in pairs:
        tag, sep, ref = pair.partition("=")
        if not sep or not tag or not ref:
            raise click.BadParameter(
                f"{pair!r}: expected TAG=ASSET, e.g. apparel:garment/shoes=/clothing/a.jpg",
                param_hint="--example",
            )
        out.setdefault(tag, []).append(ref)
    return out


def register(cli: click.Group) -> None:
    @cli.group()
    def models() -> None:
        """Tag models: mutually exclusive tags for one visual aspect, learned from examples."""

    @models.command()
    @click.argument(
        "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
    )
    @click.option("--name", help="Model name (a slug). Default: the title, slugified.")
    @click.option("--title", help="Title (required without FILE).")
    @click.option("--description", default=None)
    @click.option(
        "--features",
        type=click.Choice(FEATURES),
        default=None,
        help="visual (default) or visual+colour, for colour aspects.",
    )
    @click.option(
        "--target-precision",
        type=click.FloatRange(0.5, 0.99),
        default=None,
        help="Per-tag thresholds aim at this precision (default 0.9).",
    )
    @click.option("--tag", "tags", multiple=True, metavar="TAG", help="A taxonomy tag id.")
    @click.option(
        "--example",
        "examples",
        multiple=True,
        metavar="TAG=ASSET",
        help="An example: asset id, file path or folder. Repeat.",
    )
    @json_option
    @pass_app
    def create(
        app: App,
        file: Path | None,
        name: str | None,
        title: str | None,
        description: str | None,
        features: str | None,
        target_precision: float | None,
        tags: tuple[str, ...],
        examples: tuple[str, ...],
        as_json: bool,
    ) -> None:
        """Create a tag model from FILE (YAML or JSON) or from flags."""
        if file is not None:
            spec = load_spec(file)
            if any(v is not None for v in (name, title, description, features, target_precision)):
                raise click.UsageError("give either FILE or --name/--title/... flags, not both")
        else:
            if not title:
                raise click.UsageError("give a tag model FILE or --title (and --example TAG=ASSET)")
            data: dict[str, Any] = {
                "name": name or slugify(title),
                "title": title,
                "description": description,
                "features": features,
                "tags": _parse_examples(examples, tags),
            }
            if target_precision is not None:
                data["target_precision"] = target_precision
            spec = spec_from_mapping(data)
        _create(app, spec, as_json)

    def _create(app: App, spec: ModelSpec, as_json: bool) -> None:
        tm = app.service().tag_models
        model = tm.create(spec)
        findings = tm.check(model.name)
        if as_json:
            emit(
                {
                    "model": model.name,
                    "tags": {t: len(a) for t, a in model.tags.items()},
                    "findings": [f.as_dict() for f in findings],
                }
            )
            return
        total = sum(len(a) for a in model.tags.values())
        click.echo(f"created tag model {model.name!r}: {len(model.tags)} tags, {total} examples")
        _print_findings(findings)
        if not any(f.level == "error" for f in findings):
            click.echo(f"train it with `smarttags models train {model.name}`")

    @models.command("list")
    @json_option
    @pass_app
    def list_(app: App, as_json: bool) -> None:
        """List tag models with their tags and active version."""
        tm = app.service().tag_models
        rows = []
        for name in tm.store.names():
            m = tm.store.get(name)
            rows.append(
                {
                    "name": m.name,
                    "title": m.title,
                    "features": m.features,
                    "tags": len(m.tags),
                    "examples": sum(map(len, m.tags.values())),
                    "active_version": m.active_version,
                }
            )
        if as_json:
            emit(rows)
            return
        if not rows:
            click.echo("no tag models yet; create one with `smarttags models create FILE`")
        for r in rows:
            active = r["active_version"] or "none"
            click.echo(
                f"{r['name']}  {r['title']!r}  {r['tags']} tags, {r['examples']} "
                f"examples, {r['features']}, active version {active}"
            )

    @models.command()
    @click.argument("name")
    @json_option
    @pass_app
    def show(app: App, name: str, as_json: bool) -> None:
        """A tag model's tags, examples and versions."""
        tm = app.service().tag_models
        m = tm.store.get(name)
        versions = tm.versions(name)
        if as_json:
            emit(
                {
                    "name": m.name,
                    "title": m.title,
                    "description": m.description,
                    "features": m.features,
                    "target_precision": m.target_precision,
                    "active_version": m.active_version,
                    "tags": {t: list(a) for t, a in m.tags.items()},
                    "versions": [v.as_dict() for v in versions],
                }
            )
            return
        click.echo(f"{m.name}: {m.title} ({m.features}, target precision {m.target_precision})")
        if m.description:
            click.echo(f"  {m.description}")
        for tag, assets in m.tags.items():
            click.echo(f"  {tag}: {len(assets)} examples")
        click.echo(f"  versions: {len(versions)}, active: {m.active_version or 'none'}")

    @models.command("add-examples")
    @click.argument("name")
    @click.argument("tag")
    @click.argument("assets", nargs=-1, required=True)
    @pass_app
    def add_examples(app: App, name: str, tag: str, assets: tuple[str, ...]) -> None:
        """Add example ASSETS (ids, file paths or folders) to TAG of model NAME."""
        added = app.service().tag_models.add_examples(name, tag, list(assets))
        click.echo(f"{added} example(s) added to {tag!r} of {name!r}")

    @models.command("remove-examples")
    @click.argument("name")
    @click.argument("tag")
    @click.argument("assets", nargs=-1)
    @click.option("--all", "everything", is_flag=True, help="Remove TAG from the model.")
    @pass_app
    def remove_examples(
        app: App, name: str, tag: str, assets: tuple[str, ...], everything: bool
    ) -> None:
        """Remove example ASSETS from TAG of model NAME (--all: the tag itself)."""
        if not assets and not everything:
            raise click.UsageError("name the ASSETS to remove, or --all to remove the tag")
        removed = app.service().tag_models.remove_examples(
            name, tag, None if everything else list(assets)
        )
        click.echo(f"{removed} example(s) removed from {tag!r} of {name!r}")

    @models.command()
    @click.argument("name")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @pass_app
    def delete(app: App, name: str, yes: bool) -> None:
        """Delete model NAME with its examples and versions."""
        tm = app.service().tag_models
        versions = len(tm.versions(name))
        if not yes:
            click.confirm(f"delete tag model {name!r} and its {versions} version(s)?", abort=True)
        changed = app.service().delete_tag_model(name)
        click.echo(f"deleted tag model {name!r}; its smart tags left {changed} assets")

    @models.command()
    @click.argument("name")
    @json_option
    @pass_app
    def check(app: App, name: str, as_json: bool) -> None:
        """Check model NAME against the guidelines (exit code 1 on errors)."""
        findings = app.service().tag_models.check(name)
        errors = sum(f.level == "error" for f in findings)
        if as_json:
            emit([f.as_dict() for f in findings])
        else:
            _print_findings(findings)
            if not findings:
                click.echo(f"{name!r} follows every guideline")
        if errors:
            raise click.ClickException(f"{errors} error(s): {name!r} cannot be trained yet")

    @models.command()
    @click.argument("name")
    @click.option(
        "--activate/--no-activate",
        default=None,
        help="Activate the new version (default: only when none is active).",
    )
    @click.option(
        "--xlsx",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Also write the report as an Excel workbook.",
    )
    @json_option
    @pass_app
    def train(app: App, name: str, activate: bool | None, xlsx: Path | None, as_json: bool) -> None:
        """Train a new version of model NAME from its stored example vectors."""
        tm = app.service().tag_models
        if not as_json:
            click.echo(f"training {name!r} ...", err=True)
        started = time.perf_counter()
        outcome = tm.train(name, activate=activate)
        if xlsx is not None:
            write_xlsx(outcome.report, xlsx)
        if as_json:
            emit(
                {
                    "version": outcome.version,
                    "activated": outcome.activated,
                    "report": outcome.report,
                }
            )
            return
        click.echo(render_table(outcome.report, style=sys.stdout.isatty()))
        click.echo("")
        state = (
            "activated"
            if outcome.activated
            else (
                f"not activated; compare with `smarttags models diff {name} {outcome.version}`, "
                f"then `smarttags models activate {name} {outcome.version}`"
            )
        )
        click.echo(
            f"version {outcome.version} trained in {time.perf_counter() - started:.1f}s; {state}"
        )
        if xlsx is not None:
            click.echo(f"report written to {xlsx}")

    @models.command()
    @click.argument("name")
    @json_option
    @pass_app
    def versions(app: App, name: str, as_json: bool) -> None:
        """List the versions of model NAME with their status."""
        rows = app.service().tag_models.versions(name)
        if as_json:
            emit([v.as_dict() for v in rows])
            return
        if not rows:
            click.echo(f"{name!r} has no versions yet; `smarttags models train {name}`")
        for v in rows:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created_at))
            mark = "*" if v.active else " "
            reason = f"  ({v.reason})" if v.reason else ""
            click.echo(f"{mark} {v.version:>3}  {v.status:<8}  {when}  {v.embedder}{reason}")

    @models.command()
    @click.argument("name")
    @click.option("--version", "version", type=int, help="Default: the active version.")
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "xlsx"]),
        default="table",
        show_default=True,
    )
    @click.option(
        "--out",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Where to write the xlsx (default: NAME-vVERSION.xlsx).",
    )
    @pass_app
    def report(app: App, name: str, version: int | None, fmt: str, out: Path | None) -> None:
        """Show the training report of a version: table, JSON or Excel."""
        data = app.service().tag_models.report(name, version)
        if fmt == "json":
            click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        elif fmt == "xlsx":
            path = write_xlsx(data, out or Path(f"{name}-v{data['version']}.xlsx"))
            click.echo(f"report written to {path}")
        else:
            click.echo(render_table(data, style=sys.stdout.isatty()))

    @models.command()
    @click.argument("name")
    @click.argument("version", type=int)
    @pass_app
    def activate(app: App, name: str, version: int) -> None:
        """Make VERSION the active one (an older one rolls back)."""
        app.service().tag_models.activate(name, version)
        click.echo(f"version {version} of {name!r} is active")

    @models.command()
    @click.argument("name")
    @click.argument("version", type=int)
    @click.option("--against", type=int, help="Default: the active version.")
    @json_option
    @pass_app
    def diff(app: App, name: str, version: int, against: int | None, as_json: bool) -> None:
        """Dry run: which assets would gain or lose a tag if VERSION were active."""
        d = app.service().tag_models.diff(name, version, against)
        if as_json:
            emit(d.as_dict())
            return
        base = f"version {d.against}" if d.against is not None else "no active version"
        click.echo(
            f"version {d.version} of {name!r} against {base}, over {d.assets} assets: "
            f"{d.changed} would change"
        )
        for c in d.tags:
            click.echo(f"  {c.gained} assets gain {c.tag}, {c.lost} lose it")
        if not d.tags:
            click.echo("  no asset would change")
