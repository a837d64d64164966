"""``tcmbench import ppocr``: the dbnet plugin's command, added to the core
``import`` group through the ``register_commands`` hook (the core never
imports a plugin).

Torch-free at import; the importer is imported when the command runs.
"""

from __future__ import annotations

import click


@click.command("ppocr")
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
    from tcmbench.safety.paths import check_destination
    from tcmbench_dbnet.ppocr.onnx_import import import_ppocr

    check_destination(out_dir, "--out")  # a file, device, FIFO or link: one line
    out = import_ppocr(model, out_dir, bgr_input=input_order == "bgr", check=not no_check)
    click.echo(f"wrote {out}")
