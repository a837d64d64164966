"""``tcmbench compare RUN_A RUN_B``: is B's hmean different from A's, or noise?

Each run is scored once with the official protocol (the same readers and
``evaluate`` as ``tcmbench score``), its per-image accumulators are kept,
and :func:`tcmbench.eval.bootstrap.paired_bootstrap` resamples the images.
A run is one of:

* a prediction set as ``tcmbench score --pred`` takes it (a zip or folder
  of result files, a tcmbench JSON file);
* a folder written by ``tcmbench evaluate --save-predictions DIR`` (its
  ``submit.zip`` is read in the format ``evaluate`` wrote it);
* a per-image file written by ``tcmbench score --per-image OUT.jsonl``
  (already scored: no ground truth needed for it).

Both runs must cover the same images; see docs/compare.md for the method.
Imports stay lazy and torch-free, as for ``score``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from tcmbench.commands._options import FiniteFloat
from tcmbench.commands.score import ProtocolOption, _parse_params

#: Shown when two image sets differ.
_EXAMPLES = 3
#: Size of a ``score --per-image`` file (about 200 bytes an image without
#: match lists: millions of images fit).
MAX_PER_IMAGE_BYTES = 1 << 30


@dataclass
class _Run:
    """One side of the comparison as given on the command line."""

    label: str  # "A" / "B"
    path: Path
    kind: str  # "predictions", "evaluate-folder", "per-image"

    @property
    def name(self) -> str:
        return f"run {self.label} ({self.path})"


def classify_run(label: str, path: Path) -> _Run:
    """What ``path`` is: a per-image JSONL, an ``evaluate
    --save-predictions`` folder (it holds ``submit.zip``) or a prediction
    set."""
    if path.is_file() and path.suffix.lower() == ".jsonl":
        return _Run(label, path, "per-image")
    if path.is_dir() and (path / "submit.zip").is_file():
        return _Run(label, path, "evaluate-folder")
    return _Run(label, path, "predictions")


def _refuse_reports(run: _Run) -> None:
    """A ``--json`` summary passed as predictions: say what to pass instead
    (the JSON reader would only say that a value is not a list). An evaluate
    folder's ``predictions.json`` is accepted: it is scored as its
    ``submit.zip`` is."""
    path = run.path
    if not (path.is_file() and path.suffix.lower() == ".json"):
        return
    try:
        if path.stat().st_size > 1 << 20:
            return  # a summary is small; a large file is predictions
        import json

        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return  # the predictions reader reports what is wrong with it
    from tcmbench.errors import ProtocolError

    if isinstance(data, dict) and "hmean" in data and "protocol" in data:
        raise ProtocolError(
            f"{run.name}: an evaluation summary (--json) without per-image results; pass the "
            f"run's predictions (evaluate --save-predictions DIR) or its per-image file "
            f"(score --per-image OUT.jsonl)"
        )


def _submission_style(protocol: str) -> str:
    """The format ``evaluate --save-predictions`` writes ``submit.zip`` in
    for ``protocol`` (tcmbench/eval/submission.py; curved-text polygons are x,y,
    y,x for totaltext-deteval as Deteval.py reads them)."""
    rrc_quads = {"icdar2015", "msra-td500"}
    rrc_ltrb = {"icdar2013", "icdar2013-deteval"}
    if protocol in rrc_quads:
        return "rrc"
    if protocol in rrc_ltrb:
        return "rrc-ltrb"
    return "polygon-yx" if protocol == "totaltext-deteval" else "polygon"


def _check_same_images(a: _Run, ids_a: set[str], b: _Run, ids_b: set[str], what: str) -> None:
    """One line naming the counts and a few examples when the runs' image
    sets differ: the bootstrap pairs images, so both must have each one."""
    if ids_a == ids_b:
        return
    from tcmbench.data.schema import natural_key
    from tcmbench.errors import ProtocolError

    def examples(ids: set[str]) -> str:
        shown = sorted(ids, key=natural_key)[:_EXAMPLES]
        return ", ".join(shown) + (" ..." if len(ids) > _EXAMPLES else "") if ids else "none"

    only_a, only_b = ids_a - ids_b, ids_b - ids_a
    raise ProtocolError(
        f"runs A and B do not cover the same images ({what}): A ({a.path}) has "
        f"{len(ids_a)}, B ({b.path}) has {len(ids_b)}; {len(only_a)} only in A "
        f"({examples(only_a)}), {len(only_b)} only in B ({examples(only_b)}); compare pairs the "
        f"images of one split"
    )


def read_per_image_file(run: _Run, tiou: bool) -> Any:
    """:class:`~tcmbench.eval.bootstrap.Accumulators` of a ``score
    --per-image`` JSONL file; a bad line is an error naming the file and
    line."""
    import numpy as np

    from tcmbench.data.source import JsonInputError, parse_json
    from tcmbench.errors import AnnotationFormatError, ProtocolError
    from tcmbench.eval.bootstrap import Accumulators, entry_accumulators

    expected = (
        "one JSON object a line as tcmbench score --per-image writes it "
        '({"id": ..., "num_gt_care": ..., "num_det_care": ..., "num_matched" or '
        '"recall_credit"/"precision_credit": ...})'
    )
    location = str(run.path)
    try:
        if run.path.stat().st_size > MAX_PER_IMAGE_BYTES:
            raise ProtocolError(
                f"{run.name}: over the {MAX_PER_IMAGE_BYTES >> 20} MiB limit of a per-image file"
            )
        text = run.path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationFormatError(location, None, expected, f"not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise ProtocolError(f"{run.name}: cannot read: {exc.strerror or exc}") from None
    ids: list[str] = []
    rows: list[tuple[float, ...]] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = parse_json(line)
        except JsonInputError as exc:
            raise AnnotationFormatError(location, lineno, expected, exc.detail) from None
        if not isinstance(record, dict):
            raise AnnotationFormatError(
                location, lineno, expected, f"a {type(record).__name__}, not an object"
            )
        sid = record.get("id")
        if not isinstance(sid, str) or not sid:
            raise AnnotationFormatError(location, lineno, expected, "no string 'id'")
        if sid in seen:
            raise AnnotationFormatError(location, lineno, expected, f"image {sid!r} again")
        try:  # counts checked: integers, finite, matches <= care GTs / detections
            rows.append(entry_accumulators(record, tiou, image=sid))
        except ValueError as exc:
            raise AnnotationFormatError(location, lineno, expected, str(exc)) from None
        seen.add(sid)
        ids.append(sid)
    if not ids:
        raise ProtocolError(f"{run.name}: no per-image records")
    m = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return Accumulators(tuple(ids), m[:, 0], m[:, 1], m[:, 2], m[:, 3])


def _fmt(value: float) -> str:
    return f"{value:.4f}"


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def _p(value: float, resamples: int) -> str:
    floor = 1.0 / (resamples + 1)
    if value <= floor * (1 + 1e-9):
        return f"<= {floor:.2g}"
    return f"{value:.4f}"


def markdown_report(protocol: str, boot: Any, run_a: _Run, run_b: _Run) -> str:
    """The comparison as a markdown table, a line on the method and a
    plain-words reading of the hmean interval."""
    level = f"{boot.confidence * 100:g}%"
    lines = [
        f"| {protocol} | A | B | B - A | {level} CI | p |",
        "|---|---|---|---|---|---|",
    ]
    for m in boot.metrics.values():
        lines.append(
            f"| {m.name} | {_fmt(m.a)} | {_fmt(m.b)} | {_signed(m.delta)} | "
            f"[{_signed(m.ci_low)}, {_signed(m.ci_high)}] | {_p(m.p_value, boot.resamples)} |"
        )
    h = boot.metrics["hmean"]
    if h.ci_low > 0 or h.ci_high < 0:
        verdict = (
            f"the {level} interval of the hmean difference excludes 0: a difference of this size "
            f"is unlikely to come from which test images were drawn"
        )
    else:
        verdict = (
            f"the {level} interval of the hmean difference contains 0: it cannot be told from "
            f"image-sampling noise"
        )
    lines += [
        "",
        f"A: {run_a.path}; B: {run_b.path}",
        (
            f"{boot.images} images, paired bootstrap over images, {boot.resamples} resamples, "
            f"seed {boot.seed}; percentile interval; p: two-sided, H0 difference = 0 "
            f"(shift method, see docs/compare.md)"
        ),
        verdict + " (training-seed variance is not included).",
    ]
    return "\n".join(lines)


@click.command()
@click.argument("run_a", type=click.Path(exists=True, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, path_type=Path))
@click.option("--protocol", "-p", "protocol", cls=ProtocolOption, default=None)
@click.option(
    "--gt",
    "gt_path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Ground truth: a zip, a folder or a file, as distributed.",
)
@click.option(
    "--dataset",
    default=None,
    help="A dataset of datasets_cfg: its default protocol and GT format (and its GT when --gt is left out).",
)
@click.option(
    "--split",
    default="test",
    show_default=True,
    help="Split of --dataset to read when --gt is left out.",
)
@click.option(
    "--data-root", default=None, help="Where --dataset's files are (default: its usual places)."
)
@click.option(
    "--gt-format", default=None, help="Ground-truth format (default: from the protocol / dataset)."
)
@click.option(
    "--pred-format",
    type=click.Choice(["auto", "rrc", "rrc-ltrb", "polygon", "polygon-yx", "mat", "json"]),
    default=None,
    help=(
        "Prediction file style of both runs (default: the protocol's official one; for an "
        "evaluate --save-predictions folder, the format evaluate wrote)."
    ),
)
@click.option(
    "--pred-order",
    type=click.Choice(["xy", "yx"]),
    default=None,
    help="Point order in polygon result files (totaltext-deteval defaults to yx, as Deteval.py).",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Protocol parameter, repeatable (e.g. confidences=true); the same for both runs.",
)
@click.option(
    "--resamples",
    type=click.IntRange(1, 1_000_000),
    default=10_000,
    show_default=True,
    help="Bootstrap resamples.",
)
@click.option(
    "--confidence",
    type=FiniteFloat(0.0, 1.0, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Confidence level of the percentile interval.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=0,
    show_default=True,
    help="Seed of the resampling (numpy default_rng): same seed, same figures.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the comparison as one JSON object (- for stdout; the table then goes to stderr).",
)
@click.option(
    "--skip-invalid", is_flag=True, help="Skip malformed lines (counted) instead of stopping."
)
def compare(
    run_a: Path,
    run_b: Path,
    protocol: str | None,
    gt_path: Path | None,
    dataset: str | None,
    split: str,
    data_root: str | None,
    gt_format: str | None,
    pred_format: str | None,
    pred_order: str | None,
    params: tuple[str, ...],
    resamples: int,
    confidence: float,
    seed: int,
    json_out: Path | None,
    skip_invalid: bool,
) -> None:
    """Compare two runs on the same split: hmean B - A with a paired
    bootstrap over images (confidence interval and p-value).

    RUN_A / RUN_B: prediction sets as `score --pred` takes them, folders
    written by `evaluate --save-predictions`, or `score --per-image` JSONL
    files. Prediction sets are scored against --gt (or --dataset's ground
    truth) with --protocol, once each. Prints a markdown table of precision,
    recall and hmean of A and B, B - A, its interval and p-value.
    """
    import time

    from tcmbench.errors import ProtocolError
    from tcmbench.eval.api import check_params, get_protocol_spec, parse_bool
    from tcmbench.eval.bootstrap import paired_bootstrap

    runs = [classify_run("A", run_a), classify_run("B", run_b)]
    cfg = None
    if dataset is not None:
        from tcmbench.data.dataset import get_dataset_config

        cfg = get_dataset_config(dataset)
        protocol = protocol or cfg.protocol
    if protocol is None:
        raise click.UsageError(
            "pass --protocol, or --dataset to use the dataset's default protocol"
        )
    spec = get_protocol_spec(protocol)
    kwargs: dict[str, Any] = dict(_parse_params(params))
    for key in ("sweep", "details"):
        if key in kwargs:
            raise click.UsageError(
                f"--param {key} is set by compare (it scores the official figures)"
            )
    check_params(protocol, spec.params, kwargs)
    if "details" in spec.params:
        # The IoU family writes per-image counts only with details; the
        # DetEval family keeps them without (and skips the match lists).
        kwargs["details"] = protocol not in _DETEVAL_FAMILY
    confidences = parse_bool(kwargs.get("confidences", False), "confidences", protocol)
    for run in runs:
        _refuse_reports(run)

    started = time.perf_counter()
    scored = [r for r in runs if r.kind != "per-image"]
    samples: Any = None
    gt_label = None
    if scored:
        samples, gt_label = _read_gt(
            protocol, gt_path, gt_format, cfg, dataset, split, data_root, skip_invalid
        )
    # Read both prediction sets, then check they name the same images
    # before scoring anything.
    preds: dict[str, Any] = {}
    for run in scored:
        preds[run.label] = _read_run_predictions(
            run, protocol, pred_format, pred_order, confidences, skip_invalid
        )
    if len(scored) == 2:
        from tcmbench.eval.api import gt_mapping, match_prediction_ids

        gt_map = gt_mapping(samples)
        keys = {}
        for run in scored:
            try:
                keys[run.label] = set(match_prediction_ids(gt_map, preds[run.label], protocol))
            except ProtocolError as exc:
                raise ProtocolError(f"{run.name}: {exc}") from None
        _check_same_images(runs[0], keys["A"], runs[1], keys["B"], "prediction files")

    tiou = protocol == "tiou"
    accs: dict[str, Any] = {}
    figures: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.kind == "per-image":
            accs[run.label] = read_per_image_file(run, tiou)
            p_, r_, h_ = accs[run.label].figures()
            figures[run.label] = {"precision": p_, "recall": r_, "hmean": h_}
            continue
        result = _score(run, samples, preds[run.label], protocol, kwargs)
        from tcmbench.eval.bootstrap import accumulators_from_result

        accs[run.label] = accumulators_from_result(result, source=run.name)
        figures[run.label] = {
            "precision": result.precision,
            "recall": result.recall,
            "hmean": result.hmean,
            **{k: v for k, v in result.extra.items() if k.startswith(("num_", "images"))},
        }
    scoring_s = time.perf_counter() - started
    _check_same_images(runs[0], set(accs["A"].ids), runs[1], set(accs["B"].ids), "images resampled")

    started = time.perf_counter()
    boot = paired_bootstrap(
        accs["A"], accs["B"], resamples=resamples, confidence=confidence, seed=seed
    )
    bootstrap_s = time.perf_counter() - started

    from tcmbench.safety.paths import is_stdout

    click.echo(markdown_report(protocol, boot, runs[0], runs[1]), err=is_stdout(json_out))
    if json_out is not None:
        _write_json(
            json_out,
            {
                "protocol": protocol,
                "params": {k: v for k, v in kwargs.items() if k != "details"},
                "gt": gt_label,
                "run_a": {"path": str(runs[0].path), "kind": runs[0].kind, **figures["A"]},
                "run_b": {"path": str(runs[1].path), "kind": runs[1].kind, **figures["B"]},
                **boot.as_dict(),
                "seconds": {"scoring": round(scoring_s, 3), "bootstrap": round(bootstrap_s, 3)},
            },
        )


_DETEVAL_FAMILY = frozenset({"totaltext-deteval", "icdar2013", "icdar2013-deteval"})


def _read_gt(
    protocol: str,
    gt_path: Path | None,
    gt_format: str | None,
    cfg: Any,
    dataset: str | None,
    split: str,
    data_root: str | None,
    skip_invalid: bool,
) -> tuple[Any, str]:
    """The ground truth as ``tcmbench score`` reads it, and its label."""
    from tcmbench.eval.io import guess_gt_format, read_ground_truth

    if gt_path is not None:
        fmt = (
            gt_format
            or (cfg.format if cfg is not None else None)
            or guess_gt_format(gt_path, protocol)
        )
        samples, report = read_ground_truth(gt_path, fmt, skip_invalid=skip_invalid)
        label = str(gt_path)
    elif cfg is not None:
        from tcmbench.data.dataset import load_split

        samples, report = load_split(
            cfg.name, split, data_root=data_root, skip_invalid=skip_invalid
        )
        label = f"{dataset}/{split}"
    else:
        raise click.UsageError(
            "pass --gt (or --dataset to read that dataset's ground truth) to score prediction sets"
        )
    if report.skipped:
        click.echo(f"warning: {report.summary()}", err=True)
    return samples, label


def _read_run_predictions(
    run: _Run,
    protocol: str,
    pred_format: str | None,
    pred_order: str | None,
    confidences: bool,
    skip_invalid: bool,
) -> Any:
    """A run's predictions with the readers of ``tcmbench score``."""
    from tcmbench.eval.io import PROTOCOL_INPUTS, read_predictions, scored_as_evaluated

    path = run.path
    if run.kind == "evaluate-folder":
        path = run.path / "submit.zip"
        style = pred_format or _submission_style(protocol)
    else:
        style = pred_format or PROTOCOL_INPUTS.get(protocol, ("auto", None))[0]
        if path.is_file() and path.suffix.lower() == ".json":
            style = "json"
    if pred_order is not None and style in ("polygon", "polygon-yx"):
        style = "polygon-yx" if pred_order == "yx" else "polygon"
    preds, report = read_predictions(
        path, style=style, confidences=confidences, skip_invalid=skip_invalid
    )
    if report.skipped:
        click.echo(f"warning: {run.name}: {report.summary()}", err=True)
    return scored_as_evaluated(preds, protocol)


def _score(run: _Run, samples: Any, preds: Any, protocol: str, kwargs: dict[str, Any]) -> Any:
    """The run scored with the protocol; a detection the protocol refuses is
    named by file and line, as ``tcmbench score`` does."""
    from tcmbench.errors import ProtocolError
    from tcmbench.eval.api import evaluate

    try:
        return evaluate(samples, preds, protocol, **kwargs)
    except ProtocolError as exc:
        where = None
        if getattr(exc, "role", None) == "detection":
            where = preds.locate(getattr(exc, "sample_id", ""), getattr(exc, "index", -1))
        raise ProtocolError(f"{run.name}: {where + ': ' if where else ''}{exc}") from None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    import json

    from tcmbench import __version__
    from tcmbench.safety.paths import write_report

    data = {**data, "tcmbench_version": __version__}
    write_report(path, json.dumps(data, indent=2) + "\n")
