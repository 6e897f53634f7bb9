"""``smarttags demo``: the end-to-end walk-through on the CC0 clothing sample."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click
import yaml

from training.report import render_table
from training.spec import load_spec

from .clikit import App, pass_app
from .service import SmartTags

DEFAULT_DATASET = Path("../shared/datasets/clothing")
PREFIX = "/clothing"
#: German titles, so the taxonomy shows titles per language.
GERMAN = {
    "T-Shirt": "T-Shirt", "Longsleeve": "Langarmshirt", "Pants": "Hose", "Shoes": "Schuhe",
    "Shirt": "Hemd", "Dress": "Kleid", "Outwear": "Jacke", "Shorts": "Shorts", "Hat": "Hut",
    "Skirt": "Rock", "Polo": "Polohemd", "Undershirt": "Unterhemd", "Blazer": "Sakko",
    "Hoodie": "Kapuzenpullover", "Body": "Body",
}  # fmt: skip
#: Photos per garment type that the demo's "librarian" tagged by hand.
HAND_TAGGED = 10
#: The demo's tag model: these garment types, this many example photos each.
MODEL_TYPES = ("Dress", "Hat", "Hoodie", "Pants", "Shoes", "T-Shirt")
MODEL_EXAMPLES = 30
MODEL_NAME = "garment-type"


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


def tag_id(label: str) -> str:
    return "apparel:garment/" + label.lower().replace(" ", "-")


def write_demo_files(labels: dict[str, str], out: Path) -> tuple[Path, Path, Path]:
    """Taxonomy (en/de titles), a sidecar with hand-tagged photos, and search judgments."""
    out.mkdir(parents=True, exist_ok=True)
    types = sorted({lab for lab in labels.values() if lab in GERMAN})
    taxonomy = out / "taxonomy.csv"
    with taxonomy.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "title_de"])
        w.writerows([tag_id(t), t, GERMAN[t]] for t in types)
    sidecar = out / "metadata.csv"
    judgments = out / "judgments.csv"
    by_type: dict[str, list[str]] = {}
    for file, label in sorted(labels.items()):
        by_type.setdefault(label, []).append(file)
    with sidecar.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "manual_tags"])
        for t in types:
            w.writerows([f"{PREFIX}/{file}", tag_id(t)] for file in by_type[t][:HAND_TAGGED])
    with judgments.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["query", "asset", "grade"])
        for t in ("Shoes", "Dress", "Hat", "Pants", "Hoodie"):
            w.writerows([t.lower(), f"{PREFIX}/{file}", 1] for file in by_type.get(t, []))
    return taxonomy, sidecar, judgments


def write_model_spec(labels: dict[str, str], out: Path) -> Path:
    """A tag model file: MODEL_EXAMPLES photos of each of MODEL_TYPES (after the
    hand-tagged ones, so the model learns from photos search cannot find yet)."""
    by_type: dict[str, list[str]] = {}
    for file, label in sorted(labels.items()):
        by_type.setdefault(label, []).append(file)
    spec = {
        "name": MODEL_NAME,
        "title": "Garment type",
        "description": "What kind of garment the photo shows",
        "tags": {
            tag_id(t): [
                f"{PREFIX}/{f}" for f in by_type[t][HAND_TAGGED : HAND_TAGGED + MODEL_EXAMPLES]
            ]
            for t in MODEL_TYPES
            if t in by_type
        },
    }
    path = out / f"{MODEL_NAME}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _train(svc: SmartTags, spec: Path) -> None:
    tm = svc.tag_models
    if MODEL_NAME not in tm.store.names():
        tm.create(load_spec(spec))
    outcome = tm.train(MODEL_NAME, activate=True)
    click.echo(render_table(outcome.report, style=sys.stdout.isatty()))


def _smart(svc: SmartTags, labels: dict[str, str]) -> dict[str, tuple[str, float, bool, str]]:
    """Photo -> (garment type it got, confidence, promoted, its true type)."""
    out = {}
    rows = svc.catalog.connection.execute(
        "SELECT a.id, s.tag_id, s.confidence, s.promoted FROM smart_tags s "
        "JOIN assets a ON a.key = s.asset_key WHERE a.id LIKE ? ORDER BY a.id",
        (PREFIX + "/%",),
    )
    for asset, tag, conf, promoted in rows:
        out[asset] = (tag, conf, bool(promoted), labels.get(asset.removeprefix(PREFIX + "/"), ""))
    return out


def _tag(svc: SmartTags, labels: dict[str, str]) -> None:
    report = svc.tag([PREFIX], progress=sys.stderr.isatty())
    r = report.as_dict()
    click.echo(
        f"   {r['assets']} photos, model {', '.join(r['models'])}: {r['classified']} classified, "
        f"{r['skipped']} skipped, {r['failed']} failed; {r['tags_written']} smart tags written "
        f"in {r['seconds']:.1f}s; search index synced ({r['sync'].get('sent', 0)} documents)"
    )
    examples = {a for ids in svc.tag_models.store.get(MODEL_NAME).tags.values() for a in ids}
    smart = {a: v for a, v in _smart(svc, labels).items() if a not in examples}
    types = {tag_id(t): t for t in MODEL_TYPES}
    in_model = [a for a in smart if smart[a][3] in MODEL_TYPES]
    right = sum(types.get(smart[a][0]) == smart[a][3] for a in in_model)
    others = [a for a in smart if smart[a][3] not in MODEL_TYPES]
    total_in = sum(
        1 for f, lab in labels.items() if lab in MODEL_TYPES and f"{PREFIX}/{f}" not in examples
    )
    total_out = sum(1 for lab in labels.values() if lab not in MODEL_TYPES)
    click.echo(
        f"   {len(in_model)} of {total_in} photos of the {len(MODEL_TYPES)} types (examples "
        f"aside) got a smart tag, {right} of them right ({right / max(len(in_model), 1):.1%}); "
        f"{len(others)} of {total_out} photos of other garment types got one"
    )


def _show(svc: SmartTags, text: str, limit: int = 3) -> None:
    """The first hits of each tier, with why they matched."""
    result = svc.search(text, limit=limit)
    plus = "+" if result.total_relation == "gte" else ""
    click.echo(f"   search {text!r}: {result.total:,}{plus} hits, tiers {result.tiers}")
    offset = 0
    for tier in sorted(result.tiers):
        page = svc.search(text, offset=offset, limit=limit)
        for h in page.hits:
            if h.tier != tier:
                break
            why = "; ".join(f"{t!r} in {', '.join(f)}" for t, f in h.why.fields.items())
            tags = "; ".join(
                f"smart tag {m.tag} {m.confidence:.2f}{' promoted' if m.promoted else ''}"
                for m in h.why.tags
            )
            click.echo(f"      tier {h.tier}  {h.score:9.3f}  {h.asset_id}  ({why or tags})")
        offset += result.tiers[tier]


def _where(svc: SmartTags, text: str, asset: str) -> str:
    hits = svc.search(text, limit=200).hits
    for rank, h in enumerate(hits, 1):
        if h.asset_id == asset:
            return f"tier {h.tier}, rank {rank}"
    return "not found"


def _moderate(svc: SmartTags, labels: dict[str, str]) -> None:
    smart = _smart(svc, labels)
    dress = tag_id("Dress")
    wrong = [a for a, v in smart.items() if v[0] == dress and v[3] != "Dress" and not v[2]]
    right = [a for a, v in smart.items() if v[0] == dress and v[3] == "Dress" and not v[2]]
    if wrong:
        asset = wrong[0]
        before = _where(svc, "dress", asset)
        svc.remove_smart_tag(asset, dress)
        click.echo(
            f"   remove {dress} ({smart[asset][1]:.2f}) from {asset}, a {smart[asset][3]!r} "
            f"photo: search 'dress' {before} -> {_where(svc, 'dress', asset)}; remembered, "
            "no tagging cycle brings it back"
        )
    if right:
        asset = right[-1]
        before = _where(svc, "dress", asset)
        svc.promote_smart_tag(asset, dress)
        click.echo(
            f"   promote {dress} ({smart[asset][1]:.2f}) on {asset}: search 'dress' {before} "
            f"-> {_where(svc, 'dress', asset)}; it counts as a manual tag now"
        )


def _similar(svc: SmartTags, labels: dict[str, str], examples: int) -> None:
    by_label: dict[str, list[str]] = {}
    for file, label in sorted(labels.items()):
        by_label.setdefault(label, []).append(file)
    shown = [lab for lab in ("Shoes", "Dress", "Hat", "Pants", "Hoodie") if lab in by_label]
    for label in shown[:examples]:
        query = by_label[label][0]
        hits = svc.similar(f"{PREFIX}/{query}", k=5)
        got = [labels.get(h.asset.id.removeprefix(PREFIX + "/"), "?") for h in hits]
        same = sum(g == label for g in got)
        click.echo(f"   {query} [{label}]: {same}/{len(got)} neighbours are {label}")
        for h, g in zip(hits, got, strict=True):
            click.echo(f"      {h.score:.3f}  {h.asset.id}  [{g}]")


def _search(svc: SmartTags, judgments: Path) -> None:
    for text in ("shoes", "hat"):
        result = svc.search(text, limit=3)
        click.echo(f"   search {text!r}: {result.total} hits, tiers {result.tiers}")
        for h in result.hits:
            fields = "; ".join(f"{t!r} in {', '.join(f)}" for t, f in h.why.fields.items())
            click.echo(f"      tier {h.tier}  {h.score:9.3f}  {h.asset_id}  ({fields})")
    metrics = svc.evaluate(judgments, [])["default"]
    click.echo(
        f"   eval on {metrics.queries} garment queries: nDCG@10 {metrics.ndcg10:.3f}, "
        f"P@10 {metrics.p10:.3f}, MRR {metrics.mrr:.3f}, recall@100 {metrics.recall100:.3f}"
    )
    click.echo(
        f"   (only the {HAND_TAGGED} hand-tagged photos per type are findable so far; "
        "a tag model will find the rest)"
    )


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
        type=click.IntRange(1, 5),
        default=3,
        show_default=True,
        help="How many garment types to show similar images for.",
    )
    @pass_app
    def demo(app: App, dataset: Path, examples: int) -> None:
        """Ingest the clothing sample, show similar images, search and evaluate."""
        if not (dataset / "images").is_dir():
            raise click.ClickException(
                f"{dataset}/images not found; pass --dataset PATH to the clothing sample "
                "(../shared/datasets/clothing from the repository root)"
            )
        labels = read_labels(dataset)
        svc = app.service()
        taxonomy, sidecar, judgments = write_demo_files(labels, svc.settings.home / "demo")
        click.secho(
            f"1. Taxonomy: {svc.import_taxonomy(taxonomy)} garment tags (en, de)", bold=True
        )
        click.secho(
            f"2. Ingest {len(labels)} photos from {dataset} into {svc.settings.home}", bold=True
        )
        report = svc.ingest([dataset], prefix=PREFIX, sidecar=sidecar, progress=sys.stderr.isatty())
        click.echo(
            f"   {report.added} added, {report.unchanged} unchanged, {report.embedded} "
            f"embedded, {len(report.failed)} failed in {report.seconds:.1f}s "
            f"(embedder: {svc.settings.embedder})"
        )
        index = svc.vector_index()
        click.echo(f"   vector index: {index.size} vectors ({index.kind})")
        click.secho("3. Similar images (the true type of each neighbour in brackets)", bold=True)
        _similar(svc, labels, examples)
        click.secho(
            f"4. Three-tier search ({svc.settings.backend} backend) and evaluation", bold=True
        )
        _search(svc, judgments)
        spec = write_model_spec(labels, svc.settings.home / "demo")
        click.secho(
            f"5. Tag model {MODEL_NAME!r}: {len(MODEL_TYPES)} garment types x "
            f"{MODEL_EXAMPLES} examples ({spec})",
            bold=True,
        )
        _train(svc, spec)
        click.secho(
            "6. Tagging cycle: the model tags every photo from its stored vector", bold=True
        )
        _tag(svc, labels)
        click.secho("7. Search again: smart tags find what the hand tags could not", bold=True)
        _show(svc, "shoes")
        metrics = svc.evaluate(judgments, [])["default"]
        click.echo(
            f"   eval on {metrics.queries} garment queries: nDCG@10 {metrics.ndcg10:.3f}, "
            f"P@10 {metrics.p10:.3f}, MRR {metrics.mrr:.3f}, recall@100 {metrics.recall100:.3f}"
        )
        click.secho("8. Moderation: remove a wrong smart tag, promote a right one", bold=True)
        _moderate(svc, labels)
        click.echo(
            "Next: `smarttags search shoes --explain`, `smarttags similar "
            f"{PREFIX}/images/<file>`, `smarttags eval --judgments "
            f"{judgments}`, `smarttags models report {MODEL_NAME} --format xlsx`."
        )
