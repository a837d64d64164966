"""This process's place in a torchrun job, asked without importing torch.

A process group exists only once ``torch.distributed`` has been imported
and initialised, so a process that never imported it (the onnxruntime path)
is a single process. Asking :func:`tcmbench.train.distributed.world`
instead would import torch, seconds of start-up for a command that never
uses it.
"""

from __future__ import annotations

import sys

from tcmbench.train.distributed import World


def current_world() -> World:
    """:func:`tcmbench.train.distributed.world`, torch-free when torch's
    distributed package was never imported."""
    if "torch.distributed" not in sys.modules:
        return World()
    from tcmbench.train.distributed import world

    return world()


def release_world() -> None:
    """Leave the process group, if one was joined (end of a command)."""
    if "torch.distributed" in sys.modules:
        from tcmbench.train.distributed import shutdown

        shutdown()
