"""``tcmbench predict``: detect text in images, draw the polygons.

Writes, into ``--out``: one PNG per image with the predicted polygons (red)
and their scores drawn, and ``predictions.json`` with every polygon and
score in original-image pixel coordinates. With ``--tcm --show-prompts``
also ``<id>_prompts.png``: [image | image embedding | visual prompt]
heatmaps (TCM paper Fig. 7).

Inference goes through :func:`tcmbench.inference.predict_samples`, the code
``evaluate`` uses, so the test-time resize and postprocessing are exactly
those of an evaluation with the same recipe.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from tcmbench.commands._options import BoundedInt, device_option, require_tcm_support, tcm_options

log = logging.getLogger(__name__)

PREDICTIONS_NAME = "predictions.json"


def collect_images(
    inputs: Iterable[str], recursive: bool = False, exclude: Path | None = None
) -> list[Path]:
    """Image files named by ``inputs`` (files, or folders whose images of a
    supported type are taken in sorted order; other files in a folder are
    skipped, and so is anything under ``exclude``: the output folder, whose
    PNGs must not become inputs of the next run). A missing path, a named
    file of an unsupported type, or a folder without images is an
    :class:`ImageReadError` naming it."""
    from tcmbench.data.torch_data import SUPPORTED_IMAGE_SUFFIXES, check_image_type
    from tcmbench.errors import ImageReadError

    found: list[Path] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            pattern = path.rglob("*") if recursive else path.iterdir()
            files = sorted(
                p
                for p in pattern
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_IMAGE_SUFFIXES
                and not p.name.startswith(".")
                and not _inside(p, exclude)
            )
            if not files:
                raise ImageReadError(
                    f"{path}: no images{' (searched recursively)' if recursive else ''}; supported types: "
                    f"{', '.join(sorted(SUPPORTED_IMAGE_SUFFIXES))}"
                    + ("" if recursive else " (use --recursive for sub-folders)")
                )
            found.extend(files)
        elif path.exists():
            check_image_type(path)
            found.append(path)
        else:
            raise ImageReadError(f"image not found: {path}")
    unique: list[Path] = []
    seen: set[Path] = set()
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    return path.resolve().is_relative_to(folder.resolve())


def image_ids(paths: Sequence[Path]) -> list[str]:
    """One output name per image: the file stem, made unique when two
    inputs share a stem (``a.jpg``, ``a.png`` -> ``a``, ``a_png``)."""
    ids: list[str] = []
    taken: set[str] = set()
    for p in paths:
        candidate = p.stem
        if candidate in taken:
            candidate = f"{p.stem}_{p.suffix.lstrip('.').lower()}"
        base, n = candidate, 2
        while candidate in taken:
            candidate = f"{base}_{n}"
            n += 1
        taken.add(candidate)
        ids.append(candidate)
    return ids


def resolve_default_weights(spec: Any) -> str:
    """The plugin's embedded checkpoint, or a CheckpointError saying what to pass."""
    from tcmbench.errors import CheckpointError
    from tcmbench.hub.checkpoints import embedded_weights

    if spec.load_weights is not None:
        raise click.UsageError(
            f"plugin {spec.name!r} runs finished models: pass --weights (docs/onnx.md)"
        )
    found = embedded_weights(spec)
    if found is None:
        raise CheckpointError(
            f"plugin {spec.name!r} ships no default weights (no weights/ folder with config.json and "
            "model.safetensors in its package); pass --weights DIR|FILE|hf://org/repo, or train some "
            f"with `tcmbench train --plugin {spec.name} --dataset synthtext-mini`"
        )
    return str(found)


def image_record(
    sample_id: str, path: Path, height: int, width: int, predictions: Sequence[Any]
) -> dict[str, Any]:
    """One image's entry of predictions.json: polygons as [[x, y], ...] in
    original-image pixels, scores in [0, 1] (None when the detector gives none)."""
    return {
        "id": sample_id,
        "file": str(path),
        "width": int(width),
        "height": int(height),
        "predictions": [
            {
                "polygon": [[float(x), float(y)] for x, y in p.polygon.reshape(-1, 2)],
                "score": None if p.score is None else float(p.score),
            }
            for p in predictions
        ],
    }


def predictions_json(doc: dict[str, Any]) -> str:
    """The document as JSON, indented for reading but one line per image
    (a polygon's points spread over dozens of lines would drown the rest)."""
    head = {k: v for k, v in doc.items() if k != "images"}
    text = json.dumps(head, indent=2)[:-2]  # drop the closing "\n}"
    lines = ",\n".join("    " + json.dumps(r) for r in doc["images"])
    return (
        f'{text},\n  "images": [\n{lines}\n  ]\n}}\n'
        if doc["images"]
        else json.dumps(doc, indent=2) + "\n"
    )


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="IMAGE_OR_DIR...")
@click.option("--plugin", default="dbnet", show_default=True, help="Detector plugin.")
@click.option(
    "--weights",
    default=None,
    help="Checkpoint folder, model.safetensors or hf://org/repo[@rev] (default: the plugin's embedded weights).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the PNGs and predictions.json (created).",
)
@device_option
@click.option(
    "--recipe",
    default=None,
    help="Recipe whose test resize and postprocess settings to use (default: the checkpoint's).",
)
@click.option("--batch-size", type=BoundedInt(1, "MAX_BATCH_SIZE"), default=1, show_default=True)
@click.option("--recursive", is_flag=True, help="Also take images in sub-folders of a folder.")
@click.option(
    "--skip-unreadable",
    is_flag=True,
    help="Skip images that cannot be decoded (listed in predictions.json) instead of stopping.",
)
@click.option(
    "--draw/--no-draw",
    default=True,
    show_default=True,
    help="Write a PNG with the polygons per image.",
)
@click.option(
    "--show-prompts",
    is_flag=True,
    help="With --tcm: also write <id>_prompts.png, image-embedding and visual-prompt heatmaps.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option(
    "--runtime",
    type=click.Choice(["torch", "onnxruntime"]),
    default=None,
    help="Run the network with PyTorch (default for trainable plugins) or onnxruntime "
    "(the checkpoint exported to ONNX, or an exported .onnx; needs tcmbench[onnx]).",
)
@tcm_options
def predict(
    inputs: tuple[str, ...],
    plugin: str,
    weights: str | None,
    out_dir: str,
    device: str,
    recipe: str | None,
    batch_size: int,
    recursive: bool,
    skip_unreadable: bool,
    draw: bool,
    show_prompts: bool,
    progress: bool,
    tcm: Any,
    runtime: str | None = None,
) -> None:
    """Detect text in images (files or folders) and draw the polygons.

    Writes OUT/<id>.png per image (polygons and scores drawn) and
    OUT/predictions.json (per image: id, file, width, height, predictions
    [{polygon [[x, y], ...], score}]).

    \b
    Examples:
      tcmbench predict photo.jpg --plugin dbnet --out preds/
      tcmbench predict images/ --plugin dbnet --weights hf://org/repo --out preds/ --batch-size 4
      tcmbench predict images/ --plugin dbnet --tcm --weights runs/tcm/final --out preds/ --show-prompts
    """
    if show_prompts and tcm is None:
        raise click.UsageError(
            "--show-prompts draws TCM's prompts; it needs --tcm (and a TCM checkpoint)"
        )
    from tcmbench.commands._announce import announce_start

    announce_start("predict", f"{plugin}{' (TCM)' if tcm else ''} on {', '.join(inputs)}")
    from tcmbench.contract.registry import get_detector
    from tcmbench.data.schema import Sample
    from tcmbench.inference import predict_samples, test_settings
    from tcmbench.inference.loading import (
        load_for_inference,
        prepare_device,
        resolve_for_checkpoint,
        tag_runtime,
        weights_warnings,
    )
    from tcmbench.inference.pipeline import progress_bar
    from tcmbench.inference.settings import describe
    from tcmbench.report.visualize import draw as draw_polygons
    from tcmbench.report.visualize import save_png
    from tcmbench.safety.paths import atomic_write_text, check_destination, safe_child

    spec = get_detector(plugin)
    require_tcm_support(spec, tcm)  # the plugin, not the checkpoint, is the problem
    # CUDA asked for without CUDA: clear error before any work; torch only
    # where the network runs on it (--plugin onnx never loads it)
    dev, _ = prepare_device(spec, runtime, device)
    check_destination(out_dir, "--out")  # a file, device, FIFO or link: one line, no work
    paths = collect_images(inputs, recursive, exclude=Path(out_dir))
    if recipe:
        spec.require_recipe(recipe)
    weights = weights or resolve_default_weights(spec)
    ckpt = load_for_inference(
        weights,
        spec=spec,
        device=str(dev),
        expect_tcm=tcm is not None,  # a mismatch either way is refused, as in evaluate
        runtime=runtime,
    )
    for warning in weights_warnings(ckpt):
        click.echo(warning, err=True)
    resolved = resolve_for_checkpoint(spec, ckpt, recipe)
    click.echo(describe(resolved), err=True)
    test_recipe = tag_runtime(resolved.recipe, ckpt)
    ids = image_ids(paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    records: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    bar = progress_bar(len(paths), enabled=progress)
    from tcmbench.inference.heartbeat import Heartbeat

    def say(line: str) -> None:
        click.echo(line, err=True)

    beat = Heartbeat("predict: image", len(paths), say, enabled=not progress)
    try:
        for start in range(0, len(paths), batch_size):
            chunk = list(zip(ids[start : start + batch_size], paths[start : start + batch_size]))
            loaded = _load_images(chunk, skip_unreadable, skipped)
            if loaded:
                samples = [Sample(sid, str(p), im.shape[1], im.shape[0]) for sid, p, im in loaded]
                preds = predict_samples(
                    ckpt.model,
                    samples,
                    test_recipe,
                    dev,
                    batch_size=batch_size,
                    progress=False,
                    images={sid: im for sid, _, im in loaded},  # decoded once, drawn on too
                )
                for sid, p, image in loaded:
                    records.append(image_record(sid, p, image.shape[0], image.shape[1], preds[sid]))
                    if draw:
                        save_png(safe_child(out, f"{sid}.png"), draw_polygons(image, preds[sid]))
                    if show_prompts:
                        _save_prompts(
                            ckpt.model,
                            image,
                            test_recipe,
                            dev,
                            safe_child(out, f"{sid}_prompts.png"),
                        )
            bar.update(len(chunk))
            beat.update(min(start + batch_size, len(paths)))
    finally:
        bar.close()

    doc = {
        "plugin": plugin,
        "weights": str(weights),
        "checkpoint_sha256": ckpt.sha256,
        "tcm": ckpt.config.tcm is not None,
        "runtime": ckpt.meta.get("runtime", "torch"),
        "recipe": recipe,
        "test": test_settings(test_recipe),
        "test_settings_source": {"origin": resolved.origin, "source": resolved.source},
        "skipped": skipped,
        "images": records,
    }
    json_path = out / PREDICTIONS_NAME
    atomic_write_text(json_path, predictions_json(doc))
    total = sum(len(r["predictions"]) for r in records)
    click.echo(
        f"{len(records)} image(s), {total} text region(s); wrote {json_path}"
        + (f" and {len(records)} PNG(s)" if draw else "")
        + (f"; skipped {len(skipped)} unreadable image(s)" if skipped else ""),
        err=True,
    )


def _load_images(
    chunk: list[tuple[str, Path]], skip_unreadable: bool, skipped: list[dict[str, str]]
) -> list[tuple[str, Path, Any]]:
    """(id, path, RGB image) of each readable image; an unreadable one
    raises ImageReadError (naming it) unless ``skip_unreadable``, when it is
    recorded in ``skipped`` instead."""
    from tcmbench.data.torch_data import load_image
    from tcmbench.errors import ImageReadError

    loaded = []
    for sid, path in chunk:
        try:
            loaded.append((sid, path, load_image(path)))
        except ImageReadError as exc:
            if not skip_unreadable:
                raise
            log.warning("skipping unreadable image: %s", exc)
            skipped.append({"file": str(path), "error": str(exc)})
    return loaded


def _save_prompts(model: Any, image: Any, recipe: dict[str, Any], device: Any, path: Path) -> None:
    """[image | image embedding | visual prompt] for one image, drawn on
    the test-time input the detector sees (resized and padded; the helper
    un-normalises it), so heatmaps and image align pixel for pixel."""
    import torch

    from tcmbench.data.transforms import InferenceTransform
    from tcmbench.tcm.visualize import save_prompt_heatmaps

    transform = InferenceTransform.from_recipe(recipe)
    x, _ = transform(image)
    tensor = torch.from_numpy(x).unsqueeze(0).to(device)
    save_prompt_heatmaps(model, tensor, path, mean=transform.mean, std=transform.std)
