"""Search, evaluation and reindex commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ranking.results import SearchResult

from .clikit import App, backend_option, emit, json_option, pass_app

_TIER_NAMES = {1: "metadata", 2: "all smart", 3: "any smart"}


def _print_result(result: SearchResult, explain: bool, titles: dict[str, str]) -> None:
    tiers = ", ".join(f"tier {k}: {v:,}" for k, v in sorted(result.tiers.items()))
    if result.total_relation == "gte":  # counted as far as the profile's track_total_hits
        tiers += f"; counted up to the first {result.total:,}"
    click.echo(f"{result.total_text} hits ({tiers or 'none'})")
    for h in result.hits:
        color = {1: "green", 2: "cyan", 3: "yellow"}[h.tier]
        click.echo(
            click.style(f"  [{h.tier} {_TIER_NAMES[h.tier]:>9}]", fg=color)
            + f" {h.score:10.4f}  {h.asset_id}  {titles.get(h.asset_id, '')}"
        )
        if explain:
            for term, fields in h.why.fields.items():
                click.echo(f"        {term!r} in {', '.join(fields)}")
            for t in h.why.tags:
                promoted = " promoted" if t.promoted else ""
                click.echo(
                    f"        smart tag {t.tag} {t.confidence:.2f}{promoted} "
                    f"matches {', '.join(map(repr, t.terms))}"
                )
    if result.smart_tag_facets:
        click.echo(
            "smart tags: " + ", ".join(f"{f.tag} ({f.count})" for f in result.smart_tag_facets)
        )
    if result.manual_tag_facets:
        click.echo(
            "manual tags: " + ", ".join(f"{f.tag} ({f.count})" for f in result.manual_tag_facets)
        )


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("text")
    @click.option("--explain", is_flag=True, help="Show why each hit matched.")
    @click.option(
        "--profile",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Ranking profile (TOML or JSON).",
    )
    @click.option("--path", "path_prefix", metavar="PREFIX", help="Only assets under this path.")
    @click.option("--format", "formats", multiple=True, help="Only these formats (repeatable).")
    @click.option("--tag", "tags", multiple=True, help="Only assets carrying this tag id.")
    @click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
    @click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
    @backend_option
    @json_option
    @pass_app
    def search(
        app: App,
        text: str,
        explain: bool,
        profile: Path | None,
        path_prefix: str | None,
        formats: tuple[str, ...],
        tags: tuple[str, ...],
        limit: int,
        offset: int,
        backend: str | None,
        as_json: bool,
    ) -> None:
        """Three-tier search: metadata, then all terms in smart tags, then any term."""
        app.override(backend=backend)
        svc = app.service()
        result = svc.search(
            text,
            profile=svc.profile(profile),
            path_prefix=path_prefix,
            formats=formats,
            tags=tags,
            offset=offset,
            limit=limit,
        )
        if as_json:
            emit(result.as_dict())
            return
        titles = {h.asset_id: svc.catalog.get_asset(h.asset_id).title for h in result.hits}
        _print_result(result, explain, titles)

    @cli.command("eval")
    @click.option(
        "--judgments",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        required=True,
        help="CSV or JSON lines: query, asset, grade.",
    )
    @click.option(
        "--profile",
        "profiles",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Ranking profile to evaluate (repeat to compare side by side).",
    )
    @backend_option
    @json_option
    @pass_app
    def eval_(
        app: App, judgments: Path, profiles: tuple[Path, ...], backend: str | None, as_json: bool
    ) -> None:
        """nDCG@10, P@10, MRR and recall@100 per ranking profile, side by side."""
        app.override(backend=backend)
        results = app.service().evaluate(judgments, list(profiles))
        if as_json:
            emit({name: m.as_dict() for name, m in results.items()})
            return
        names = list(results)
        width = max(12, *(len(n) + 2 for n in names))
        click.echo(f"{'metric':<12}" + "".join(f"{n:>{width}}" for n in names))
        for key in ("ndcg@10", "p@10", "mrr", "recall@100"):
            values = "".join(f"{results[n].as_dict()[key]:>{width}.4f}" for n in names)
            click.echo(f"{key:<12}{values}")
        click.echo(f"{'queries':<12}" + "".join(f"{results[n].queries:>{width}}" for n in names))

    @cli.command()
    @click.option(
        "--full",
        is_flag=True,
        help="Rebuild the whole index (OpenSearch: a new index, then an atomic "
        "alias swap); resumes a stopped one.",
    )
    @backend_option
    @json_option
    @pass_app
    def reindex(app: App, full: bool, backend: str | None, as_json: bool) -> None:
        """Send queued changes to the search backend; --full rebuilds the index.

        The catalog is the source of truth: every change is queued (the outbox) and
        sent; a backend that was down gets the queue when it is back."""
        app.override(backend=backend)
        result = app.service().reindex(full=full, progress=not as_json and sys.stderr.isatty())
        if as_json:
            emit(
                {
                    "indexed": result.sent,
                    "failed": [list(f) for f in result.failed],
                    "queued": result.queued,
                    "full": result.full,
                    "error": result.error,
                }
            )
        else:
            kind = "full reindex" if result.full else "sync"
            resumed = " (resumed)" if result.resumed else ""
            click.echo(
                f"{kind}{resumed}: {result.sent} documents indexed, "
                f"{len(result.failed)} failed, {result.queued} still queued"
            )
            for asset_id, reason in result.failed[:20]:
                click.echo(f"  ! {asset_id}: {reason}", err=True)
        if result.error:
            raise click.ClickException(
                f"the search backend failed: {result.error}; {result.queued} changes stay "
                "queued (nothing is lost): run `smarttags reindex` when it is back"
            )
        if result.failed:
            raise click.ClickException(f"{len(result.failed)} documents were not indexed")
