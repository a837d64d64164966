"""``tcmbench bench``: parameters, GFLOPs, latency and throughput.

The figures of a paper's efficiency table, measured here on the current
device: parameters (``params``; with ``--tcm`` also
``params_without_text_encoder``, the paper's convention), forward GFLOPs /
GMACs per resolution, median latency and images/s, and the postprocessor's
time per image. ``--compare-tcm`` measures the plain detector and its TCM
variant in one interleaved run and reports ``tcm_latency_ratio``.

Random weights are enough to measure size and speed: nothing is downloaded
(ImageNet and CLIP weights are not loaded; ``clip_pretrained=None``). Pass
``--weights`` to measure a checkpoint instead (its post-processing time is
then realistic: random weights give arbitrary maps).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import click

from tcmbench.commands._options import BoundedInt, device_option, require_tcm_support, tcm_options

log = logging.getLogger(__name__)


def _millions(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}M"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def default_backbone(spec: Any, recipe: dict[str, Any]) -> str | None:
    """The backbone the plugin's recipe names (DBNet: resnet50), or None
    when it names none (a plugin that builds its own backbone)."""
    backbone = (recipe.get("model") or {}).get("backbone")
    return str(backbone) if backbone else None


def model_label(spec: Any, config: Any, backbone: str | None) -> str:
    """``dbnet-resnet50``, ``TCM-dbnet (CLIP RN50-quickgelu)``, or just the
    plugin's name when no backbone was named (by --backbone, the recipe or
    the checkpoint): DetectorConfig's default backbone is then not
    necessarily what the plugin built, so the label does not claim it."""
    if config.tcm is not None:
        return f"TCM-{spec.name} (CLIP {config.tcm.clip_model})"
    return f"{spec.name}-{backbone}" if backbone else spec.name


def build_for_bench(
    spec: Any, recipe: dict[str, Any], backbone: str | None, tcm: Any
) -> tuple[Any, Any]:
    """(model, DetectorConfig) with random weights: no ImageNet or CLIP
    download (``pretrained_backbone=False``, ``clip_pretrained=None``).
    ``backbone`` None leaves DetectorConfig's default to the plugin."""
    from tcmbench.contract.registry import get_plugin_manager
    from tcmbench.contract.spec import DetectorConfig

    if tcm is not None:
        tcm.clip_pretrained = None  # random CLIP weights: size and speed do not depend on values
    config = DetectorConfig(
        pretrained_backbone=False,
        tcm=tcm,
        options=dict((recipe.get("model") or {}).get("options") or {}),
    )
    if backbone:
        config.backbone = backbone
    model = get_plugin_manager().hook.build_detector(spec=spec, config=config)
    return model, config


def recipe_for_model(recipe: dict[str, Any], config: Any) -> dict[str, Any]:
    """A TCM model normalises its input as CLIP does (``tcm.normalize``)."""
    out = dict(recipe)
    tcm_norm = (recipe.get("tcm") or {}).get("normalize")
    if config.tcm is not None and tcm_norm:
        out["normalize"] = dict(tcm_norm)
    return out


def timing_note(runs: int, warmup: int) -> str:
    """How the latencies were taken, in words that agree with the counts
    ("1 run", "median of 5 runs")."""
    if not runs:
        return "no timing (--runs 0)"
    timed = "1 run" if runs == 1 else f"median of {runs} runs"
    return f"{timed} after {warmup} warm-up run{'' if warmup == 1 else 's'}"


def markdown_params(entries: list[dict[str, Any]]) -> str:
    lines = ["| model | params | params without text encoder |", "|---|---|---|"]
    for e in entries:
        lines.append(
            f"| {e['model']} | {_millions(e['params'])} | {_millions(e.get('params_without_text_encoder'))} |"
        )
    return "\n".join(lines)


def markdown_results(entries: list[dict[str, Any]]) -> str:
    lines = [
        "| model | resolution | GFLOPs | GMACs | latency ms | images/s | postprocess ms/img | detections/img |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        for r in e["results"]:
            lines.append(
                f"| {e['model']} | {r['resolution']} | {_fmt(r.get('gflops'))} | {_fmt(r.get('gmacs'))} | "
                f"{_fmt(r.get('latency_ms'))} | {_fmt(r.get('images_per_s'), 2)} | "
                f"{_fmt(r.get('postprocess_ms'), 2)} | {_fmt(r.get('detections_per_image'), 1)} |"
            )
    return "\n".join(lines)


def markdown_ratio(
    pairs: dict[str, list[str]],
    entries: dict[str, dict[str, Any]],
    ratios: dict[str, dict[str, float]],
    ratios_min: dict[str, dict[str, float]],
) -> str:
    """Per plugin and resolution: median latencies of the plain detector and
    its TCM variant and their ratio; the ratio of the fastest runs too (on a
    shared machine the minimum is the run least disturbed)."""
    lines = [
        "| plugin | resolution | plain | plain ms | TCM ms | TCM / plain | TCM / plain (fastest runs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (plain_label, tcm_label) in pairs.items():
        by_res_plain = {r["resolution"]: r for r in entries[plain_label]["results"]}
        by_res_tcm = {r["resolution"]: r for r in entries[tcm_label]["results"]}
        for res, ratio in ratios[name].items():
            lines.append(
                f"| {name} | {res} | {plain_label} | {_fmt(by_res_plain[res]['latency_ms'])} | "
                f"{_fmt(by_res_tcm[res]['latency_ms'])} | {ratio:.2f}x | {ratios_min[name][res]:.2f}x |"
            )
    return "\n".join(lines)


@click.command()
@click.option(
    "--plugin",
    default="dbnet",
    show_default=True,
    help="Detector plugin. With --compare-tcm a comma-separated list (dbnet,pan,fcenet) "
    "measures every plugin and its TCM variant in one interleaved run.",
)
@click.option(
    "--backbone",
    default=None,
    help="Backbone of the plain detector (default: the plugin recipe's, resnet50 for DBNet). "
    "With --tcm the backbone is CLIP RN50.",
)
@click.option(
    "--resolution",
    "resolutions",
    default="640,1024",
    show_default=True,
    help="Comma-separated input sizes: N (N x N) or WIDTHxHEIGHT, multiples of 32.",
)
@click.option("--params-only", is_flag=True, help="Only count parameters (no FLOPs, no timing).")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    default=None,
    help=(
        "Write all figures as JSON (keys params, params_without_text_encoder, results...); "
        "- for stdout (the tables then go to stderr)."
    ),
)
@device_option
@click.option("--batch-size", type=BoundedInt(1, "MAX_BATCH_SIZE"), default=1, show_default=True)
@click.option(
    "--runs",
    type=BoundedInt(0, "MAX_BENCH_RUNS"),
    default=5,
    show_default=True,
    help="Timed runs per resolution (median reported); 0 = no latency, FLOPs only.",
)
@click.option(
    "--warmup",
    type=BoundedInt(0, "MAX_BENCH_RUNS"),
    default=2,
    show_default=True,
    help="Untimed runs first.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 1024),
    default=None,
    help="torch CPU threads (default: torch's choice).",
)
@click.option(
    "--flops/--no-flops",
    default=True,
    show_default=True,
    help="Count forward FLOPs per resolution.",
)
@click.option(
    "--input",
    "input_kind",
    type=click.Choice(["synthetic", "noise"]),
    default="synthetic",
    show_default=True,
    help="Synthetic text scene resized to the resolution, or uniform noise.",
)
@click.option(
    "--recipe",
    default=None,
    help="Recipe whose architecture options, normalisation and postprocess params to use (default: the plugin's).",
)
@click.option(
    "--weights",
    default=None,
    help="Measure this checkpoint (folder, file or hf://org/repo) instead of random weights.",
)
@click.option(
    "--compare-tcm",
    is_flag=True,
    help="Measure the plain detector and its TCM variant, interleaved; report tcm_latency_ratio.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@tcm_options
def bench(
    plugin: str,
    backbone: str | None,
    resolutions: str,
    params_only: bool,
    json_out: str | None,
    device: str,
    batch_size: int,
    runs: int,
    warmup: int,
    threads: int | None,
    flops: bool,
    input_kind: str,
    recipe: str | None,
    weights: str | None,
    compare_tcm: bool,
    progress: bool,
    tcm: Any,
) -> None:
    """Parameters, GFLOPs, latency and images/s of a detector, as a
    markdown table (random weights unless --weights; nothing downloads).

    \b
    Examples:
      tcmbench bench --plugin dbnet --backbone resnet50 --params-only --json r50.json
      tcmbench bench --plugin dbnet --tcm --params-only
      tcmbench bench --plugin dbnet --backbone resnet18 --resolution 640,1024 --device cpu
      tcmbench bench --plugin dbnet --resolution 1280x800 --runs 0
      tcmbench bench --plugin dbnet --compare-tcm --resolution 640,1024 --json ratio.json
    """
    from tcmbench.inference.profiling import parse_resolutions

    try:
        sizes = parse_resolutions(resolutions)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--resolution") from None
    if weights and (compare_tcm or backbone):
        raise click.UsageError("--weights measures one checkpoint; drop --backbone / --compare-tcm")
    if backbone and tcm is not None and not compare_tcm:
        raise click.UsageError(
            "--backbone has no effect with --tcm (TCM's backbone is CLIP RN50); add --compare-tcm "
            "to also measure the plain detector with that backbone"
        )
    if compare_tcm and runs == 0 and not params_only:
        raise click.UsageError("--compare-tcm compares latency; --runs must be >= 1")
    from tcmbench.commands._announce import announce_start

    announce_start("bench", f"{plugin}{' (TCM)' if tcm else ''} at {resolutions}")
    import torch

    from tcmbench.contract.registry import get_detector
    from tcmbench.inference import profiling
    from tcmbench.inference.world import resolve_device

    dev = resolve_device(device)  # CUDA asked for without CUDA: a clear error, exit 2
    if threads:
        torch.set_num_threads(threads)
    names = [p.strip() for p in plugin.split(",") if p.strip()]
    if not names:
        raise click.BadParameter("name at least one plugin", param_hint="--plugin")
    if len(names) > 1 and not compare_tcm:
        raise click.UsageError("several plugins are measured side by side only with --compare-tcm")
    # plugin -> (plain label, TCM label) when comparing; all models in one dict
    # so that every resolution times them interleaved, in one run.
    models: dict[str, BenchModel] = {}
    pairs: dict[str, list[str]] = {}
    for name in names:
        spec = get_detector(name)
        require_tcm_support(spec, tcm)
        if recipe:
            spec.require_recipe(recipe)
        built = _models(
            spec,
            recipe,
            weights,
            backbone,
            _tcm_for(spec, recipe, tcm, compare_tcm),
            compare_tcm,
            dev,
        )
        pairs[name] = list(built)
        models.update(built)
    entries = [
        {
            "model": label,
            "tcm": bm.config.tcm is not None,
            "architecture": bm.config.to_dict(),
            **profiling.parameter_counts(bm.model),
            "results": [],
        }
        for label, bm in models.items()
    ]
    by_label = {e["model"]: e for e in entries}
    # plugin -> resolution -> ratio; fastest runs too: robust when other jobs share the machine
    ratios: dict[str, dict[str, float]] = {name: {} for name in names}
    ratios_min: dict[str, dict[str, float]] = {name: {} for name in names}
    if not params_only:
        for size in sizes:
            per_model = _measure_resolution(
                models, size, dev, batch_size, input_kind, flops, warmup, runs, progress
            )
            for entry in entries:
                entry["results"].append(per_model[entry["model"]])
            if compare_tcm:
                for name, (plain_label, tcm_label) in pairs.items():
                    plain, with_tcm = per_model[plain_label], per_model[tcm_label]
                    ratios[name][size.label] = with_tcm["latency_ms"] / plain["latency_ms"]
                    ratios_min[name][size.label] = (
                        with_tcm["latency_ms_min"] / plain["latency_ms_min"]
                    )

    doc: dict[str, Any] = {
        "plugin": plugin,
        "weights": weights,
        "random_weights": weights is None,
        "params_only": params_only,
        "input": input_kind,
        "batch_size": batch_size,
        "runs": runs,
        "warmup": warmup,
        "environment": profiling.environment(dev),
    }
    if compare_tcm:
        doc["models"] = entries
        if len(names) > 1:
            doc["plugin"] = names
            if not params_only:
                doc["tcm_latency_ratio_by_plugin"] = ratios
                doc["tcm_latency_ratio_min_by_plugin"] = ratios_min
        elif not params_only:
            doc["tcm_latency_ratio"] = ratios[names[0]]
            doc["tcm_latency_ratio_min"] = ratios_min[names[0]]
    else:
        doc.update(entries[0])

    from tcmbench.safety.paths import is_stdout, write_report

    to_err = is_stdout(json_out)  # stdout then carries the JSON alone
    click.echo(markdown_params(entries), err=to_err)
    if not params_only:
        click.echo("", err=to_err)
        click.echo(markdown_results(entries), err=to_err)
        if compare_tcm:
            click.echo("", err=to_err)
            click.echo(markdown_ratio(pairs, by_label, ratios, ratios_min), err=to_err)
        env = doc["environment"]
        timing = timing_note(runs, warmup)
        click.echo(
            f"\n{env.get('gpu') or env['cpu']} ({env['device']}, {env['threads']} threads), "
            f"batch {batch_size}, {timing}",
            err=True,
        )
    if json_out:
        write_report(json_out, json.dumps(doc, indent=2, default=str) + "\n")


def _tcm_for(spec: Any, recipe_name: str | None, tcm: Any, compare_tcm: bool) -> Any:
    """The TCM configuration to build for ``spec``: ``--tcm``'s (a copy per
    plugin), or random-weight defaults for ``--compare-tcm``; like ``train``,
    the context length (without --tcm-context) and the CLIP grid come from
    the plugin's recipe (4 tokens, 32 for CTW1500 / Total-Text; PAN 736)."""
    import copy

    from tcmbench.contract.spec import TCMConfig

    if tcm is None:
        if not compare_tcm:
            return None
        tcm = TCMConfig(clip_pretrained=None)
    tcm = copy.deepcopy(tcm)
    recipe_tcm = spec.recipe(recipe_name).get("tcm") or {}
    if tcm.context_length != 0 and _defaulted("tcm_context"):
        tcm.context_length = int(recipe_tcm.get("context_length", 4))
    if tcm.input_resolution is None and recipe_tcm.get("input_resolution"):
        tcm.input_resolution = int(recipe_tcm["input_resolution"])
    return tcm


def _defaulted(param: str) -> bool:
    """Whether the user left option ``param`` at its default."""
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    return ctx is None or ctx.get_parameter_source(param) in (None, ParameterSource.DEFAULT)


@dataclass
class BenchModel:
    """A model to measure, with its architecture and the recipe giving its
    normalisation and postprocess parameters."""

    model: Any
    config: Any
    recipe: dict[str, Any]


def _models(
    spec: Any,
    recipe_name: str | None,
    weights: str | None,
    backbone: str | None,
    tcm: Any,
    compare_tcm: bool,
    dev: Any,
) -> dict[str, BenchModel]:
    """label -> model: the checkpoint, or random-weight builds (the plain
    detector and / or its TCM variant)."""
    from tcmbench.contract.spec import TCMConfig

    base_recipe = spec.recipe(recipe_name)
    if weights:
        from tcmbench.hub.checkpoints import load_checkpoint

        ckpt = load_checkpoint(
            weights, device=str(dev), plugin=spec.name, expect_tcm=True if tcm is not None else None
        )
        from tcmbench.inference.settings import resolve_test_recipe

        # The settings evaluate and predict run this checkpoint with.
        ck_recipe = resolve_test_recipe(spec, ckpt.meta.get("recipe"), recipe_name).recipe
        named = (ckpt.meta.get("architecture") or {}).get("backbone")
        label = model_label(spec, ckpt.config, named)
        return {label: BenchModel(ckpt.model, ckpt.config, ck_recipe)}
    plain_backbone = backbone or default_backbone(spec, base_recipe)
    if compare_tcm:
        wanted = [None, tcm if tcm is not None else TCMConfig(clip_pretrained=None)]
    else:
        wanted = [tcm]
    models: dict[str, BenchModel] = {}
    for tcm_cfg in wanted:
        what = f"{spec.name}{' with TCM' if tcm_cfg is not None else ''}"
        click.echo(f"building {what} (random weights)...", err=True)
        model, config = build_for_bench(spec, base_recipe, plain_backbone, tcm_cfg)
        models[model_label(spec, config, plain_backbone)] = BenchModel(
            model.to(dev).eval(), config, recipe_for_model(base_recipe, config)
        )
    return models


def _measure_resolution(
    models: dict[str, BenchModel],
    size: Any,
    dev: Any,
    batch_size: int,
    input_kind: str,
    flops: bool,
    warmup: int,
    runs: int,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """FLOPs and (interleaved) latency of every model at one resolution."""
    from tcmbench.data.transforms import normalization
    from tcmbench.inference import postprocessor_for, profiling

    per_model: dict[str, dict[str, Any]] = {}
    batches: dict[str, Any] = {}
    for name, bm in models.items():
        row: dict[str, Any] = {"resolution": size.label, "width": size.width, "height": size.height}
        mean, std = normalization(bm.recipe)
        batches[name] = profiling.bench_batch(
            size.height, size.width, batch_size, mean=mean, std=std, device=dev, kind=input_kind
        )
        if flops:
            f = profiling.measure_flops(bm.model, size.height, size.width, dev, batches[name][0])
            row.update(gflops=f / 1e9, gmacs=f / 2e9)
        per_model[name] = row
    if runs:
        timings = profiling.compare_latency(
            {n: bm.model for n, bm in models.items()},
            batches,
            device=dev,
            warmup=warmup,
            runs=runs,
            postprocessors={n: postprocessor_for(bm.model, bm.recipe) for n, bm in models.items()},
            progress=progress,
            desc=f"bench {size.label}",
        )
        for name in models:
            per_model[name].update(timings[name])
    return per_model
