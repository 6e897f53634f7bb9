"""``smarttags tag`` (tagging cycles) and ``smarttags tags`` (moderation)."""

from __future__ import annotations

import sys
from typing import Any

import click

from .clikit import App, emit, json_option, pass_app


def print_tagging(r: dict[str, Any]) -> None:
    models = ", ".join(r["models"]) or "none (activate a trained tag model first)"
    click.echo(
        f"tagged {r['assets']} assets with {models}: {r['embedded']} embedded, "
        f"{r['classified']} classified, {r['skipped']} skipped, {r['failed']} failed; "
        f"{r['tags_written']} smart tags written, {r['changed_assets']} assets changed "
        f"({r['seconds']:.1f}s)"
    )
    for e in r["errors"][:20]:
        click.echo(f"  ! {e['asset']}: {e['reason']}", err=True)
    print_sync(r["sync"])


def print_sync(sync: dict[str, Any]) -> None:
    if sync.get("error"):
        click.secho(
            f"search backend unreachable ({sync['error']}); {sync['queued']} changes stay "
            "queued, nothing is lost: `smarttags reindex` sends them when it is back",
            fg="yellow",
            err=True,
        )


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("paths", nargs=-1, required=True)
    @click.option(
        "--periodic",
        is_flag=True,
        help="A scheduled run: re-tag unchanged assets after 6 months instead of 24 hours.",
    )
    @json_option
    @pass_app
    def tag(app: App, paths: tuple[str, ...], periodic: bool, as_json: bool) -> None:
        """Apply every active tag model to the assets under PATHS.

        PATHS are DAM paths and prefixes (/clothing/shoes) or folders and files on disk
        (new and changed images are ingested and embedded first); a DAM path wins. Assets tagged by
        the same model versions and unchanged since are skipped unless that was more
        than 24 hours ago (6 months with --periodic). Removed smart tags never come
        back; promoted ones are kept.
        """
        report = app.service().tag(
            list(paths), periodic=periodic, progress=not as_json and sys.stderr.isatty()
        )
        if as_json:
            emit(report.as_dict())
        else:
            print_tagging(report.as_dict())

    @cli.group()
    def tags() -> None:
        """Moderate smart tags: list, remove (remembered), promote (counts as manual)."""

    @tags.command("list")
    @click.argument("asset")
    @json_option
    @pass_app
    def list_(app: App, asset: str, as_json: bool) -> None:
        """An asset's manual and smart tags, and smart tags editors removed."""
        svc = app.service()
        a = svc.catalog.get_asset(asset)
        smart, removed = svc.moderation.smart_tags(a.id)
        if as_json:
            emit({
                "asset": a.id, "manual_tags": list(a.manual_tags),
                "smart_tags": [t.as_dict() for t in smart],
                "removed": [{"tag": r.tag, "removed_at": r.removed_at,
                             "model_version": r.model_version} for r in removed],
            })  # fmt: skip
            return
        click.echo(a.id)
        for t in a.manual_tags:
            click.echo(f"  manual    {t}")
        for s in smart:
            kind = "promoted" if s.promoted else "smart"
            click.echo(f"  {kind:<9} {s.tag}  {s.confidence:.2f}  ({s.model_version})")
        for r in removed:
            click.echo(f"  removed   {r.tag}  (never applied again)")

    @tags.command()
    @click.argument("asset")
    @click.argument("tag")
    @pass_app
    def remove(app: App, asset: str, tag: str) -> None:
        """Remove smart TAG from ASSET; later tagging cycles never bring it back."""
        svc = app.service()
        svc.remove_smart_tag(asset, tag)
        click.echo(f"removed {tag} from {svc.catalog.get_asset(asset).id}")
        if svc.last_sync is not None:
            print_sync(svc.last_sync.as_dict())

    @tags.command()
    @click.argument("asset")
    @click.argument("tag")
    @pass_app
    def promote(app: App, asset: str, tag: str) -> None:
        """Promote smart TAG of ASSET: it counts as a manual tag (metadata tier)."""
        svc = app.service()
        svc.promote_smart_tag(asset, tag)
        click.echo(f"promoted {tag} on {svc.catalog.get_asset(asset).id}")
        if svc.last_sync is not None:
            print_sync(svc.last_sync.as_dict())

    @tags.command("bulk-remove")
    @click.argument("tag")
    @click.option("--query", "query", required=True, help="The search whose hits lose TAG.")
    @click.option("--path", help="Only hits under this DAM path prefix.")
    @click.option("--apply", is_flag=True, help="Remove (default: a dry run that counts).")
    @json_option
    @pass_app
    def bulk_remove(
        app: App, tag: str, query: str, path: str | None, apply: bool, as_json: bool
    ) -> None:
        """Remove smart TAG from every asset matching a search (dry run by default)."""
        result = app.service().bulk_remove_smart_tag(tag, query, path=path, dry_run=not apply)
        if as_json:
            emit(result)
            return
        capped = " (the first 10,000 hits)" if result["capped"] else ""
        if result["dry_run"]:
            click.echo(
                f"dry run: {result['with_tag']} of {result['matched']} hits for {query!r}"
                f"{capped} carry {tag}; run again with --apply to remove it"
            )
        else:
            click.echo(f"removed {tag} from {result['removed']} assets matching {query!r}{capped}")
        for a in result["assets"][:10]:
            click.echo(f"  {a}")
