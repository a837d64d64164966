"""Declared detector options: one type and range per option, checked in one place.

A detector's options reach it from recipes, the command line and, above all,
checkpoint ``config.json`` files, which anyone can edit or forge. Checking
each value where it is used (``int(opts["lateral_channels"])``) turns
``96.5`` into 96 and ``"96"`` into 96 silently, and an absurd width into an
allocation of exabytes. A plugin therefore declares its options as
:class:`Opt` entries and resolves them with :func:`resolve_options`, which
fills defaults and rejects an unknown name, a wrong type or an out-of-range
value with one :class:`~tcmbench.errors.PluginError` naming the option.

Torch-free, so a plugin's declarations can live beside its spec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tcmbench.errors import PluginError

#: kind -> the words an error message uses for it.
KINDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "dict": "a mapping (JSON object)",
    "list": "a list (JSON array)",
}


@dataclass(frozen=True)
class Opt:
    """One declared option: its default, kind and allowed range.

    ``kind`` is one of :data:`KINDS`. ``ge`` / ``gt`` / ``le`` / ``lt``
    bound numbers; ``choices`` lists the allowed values; ``nullable`` allows
    None (JSON null). ``help`` is one line for generated documentation.
    """

    default: Any
    kind: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Opt kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    def expected(self) -> str:
        """What a valid value looks like, in words (for error messages)."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            text = KINDS[self.kind]
            bounds = []
            if self.ge is not None:
                bounds.append(f">= {_num(self.ge)}")
            if self.gt is not None:
                bounds.append(f"> {_num(self.gt)}")
            if self.le is not None:
                bounds.append(f"<= {_num(self.le)}")
            if self.lt is not None:
                bounds.append(f"< {_num(self.lt)}")
            if bounds:
                text += " " + " and ".join(bounds)
        return text + (" or null" if self.nullable else "")


def _num(x: float) -> str:
    """A bound in words: integers without exponent (1000000, not 1e+06)."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_value(value: Any, opt: Opt) -> tuple[Any, str | None]:
    """``(normalised value, None)`` when ``value`` fits ``opt``, else
    ``(value, problem)`` with ``problem`` a phrase such as
    ``"must be an integer >= 1, got 96.5"``.

    JSON has one number type, so an integral float is accepted as an int
    (``96.0`` -> 96) and an int as a float; a bool is never a number, and
    NaN or infinity never passes.
    """
    bad = (value, f"must be {opt.expected()}, got {_short(value)}")
    if value is None:
        return (None, None) if opt.nullable else bad
    kind = opt.kind
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return bad
        if not math.isfinite(value):
            return bad
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                return bad
            value = int(value)
        else:
            value = float(value)
        if (
            (opt.ge is not None and value < opt.ge)
            or (opt.gt is not None and value <= opt.gt)
            or (opt.le is not None and value > opt.le)
            or (opt.lt is not None and value >= opt.lt)
        ):
            return bad
    elif kind == "bool":
        if not isinstance(value, bool):
            return bad
    elif kind == "str":
        if not isinstance(value, str):
            return bad
    elif kind == "dict":
        if not isinstance(value, Mapping):
            return bad
        value = dict(value)
    elif kind == "list" and not isinstance(value, list | tuple):
        return bad
    if opt.choices is not None and value not in opt.choices:
        return bad
    return value, None


def check_options(
    owner: str, declared: Mapping[str, Opt], given: Any, what: str = "option"
) -> dict[str, Any]:
    """The given options, type- and range-checked (no defaults filled in).

    ``owner`` names the detector in messages (``"DBNet"``); ``what`` the
    kind of entry (``"option"``, ``"postprocess parameter"``).
    """
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise PluginError(
            f"{owner} {what}s must be a mapping of name -> value, got {_short(given)}"
        )
    unknown = sorted(str(k) for k in given if k not in declared)
    if unknown:
        raise PluginError(
            f"unknown {owner} {what}(s) {', '.join(unknown)}; known: {', '.join(sorted(declared))}"
        )
    out: dict[str, Any] = {}
    for name, value in given.items():
        checked, problem = check_value(value, declared[name])
        if problem is not None:
            raise PluginError(f"{owner} {what} {name} {problem}")
        out[name] = checked
    return out


def resolve_options(
    owner: str, declared: Mapping[str, Opt], given: Any, what: str = "option"
) -> dict[str, Any]:
    """Defaults of ``declared`` overridden by the checked ``given`` options."""
    return {
        **{name: opt.default for name, opt in declared.items()},
        **check_options(owner, declared, given, what),
    }
