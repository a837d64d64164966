"""This process's place in a torchrun job, and the device it runs on.

One command runs single-process or under ``torchrun --nproc_per_node N``:
when ``WORLD_SIZE > 1`` the process group is initialised from the
environment (``env://``; NCCL on CUDA, gloo on CPU). Everything else asks
:func:`world` (or :func:`current_world`) instead of reading environment
variables.

The inference layer owns these helpers (training imports them from here):
every function imports torch inside itself, and :func:`current_world` /
:func:`release_world` not even that when ``torch.distributed`` was never
imported -- a process group exists only once it has been, so a process
that never imported it (the onnxruntime path) is a single process, and
asking would cost seconds of start-up for nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from tcmbench.errors import TcmbenchError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def world() -> World:
    """This process's place in the process group (single process if none)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


def resolve_device(name: str = "auto") -> Any:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> torch.device.

    Asking for CUDA where there is none is a user error with a clear message
    (not torch's assertion). Under torchrun, ``cuda`` means this process's
    ``LOCAL_RANK`` GPU.
    """
    import torch

    text = (name or "auto").strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            built = "with" if torch.version.cuda else "without"
            raise TcmbenchError(
                f"--device {name} asked for CUDA, but no CUDA device is available "
                f"(torch {torch.__version__} built {built} CUDA); use --device cpu or --device auto"
            )
        if text == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        try:
            index = int(text.split(":", 1)[1])
        except ValueError:
            raise TcmbenchError(
                f"invalid device {name!r}; expected cpu, cuda, cuda:N or auto"
            ) from None
        if index >= torch.cuda.device_count():
            raise TcmbenchError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        return torch.device("cuda", index)
    raise TcmbenchError(f"invalid device {name!r}; expected cpu, cuda, cuda:N or auto")


def init_distributed(device: Any) -> World:
    """Join the torchrun process group when ``WORLD_SIZE > 1`` (idempotent)."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return world()
    if not dist.is_available():
        raise TcmbenchError("WORLD_SIZE > 1 but this torch build has no distributed support")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, init_method="env://")
    w = world()
    log.info("process group: rank %d of %d (%s)", w.rank, w.world_size, backend)
    return w


def shutdown() -> None:
    """Leave the process group (end of a torchrun command)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (a one-element list outside torchrun)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def current_world() -> World:
    """:func:`world`, torch-free when torch's distributed package was never
    imported (then there is no process group: a single process)."""
    if "torch.distributed" not in sys.modules:
        return World()
    return world()


def release_world() -> None:
    """Leave the process group, if one was joined (end of a command)."""
    if "torch.distributed" in sys.modules:
        shutdown()
