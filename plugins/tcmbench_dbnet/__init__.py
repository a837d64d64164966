"""DBNet ("Real-time Scene Text Detection with Differentiable Binarization",
Liao et al., AAAI 2020) as a tcmbench plugin.

Registered through the ``tcmbench`` entry-point group exactly like a
third-party plugin. This module stays torch-free: the spec points at
builders that import torch when a model is actually built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from tcmbench.contract.hookspecs import hookimpl
from tcmbench_dbnet.spec import VERSION as __version__
from tcmbench_dbnet.spec import dbnet_spec

__all__ = ["__version__"]


@hookimpl
def register_detectors(register: Callable[[Any], None]) -> None:
    register(dbnet_spec())


@hookimpl
def register_commands(cli: click.Group) -> None:
    """``tcmbench import ppocr`` joins the core ``import`` group."""
    from tcmbench.commands.importers import import_
    from tcmbench_dbnet.commands import ppocr

    import_.add_command(ppocr)
