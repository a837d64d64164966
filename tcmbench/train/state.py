"""Resumable training state.

A training checkpoint is a regular model checkpoint folder
(:func:`tcmbench.hub.checkpoints.save_checkpoint`: config.json, model.safetensors,
README.md -- usable with ``--weights`` as is) plus ``training_state.pt``:
step, optimizer, scheduler, AMP scaler, the RNG states of python / numpy /
torch (every rank's), and the resolved run configuration. That file holds
only tensors and plain Python values and is read with
``torch.load(weights_only=True)``: no arbitrary pickles. The folder is
written atomically, so an interrupted save leaves the previous checkpoint.
"""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tcmbench.errors import CheckpointError
from tcmbench.safety.paths import atomic_dir

TRAINING_STATE_NAME = "training_state.pt"
STEP_DIR_RE = re.compile(r"^step-(\d+)$")
STATE_FORMAT = 1


def step_dir_name(step: int) -> str:
    return f"step-{step:07d}"


def capture_rng_state() -> dict[str, Any]:
    """python / numpy / torch (CPU and CUDA) generator states, as plain
    values and tensors (safe for ``weights_only`` loading)."""
    version, internal, gauss = random.getstate()
    # The dict form (the legacy tuple's fields by name); restored as the tuple.
    np_state = np.random.get_state(legacy=False)
    mt = np_state["state"]
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(mt["key"], dtype=np.int64)),
            "pos": int(mt["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "cached_gaussian": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_checkpoint(
    step_dir: str | Path,
    model: torch.nn.Module,
    spec: Any,
    config: Any,
    training_state: dict[str, Any],
    *,
    recipe: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Model checkpoint + ``training_state.pt``, the whole folder atomic."""
    from tcmbench.hub.checkpoints import save_checkpoint

    step_dir = Path(step_dir)
    with atomic_dir(step_dir) as tmp:
        save_checkpoint(tmp, model, spec, config, recipe=recipe, extra=extra)
        torch.save({"format": STATE_FORMAT, **training_state}, tmp / TRAINING_STATE_NAME)
    return step_dir


def find_resume_dir(path: str | Path) -> Path:
    """The checkpoint to resume from: ``path`` itself when it holds a
    training state, else the latest ``checkpoints/step-N`` (or ``step-N``)
    folder under it."""
    p = Path(path).expanduser()
    if (p / TRAINING_STATE_NAME).is_file():
        return p
    candidates: list[tuple[int, Path]] = []
    for parent in (p / "checkpoints", p):
        if parent.is_dir():
            for child in parent.iterdir():
                m = STEP_DIR_RE.match(child.name)
                if m and (child / TRAINING_STATE_NAME).is_file():
                    candidates.append((int(m.group(1)), child))
    if not candidates:
        if not p.exists():
            raise CheckpointError(f"--resume {p}: no such folder")
        raise CheckpointError(
            f"--resume {p}: no training checkpoint there (a folder with {TRAINING_STATE_NAME}, "
            "or a run folder with checkpoints/step-N); only checkpoints written by `tcmbench train` "
            "with --save-every can be resumed"
        )
    return max(candidates)[1]


def load_training_state(step_dir: str | Path) -> dict[str, Any]:
    """Read ``training_state.pt`` (``weights_only``); clear errors if bad."""
    f = Path(step_dir) / TRAINING_STATE_NAME
    try:
        state = torch.load(f, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{f} not found") from None
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        # truncated zip, a pickle with other than plain values, ...
        raise CheckpointError(f"{f} is truncated or not a tcmbench training state: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or "step" not in state:
        raise CheckpointError(f"{f} is not a tcmbench training state (format {STATE_FORMAT})")
    return state


def load_model_weights(model: torch.nn.Module, step_dir: str | Path) -> None:
    """Load the checkpoint's model.safetensors into ``model`` (strict)."""
    from tcmbench.hub.checkpoints import WEIGHTS_NAME, load_state_dict

    state = load_state_dict(Path(step_dir) / WEIGHTS_NAME)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{step_dir}: weights do not fit the model being resumed: {exc}"
        ) from None


def prune_checkpoints(checkpoints_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recent step folders."""
    import shutil

    if keep <= 0 or not checkpoints_dir.is_dir():
        return
    steps = sorted(
        (int(m.group(1)), c) for c in checkpoints_dir.iterdir() if (m := STEP_DIR_RE.match(c.name))
    )
    for _, old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
