"""``tcmbench evaluate``: run a checkpoint on a dataset split and score it.

Inference runs at the recipe's test scale for the dataset; predictions are
cached (checkpoint sha256, dataset, split, sample list, test settings), so
re-scoring with ``--protocol`` or ``--sweep`` costs no inference. Under
``torchrun`` the images are sharded across processes and scored once.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from tcmbench.commands._options import (
    INT64_MAX,
    BoundedInt,
    device_option,
    require_tcm_support,
    tcm_options,
)

log = logging.getLogger(__name__)

# The dataset the plugins' embedded default weights were trained on.
EMBEDDED_WEIGHTS_DATASET = "synthtext-mini"


def resolve_weights_option(weights: str | None, spec: Any, dataset: str) -> str:
    from tcmbench.errors import CheckpointError

    if weights:
        return weights
    if spec.load_weights is not None:
        raise click.UsageError(
            f"plugin {spec.name!r} runs finished models: pass --weights (docs/onnx.md)"
        )
    from tcmbench.hub.checkpoints import embedded_weights

    found = embedded_weights(spec)
    if dataset != EMBEDDED_WEIGHTS_DATASET:
        message = (
            f"--weights is required for {dataset} (a folder, a model.safetensors or hf://org/repo); "
            f"only {EMBEDDED_WEIGHTS_DATASET} has embedded default weights"
        )
        if found is not None:
            from tcmbench.inference.loading import REAL_ALTERNATIVES

            message += (
                f". They are in {found} and were trained on synthetic images only (pass "
                f"--weights {found} to run them anyway); for real images use {REAL_ALTERNATIVES}"
            )
        raise click.UsageError(message)
    if found is None:
        raise CheckpointError(
            f"plugin {spec.name!r} ships no default weights for {dataset}; pass --weights, or train them with "
            f"`tcmbench train --plugin {spec.name} --dataset {dataset}`"
        )
    return str(found)


def check_inputs(
    spec: Any, tcm: Any, dataset: str, split: str, weights: str | None, data_root: str | None
) -> None:
    """Before torch or any model: the plugin's TCM support, then one error
    naming everything missing (dataset, weights) with the command for each
    (:func:`tcmbench.commands._missing.check_evaluate_inputs`)."""
    from tcmbench.commands._missing import check_evaluate_inputs
    from tcmbench.errors import TcmbenchError

    require_tcm_support(spec, tcm)
    plain = None
    if tcm is None or spec.load_weights is not None:
        try:
            resolve_weights_option(weights, spec, dataset)
        except click.UsageError as exc:
            plain = exc.message
        except TcmbenchError as exc:
            plain = str(exc)
    check_evaluate_inputs(spec, tcm is not None, dataset, split, weights, data_root, plain)


def checkpoint_tcm(spec: Any, ckpt: Any) -> bool | None:
    """Whether the model that ran has the TCM module, read from the
    checkpoint's architecture (the flags only insist); None for a finished
    model of an inference-only plugin, which does not record it."""
    if spec.load_weights is not None:
        return None
    return getattr(ckpt.config, "tcm", None) is not None


def tcm_words(tcm: bool | None) -> str:
    if tcm is None:
        return "not recorded (a finished model)"
    return "on (from the checkpoint)" if tcm else "off (from the checkpoint)"


def what_ran(spec: Any, ckpt: Any, weights: str, shipped: bool) -> str:
    """The line above the results table naming the model: plugin, TCM on
    or off as the checkpoint says, weights (the shipped ones by package,
    so the line reads the same on every machine) and runtime; the test
    settings and the protocol follow (the next line, the table)."""
    shown = f"{Path(weights).parent.name}/{Path(weights).name} (shipped)" if shipped else weights
    runtime = ckpt.meta.get("runtime", "torch")
    return (
        f"model: plugin {spec.name}, TCM {tcm_words(checkpoint_tcm(spec, ckpt))}, "
        f"weights {shown}, runtime {runtime}"
    )


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | split | protocol | images | precision | recall | hmean |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['split']} | {r['protocol']} | {r['images']} | "
            f"{r['precision']:.4f} | {r['recall']:.4f} | {r['hmean']:.4f} |"
        )
    return "\n".join(lines)


def sweep_line(sweep: dict[str, Any]) -> str | None:
    """One line about the best-threshold sweep (``Result.sweep``), named
    as what it is: the papers' figure (mmocr 0.x), not the protocol's."""
    from tcmbench.eval.sweep import LABEL

    hm = sweep.get("best_hmean")
    if hm is None:
        return None
    line = f"{sweep.get('label') or LABEL}: hmean {hm:.4f}"
    if sweep.get("best_threshold") is not None:
        line += f" at score >= {sweep['best_threshold']}"
    if sweep.get("best_precision") is not None and sweep.get("best_recall") is not None:
        line += f" (P {sweep['best_precision']:.4f}, R {sweep['best_recall']:.4f})"
    if sweep.get("protocol"):  # mmocr-hmean-iou (tcmbench.eval.mmocr_iou.papers_figure)
        line += f"; protocol {sweep['protocol']}"
        line += " on the polygons as predicted" if sweep.get("predictions") else ""
    return line


TCM_SWITCHES = (
    "predefined_prompt",
    "language_generator",
    "visual_generator",
    "text_context_decoder",
)


def check_tcm_matches(asked: Any, saved: Any, context_given: bool) -> None:
    """``--tcm`` switches on evaluate must agree with the checkpoint, whose
    config.json defines the architecture; a silent mismatch would report
    numbers for a model the user did not mean."""
    from tcmbench.errors import CheckpointError

    if asked is None or saved is None:
        return
    keys = list(TCM_SWITCHES) + (["context_length"] if context_given else [])
    diff = [
        f"{k}={getattr(saved, k)!r} (asked {getattr(asked, k)!r})"
        for k in keys
        if getattr(asked, k) != getattr(saved, k)
    ]
    if diff:
        raise CheckpointError(
            "the checkpoint's TCM configuration differs from the options given: "
            + ", ".join(diff)
            + "; the architecture comes from the checkpoint, drop those options"
        )


@click.command()
@click.option("--plugin", default="dbnet", show_default=True, help="Detector plugin.")
@click.option("--dataset", required=True, help="Dataset name (tcmbench datasets list).")
@click.option("--split", default="test", show_default=True)
@click.option(
    "--weights",
    default=None,
    help="Checkpoint folder, model.safetensors or hf://org/repo[@rev] "
    f"(default on {EMBEDDED_WEIGHTS_DATASET}: the plugin's embedded weights).",
)
@click.option(
    "--recipe", default=None, help="Recipe whose test settings to use (default: the dataset's)."
)
@click.option("--data-root", default=None, type=click.Path(), help="Where the dataset lives.")
@device_option
@click.option("--batch-size", type=BoundedInt(1, "MAX_BATCH_SIZE"), default=1, show_default=True)
@click.option(
    "--protocol", default=None, help="Score with this protocol instead of the dataset's default."
)
@click.option(
    "--sweep",
    is_flag=True,
    help="Also report the papers' figure: the best hmean over score thresholds 0.3..0.9, "
    "step 0.1, as mmocr 0.x reports it (labelled; never the official protocol's figure).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the figures (precision, recall, hmean, ...) as JSON (- for stdout).",
)
@click.option(
    "--save-predictions",
    type=click.Path(file_okay=False),
    default=None,
    help="Write submit.zip in the protocol's official format and predictions.json here.",
)
@click.option(
    "--submission-scores", is_flag=True, help="Add each detection's confidence to submit.zip lines."
)
@click.option(
    "--visualize",
    type=click.Path(file_okay=False),
    default=None,
    help="Write PNGs with ground truth (green) and predictions (red) here.",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write an HTML report here: figures, PR / threshold plots, recall by text size, "
    "orientation and curvature, worst images drawn, sortable per-image table whose every "
    "row opens its image drawn (needs tcmbench[report]).",
)
@click.option(
    "--limit", type=click.IntRange(1, INT64_MAX), default=None, help="Only the first N images."
)
@click.option(
    "--runtime",
    type=click.Choice(["torch", "onnxruntime"]),
    default=None,
    help="Run the network with PyTorch (default for trainable plugins) or onnxruntime "
    "(the checkpoint exported to ONNX, or an exported .onnx; needs tcmbench[onnx]).",
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Skip malformed ground-truth lines (counted) instead of failing.",
)
@click.option("--no-cache", is_flag=True, help="Run inference even when cached predictions exist.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@tcm_options
def evaluate(
    plugin: str,
    dataset: str,
    split: str,
    weights: str | None,
    recipe: str | None,
    data_root: str | None,
    device: str,
    batch_size: int,
    protocol: str | None,
    sweep: bool,
    json_out: str | None,
    save_predictions: str | None,
    submission_scores: bool,
    visualize: str | None,
    limit: int | None,
    skip_invalid: bool,
    no_cache: bool,
    progress: bool,
    tcm: Any,
    report_dir: str | None = None,
    runtime: str | None = None,
) -> None:
    """Run a detector on a dataset split and score it with the dataset's
    official protocol; prints a markdown table.

    \b
    Examples:
      tcmbench evaluate --plugin dbnet --dataset synthtext-mini
      tcmbench evaluate --plugin dbnet --dataset icdar2015 --weights runs/x/final --sweep --json out.json
      torchrun --nproc_per_node 4 -m tcmbench evaluate --plugin dbnet --dataset ctw1500 --weights hf://org/repo
    """
    from tcmbench.commands._announce import announce_start
    from tcmbench.contract.registry import get_detector

    spec = get_detector(plugin)
    check_inputs(spec, tcm, dataset, split, weights, data_root)  # all that is missing, at once
    announce_start("evaluate", f"{plugin}{' (TCM)' if tcm else ''} on {dataset} {split}")
    from tcmbench.inference.loading import prepare_device
    from tcmbench.inference.world import release_world

    # torch only where the network runs on it: --plugin onnx never loads it
    dev, w = prepare_device(spec, runtime, device)
    try:
        _evaluate(
            w,
            dev,
            plugin,
            dataset,
            split,
            weights,
            recipe,
            data_root,
            batch_size,
            protocol,
            sweep,
            json_out,
            save_predictions,
            submission_scores,
            visualize,
            limit,
            skip_invalid,
            no_cache,
            progress,
            tcm,
            report_dir,
            runtime,
        )
    finally:
        release_world()


def _evaluate(
    w: Any,
    dev: Any,
    plugin: str,
    dataset: str,
    split: str,
    weights: str | None,
    recipe: str | None,
    data_root: str | None,
    batch_size: int,
    protocol: str | None,
    sweep: bool,
    json_out: str | None,
    save_predictions: str | None,
    submission_scores: bool,
    visualize: str | None,
    limit: int | None,
    skip_invalid: bool,
    no_cache: bool,
    progress: bool,
    tcm: Any,
    report_dir: str | None = None,
    runtime: str | None = None,
) -> None:
    from tcmbench import __version__
    from tcmbench.contract.registry import get_detector
    from tcmbench.data.dataset import get_dataset_config, load_split
    from tcmbench.eval import evaluate as score
    from tcmbench.eval.submission import submitted_predictions
    from tcmbench.inference import (
        cache_key,
        cached_predict,
        dataset_protocol,
        predict_samples,
        test_settings,
    )
    from tcmbench.inference.loading import (
        load_for_inference,
        resolve_for_checkpoint,
        tag_runtime,
        weights_warnings,
    )
    from tcmbench.inference.settings import describe, differs_from_dataset

    spec = get_detector(plugin)
    require_tcm_support(spec, tcm)  # the plugin, not the checkpoint, is the problem
    if recipe:
        spec.require_recipe(recipe)
    shipped = not weights  # the plugin's embedded weights, said so in the header
    weights = resolve_weights_option(weights, spec, dataset)
    if report_dir and w.is_main:  # fail before inference: matplotlib missing, folder in use
        from tcmbench.report import check_report_dir
        from tcmbench.report.plots import require_matplotlib

        require_matplotlib()
        check_report_dir(report_dir)
    from tcmbench.safety.paths import check_destination, check_names

    for option, folder in (("--save-predictions", save_predictions), ("--visualize", visualize)):
        if folder:  # a file, device, FIFO or link: one line, before any work (every rank)
            check_destination(folder, option)
    protocol, protocol_params = dataset_protocol(get_dataset_config(dataset), protocol)
    samples, report = load_split(
        dataset, split, data_root=data_root, skip_invalid=skip_invalid, need_images=True
    )
    if limit:
        samples = samples[:limit]
    if save_predictions:  # IMG_0059 and IMG_59 -> one file: say so before inference
        from tcmbench.eval.submission import entry_names

        entry_names([s.id for s in samples], protocol)
    if visualize:  # an id no file can be named after: say so before inference
        check_names(visualize, (f"{s.id}.png" for s in samples), "--visualize")
    ckpt = load_for_inference(
        weights,
        spec=spec,
        device=str(dev),
        expect_tcm=tcm is not None,  # a mismatch either way is refused, naming the flag
        runtime=runtime,
    )
    for warning in weights_warnings(ckpt, dataset) if w.is_main else []:
        click.echo(warning, err=True)
    ctx = click.get_current_context()
    check_tcm_matches(
        tcm, ckpt.config.tcm, ctx.get_parameter_source("tcm_context") != ParameterSource.DEFAULT
    )
    resolved = resolve_for_checkpoint(spec, ckpt, recipe, dataset)
    test_recipe = tag_runtime(resolved.recipe, ckpt)
    note = differs_from_dataset(spec, resolved, dataset)
    if note and w.is_main:
        click.echo(note, err=True)
    key = None if no_cache else cache_key(ckpt.sha256, dataset, split, samples, test_recipe)
    t0 = time.monotonic()
    preds, hit = cached_predict(
        key,
        lambda: predict_samples(
            ckpt.model,
            samples,
            test_recipe,
            dev,
            batch_size=batch_size,
            progress=progress,
            announce=lambda line: click.echo(line, err=True),  # --no-progress: a heartbeat
        ),
    )
    seconds = time.monotonic() - t0
    if not w.is_main:
        return
    params: dict[str, Any] = dict(protocol_params)
    # One coordinate rule: the figures are those of the submission
    # (submit.zip, predictions.json), so `tcmbench score` on them agrees.
    result = score(samples, submitted_predictions(preds, protocol), protocol, **params)
    if sweep:  # the papers' figure: mmocr 0.x hmean-iou on the polygons as output
        from tcmbench.eval.mmocr_iou import papers_figure

        result.sweep = papers_figure(samples, preds)
    row = {
        "dataset": dataset,
        "split": split,
        "protocol": protocol,
        "images": len(samples),
        "precision": result.precision,
        "recall": result.recall,
        "hmean": result.hmean,
    }
    from tcmbench.safety.paths import is_stdout, write_report

    to_err = is_stdout(json_out)  # stdout then carries the JSON alone
    # The table's header: what ran (plugin, TCM, weights, runtime), then how (test settings).
    click.echo(what_ran(spec, ckpt, weights, shipped), err=to_err)
    click.echo(describe(resolved), err=to_err)
    click.echo(markdown_table([row]), err=to_err)
    if result.sweep:
        line = sweep_line(result.sweep)
        if line:
            click.echo(line, err=to_err)
    if json_out:
        doc = {
            **result.summary(),
            "dataset": dataset,
            "split": split,
            "images": len(samples),
            "plugin": plugin,
            "tcm": checkpoint_tcm(spec, ckpt),
            "weights": str(weights),
            "checkpoint_sha256": ckpt.sha256,
            "test": test_settings(test_recipe),
            "test_settings_source": {"origin": resolved.origin, "source": resolved.source},
            "device": str(dev),
            "runtime": ckpt.meta.get("runtime", "torch"),
            "inference_seconds": None if hit else round(seconds, 3),
            "cached_predictions": hit,
            "skipped_gt_lines": report.skipped_count,
            "tcmbench_version": __version__,
        }
        write_report(json_out, json.dumps(doc, indent=2, default=str) + "\n")
    if save_predictions:
        from tcmbench.eval.submission import write_submission

        paths = write_submission(save_predictions, preds, protocol, scores=submission_scores)
        click.echo(f"submission: {paths['zip']}", err=True)
    if visualize:
        from tcmbench.data.torch_data import load_image
        from tcmbench.report.visualize import draw, save_png
        from tcmbench.safety.paths import safe_child

        out = Path(visualize)
        for s in samples:
            save_png(
                safe_child(out, f"{s.id}.png"),
                draw(load_image(s.image_path, s.id), preds.get(s.id, []), s.instances),
            )
        click.echo(f"visualisations: {out}", err=True)
    if report_dir:
        from tcmbench.report import write_evaluation_report
        from tcmbench.report.curve import model_box_threshold

        page = write_evaluation_report(
            report_dir,
            samples,
            # what the figures scored: the curve's first point is the official figure
            submitted_predictions(preds, protocol),
            result,
            {
                "dataset": dataset,
                "split": split,
                "images": len(samples),
                "plugin": plugin,
                "TCM": tcm_words(checkpoint_tcm(spec, ckpt)),
                "weights": str(weights),
                "checkpoint sha256": ckpt.sha256,
                "test settings (recipe)": test_settings(test_recipe),
                "test settings from": resolved.source,
                "device": str(dev),
                "tcmbench version": __version__,
            },
            progress=progress,
            model_threshold=model_box_threshold(test_recipe),  # the sweep starts there
        )
        size = sum(f.stat().st_size for f in page.parent.rglob("*") if f.is_file())
        click.echo(f"report: {page} ({len(samples)} images drawn, {size / 1e6:.1f} MB)", err=True)
