"""Command-line options shared by several commands.

:func:`tcm_options` adds the TCM switches to a click command and hands the
command one ``tcm`` argument: a :class:`~tcmbench.contract.spec.TCMConfig`, or
None without ``--tcm``. ``train``, ``evaluate``, ``predict`` and ``bench``
use it so the switches are spelled the same everywhere.

:class:`FiniteFloat` and :class:`BoundedInt` are the types of numeric
options: every number a command takes has a range, floats are finite, and
run sizes have a bound raised through the environment
(:mod:`tcmbench.safety.run_limits`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

_TCM_KEYS = (
    "tcm_enabled",
    "tcm_context",
    "no_tcm_vg",
    "no_tcm_lg",
    "no_tcm_pp",
    "no_tcm_lp",
    "no_tcm_text_decoder",
    "clip_weights",
    "clip_random",
)


#: ``DIR``: the folder of an ``experiment run`` (``experiment status`` and
#: ``experiment report`` read it).
experiment_dir_argument = click.argument(
    "directory",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)


class OneLineError(click.ClickException):
    """A TcmbenchError shown as one line with exit code 2, also when a
    command group is invoked on its own (click's test runner, ``python -m``)."""

    exit_code = 2


def tcm_config_from_options(
    tcm_enabled: bool = False,
    tcm_context: int | None = None,
    no_tcm_vg: bool = False,
    no_tcm_lg: bool = False,
    no_tcm_pp: bool = False,
    no_tcm_lp: bool = False,
    no_tcm_text_decoder: bool = False,
    clip_weights: str | None = None,
    clip_random: bool = False,
) -> Any:
    """A TCMConfig from the switches (None without ``--tcm``).

    ``--no-tcm-lp`` is context length 0; ``--tcm-context`` left out keeps
    the TCMConfig default (``train`` then takes the recipe's value). A
    sub-switch without ``--tcm`` is a usage error, not silently ignored.
    """
    from tcmbench.contract.spec import TCMConfig

    given = {
        "--tcm-context": tcm_context is not None,
        "--no-tcm-vg": no_tcm_vg,
        "--no-tcm-lg": no_tcm_lg,
        "--no-tcm-pp": no_tcm_pp,
        "--no-tcm-lp": no_tcm_lp,
        "--no-tcm-text-decoder": no_tcm_text_decoder,
        "--clip-weights": clip_weights is not None,
        "--clip-random": clip_random,
    }
    if not tcm_enabled:
        used = [k for k, v in given.items() if v]
        if used:
            raise click.UsageError(f"{', '.join(used)} only make(s) sense with --tcm")
        return None
    if no_tcm_lp and tcm_context not in (None, 0):
        raise click.UsageError("--no-tcm-lp means no learnable context; drop --tcm-context")
    if clip_weights is not None and clip_random:
        raise click.UsageError("--clip-weights and --clip-random exclude each other")
    cfg = TCMConfig(
        predefined_prompt=not no_tcm_pp,
        language_generator=not no_tcm_lg,
        visual_generator=not no_tcm_vg,
        text_context_decoder=not no_tcm_text_decoder,
        clip_weights=clip_weights,
        clip_pretrained=None if clip_random else TCMConfig().clip_pretrained,
    )
    if no_tcm_lp:
        cfg.context_length = 0
    elif tcm_context is not None:
        cfg.context_length = int(tcm_context)
    from tcmbench.tcm.config import validate_tcm_config  # torch-free

    validate_tcm_config(cfg)  # impossible switch combinations fail at parse time
    return cfg


def tcm_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: the TCM switches, collapsed into a ``tcm`` keyword."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {k: kwargs.pop(k) for k in _TCM_KEYS}
        kwargs["tcm"] = tcm_config_from_options(**values)
        return func(*args, **kwargs)

    options = [
        click.option(
            "--tcm",
            "tcm_enabled",
            is_flag=True,
            help="Add the TCM module (CLIP image/text encoders, prompts, matching).",
        ),
        click.option(
            "--tcm-context",
            type=click.IntRange(min=0),
            default=None,
            help="Learnable prompt tokens N (default: the recipe's, 4 or 32).",
        ),
        click.option("--no-tcm-vg", is_flag=True, help="TCM without the visual prompt generator."),
        click.option(
            "--no-tcm-lg", is_flag=True, help="TCM without the language prompt generator."
        ),
        click.option("--no-tcm-pp", is_flag=True, help="TCM without the predefined prompt."),
        click.option("--no-tcm-lp", is_flag=True, help="TCM without learnable prompt tokens."),
        click.option(
            "--no-tcm-text-decoder", is_flag=True, help="TCM without the text-side context decoder."
        ),
        click.option(
            "--clip-weights",
            type=click.Path(exists=True),
            default=None,
            help="Local CLIP RN50 weights instead of the open_clip download: an open_clip "
            "state dict (.safetensors/.bin), OpenAI's RN50.pt, or a folder written by "
            "`tcmbench tcm convert-clip`.",
        ),
        click.option(
            "--clip-random",
            is_flag=True,
            help="Random CLIP initialisation (no download; for tests and ablations).",
        ),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def device_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--device auto|cpu|cuda|cuda:N``."""
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        help="auto, cpu, cuda or cuda:N (under torchrun, cuda = this process's GPU).",
    )(func)


# --------------------------------------------------------------------------- numeric types

#: The largest value of an int option with no natural bound (a count of
#: images, a seed): what a C ``long long`` holds, so no library overflows.
INT64_MAX = 2**63 - 1


def _bound_text(name: str) -> str:
    from tcmbench.errors import TcmbenchError
    from tcmbench.safety.run_limits import RUN_BOUNDS, run_bound

    try:
        value = run_bound(name)
    except TcmbenchError:
        value = RUN_BOUNDS[name][0]
    return f"{value}; raise with TCMBENCH_{name}"


def _check_bound(
    kind: click.ParamType,
    name: str | None,
    value: float,
    param: click.Parameter | None,
    ctx: click.Context | None,
) -> None:
    if name is None:
        return
    from tcmbench.safety.run_limits import bound_hint, run_bound

    if value > run_bound(name):
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        kind.fail(f"{shown} is over {bound_hint(name)}.", param, ctx)


class FiniteFloat(click.FloatRange):
    """A float option in a range, and finite: click's ``FloatRange`` lets
    ``nan`` through (every comparison with nan is false) and ``inf``
    through an open-ended range. ``bound`` names an upper bound of
    :mod:`tcmbench.safety.run_limits` (raised through the environment)."""

    def __init__(
        self,
        min: float | None = None,
        max: float | None = None,
        min_open: bool = False,
        max_open: bool = False,
        bound: str | None = None,
    ) -> None:
        super().__init__(min, max, min_open, max_open)
        self.bound = bound

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        rv = super().convert(rv, param, ctx)
        _check_bound(self, self.bound, rv, param, ctx)
        return rv

    def _describe_range(self) -> str:
        text = super()._describe_range()
        return f"{text}, at most {_bound_text(self.bound)}" if self.bound else text


class BoundedInt(click.IntRange):
    """An int option at least ``min`` and at most the run bound ``bound``
    of :mod:`tcmbench.safety.run_limits`: a legal value that would run for days or
    allocate without end is a usage error saying how to raise the bound."""

    def __init__(self, min: int, bound: str) -> None:
        super().__init__(min=min)
        self.bound = bound

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        _check_bound(self, self.bound, rv, param, ctx)
        return rv

    def _describe_range(self) -> str:
        return f"{self.min}<=x<={_bound_text(self.bound)}"


def require_tcm_support(spec: Any, tcm: Any) -> None:
    """Refuse ``--tcm`` for a plugin that has not opted into TCM, before any work.

    Every command that takes ``--tcm`` calls this right after looking the
    plugin up, so the user reads the same sentence
    (:func:`~tcmbench.contract.spec.tcm_not_supported_message`) from
    ``train``, ``bench``, ``evaluate`` and ``predict`` -- not a complaint
    about a checkpoint that was never the problem. An inference-only plugin
    (``load_weights``: the ``onnx`` plugin) is left to its loader, which
    says why ``--tcm`` does not apply to a finished model.
    """
    if tcm is None or getattr(spec, "tcm", None) is not None:
        return
    if getattr(spec, "load_weights", None) is not None:
        return
    from tcmbench.contract.spec import tcm_not_supported_message
    from tcmbench.errors import PluginError

    raise PluginError(tcm_not_supported_message(spec.name))


_BARE_JSON = "\0--json without a value"


def _json_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The ``--json`` path; a bare ``--json`` (the old flag) is a usage error."""
    if value == _BARE_JSON:
        raise click.UsageError(
            "--json takes a path now: --json - prints the JSON on stdout, --json FILE writes it",
            ctx=ctx,
        )
    return value


def json_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--json PATH`` as every command spells it: ``-`` for stdout, else a file.

    Hands the command ``json_out`` (a string or None); write it with
    :func:`tcmbench.safety.paths.write_report` (atomic for a regular file,
    in place for a device or FIFO). ``what`` names the JSON's content.
    """
    return click.option(
        "--json",
        "json_out",
        type=str,
        default=None,
        is_flag=False,
        flag_value=_BARE_JSON,
        callback=_json_value,
        metavar="PATH",
        help=f"Write {what} as JSON to PATH (- for stdout, which then carries the JSON alone).",
    )
