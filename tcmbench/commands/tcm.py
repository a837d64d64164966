"""``tcmbench tcm``: utilities of the TCM module."""

from __future__ import annotations

import click


@click.group()
def tcm() -> None:
    """TCM utilities (convert CLIP weights)."""


@tcm.command("convert-clip")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write open_clip_model.safetensors into.",
)
@click.option(
    "--model",
    "model_name",
    default="RN50-quickgelu",
    show_default=True,
    help="open_clip architecture the weights belong to.",
)
def convert_clip(src: str, out_dir: str, model_name: str) -> None:
    """Convert OpenAI's TorchScript CLIP SRC (RN50.pt) to safetensors, once.

    The result loads with --clip-weights OUT/open_clip_model.safetensors.
    The conversion keeps
    names and dtypes (lossless) and checks every tensor against the
    architecture.
    """
    from tcmbench.safety.paths import check_destination
    from tcmbench.tcm.weights import convert_openai_clip

    check_destination(out_dir, "--out")  # a file, device, FIFO or link: one line
    out = convert_openai_clip(src, out_dir, model_name=model_name)
    click.echo(f"wrote {out}")
