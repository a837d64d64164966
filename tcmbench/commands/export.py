"""``tcmbench export onnx``: a checkpoint as an ONNX model plus its config.

The exporter (:mod:`tcmbench.inference.onnx_export`) is imported when the
command runs; the model it writes runs with ``--runtime onnxruntime`` or,
for a DB detector, ``--plugin onnx`` (docs/onnx.md).
"""

from __future__ import annotations

import click


@click.group()
def export() -> None:
    """Export checkpoints to other runtimes."""


@export.command(name="onnx")
@click.option("--plugin", default="dbnet", show_default=True, help="Detector plugin.")
@click.option(
    "--weights",
    required=True,
    help="Checkpoint folder, model.safetensors or hf://org/repo[@rev].",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="The ONNX file to write (NAME.onnx; NAME.tcmbench.json goes beside it).",
)
@click.option(
    "--recipe",
    default=None,
    help="Take the test resize and postprocess settings from this recipe "
    "(default: the checkpoint's).",
)
@click.option(
    "--tcm",
    is_flag=True,
    help="Insist on a TCM checkpoint (the architecture comes from its config.json).",
)
def export_onnx(plugin: str, weights: str, out: str, recipe: str | None, tcm: bool) -> None:
    """Export a checkpoint's network (up to the head's maps) to ONNX with
    dynamic batch, height and width, and write the config that runs it
    (pre-processing, the plugin's postprocessor parameters) beside it.

    \b
    Examples:
      tcmbench export onnx --plugin dbnet --weights runs/x/final --out dbnet.onnx
      tcmbench export onnx --plugin dbnet --tcm --weights hf://org/tcm-dbnet --out tcm.onnx
      tcmbench evaluate --plugin onnx --weights dbnet.onnx --dataset synthtext-mini
    """
    from tcmbench.contract.registry import get_detector
    from tcmbench.hub.checkpoints import load_checkpoint
    from tcmbench.inference.onnx_export import ATOL, RTOL, export_checkpoint
    from tcmbench.inference.onnx_runtime import require_onnxruntime

    require_onnxruntime()  # the export is checked with it: fail before the work
    spec = get_detector(plugin)
    if getattr(spec, "load_weights", None) is not None:
        raise click.UsageError(f"plugin {plugin!r} runs exported models; nothing to export")
    ckpt = load_checkpoint(weights, device="cpu", plugin=plugin, expect_tcm=True if tcm else None)
    model_path, config_path, report = export_checkpoint(ckpt, out, recipe_name=recipe)
    worst = max(report["max_abs_diff"].values())
    click.echo(
        f"wrote {model_path} ({model_path.stat().st_size / 1e6:.1f} MB, outputs "
        f"{', '.join(report['outputs'])}) and {config_path}; onnxruntime vs PyTorch: max abs "
        f"diff {worst:.2e} (tolerance {ATOL} + {RTOL} x |value|)",
        err=True,
    )
