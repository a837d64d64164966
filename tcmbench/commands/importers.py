"""``tcmbench import``: checkpoints from other codebases."""

from __future__ import annotations

import click


@click.group("import")
def import_() -> None:
    """Import checkpoints from other codebases (official TCM; plugins add their own, such as
    the dbnet plugin's PaddleOCR PP-OCR detectors)."""


@import_.command("tcm-official")
@click.argument("ckpt", type=click.Path(dir_okay=False))
@click.option(
    "--plugin",
    default="dbnet",
    show_default=True,
    help="Detector the checkpoint belongs to (the official release has TCM-DBNet).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Checkpoint folder to write (config.json, model.safetensors, README.md).",
)
@click.option(
    "--prompt", default=None, help="Predefined prompt it was trained with (default: the paper's)."
)
@click.option(
    "--no-text-context-decoder",
    "no_text_decoder",
    is_flag=True,
    help="The checkpoint comes from an ablation that did not run the text-side context "
    "decoder (its unused weights are dropped).",
)
@click.option(
    "--recipe",
    default=None,
    help="Recipe to record in the checkpoint (its test settings and post-processing are what "
    "evaluate then uses). Default: the recipe of the official config the weights come from "
    "(TCM-PAN: icdar2015 at input 736, ctw1500 at 640; TCM-FCENet: icdar2015); TCM-DBNet: "
    "none, evaluate uses the dataset's recipe.",
)
def tcm_official(
    ckpt: str,
    plugin: str,
    out_dir: str,
    prompt: str | None,
    no_text_decoder: bool,
    recipe: str | None,
) -> None:
    """Turn an official TCM checkpoint CKPT (.pth, mmocr 0.4) into a tcmbench checkpoint.

    Every official parameter is renamed to its tcmbench counterpart; any key
    without one stops the import and is listed. The TCM switches (context
    tokens, LP-only, LG, VG) are read from the weights. The checkpoint
    records the recipe of the official config, so `evaluate` runs the
    authors' post-processing by default.
    """
    from tcmbench.safety.paths import check_destination
    from tcmbench.tcm.importer import import_official_checkpoint

    check_destination(out_dir, "--out")  # a file, device, FIFO or link: one line
    out = import_official_checkpoint(
        ckpt,
        plugin,
        out_dir,
        prompt=prompt,
        text_context_decoder=False if no_text_decoder else None,
        recipe=recipe,
    )
    click.echo(f"wrote {out}")
