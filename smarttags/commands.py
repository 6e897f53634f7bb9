"""Catalog, taxonomy, ingest and vector commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from indexer.ingest import IngestReport
from indexer.models import Asset

from .clikit import App, emit, json_option, pass_app
from .tag_commands import print_sync, print_tagging


def _print_report(report: IngestReport) -> None:
    r = report
    click.echo(
        f"{r.found} images found: {r.added} added, {r.modified} modified, {r.updated} updated, "
        f"{r.unchanged} unchanged; {r.embedded} embedded; {len(r.failed)} failed "
        f"({r.seconds:.1f}s)"
    )
    for e in r.failed[:20]:
        click.echo(f"  ! {e.asset_id}: {e.reason}: {e.message}", err=True)
    if len(r.failed) > 20:
        click.echo(f"  ... and {len(r.failed) - 20} more: `smarttags errors`", err=True)


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
    @click.option(
        "--as",
        "prefix",
        metavar="PATH",
        help="DAM path prefix for the assets, e.g. /clothing (default: /<folder name>).",
    )
    @click.option(
        "--sidecar",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Metadata per image: CSV or JSON lines with path, title, description, "
        "keywords, manual_tags.",
    )
    @click.option(
        "--embed/--no-embed", default=True, show_default=True, help="Compute image embeddings."
    )
    @click.option(
        "--tag", "tag", is_flag=True, help="Tag the images with every active tag model too."
    )
    @json_option
    @pass_app
    def ingest(
        app: App,
        dirs: tuple[Path, ...],
        prefix: str | None,
        sidecar: Path | None,
        embed: bool,
        tag: bool,
        as_json: bool,
    ) -> None:
        """Add or update the images under DIRS (folders or files).

        Unchanged files are skipped; changed ones are marked modified and re-embedded.
        A bad file is reported and skipped; the run goes on.
        """
        report = app.service().ingest(
            list(dirs),
            prefix=prefix,
            sidecar=sidecar,
            embed=embed,
            progress=not as_json and sys.stderr.isatty(),
            tag=tag,
        )
        if as_json:
            emit(report.as_dict())
            return
        _print_report(report)
        if report.tagging is not None:
            print_tagging(report.tagging)
        elif report.sync is not None:
            print_sync(report.sync)

    @cli.group()
    def taxonomy() -> None:
        """Taxonomy tags: ids like apparel:shoes/casual-shoe, titles per language."""

    @taxonomy.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @json_option
    @pass_app
    def taxonomy_import(app: App, file: Path, as_json: bool) -> None:
        """Load tags from FILE (JSON, YAML or CSV); existing ids are updated."""
        n = app.service().import_taxonomy(file)
        if as_json:
            emit({"imported": n})
        else:
            click.echo(f"{n} tags imported from {file}")

    @taxonomy.command("list")
    @json_option
    @pass_app
    def taxonomy_list(app: App, as_json: bool) -> None:
        """List the taxonomy tags."""
        tags = app.service().catalog.tags()
        if as_json:
            emit([{"id": t.id, "titles": t.titles, "synonyms": t.synonyms} for t in tags])
            return
        for t in tags:
            titles = ", ".join(f"{lang}: {title}" for lang, title in t.titles.items())
            click.echo(f"{t.id}  ({titles})")

    @cli.group()
    def assets() -> None:
        """Assets in the catalog."""

    @assets.command("list")
    @click.option("--prefix", default="", help="Only assets whose path starts with this.")
    @click.option("--limit", type=click.IntRange(min=1), default=None)
    @json_option
    @pass_app
    def assets_list(app: App, prefix: str, limit: int | None, as_json: bool) -> None:
        """List assets by path."""
        rows = app.service().catalog.assets(prefix, limit)
        if as_json:
            emit([_asset_json(a) for a in rows])
            return
        for a in rows:
            click.echo(f"{a.id}  {a.format} {a.width}x{a.height}  {a.title}")

    @assets.command("show")
    @click.argument("asset")
    @json_option
    @pass_app
    def assets_show(app: App, asset: str, as_json: bool) -> None:
        """Show one asset (by path/id or source file)."""
        a = app.service().catalog.get_asset(asset)
        data = _asset_json(a)
        if as_json:
            emit(data)
            return
        for k, v in data.items():
            click.echo(f"{k:>16}: {v}")

    @cli.command()
    @json_option
    @pass_app
    def errors(app: App, as_json: bool) -> None:
        """Files that could not be ingested, with the reason (cleared when a file succeeds)."""
        rows = app.service().catalog.errors()
        if as_json:
            emit([e.__dict__ for e in rows])
            return
        if not rows:
            click.echo("no ingest errors")
        for e in rows:
            click.echo(f"{e.asset_id}: {e.stage}/{e.reason}: {e.message}")

    @cli.command()
    @click.argument("asset")
    @click.option(
        "-k",
        "k",
        type=click.IntRange(1, 1000),
        default=10,
        show_default=True,
        help="How many similar assets.",
    )
    @json_option
    @pass_app
    def similar(app: App, asset: str, k: int, as_json: bool) -> None:
        """The assets most similar to ASSET (cosine similarity of image embeddings)."""
        hits = app.service().similar(asset, k)
        if as_json:
            emit(
                [
                    {"asset": h.asset.id, "score": round(h.score, 6), "title": h.asset.title}
                    for h in hits
                ]
            )
            return
        for h in hits:
            click.echo(f"{h.score:.3f}  {h.asset.id}  {h.asset.title}")

    @cli.group()
    def vectors() -> None:
        """The FAISS vector index (rebuilt from the catalog whenever it is stale)."""

    @vectors.command("rebuild")
    @json_option
    @pass_app
    def vectors_rebuild(app: App, as_json: bool) -> None:
        """Rebuild the vector index from the catalog's stored embeddings."""
        index = app.service().vector_index(rebuild=True)
        if as_json:
            emit(index.meta)
        else:
            click.echo(f"{index.size} vectors, {index.kind} index")

    @cli.command()
    @json_option
    @pass_app
    def status(app: App, as_json: bool) -> None:
        """Counts of assets, tags, embeddings and errors in the data directory."""
        data = app.service().status()
        if as_json:
            emit(data)
            return
        width = max(map(len, data))
        for k, v in data.items():
            click.echo(f"{k:>{width}}: {v}")


def _asset_json(a: Asset) -> dict[str, object]:
    return {
        "id": a.id,
        "source": a.source,
        "sha256": a.sha256,
        "format": a.format,
        "width": a.width,
        "height": a.height,
        "size": a.size,
        "title": a.title,
        "description": a.description,
        "keywords": list(a.keywords),
        "manual_tags": list(a.manual_tags),
        "modified_at": a.modified_at,
        "content_version": a.content_version,
    }
