"""``tcmbench datasets``: list, show, verify, prepare, stats and export.

Torch-free on purpose: these commands only read annotations, so they start
fast and work on a machine without a GPU stack. Errors are
:class:`tcmbench.errors.TcmbenchError`s, printed by the CLI as one line.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from tcmbench.commands._options import FiniteFloat, json_option
from tcmbench.safety.paths import is_stdout, write_report

DATA_ROOT_HELP = (
    "The dataset folder, a folder that directly holds the split's annotation files, "
    "or a GT zip (default: $TCMBENCH_DATA/NAME, then the tcmbench cache)."
)


def _table(headers: list[str], rows: list[list[str]], err: bool = False) -> None:
    """A markdown table; on stderr when stdout carries JSON (``--json -``)."""
    click.echo("| " + " | ".join(headers) + " |", err=err)
    click.echo("|" + "---|" * len(headers), err=err)
    for row in rows:
        click.echo("| " + " | ".join(row) + " |", err=err)


@click.group()
def datasets() -> None:
    """List, inspect, verify, prepare and export datasets."""


@datasets.command("list")
@json_option("the list of datasets")
def list_(json_out: str | None) -> None:
    """Every dataset (built-in and from plugins) and whether it is present."""
    from tcmbench.data.dataset import find_root, is_generated, list_dataset_configs

    rows: list[dict[str, Any]] = []
    for cfg in list_dataset_configs().values():
        if is_generated(cfg):
            cached = find_root(cfg)
            present = (
                f"generated, cached: {cached}" if cached is not None else "generated on first use"
            )
        else:
            root = find_root(cfg)
            present = f"yes: {root}" if root is not None else "no"
        rows.append(
            {
                "name": cfg.name,
                "format": cfg.format,
                "splits": list(cfg.splits),
                "protocol": cfg.protocol,
                "present": present,
            }
        )
    if json_out is not None:
        write_report(json_out, json.dumps(rows, indent=2) + "\n")
    _table(
        ["name", "format", "splits", "protocol", "present"],
        [
            [r["name"], r["format"], ", ".join(r["splits"]), r["protocol"] or "-", r["present"]]
            for r in rows
        ],
        is_stdout(json_out),
    )


def _describe(cfg: Any, root_line: str) -> dict[str, Any]:
    return {
        "name": cfg.name,
        "title": cfg.title,
        "format": cfg.format,
        "protocol": cfg.protocol,
        "other_protocols": list(cfg.other_protocols),
        "protocol_note": cfg.protocol_note,
        "root": root_line,
        "splits": {
            name: {
                "format": sc.format or cfg.format,
                "annotations": list(sc.annotations),
                "images": list(sc.images),
                "options": dict(sc.options),
                "expected": sc.expected.as_dict(),
            }
            for name, sc in cfg.splits.items()
        },
        "licence": cfg.licence,
        "homepage": cfg.homepage,
        "gated": cfg.gated,
        "how_to_get": cfg.how_to_get,
        "prepare": cfg.prepare_command(),
        "sources": [
            {
                "filename": s.filename,
                "url": s.url,
                "sha256": s.sha256,
                "target": s.target,
                "note": s.note,
            }
            for s in cfg.sources
        ],
        "citation": cfg.citation,
        "config_file": str(cfg.path) if cfg.path else None,
    }


@datasets.command()
@click.argument("name")
@click.option("--data-root", type=click.Path(path_type=Path), help=DATA_ROOT_HELP)
@json_option("the dataset's facts (one object)")
def show(name: str, data_root: Path | None, json_out: str | None) -> None:
    """The facts of dataset NAME (its YAML) and where its files resolve to."""
    from tcmbench.data.dataset import get_dataset_config, is_generated, resolve_root
    from tcmbench.errors import DatasetNotFoundError

    cfg = get_dataset_config(name)
    if is_generated(cfg):
        root_line = "generated on first use (tcmbench cache)"
    else:
        try:
            root_line = str(resolve_root(cfg, data_root))
        except DatasetNotFoundError as exc:
            root_line = f"not found: {exc}"
    info = _describe(cfg, root_line)
    if json_out is not None:
        write_report(json_out, json.dumps(info, indent=2) + "\n")
        if is_stdout(json_out):
            return  # stdout carries the JSON alone
    click.echo(f"{cfg.name}: {cfg.title}")
    click.echo(f"  format:   {cfg.format}")
    others = f" (also: {', '.join(cfg.other_protocols)})" if cfg.other_protocols else ""
    click.echo(f"  protocol: {cfg.protocol or '-'}{others}")
    if cfg.protocol_note:
        click.echo(f"            {cfg.protocol_note}")
    click.echo(f"  root:     {root_line}")
    click.echo(f"  licence:  {cfg.licence or '-'}")
    if cfg.homepage:
        click.echo(f"  homepage: {cfg.homepage}")
    click.echo(f"  gated:    {'yes' if cfg.gated else 'no'}")
    if cfg.how_to_get:
        click.echo(f"  get it:   {cfg.how_to_get}; then `{cfg.prepare_command()}`")
    click.echo("  splits:")
    for split, d in info["splits"].items():
        exp = (
            ", ".join(f"{k} {v}" for k, v in d["expected"].items() if v is not None)
            or "no expected counts"
        )
        click.echo(
            f"    {split}: annotations {' | '.join(d['annotations']) or '-'}; "
            f"images {' | '.join(d['images']) or '-'}"
        )
        click.echo(f"      expected: {exp}")
    if cfg.sources:
        click.echo("  sources:")
        for s in cfg.sources:
            sha = s.sha256 or "sha256 unknown"
            click.echo(f"    {s.filename}  {sha}  {s.url or ''}".rstrip())
    if cfg.citation:
        click.echo("  citation:")
        for line in cfg.citation.splitlines():
            click.echo(f"    {line}")


@datasets.command()
@click.argument("name")
@click.option("--data-root", type=click.Path(path_type=Path), help=DATA_ROOT_HELP)
@click.option("--split", "splits", multiple=True, help="Check only this split (repeatable).")
@json_option("the list of checks")
def verify(
    name: str, data_root: Path | None, splits: tuple[str, ...], json_out: str | None
) -> None:
    """Check that NAME is present and complete: sha256 of the archives that
    are present, and per-split counts against the expected ones. Exits 1 on
    any mismatch."""
    from tcmbench.data.dataset import get_dataset_config
    from tcmbench.data.verify import verify_dataset

    cfg = get_dataset_config(name)
    checks = verify_dataset(cfg, data_root, list(splits) or None)
    failed = [c for c in checks if c.failed]
    if json_out is not None:
        rows = [{"what": c.what, "status": c.status, "detail": c.detail} for c in checks]
        write_report(json_out, json.dumps(rows, indent=2) + "\n")
    to_err = is_stdout(json_out)  # stdout then carries the JSON alone
    _table(["check", "status", "detail"], [[c.what, c.status, c.detail] for c in checks], to_err)
    verdict = f"FAILED ({len(failed)} problem(s))" if failed else "ok"
    click.echo(f"{name}: {verdict}", err=to_err)
    if failed:
        sys.exit(1)


@datasets.command()
@click.argument("name")
@click.option(
    "--from",
    "inputs",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="An archive (zip, tar, tar.gz) or folder you downloaded (repeatable).",
)
@click.option(
    "--dest",
    type=click.Path(path_type=Path),
    help="Dataset root to fill (default: $TCMBENCH_DATA/NAME, else the tcmbench cache).",
)
@click.option("--split", help="Put a flat archive of GT files or images in this split's folder.")
@click.option(
    "--max-unpacked-size",
    default="100G",
    show_default=True,
    metavar="SIZE",
    help="Refuse an archive that unpacks to more than this (e.g. 500G; 0 = no limit).",
)
@click.option(
    "--max-ratio",
    type=FiniteFloat(min=0),
    default=100.0,
    show_default=True,
    help="Refuse an archive that unpacks to more than this many times its size "
    "(past 64 MiB; 0 = no limit).",
)
def prepare(
    name: str,
    inputs: tuple[Path, ...],
    dest: Path | None,
    split: str | None,
    max_unpacked_size: str,
    max_ratio: float,
) -> None:
    """Lay out the files of NAME from archives or folders you have.

    Known archives are recognised by sha256 or name and their checksum is
    checked; archives that hold the dataset's layout are merged in; the new
    root replaces the old one atomically."""
    from tcmbench.data.archives import UnpackLimits, parse_size
    from tcmbench.data.dataset import default_roots, get_dataset_config
    from tcmbench.data.prepare import prepare_dataset

    try:
        max_bytes = parse_size(max_unpacked_size)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-unpacked-size") from None
    limits = UnpackLimits(max_bytes=max_bytes or None, max_ratio=max_ratio or None)
    cfg = get_dataset_config(name)
    result = prepare_dataset(cfg, list(inputs), dest=dest, split=split, limits=limits)
    for item in result.inputs:
        known = f" = {item.source}" if item.source else ""
        sha = f"sha256 {item.sha256}" if item.sha256 else "folder"
        click.echo(f"{item.path}: {sha}{known} ({item.checksum}) -> {', '.join(item.placed_at)}")
    click.echo(f"prepared {name} at {result.dest}")
    if result.dest.resolve() not in [r.resolve() for r in default_roots(cfg)]:
        click.echo(
            f"note: {result.dest} is not a default root; "
            f"pass --data-root {result.dest} (or set TCMBENCH_DATA)"
        )
    click.echo(
        f"next: tcmbench datasets verify {name}" + (f" --data-root {result.dest}" if dest else "")
    )


@datasets.command()
@click.argument("name")
@click.option("--split", default="test", show_default=True, help="Split to count.")
@click.option("--data-root", type=click.Path(path_type=Path), help=DATA_ROOT_HELP)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Skip malformed lines (counted, summary on stderr) instead of failing.",
)
@json_option("the counts (one object)")
def stats(
    name: str, split: str, data_root: Path | None, skip_invalid: bool, json_out: str | None
) -> None:
    """Counts of one split: images, instances, ignored (don't care), points
    per polygon, skipped malformed lines."""
    from tcmbench.data.dataset import load_split, split_stats

    samples, report = load_split(name, split, data_root=data_root, skip_invalid=skip_invalid)
    st = {"dataset": name, "split": split, **split_stats(samples, report)}
    if report.skipped:
        click.echo(f"{name}/{split}: {report.summary()}", err=True)
    if json_out is not None:
        write_report(json_out, json.dumps(st) + "\n")
        if is_stdout(json_out):
            return  # stdout carries exactly one JSON object
    hist = ", ".join(f"{k} pts: {v}" for k, v in st["points_hist"].items()) or "-"
    _table(
        [
            "dataset",
            "split",
            "images",
            "instances",
            "ignored",
            "skipped lines",
            "points per polygon",
        ],
        [
            [
                name,
                split,
                str(st["images"]),
                str(st["instances"]),
                str(st["ignored"]),
                str(st["skipped_lines"]),
                hist,
            ]
        ],
    )


@datasets.command()
@click.argument("name")
@click.option("--split", required=True, help="Split to export.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder (Hub layout: data/<split>-*.parquet, README.md).",
)
@click.option("--data-root", type=click.Path(path_type=Path), help=DATA_ROOT_HELP)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Skip malformed lines (counted, summary on stderr) instead of failing.",
)
@click.option(
    "--shard-mb",
    default=500,
    show_default=True,
    type=click.IntRange(1, 1 << 20),
    help="Target parquet shard size in MB.",
)
def export(
    name: str, split: str, out_dir: Path, data_root: Path | None, skip_invalid: bool, shard_mb: int
) -> None:
    """Write one split as parquet with explicit Hugging Face Features (images
    embedded), loadable with datasets.load_dataset and shareable on the Hub."""
    from tcmbench.data.dataset import get_dataset_config, load_split
    from tcmbench.data.hf import dataset_card, export_parquet
    from tcmbench.safety.paths import atomic_write_text

    cfg = get_dataset_config(name)
    samples, report = load_split(name, split, data_root=data_root, skip_invalid=skip_invalid)
    if report.skipped:
        click.echo(f"{name}/{split}: {report.summary()}", err=True)
    without = sum(1 for s in samples if not s.image_path)
    if without:
        click.echo(
            f"warning: {without} of {len(samples)} samples have no image; "
            "their image cell is empty",
            err=True,
        )
    files = export_parquet(
        samples, out_dir, split=split, max_shard_bytes=shard_mb * 1024 * 1024, total=len(samples)
    )
    present = sorted(
        {
            m.group(1)
            for p in (out_dir / "data").glob("*.parquet")
            if (m := re.match(r"(.+)-\d{5}-of-\d{5}\.parquet$", p.name))
        }
    )
    atomic_write_text(
        out_dir / "README.md", dataset_card(cfg.name, cfg.title, cfg.licence, cfg.citation, present)
    )
    for f in files:
        click.echo(str(f))
    click.echo(f"exported {len(samples)} samples of {name}/{split} to {out_dir}")
