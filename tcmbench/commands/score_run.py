"""What ``tcmbench score`` does, without click.

:mod:`tcmbench.commands.score` declares the command's options with click
and calls :func:`run`, which imports the scoring modules only once the
command line is parsed. A usage mistake found here is a :class:`ScoreUsage`,
which the click command turns into click's usage error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Writes one message and a newline: (text, to stderr).
Echo = Callable[[str, bool], None]


class ScoreUsage(Exception):
    """A command-line mistake, found before any file is read or written;
    ``param`` names the option when one value is wrong (click's
    BadParameter), else None (click's UsageError)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def parse_params(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``--param KEY=VALUE`` values as a dict (a malformed one: ScoreUsage)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ScoreUsage(f"{item!r} is not KEY=VALUE", param="--param")
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
            (
                f"Best-threshold sweep at mmocr 0.x's thresholds, matched by {result.protocol}'s "
                "rules (not the official figure; `evaluate --sweep` gives the papers' figure, "
                "scored with mmocr-hmean-iou on the polygons as predicted):"
            ),
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


def run(
    echo: Echo,
    *,
    protocol: str | None,
    gt_path: Path | None,
    pred_path: Path,
    json_out: Path | None = None,
    per_image_out: Path | None = None,
    sweep: bool = False,
    params: tuple[str, ...] | list[str] = (),
    pred_order: str | None = None,
    pred_format: str | None = None,
    gt_format: str | None = None,
    dataset: str | None = None,
    split: str = "test",
    data_root: str | None = None,
    skip_invalid: bool = False,
    workers: int = 1,
) -> None:
    """Score ``pred_path`` against the ground truth and print the table
    through ``echo`` (the options are ``tcmbench score``'s). With
    ``workers`` > 1 (0: as many as :func:`~tcmbench.eval.workers.auto_workers`
    says) a forked process reads the predictions while this one reads the
    ground truth, and the protocol may split the images over that many
    processes (:mod:`tcmbench.eval.workers`)."""
    import os
    import sys

    if "numpy" not in sys.modules:
        # Scoring does no linear algebra: one BLAS thread spares numpy's
        # import the start of a thread pool (one thread per core: 10 ms and
        # more of a run that takes a few hundred). A value the user set wins.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from tcmbench.errors import ProtocolError, TcmbenchError
    from tcmbench.eval import workers as worker_pool
    from tcmbench.eval.api import (
        check_params,
        evaluate,
        get_protocol_spec,
        numeric_key,
        parse_bool,
    )
    from tcmbench.eval.io import (
        PROTOCOL_INPUTS,
        read_predictions,
        read_predictions_ahead,
        received_predictions,
        scored_as_evaluated,
    )

    if workers < 1:
        workers = worker_pool.auto_workers()

    cfg = None
    if dataset is not None:
        from tcmbench.data.dataset import get_dataset_config

        cfg = get_dataset_config(dataset)
        protocol = protocol or cfg.protocol
    if protocol is None:
        raise ScoreUsage("pass --protocol, or --dataset to use the dataset's default protocol")
    spec = get_protocol_spec(protocol)
    kwargs: dict[str, Any] = dict(parse_params(params))
    if sweep:
        if "sweep" not in spec.params:
            raise ScoreUsage(f"protocol {protocol!r} has no threshold sweep")
        kwargs["sweep"] = True
    check_params(protocol, spec.params, kwargs)  # a typo fails before any file is read
    if per_image_out is None and "details" in spec.params and "details" not in kwargs:
        kwargs["details"] = False  # per-image matches are only written with --per-image
    confidences = parse_bool(kwargs.get("confidences", False), "confidences", protocol)

    style = pred_format or PROTOCOL_INPUTS.get(protocol, ("auto", None))[0]
    if pred_path.is_file() and pred_path.suffix.lower() == ".json":
        style = "json"
    if pred_order is not None and style in ("polygon", "polygon-yx"):
        style = "polygon-yx" if pred_order == "yx" else "polygon"
    # The predictions are read in a forked process while this one reads the
    # ground truth (with --skip-invalid, whose warnings must not repeat, in
    # this one only).
    ahead = None
    if (
        workers > 1
        and not skip_invalid
        and _worth_reading_ahead(pred_path)
        and worker_pool.can_fork()
    ):
        ahead = worker_pool.start(
            lambda: read_predictions_ahead(pred_path, style=style, confidences=confidences)
        )
    try:
        samples, gt_report = _read_gt(
            gt_path, gt_format, cfg, protocol, dataset, split, data_root, skip_invalid
        )
        # The RRC scripts' entry-name check, where the GT is numbered as theirs is.
        rrc_names = any(numeric_key(s.id) is not None for s in samples)
        received = None
        if ahead is not None:
            from tcmbench.eval.catalog import preload

            preload(protocol)  # while the worker still reads
            ok, value = ahead.result()
            received = received_predictions(value, rrc_names) if ok else None
            import logging

            logging.getLogger(__name__).debug(
                "predictions %s", "read by a worker process" if received else "to be read here"
            )
    finally:
        if ahead is not None:
            ahead.close()
    if received is None:  # read here: a worker failed, or its error must come from here
        received = read_predictions(
            pred_path,
            style=style,
            confidences=confidences,
            skip_invalid=skip_invalid,
            rrc_names=rrc_names,
        )
    preds, pred_report = received
    preds = scored_as_evaluated(preds, protocol)

    try:
        result = evaluate(samples, preds, protocol, workers=workers, **kwargs)
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
            echo(f"warning: {report.summary()}", True)
    from tcmbench.safety.paths import is_stdout

    # A report on stdout keeps stdout machine-readable: the table moves to stderr.
    echo(markdown_table(result), is_stdout(json_out) or is_stdout(per_image_out))
    if json_out is not None:
        write_json(json_out, result)
    if per_image_out is not None:
        write_per_image(per_image_out, result)


#: Prediction files smaller than this are read in this process: a fork
#: and a pickled result would cost more than reading them.
AHEAD_MIN_BYTES = 64 << 10


def _worth_reading_ahead(pred_path: Path) -> bool:
    """Whether reading ``pred_path`` in a worker pays (a folder: always)."""
    try:
        return not pred_path.is_file() or pred_path.stat().st_size >= AHEAD_MIN_BYTES
    except OSError:
        return False


def _read_gt(
    gt_path: Path | None,
    gt_format: str | None,
    cfg: Any,
    protocol: str,
    dataset: str | None,
    split: str,
    data_root: str | None,
    skip_invalid: bool,
) -> tuple[list[Any], Any]:
    """The ground truth ``tcmbench score`` was pointed at: ``--gt`` (its
    format given, the dataset's or guessed) or the ``--dataset`` split."""
    from tcmbench.eval.io import guess_gt_format, read_ground_truth

    if gt_path is not None:
        fmt = (
            gt_format
            or (cfg.format if cfg is not None else None)
            or guess_gt_format(gt_path, protocol)
        )
        return read_ground_truth(gt_path, fmt, skip_invalid=skip_invalid)
    if cfg is not None:
        from tcmbench.data.dataset import load_split

        return load_split(cfg.name, split, data_root=data_root, skip_invalid=skip_invalid)
    raise ScoreUsage("pass --gt (or --dataset to read that dataset's ground truth)")


def write_json(path: Path, result: Any) -> None:
    import json

    from tcmbench import __version__
    from tcmbench.safety.paths import write_report

    data = result.summary()
    data["tcmbench_version"] = __version__
    write_report(path, json.dumps(data, indent=2, default=json_default) + "\n")


def write_per_image(path: Path, result: Any) -> None:
    import json

    from tcmbench.safety.paths import write_report

    lines = [json.dumps({"id": k, **v}, default=json_default) for k, v in result.per_image.items()]
    write_report(path, "\n".join(lines) + ("\n" if lines else ""))


def json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
