"""Everything ``evaluate`` lacks, said at once, before any model is built.

A new user's first command (``tcmbench evaluate --plugin dbnet --tcm
--dataset nighttime-art``) used to fail one error at a time: first asking
for ``--weights`` (and suggesting the shipped plain weights, which ``--tcm``
then refuses), then for the dataset. :func:`check_evaluate_inputs` reads
only files and config.json (no torch, no annotations), collects what is
missing -- the dataset with its ``prepare`` command, the weights with the
ways to get them -- and raises one :class:`MissingInputsError` listing all.
With ``--tcm`` it never suggests weights that ``--tcm`` refuses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tcmbench.errors import TcmbenchError

#: The Hub name the messages and docs use; an example, not a real repository.
EXAMPLE_HF_TCM = "hf://ORG/NAME"


class MissingInputsError(TcmbenchError):
    """What a command needs and does not have, one numbered item each."""


def tcm_checkpoint_ways(plugin: str, dataset: str) -> list[str]:
    """The ways to get a TCM checkpoint of ``plugin``, each with its command."""
    train = (
        f"train one: `tcmbench train --plugin {plugin} --tcm --dataset {dataset}` (its train "
        "split prepared too; CLIP RN50 weights come from open_clip's download cache, or convert "
        "OpenAI's RN50.pt once with `tcmbench tcm convert-clip RN50.pt --out CLIP_DIR` and add "
        "--clip-weights CLIP_DIR), then pass --weights RUN/final"
    )
    official = (
        f"import the authors' release: `tcmbench import tcm-official CKPT.pth --plugin {plugin} "
        "--out DIR`, then pass --weights DIR"
    )
    hub = (
        f"use one shared on the Hugging Face Hub: --weights {EXAMPLE_HF_TCM} "
        "(an example name: put the repository that holds the TCM checkpoint)"
    )
    return [train, official, hub]


#: The shipped grid whose tiny form trains a TCM checkpoint with no data and
#: no CLIP download, and the id of that cell (per plugin).
TINY_TCM_GRID = "nighttime-art"
TINY_TCM_CELLS = {"dbnet": "002-tcm-dbnet"}


def tiny_tcm_checkpoint_hint(plugin: str) -> str | None:
    """How to make a throw-away TCM checkpoint of ``plugin`` in about a
    minute on a CPU, to see the command run before the real data and
    weights are at hand; None when no shipped tiny grid has such a cell.
    Says plainly that it finds nothing: a random CLIP encoder, 4 steps."""
    cell = TINY_TCM_CELLS.get(plugin)
    if cell is None:
        return None
    out = f"runs/{TINY_TCM_GRID}-tiny"
    return (
        "to see the command run first (no data, no CLIP download, about a minute on a CPU): "
        f"`tcmbench experiment run {TINY_TCM_GRID} --tiny --only {cell} --out {out}`, then "
        f"--weights {out}/cells/{cell}/run/final (a random CLIP encoder trained 4 steps on "
        "synthetic images: a pipeline check that finds nothing, not a detector)"
    )


def _is_hub(weights: str) -> bool:
    from tcmbench.hub.checkpoints import HF_PREFIX

    return weights.startswith(HF_PREFIX)


def _saved_tcm(weights: str) -> bool | None:
    """Whether the local checkpoint ``weights`` is a TCM one, from its
    config.json alone; None when that cannot be told cheaply (a Hub name,
    a file the loader will then report properly)."""
    path = Path(weights).expanduser()
    config = path / "config.json" if path.is_dir() else path.with_name("config.json")
    try:
        meta = json.loads(config.read_text(encoding="utf-8"))
        arch = meta["architecture"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return isinstance(arch, dict) and arch.get("tcm") is not None


def tcm_weights_missing(spec: Any, weights: str | None) -> str | None:
    """What keeps ``--weights`` from giving ``evaluate --tcm`` a TCM
    checkpoint of a trainable plugin, or None. The plugin's shipped weights
    are never offered: they are plain, and --tcm refuses them."""
    if not weights:
        return f"no TCM checkpoint of plugin {spec.name!r} was given (--weights)"
    if _is_hub(weights):
        return None  # read when downloaded; the loader checks it
    if not Path(weights).expanduser().exists():
        return f"--weights {weights}: not found"
    if _saved_tcm(weights) is False:
        return (
            f"--weights {weights} is a plain (non-TCM) checkpoint; drop --tcm to evaluate it "
            "as it is, or pass a TCM one"
        )
    return None


def check_evaluate_inputs(
    spec: Any,
    tcm: bool,
    dataset: str,
    split: str,
    weights: str | None,
    data_root: str | None,
    plain_weights_problem: str | None = None,
) -> None:
    """Raise one :class:`MissingInputsError` naming everything ``evaluate``
    lacks -- the dataset's files, the weights -- with the command for each;
    return when nothing is missing. ``plain_weights_problem``: what the
    caller found wrong with ``--weights`` for a run without ``--tcm``.
    Fast: reads folders and config.json only (no torch, no annotations)."""
    from tcmbench.data.dataset import split_missing

    items: list[str] = []
    data = split_missing(dataset, split, data_root)
    if data:
        items.append(f"the dataset: {data}")
    if tcm and spec.load_weights is None:
        problem = tcm_weights_missing(spec, weights)
        if problem:
            ways = tcm_checkpoint_ways(spec.name, dataset)
            items.append(
                f"a TCM checkpoint: {problem}. Get one of three ways:\n"
                + "\n".join(f"     {'abc'[i]}) {way}" for i, way in enumerate(ways))
            )
            hint = tiny_tcm_checkpoint_hint(spec.name)
            if hint:
                items[-1] += f"\n     Or, {hint}"
    elif plain_weights_problem:
        items.append(f"the weights: {plain_weights_problem}")
    elif weights and not _is_hub(weights) and not Path(weights).expanduser().exists():
        items.append(f"the weights: --weights {weights}: not found")
    if not items:
        return
    if not data and not tcm and spec.load_weights is None and len(items) == 1:
        # Only a plain run's weights are wrong, and the data is there: the
        # checks that need the data (output folders, ids that would share a
        # submission file) come first, as before; loading says what is wrong.
        return
    head = f"evaluate cannot run on {dataset} {split} yet; missing:"
    raise MissingInputsError(head + "".join(f"\n  {i}. {item}" for i, item in enumerate(items, 1)))
