"""The plugin contract.

Every extension point of tcmbench is a pluggy hook of project ``tcmbench``.
Built-in detectors (DBNet, PANet, FCENet), the built-in dataset formats and
protocols, and the TCM wrapper are implemented against exactly these hooks,
so a third-party package can do anything the built-ins do.

The ``register_*`` hooks follow simonw/llm: the hook receives a ``register``
callback and calls it once per contribution, so one plugin may add several
things. ``register`` takes a spec object with a ``name`` attribute; a name
registered twice is an error naming both plugins.

Plugin modules are imported at CLI start-up: keep them light (no torch at
module level) and import heavy code inside the functions a spec points to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

hookspec = pluggy.HookspecMarker("tcmbench")
hookimpl = pluggy.HookimplMarker("tcmbench")


@hookspec
def register_dataset_formats(register: Callable[[Any], None]) -> None:
    """Contribute readers for on-disk annotation formats.

    Call ``register(tcmbench.contract.registry.DatasetFormat(name=..., reader=...,
    summary=...))``. ``reader(source, images, report, **options)`` receives
    a :class:`tcmbench.data.source.AnnotationSource` (a folder, a zip or one
    file), the image folder or None, a :class:`~tcmbench.data.source.ParseReport`
    to report malformed lines through, and the split's ``options`` from the
    dataset YAML; it returns a list of :class:`tcmbench.data.Sample`.
    Sample ids are names, never paths (they become file names): make them
    with :mod:`tcmbench.data.ids` (``check_id``, ``path_id``); an id with a
    separator, ``..`` or a control character is refused for the whole read.
    """


@hookspec
def register_datasets(register: Callable[[Any], None]) -> None:
    """Contribute dataset configurations.

    Call ``register(path)`` with the path of a dataset YAML (same schema as
    the files in ``datasets_cfg/``) or a folder of them. A plugin that ships
    a new benchmark adds its YAML here and it shows up in
    ``tcmbench datasets list``.
    """


@hookspec
def register_protocols(register: Callable[[Any], None]) -> None:
    """Contribute evaluation protocols.

    Call ``register(tcmbench.contract.registry.ProtocolSpec(name=..., evaluate=...,
    summary=..., params={...}))``; ``evaluate(gt, predictions, **params)``
    follows :func:`tcmbench.eval.evaluate` and returns a
    :class:`tcmbench.eval.Result`.
    """


@hookspec
def register_detectors(register: Callable[[Any], None]) -> None:
    """Contribute detector architectures.

    Call ``register(tcmbench.contract.spec.DetectorSpec(...))``. The spec says
    how to build the detector's named parts, which recipes it has per
    dataset, and whether (and where) it accepts the TCM module.
    """


@hookspec
def register_augmentations(register: Callable[[Any], None]) -> None:
    """Contribute training augmentations a recipe can name.

    Call ``register(tcmbench.contract.registry.AugmentationSpec(name=..., factory=...,
    summary=...))``. ``factory(**params)`` receives the recipe entry's
    parameters (``{"name": ..., **params}`` in ``train.augment``) and
    returns a step ``step(image, polygons, ignores, rng) -> (image,
    polygons, ignores)``: image RGB (H, W, 3), polygons float32
    (N, 2) arrays in pixels, ignores bools, ``rng`` the sample's
    :class:`numpy.random.Generator` (draw every random number from it, so
    runs stay reproducible and resumable). ``factory`` may be a
    ``"module:attribute"`` string, imported only when a recipe uses it (keeps
    CLI start-up free of heavy imports). PANet and FCENet register their
    instance-aware crop and square resize-pad this way.

    A geometric step (the default) receives float32 normalised pixels
    (the official order: normalise before geometry, fill with 0) or uint8
    ones (recipe ``train.normalize_at: end``), and must keep the dtype; a
    step that changes pixel values only declares ``photometric = True``
    and always receives uint8, before normalisation.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``tcmbench`` click group (``@cli.command()``)."""


@hookspec(firstresult=True)
def build_detector(spec: Any, config: Any) -> Any:
    """Build the ``torch.nn.Module`` for detector ``spec`` with ``config``.

    The core provides the default implementation (``trylast``). Wrappers
    (``@hookimpl(wrapper=True)``) change what is built: the TCM module is one
    (it swaps in CLIP's image encoder and adds the score map and its loss
    when ``config.tcm`` is set), and fails loudly for a spec that has not
    opted in.
    """
