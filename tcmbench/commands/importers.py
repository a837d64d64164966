"""``tcmbench import``: checkpoints from other codebases."""

from __future__ import annotations

import click


@click.group("import")
def import_() -> None:
    """Import checkpoints from other codebases (official TCM, PaddleOCR PP-OCR detectors)."""


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
def tcm_official(
    ckpt: str, plugin: str, out_dir: str, prompt: str | None, no_text_decoder: bool
) -> None:
    """Turn an official TCM checkpoint CKPT (.pth, mmocr 0.4) into a tcmbench checkpoint.

    Every official parameter is renamed to its tcmbench counterpart; any key
    without one stops the import and is listed. The TCM switches (context
    tokens, LP-only, LG, VG) are read from the weights.
    """
    from tcmbench.paths import check_destination
    from tcmbench.tcm.importer import import_official_checkpoint

    check_destination(out_dir, "--out")  # a file, device, FIFO or link: one line
    out = import_official_checkpoint(
        ckpt,
        plugin,
        out_dir,
        prompt=prompt,
        text_context_decoder=False if no_text_decoder else None,
    )
    click.echo(f"wrote {out}")


@import_.command("ppocr")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Checkpoint folder to write (config.json, model.safetensors, README.md).",
)
@click.option(
    "--input-order",
    type=click.Choice(["bgr", "rgb"]),
    default="bgr",
    show_default=True,
    help="Channel order the graph reads. PaddleOCR's detectors read BGR; tcmbench models read "
    "RGB, so the first conv's input channels are reversed.",
)
@click.option(
    "--no-check",
    is_flag=True,
    help="Skip running the graph in onnxruntime to check that the rebuilt model gives the "
    "same probability map.",
)
def ppocr(model: str, out_dir: str, input_order: str, no_check: bool) -> None:
    """Turn a PaddleOCR PP-OCR text detector MODEL (.onnx) into a trainable dbnet checkpoint.

    PP-OCRv3 and PP-OCRv4 mobile detectors (ch_PP-OCRv3_det, ch_PP-OCRv4_det)
    are rebuilt in PyTorch by following the graph; the checkpoint records
    PaddleOCR's own test settings as its recipe. Needs the onnx extra:
    pip install 'tcmbench[onnx]'.
    """
    from tcmbench_dbnet.ppocr.onnx_import import import_ppocr

    from tcmbench.paths import check_destination

    check_destination(out_dir, "--out")  # a file, device, FIFO or link: one line
    out = import_ppocr(model, out_dir, bgr_input=input_order == "bgr", check=not no_check)
    click.echo(f"wrote {out}")
