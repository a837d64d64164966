"""``tcmbench score``: score prediction files with an official protocol.

Reads the ground truth and the predictions as the official scripts take
them (RRC zips, curved-text zips or folders, the Total-Text DetEval inputs,
tcmbench JSON), scores them with :func:`tcmbench.eval.evaluate` and prints a
markdown table. Imports stay lazy and torch-free: the whole process must be
no slower than the official script it replaces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def _parse_params(items: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--param")
        out[key.strip()] = value.strip()
    return out


def _fmt(value: Any) -> str:
    return "" if value is None else f"{float(value):.4f}"


def markdown_table(result: Any) -> str:
    """The official figures as a markdown table, then the counts, then the
    sweep (if any) under its own heading."""
    cols = [("precision", result.precision), ("recall", result.recall), ("hmean", result.hmean)]
    if result.ap is not None:
        cols.append(("AP", result.ap))
    if result.tiou_precision is not None and result.protocol != "tiou":
        cols += [
            ("TIoU precision", result.tiou_precision),
            ("TIoU recall", result.tiou_recall),
            ("TIoU hmean", result.tiou_hmean),
        ]
    lines = [
        "| protocol | " + " | ".join(name for name, _ in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
        f"| {result.protocol} | " + " | ".join(_fmt(v) for _, v in cols) + " |",
    ]
    extra = result.extra
    counts = []
    for key, label in (
        ("num_images", "images"),
        ("images_scored", "images scored"),
        ("num_gt_care", "care GT"),
        ("num_gt", "GT"),
        ("num_det_care", "care detections"),
        ("num_det", "detections"),
        ("num_matched", "matched"),
        ("images_without_predictions", "images without a prediction file"),
    ):
        if key in extra:
            counts.append(f"{label} {extra[key]}")
    if counts:
        lines += ["", ", ".join(counts)]
    if "iou05" in extra:
        iou = extra["iou05"]
        lines += [
            "",
            (
                f"IoU 0.5 figures: precision {_fmt(iou['precision'])}, "
                f"recall {_fmt(iou['recall'])}, hmean {_fmt(iou['hmean'])}"
            ),
        ]
    sweep = result.sweep
    if sweep:
        lines += [
            "",
            f"Best-threshold sweep ({sweep['label']}):",
            "",
            "| score >= | precision | recall | hmean |",
            "|---|---|---|---|",
        ]
        for t, p, r, h in zip(
            sweep["thresholds"], sweep["precision"], sweep["recall"], sweep["hmean"]
        ):
            mark = " (best)" if t == sweep["best_threshold"] else ""
            lines.append(f"| {t:.1f}{mark} | {_fmt(p)} | {_fmt(r)} | {_fmt(h)} |")
    return "\n".join(lines)


class ProtocolOption(click.Option):
    """``--protocol``, whose help lists the protocols installed when the help
    is shown (built-ins and every plugin's), not a list written beside the
    option that forgets an installed plugin's protocol."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from tcmbench.plugins import protocols

        names = ", ".join(sorted(protocols()))
        self.help = f"Protocol name ({names}). Default: the --dataset's."
        return super().get_help_record(ctx)


@click.command()
@click.option("--protocol", "-p", "protocol", cls=ProtocolOption, default=None)
@click.option(
    "--gt",
    "gt_path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Ground truth: a zip, a folder or a file, as distributed.",
)
@click.option(
    "--pred",
    "pred_path",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Predictions: a zip or folder of result files, or a tcmbench JSON file.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the result as one JSON object (- for stdout; the table then goes to stderr).",
)
@click.option(
    "--per-image",
    "per_image_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write per-image details as JSON lines (- for stdout).",
)
@click.option(
    "--sweep",
    is_flag=True,
    help="Add mmocr's best score-threshold sweep (0.3..0.9), labelled, apart from the official figure.",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Protocol parameter, repeatable (e.g. confidences=true, validate=false).",
)
@click.option(
    "--pred-order",
    type=click.Choice(["xy", "yx"]),
    default=None,
    help="Point order in polygon result files (totaltext-deteval defaults to yx, as Deteval.py).",
)
@click.option(
    "--pred-format",
    type=click.Choice(["auto", "rrc", "rrc-ltrb", "polygon", "polygon-yx", "mat", "json"]),
    default=None,
    help="Prediction file style (default: the protocol's official one).",
)
@click.option(
    "--gt-format", default=None, help="Ground-truth format (default: from the protocol / dataset)."
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
    "--skip-invalid", is_flag=True, help="Skip malformed lines (counted) instead of stopping."
)
def score(
    protocol: str | None,
    gt_path: Path | None,
    pred_path: Path,
    json_out: Path | None,
    per_image_out: Path | None,
    sweep: bool,
    params: tuple[str, ...],
    pred_order: str | None,
    pred_format: str | None,
    gt_format: str | None,
    dataset: str | None,
    split: str,
    data_root: str | None,
    skip_invalid: bool,
) -> None:
    """Score prediction files against ground truth with an official protocol.

    Prints a markdown table of the official figures (and the TIoU / AP
    figures where the protocol defines them).
    """
    import os
    import sys

    if "numpy" not in sys.modules:
        # Scoring does no linear algebra: one BLAS thread spares numpy's
        # import the start of a thread pool (one thread per core: 10 ms and
        # more of a run that takes a few hundred). A value the user set wins.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from tcmbench.errors import ProtocolError, TcmbenchError
    from tcmbench.eval.api import (
        check_params,
        evaluate,
        get_protocol_spec,
        numeric_key,
        parse_bool,
    )
    from tcmbench.eval.io import (
        PROTOCOL_INPUTS,
        guess_gt_format,
        read_ground_truth,
        read_predictions,
        scored_as_evaluated,
    )

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
    if sweep:
        if "sweep" not in spec.params:
            raise click.UsageError(f"protocol {protocol!r} has no threshold sweep")
        kwargs["sweep"] = True
    check_params(protocol, spec.params, kwargs)  # a typo fails before any file is read
    if per_image_out is None and "details" in spec.params and "details" not in kwargs:
        kwargs["details"] = False  # per-image matches are only written with --per-image
    confidences = parse_bool(kwargs.get("confidences", False), "confidences", protocol)

    # Ground truth.
    if gt_path is not None:
        fmt = (
            gt_format
            or (cfg.format if cfg is not None else None)
            or guess_gt_format(gt_path, protocol)
        )
        samples, gt_report = read_ground_truth(gt_path, fmt, skip_invalid=skip_invalid)
    elif cfg is not None:
        from tcmbench.data.dataset import load_split

        samples, gt_report = load_split(
            cfg.name, split, data_root=data_root, skip_invalid=skip_invalid
        )
    else:
        raise click.UsageError("pass --gt (or --dataset to read that dataset's ground truth)")

    # Predictions.
    style = pred_format or PROTOCOL_INPUTS.get(protocol, ("auto", None))[0]
    if pred_path.is_file() and pred_path.suffix.lower() == ".json":
        style = "json"
    if pred_order is not None and style in ("polygon", "polygon-yx"):
        style = "polygon-yx" if pred_order == "yx" else "polygon"
    preds, pred_report = read_predictions(
        pred_path,
        style=style,
        confidences=confidences,
        skip_invalid=skip_invalid,
        # The RRC scripts' entry-name check, where the GT is numbered as theirs is.
        rrc_names=any(numeric_key(s.id) is not None for s in samples),
    )
    preds = scored_as_evaluated(preds, protocol)

    try:
        result = evaluate(samples, preds, protocol, **kwargs)
    except ProtocolError as exc:
        where = None
        if getattr(exc, "role", None) == "detection":
            where = preds.locate(getattr(exc, "sample_id", ""), getattr(exc, "index", -1))
        if where:
            raise ProtocolError(f"{where}: {exc}") from None
        raise
    except TcmbenchError:
        raise

    result.params["gt"] = str(gt_path) if gt_path is not None else f"{dataset}/{split}"
    result.params["pred"] = str(pred_path)
    result.params["pred_style"] = preds.style
    for report in (gt_report, pred_report):
        if report.skipped:
            click.echo(f"warning: {report.summary()}", err=True)
    from tcmbench.paths import is_stdout

    # A report on stdout keeps stdout machine-readable: the table moves to stderr.
    click.echo(markdown_table(result), err=is_stdout(json_out) or is_stdout(per_image_out))
    if json_out is not None:
        _write_json(json_out, result)
    if per_image_out is not None:
        _write_per_image(per_image_out, result)


def _write_json(path: Path, result: Any) -> None:
    import json

    from tcmbench import __version__
    from tcmbench.paths import write_report

    data = result.summary()
    data["tcmbench_version"] = __version__
    write_report(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _write_per_image(path: Path, result: Any) -> None:
    import json

    from tcmbench.paths import write_report

    lines = [json.dumps({"id": k, **v}, default=_json_default) for k, v in result.per_image.items()]
    write_report(path, "\n".join(lines) + ("\n" if lines else ""))


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
