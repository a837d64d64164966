"""Documentation text generated from the program, so that it cannot drift.

Hand-written tables of recipes, option ranges or sample output go stale the
day the code changes (docs/dbnet.md once described a synthtext-mini recipe
of "Adam 1e-3, 256 crop, 60 ep" while the code trained at 3e-3 on 224-px
crops for 800 steps; docs/evaluate.md showed figures the program never
printed). Such text lives in a markdown file between two marker comments::

    <!-- generated: recipes dbnet -->
    ... written by this module ...
    <!-- /generated -->

and is rewritten from the program by ``python -m tcmbench.docgen`` (all
files under docs/, or those named); ``--check`` only reports the blocks that
differ and exits 1, which is what the tests do. Block kinds:

- ``recipes PLUGIN``: the recipes of any :class:`~tcmbench.contract.spec.DetectorSpec`;
- ``augment PLUGIN``: the training augmentations of each of its recipes;
- ``recipe-overview PLUGIN...``: one short row per recipe of each plugin;
- ``options MODULE:ATTR [HEADING]``: a table of declared options
  (:class:`~tcmbench.contract.options.Opt`: default, type and range, help);
- ``fidelity PLUGIN|tcm``: where the paper recipes follow or leave the
  authors' code (:mod:`tcmbench.contract.fidelity`);
- ``command ARGS...``: ``tcmbench ARGS`` run in-process, with its stdout
  (slow: it really runs; ``--skip-commands`` leaves these blocks alone).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

BLOCK = re.compile(
    r"(<!-- generated: (?P<spec>[^\n]+?) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.DOTALL
)
DOCS = Path(__file__).resolve().parents[2] / "docs"
OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "ranger": "Ranger"}


def _value(v: Any) -> str:
    """A recipe value in a table cell (numbers with ``:g``, lists bracketed)."""
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else "none"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {_value(x)}" for k, x in v.items()) + "}"
    return str(v).replace("|", "\\|")


def _pairs(d: Mapping[str, Any], skip: tuple[str, ...] = ()) -> str:
    return ", ".join(f"{k} {_value(v)}" for k, v in d.items() if k not in skip)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c or "-" for c in cells) + " |"


def _spec(plugin: str) -> Any:
    from tcmbench.contract.registry import get_detector

    return get_detector(plugin)


def recipes_table(plugin: str) -> str:
    """One row per recipe of ``plugin``'s DetectorSpec: model, optimizer,
    training length and crops, test scale, postprocess, TCM, source."""
    spec = _spec(plugin)
    lines = [
        "| recipe | model | optimizer | training | test scale | postprocess | TCM | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in spec.recipes:
        r = spec.recipe(name)
        model = r.get("model") or {}
        backbone = str(model.get("backbone") or "")
        if backbone:
            if r.get("finetune_for"):
                backbone += " (from the --init-from checkpoint)"
            else:
                backbone += " (ImageNet)" if model.get("pretrained_backbone") else " (from scratch)"
        model_cell = "; ".join(x for x in (backbone, _pairs(model.get("options") or {})) if x)
        opt = dict(r.get("optimizer") or {})
        opt_name = str(opt.pop("name", ""))
        optimizer = f"{OPTIMIZERS.get(opt_name, opt_name)} {_pairs(opt)}".strip()
        train = r.get("train") or {}
        schedule = r.get("schedule") or {}
        training = []
        if r.get("steps"):
            training.append(f"{r['steps']} steps")
        elif r.get("epochs"):
            training.append(f"{r['epochs']} epochs")
        if r.get("batch_size"):
            training.append(f"batch {r['batch_size']}")
        if train.get("crop_size"):
            training.append(f"{train['crop_size']}-px crops")
        if schedule:
            by = schedule.get("by", "epoch")
            training.append(f"{schedule.get('name', '')} {_value(schedule.get('power'))} per {by}")
        if r.get("extra_train_datasets"):
            training.append("+ " + ", ".join(r["extra_train_datasets"]))
        if r.get("pretrain_recipe"):
            training.append(f"fine-tunes `{r['pretrain_recipe']}`")
        if r.get("finetune_for"):
            training.append(f"fine-tunes {_finetune_for(r)}")
        loop = r.get("train_loop") or {}
        if loop.get("min_steps"):
            training.append(f"learns from {loop['min_steps']} steps")
        if loop.get("norm_eval"):
            training.append("BatchNorm statistics frozen")
        if loop.get("train_only"):
            only = loop["train_only"]
            training.append(
                f"first {only.get('steps')} steps train "
                + ", ".join(f"{p}*" for p in only.get("prefixes") or [])
                + " only"
            )
        tcm = r.get("tcm") or {}
        label = f"`{name}`" + (" (fallback)" if name == spec.default_recipe else "")
        lines.append(
            _row(
                [
                    label,
                    model_cell,
                    optimizer,
                    ", ".join(training),
                    _test_scale(r.get("test") or {}),
                    _pairs(r.get("postprocess") or {}),
                    _pairs(tcm, skip=("normalize",)),
                    _value(r.get("source", "")),
                ]
            )
        )
    return "\n".join(lines) + "\n"


def _test_scale(test: Mapping[str, Any]) -> str:
    """A recipe's test resize in words: ``long 4068, short 1024``,
    ``original size`` or PaddleOCR's ``max side 960 (never up), /32``."""
    if test.get("rule") == "limit_side":
        kind = "max" if test.get("limit_type", "max") == "max" else "min"
        return (
            f"{kind} side {test.get('limit_side_len')} (PaddleOCR's resize), "
            f"/{test.get('divisor', 32)}"
        )
    limits = [f"{k.split('_')[0]} {test[k]}" for k in ("long_side", "short_side") if test.get(k)]
    return ", ".join(limits) or "original size"


def _finetune_for(r: Mapping[str, Any]) -> str:
    """``a ppocrv3_mobilenetv3 checkpoint (msra-td500)`` of ``finetune_for``."""
    target = r.get("finetune_for") or {}
    return f"a {target.get('backbone')} checkpoint ({', '.join(target.get('datasets') or [])})"


def recipe_overview(*plugins: str) -> str:
    """One short row per recipe of each plugin: what a reader choosing a
    recipe needs (backbone, optimizer, length, test scale, what it
    fine-tunes); the full rows with sources are in each plugin's page."""
    lines = [
        "| plugin | recipe | backbone | optimizer | training | test scale | starts from |",
        "|---|---|---|---|---|---|---|",
    ]
    for plugin in plugins:
        spec = _spec(plugin)
        for name in spec.recipes:
            r = spec.recipe(name)
            opt = r.get("optimizer") or {}
            optimizer = f"{OPTIMIZERS.get(opt.get('name', ''), opt.get('name', ''))} {_value(opt.get('lr'))}"
            length = f"{r['steps']} steps" if r.get("steps") else f"{r.get('epochs')} epochs"
            training = f"{length}, batch {r.get('batch_size')}"
            if r.get("extra_train_datasets"):
                training += " + " + ", ".join(r["extra_train_datasets"])
            start = f"`{r['pretrain_recipe']}`" if r.get("pretrain_recipe") else ""
            if r.get("finetune_for"):
                start = _finetune_for(r)
            lines.append(
                _row(
                    [
                        plugin,
                        f"`{name}`",
                        str((r.get("model") or {}).get("backbone") or ""),
                        optimizer,
                        training,
                        _test_scale(r.get("test") or {}),
                        start,
                    ]
                )
            )
    return "\n".join(lines) + "\n"


def augment_table(plugin: str) -> str:
    """The training augmentations of every recipe of ``plugin``, in order."""
    spec = _spec(plugin)
    lines = ["| recipe | training augmentations, in order |", "|---|---|"]
    for name in spec.recipes:
        steps = (spec.recipe(name).get("train") or {}).get("augment") or []
        text = "; ".join(
            f"{s.get('name')}" + (f" ({_pairs(s, skip=('name',))})" if len(s) > 1 else "")
            for s in steps
        )
        lines.append(_row([f"`{name}`", text]))
    return "\n".join(lines) + "\n"


def options_table(target: str, what: str = "option") -> str:
    """Declared options ``module:attribute`` (a mapping of name -> Opt);
    ``what`` heads the first column."""
    module, _, attr = target.partition(":")
    declared = getattr(importlib.import_module(module), attr)
    lines = [f"| {what} | default | valid values | meaning |", "|---|---|---|---|"]
    for name, opt in declared.items():
        lines.append(_row([f"`{name}`", _value(opt.default), opt.expected(), opt.help]))
    return "\n".join(lines) + "\n"


def command_output(*args: str) -> str:
    """``tcmbench ARGS`` run in-process: the command line and its stdout."""
    from tcmbench.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = int(main(list(args)) or 0)
        except SystemExit as exc:
            code = int(exc.code or 0)
    if code != 0:
        raise SystemExit(f"`tcmbench {shlex.join(args)}` exited {code}")
    return f"```text\n$ tcmbench {shlex.join(args)}\n{out.getvalue().rstrip()}\n```\n"


def fidelity_table(source: str) -> str:
    """The fidelity rows of a plugin (``spec.fidelity``), or of the core TCM
    module (``tcm``: ``tcmbench.tcm.fidelity.ROWS``), as a markdown table."""
    from tcmbench.contract.fidelity import fidelity_markdown

    if source == "tcm":
        rows = importlib.import_module("tcmbench.tcm.fidelity").ROWS
    else:
        rows = _spec(source).fidelity
    if not rows:
        raise SystemExit(f"{source!r} declares no fidelity rows")
    return fidelity_markdown(tuple(rows))


KINDS: dict[str, Callable[..., str]] = {
    "recipes": recipes_table,
    "augment": augment_table,
    "recipe-overview": recipe_overview,
    "options": options_table,
    "command": command_output,
    "fidelity": fidelity_table,
}


def render(spec: str) -> str:
    """The text of one block, from its marker's ``KIND ARGS...``."""
    kind, *args = shlex.split(spec)
    if kind not in KINDS:
        raise SystemExit(f"unknown generated block kind {kind!r}; known: {', '.join(KINDS)}")
    return KINDS[kind](*args)


def regenerate(text: str, skip: tuple[str, ...] = ()) -> str:
    """``text`` with every marked block rewritten (kinds in ``skip`` kept)."""

    def one(m: re.Match[str]) -> str:
        if shlex.split(m["spec"])[0] in skip:
            return m.group(0)
        return m.group(1) + render(m["spec"]) + m.group(4)

    return BLOCK.sub(one, text)


def blocks(text: str) -> list[str]:
    """The ``KIND ARGS`` of every marked block in ``text``."""
    return [m["spec"] for m in BLOCK.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tcmbench.docgen", description=__doc__.split("\n")[0]
    )
    parser.add_argument("files", nargs="*", type=Path, help="markdown files (default: docs/*.md)")
    parser.add_argument("--check", action="store_true", help="report stale blocks, exit 1 if any")
    parser.add_argument("--skip-commands", action="store_true", help="leave `command` blocks alone")
    opts = parser.parse_args(argv)
    files = opts.files or sorted(DOCS.glob("*.md"))
    skip = ("command",) if opts.skip_commands else ()
    stale = []
    for path in files:
        text = path.read_text()
        if not blocks(text):
            continue
        new = regenerate(text, skip)
        if new != text:
            stale.append(path)
            if not opts.check:
                path.write_text(new)
    verb = "stale" if opts.check else "rewritten"
    for path in stale:
        print(f"{verb}: {path}", file=sys.stderr)
    return 1 if opts.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
