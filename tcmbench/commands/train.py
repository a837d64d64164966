"""``tcmbench train``: train a detector (optionally with --tcm).

The same command runs on one process or under ``torchrun --nproc_per_node
N`` (DDP). Everything left out comes from the plugin's recipe for the
(first) dataset; see docs/training.md.
"""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from tcmbench.commands._options import (
    INT64_MAX,
    BoundedInt,
    FiniteFloat,
    device_option,
    tcm_options,
)


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


@click.command()
@click.option("--plugin", default="dbnet", show_default=True, help="Detector plugin.")
@click.option(
    "--dataset",
    "datasets",
    default=None,
    help="Training dataset(s), comma separated for joint training (e.g. msra-td500,hust-tr400).",
)
@click.option(
    "--recipe",
    default=None,
    help="Recipe name (default: the first dataset's, else the plugin default; with --init-from "
    "a checkpoint of another architecture than that recipe builds, the checkpoint's recipe).",
)
@click.option(
    "--output",
    "-o",
    default=None,
    type=click.Path(file_okay=False),
    help="Run folder (default runs/PLUGIN-DATASETS; on --resume, the resumed run's folder).",
)
@click.option(
    "--backbone",
    default=None,
    help="Backbone: resnet18, resnet50, resnet50-dcn (DCNv2 in stages 3-5, as the DB paper), "
    "resnet50-dcn-g2 (2 deform groups, as FCENet), resnet18-dcn, mobilenetv3_small / _large "
    "(default: the recipe's).",
)
@click.option(
    "--pretrained-backbone/--no-pretrained-backbone",
    default=None,
    help="ImageNet weights from torchvision's cache (default: the recipe's).",
)
@click.option("--steps", type=BoundedInt(1, "MAX_STEPS"), default=None, help="Optimizer steps.")
@click.option(
    "--epochs",
    type=FiniteFloat(0, min_open=True, bound="MAX_EPOCHS"),
    default=None,
    help="Passes over the training data (converted to steps).",
)
@click.option(
    "--batch-size",
    type=BoundedInt(1, "MAX_BATCH_SIZE"),
    default=None,
    help="Images per forward pass and process (effective batch = this x accumulate x processes).",
)
@click.option("--lr", type=FiniteFloat(0, 10), default=None, help="Base learning rate.")
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd", "ranger"]), default=None)
@click.option("--weight-decay", type=FiniteFloat(0, 1), default=None)
@click.option(
    "--accumulate",
    type=click.IntRange(1, 1024),
    default=1,
    show_default=True,
    help="Gradient accumulation: micro-batches per optimizer step.",
)
@click.option(
    "--lr-schedule",
    type=click.Choice(["step", "epoch"]),
    default=None,
    help="Poly LR updated per step or per epoch (default: the recipe's).",
)
@click.option(
    "--eval-every",
    type=BoundedInt(0, "MAX_STEPS"),
    default=None,
    help="Evaluate every N steps with the dataset's protocol (0 = only at the end if --eval-dataset).",
)
@click.option(
    "--eval-dataset",
    default=None,
    help="Dataset(s) to evaluate on (default: the first training dataset).",
)
@click.option("--eval-split", default="test", show_default=True)
@click.option(
    "--eval-limit",
    type=click.IntRange(1, INT64_MAX),
    default=None,
    help="Evaluate on the first N images only.",
)
@click.option(
    "--save-every",
    type=BoundedInt(0, "MAX_STEPS"),
    default=None,
    help="Write a resumable checkpoint every N steps.",
)
@click.option(
    "--keep",
    "keep_checkpoints",
    type=click.IntRange(0, 1_000_000),
    default=2,
    show_default=True,
    help="Resumable checkpoints to keep (0 = all).",
)
@click.option(
    "--resume",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Continue a run exactly: a run folder or one of its checkpoints/step-N folders.",
)
@click.option(
    "--train-fraction",
    type=FiniteFloat(0, 1, min_open=True),
    default=1.0,
    show_default=True,
    help="Few-shot: train on this fraction of each dataset (subset fixed by --seed).",
)
@click.option("--seed", type=click.IntRange(0, INT64_MAX), default=0, show_default=True)
@device_option
@click.option("--workers", type=click.IntRange(0, 256), default=None, help="Data loader processes.")
@click.option(
    "--threads",
    type=click.IntRange(1, 1024),
    default=None,
    help="CPU threads for torch (default: torch's choice, one per core).",
)
@click.option(
    "--data-root", default=None, type=click.Path(), help="Where the (single) dataset lives."
)
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision on CUDA.")
@click.option("--log-every", type=BoundedInt(1, "MAX_STEPS"), default=10, show_default=True)
@click.option(
    "--cache-images/--no-cache-images", default=None, help="Keep decoded images in memory."
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option(
    "--init-from",
    default=None,
    help="Fine-tune: start from these weights (checkpoint folder, hf://org/repo[@rev] or an "
    "official TCM .pth); no optimizer or step state. Prints the loaded / missing / "
    "unexpected / shape-mismatched key table; refuses a load that fills less than half of "
    "the parameter values (--allow-partial-init).",
)
@click.option(
    "--allow-partial-init",
    is_flag=True,
    default=False,
    help="Run an --init-from load that fills less than half of the model's parameter values "
    "(refused otherwise: most of the network would train from random values).",
)
@click.option(
    "--norm-eval/--no-norm-eval",
    default=None,
    help="Keep BatchNorm layers in eval mode (running statistics frozen) while training; "
    "for fine-tuning with small batches (default: the recipe's train_loop.norm_eval).",
)
@click.option(
    "--val-fraction",
    type=FiniteFloat(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Hold out this share of the training images as a validation split; best/ is "
    "chosen on it (a test split never selects a checkpoint).",
)
@click.option(
    "--no-decay",
    default=None,
    help="Comma-separated parameter kinds without weight decay (norm, bias, embedding, "
    "prompt); default: the recipe's optimizer.no_decay.",
)
@click.option(
    "--tensorboard/--no-tensorboard",
    default=True,
    show_default=True,
    help="Write TensorBoard event files into the run folder (needs the tensorboard package).",
)
@tcm_options
def train(
    plugin: str,
    datasets: str | None,
    eval_dataset: str | None,
    tcm: Any,
    **kwargs: Any,
) -> None:
    """Train a detector; checkpoints land in the run folder (final/, best/,
    checkpoints/step-N/) and load with `tcmbench evaluate --weights`.

    \b
    Examples:
      tcmbench train --plugin dbnet --dataset synthtext-mini
      tcmbench train --plugin dbnet --dataset icdar2015 --tcm --eval-every 2000 --save-every 2000
      torchrun --nproc_per_node 4 -m tcmbench train --plugin dbnet --dataset ctw1500 --tcm
    """
    from tcmbench.commands._announce import announce_start

    what = f"resuming {kwargs['resume']}" if kwargs["resume"] else f"{plugin} on {datasets}"
    announce_start("train", what + (" (TCM)" if tcm else ""))
    from tcmbench.inference.world import shutdown, world
    from tcmbench.train.hyper import TrainConfig
    from tcmbench.train.run import run_training

    threads = kwargs.pop("threads")
    if threads:
        import torch

        torch.set_num_threads(threads)
    ctx = click.get_current_context()
    if kwargs["steps"] is not None and kwargs["epochs"] is not None:
        raise click.UsageError("give --steps or --epochs, not both")
    tcm_dict = None
    if tcm is not None:
        from tcmbench.commands._options import require_tcm_support
        from tcmbench.contract.registry import get_detector

        if plugin is not None:  # a --resume run names its plugin in its config
            require_tcm_support(get_detector(plugin), tcm)  # before any data or model work
        tcm_dict = tcm.to_dict()
        if (
            ctx.get_parameter_source("tcm_context") == ParameterSource.DEFAULT
            and tcm.context_length != 0
        ):
            tcm_dict["context_length"] = None  # the recipe's value
    names = _csv(datasets) or []
    if kwargs["resume"] is None and not names:
        raise click.UsageError("give --dataset NAME[,NAME...] (or --resume RUN)")
    if kwargs["init_from"] and kwargs["resume"]:
        raise click.UsageError("give --init-from (new run from weights) or --resume, not both")
    if kwargs["allow_partial_init"] and not kwargs["init_from"]:
        raise click.UsageError("--allow-partial-init applies to --init-from only")
    kwargs["no_decay"] = _csv(kwargs["no_decay"])
    if kwargs["output"] is not None:  # a file, device, FIFO or link: one line, no work
        from tcmbench.safety.paths import check_destination

        check_destination(kwargs["output"], "--output")
    cfg = TrainConfig(
        plugin=plugin, datasets=names, eval_datasets=_csv(eval_dataset), tcm=tcm_dict, **kwargs
    )
    try:
        result = run_training(cfg, announce=click.echo)
        main = world().is_main
    finally:
        shutdown()
    if main:
        click.echo(
            f"trained {result.step} steps in {result.seconds / 60:.1f} min; final checkpoint: {result.final}"
        )
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for e in result.evals:
            latest[(e["dataset"], e["split"])] = e
        if latest:
            click.echo("| dataset | split | protocol | step | precision | recall | hmean | role |")
            click.echo("|---|---|---|---|---|---|---|---|")
            for e in latest.values():
                click.echo(
                    f"| {e['dataset']} | {e['split']} | {e['protocol']} | {e['step']} | "
                    f"{e['precision']:.4f} | {e['recall']:.4f} | {e['hmean']:.4f} | "
                    f"{e.get('role', 'test')} |"
                )
        if result.best_selected_on:
            b = result.best_selected_on
            click.echo(
                f"best checkpoint: {result.best} (validation hmean {b['hmean']:.4f} at step "
                f"{b['step']}; {'; '.join(s['description'] for s in b['splits'])})"
            )
