"""``smarttags demo``: the end-to-end walk-through on the CC0 clothing sample."""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import click

from .clikit import App, pass_app

DEFAULT_DATASET = Path("../shared/datasets/clothing")


def read_labels(dataset: Path) -> dict[str, str]:
    """``images/x.jpg`` -> garment type, from the sample's labels.csv."""
    path = dataset / "labels.csv"
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return {row["file"]: row["label"] for row in csv.DictReader(f)}
    except (OSError, KeyError) as e:
        raise click.ClickException(
            f"cannot read {path} ({e}); pass --dataset pointing at the clothing sample"
        ) from e


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option(
        "--dataset",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATASET,
        show_default=True,
        help="The clothing sample (labels.csv and images/).",
    )
    @click.option(
        "--examples",
        type=click.IntRange(1, 15),
        default=3,
        show_default=True,
        help="How many garment types to show similar images for.",
    )
    @pass_app
    def demo(app: App, dataset: Path, examples: int) -> None:
        """Ingest the clothing sample and show similar-image results."""
        if not (dataset / "images").is_dir():
            raise click.ClickException(
                f"{dataset}/images not found; pass --dataset PATH to the clothing sample "
                "(../shared/datasets/clothing from the repository root)"
            )
        labels = read_labels(dataset)
        svc = app.service()
        click.secho(
            f"1. Ingest {len(labels)} photos from {dataset} into {svc.settings.home}", bold=True
        )
        report = svc.ingest(
            [dataset / "images"], prefix="/clothing/images", progress=sys.stderr.isatty()
        )
        click.echo(
            f"   {report.added} added, {report.unchanged} unchanged, {report.embedded} "
            f"embedded, {len(report.failed)} failed in {report.seconds:.1f}s "
            f"(embedder: {svc.settings.embedder})"
        )
        index = svc.vector_index()
        click.echo(f"   vector index: {index.size} vectors ({index.kind})")

        click.secho("2. Similar images (label of each neighbour in brackets)", bold=True)
        by_label: dict[str, list[str]] = {}
        for file, label in sorted(labels.items()):
            by_label.setdefault(label, []).append(file)
        shown = [lab for lab in ("Shoes", "Dress", "Hat", "Pants", "Hoodie") if lab in by_label]
        total_hits = total_same = 0
        for label in (shown + sorted(set(by_label) - set(shown)))[:examples]:
            query = by_label[label][0]
            hits = svc.similar(f"/clothing/{query}", k=5)
            got = [labels.get(h.asset.id.removeprefix("/clothing/"), "?") for h in hits]
            same = sum(g == label for g in got)
            total_hits += len(got)
            total_same += same
            click.echo(f"   {query} [{label}]: {same}/{len(got)} neighbours are {label}")
            for h, g in zip(hits, got, strict=True):
                click.echo(f"      {h.score:.3f}  {h.asset.id}  [{g}]")
        click.secho("3. Label agreement of nearest neighbours over all types", bold=True)
        agree = Counter[str]()
        for label, files in sorted(by_label.items()):
            if label in ("Other", "Not sure"):
                continue
            hits = svc.similar(f"/clothing/{files[0]}", k=10)
            agree[label] = sum(
                labels.get(h.asset.id.removeprefix("/clothing/")) == label for h in hits
            )
        click.echo("   " + ", ".join(f"{k} {v}/10" for k, v in agree.items()))
        click.echo(f"   shown above: {total_same}/{total_hits} neighbours share the query's type")
        click.echo(
            "Next: `smarttags similar /clothing/images/<file> -k 10`, "
            "`smarttags status`, `smarttags errors`."
        )
