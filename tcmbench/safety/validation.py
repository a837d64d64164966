"""One validation layer for every untrusted document tcmbench reads.

Checkpoint ``config.json`` files, an ONNX model's config, experiment grid
files, experiment records, ``compare`` inputs: each is a document that
anyone can edit or forge, and each used to be checked (or not) by the code
that happened to read it. This module is the one way they are all checked:

- :func:`parse_json` / :func:`parse_yaml` turn bytes into plain Python data
  under size and depth limits, *before* any structure is built from them: a
  JSON document nested 100,000 deep or a YAML alias bomb fails with one line
  instead of a RecursionError or a hang. YAML anchors and aliases are refused
  outright (no tcmbench document needs them, and they are how a 1 kB file
  expands to gigabytes).
- a document's shape is declared as a :class:`Section` of
  :class:`~tcmbench.contract.options.Opt` fields (types, ranges, finite
  numbers, choices), nested sections and :class:`ListOf` lists;
  :func:`check_document` checks a parsed document against it and returns the
  normalised data, or raises one :class:`DocumentError` naming the file, the
  key path (``recipe.test.long_side``) and what is allowed.

Torch-free and dependency-free (the declared-option type :class:`Opt` is the
project's own), so every reader, however light, can use it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tcmbench.contract.options import Opt, check_value
from tcmbench.errors import TcmbenchError

#: Nesting depth of any document (objects / arrays / mappings / sequences).
#: Real documents stay far below it: a checkpoint config is 5 deep, a grid 6.
MAX_DEPTH = 64
#: Size of one JSON / YAML document read from disk, in bytes.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


class DocumentError(TcmbenchError):
    """An untrusted document (config, grid, record) does not fit its schema.

    The message names the file, the key path and the allowed values, so the
    user can fix the document without reading tcmbench's code.
    """


class DocumentLimitError(DocumentError):
    """A document is well-formed but over a limit (size, depth, YAML anchors
    and aliases): unlike a syntax error, it is never taken as plain text."""


class _YAMLLimit(yaml.YAMLError):
    """The loader's own refusals (aliases, anchors, depth)."""


@dataclass(frozen=True)
class ListOf:
    """A list whose items all fit ``item``, with a bounded length."""

    item: Field
    min_len: int = 0
    max_len: int = 10_000
    nullable: bool = False


@dataclass(frozen=True)
class Section:
    """A mapping with declared keys. ``strict`` makes an undeclared key an
    error (a setting this tcmbench does not know would otherwise be dropped
    silently); ``required`` keys must be present."""

    fields: Mapping[str, Field]
    strict: bool = True
    required: tuple[str, ...] = ()
    nullable: bool = False
    help: str = ""


@dataclass(frozen=True)
class Text:
    """A string of ``min_len`` to ``max_len`` characters that fully matches
    ``pattern`` (a regular expression) when one is given; ``words`` says
    what the pattern allows, for the error message. ``name``: the string is
    a name, never a path (:func:`is_name`): what a document calls a cell or
    a sample becomes a file name under a folder, and ``../x`` or ``/etc``
    would escape it."""

    min_len: int = 0
    max_len: int = 10_000
    pattern: str | None = None
    words: str = ""
    name: bool = False
    nullable: bool = False
    help: str = ""

    def expected(self) -> str:
        """What a valid value looks like, in words (for error messages)."""
        text = f"a name ({NAME_RULE})" if self.name else "a string"
        size = []
        if self.min_len:
            size.append(f">= {self.min_len}")
        if self.max_len < 10_000:
            size.append(f"<= {self.max_len}")
        if size:
            text += f" of {' and '.join(size)} characters"
        if self.words:
            text += f" ({self.words})"
        return text + (" or null" if self.nullable else "")


@dataclass(frozen=True)
class OneOf:
    """A value that fits one of ``options`` (tried in order; the first that
    fits gives the normalised value)."""

    options: tuple[Field, ...]
    help: str = ""


@dataclass(frozen=True)
class MapOf:
    """A mapping whose keys are user-chosen names (``key``) and whose values
    all fit ``value``, with at most ``max_len`` entries (a grid's
    variables)."""

    value: Field
    key: Text = Text(1, 200)
    max_len: int = 10_000
    nullable: bool = False


@dataclass(frozen=True)
class Anything:
    """Any value the parser produced (already under the depth and size
    limits): for a value checked where it is used, such as a grid
    variable's default, which is checked once substituted."""

    help: str = ""


Field = Opt | Section | ListOf | Text | OneOf | MapOf | Anything


def describe(schema: Field) -> str:
    """What a value of ``schema`` looks like, in words (for messages)."""
    if isinstance(schema, Opt | Text):
        return schema.expected()
    if isinstance(schema, OneOf):
        return " or ".join(describe(o) for o in schema.options)
    if isinstance(schema, ListOf):
        return "a list" + (" or null" if schema.nullable else "")
    if isinstance(schema, MapOf):
        return "a mapping of names to values" + (" or null" if schema.nullable else "")
    if isinstance(schema, Section):
        return (
            "a mapping"
            + (f" ({schema.help})" if schema.help else "")
            + (" or null" if schema.nullable else "")
        )
    return "any value"


#: The rule for names, in words.
NAME_RULE = "one path component: no / or \\, not . or .., no control characters"
#: Characters a name never holds: path separators, NUL and other controls.
_NOT_IN_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


def is_name(text: Any, max_len: int = 255) -> bool:
    """Is ``text`` a name (one path component), never a path? Not empty, at
    most ``max_len`` characters, no ``/`` or ``\\``, no control characters,
    not ``.`` or ``..``: joined under a folder, it stays in that folder
    (absolute paths and ``../`` need a separator)."""
    return (
        isinstance(text, str)
        and 0 < len(text) <= max_len
        and text not in (".", "..")
        and _NOT_IN_NAME.search(text) is None
    )


def child_path(root: str | Path, name: str, source: str, what: str = "name") -> Path:
    """``root / name`` for a name from an untrusted document, checked twice:
    ``name`` must be a name (:func:`is_name`), and the joined path, links
    resolved, must stay inside ``root`` (a link planted in the folder could
    otherwise lead out of it). Raises :class:`DocumentError` naming
    ``source`` and ``what``."""
    if not is_name(name):
        raise _fail(source, what, f"must be a name ({NAME_RULE}), got {_short(name)}")
    root = Path(root)
    joined = root / name
    try:
        base = root.resolve()
        resolved = joined.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of links
        raise _fail(source, what, f"{_short(name)} cannot be resolved ({exc})") from None
    if base not in resolved.parents:
        raise _fail(source, what, f"{_short(name)} leads outside {root} (to {resolved})")
    return joined


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(source: str, path: str, problem: str) -> DocumentError:
    where = f"{source}: {path}" if path else source
    return DocumentError(f"{where} {problem}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_document(
    data: Any,
    schema: Field,
    source: str,
    path: str = "",
    *,
    defer: Callable[[Any], bool] | None = None,
) -> Any:
    """``data`` checked against ``schema``; returns the normalised value
    (integral floats as ints, tuples as lists). Raises :class:`DocumentError`
    for the first value that does not fit.

    ``defer``: a value for which it returns True is kept unchecked, at any
    depth (a grid's ``${variable}``, checked once it is substituted)."""
    if defer is not None and defer(data):
        return data
    if isinstance(schema, Anything):
        return data
    if isinstance(schema, Opt):
        value, problem = check_value(data, schema)
        if problem is not None:
            raise _fail(source, path or "value", problem)
        return value
    if isinstance(schema, OneOf):
        errors: list[tuple[Field, DocumentError]] = []
        for option in schema.options:
            try:
                return check_document(data, option, source, path, defer=defer)
            except DocumentError as e:
                errors.append((option, e))
        # A mapping (list) that only one option could be: that option's
        # error names the key inside that is wrong.
        shaped = [
            e
            for option, e in errors
            if (isinstance(data, Mapping) and isinstance(option, Section | MapOf))
            or (isinstance(data, list | tuple) and isinstance(option, ListOf))
        ]
        if len(shaped) == 1:
            raise shaped[0]
        raise _fail(source, path or "value", f"must be {describe(schema)}, got {_short(data)}")
    if data is None and schema.nullable:
        return None
    if isinstance(schema, Text):
        if (
            not isinstance(data, str)
            or not schema.min_len <= len(data) <= schema.max_len
            or (schema.name and not is_name(data, schema.max_len))
            or (schema.pattern is not None and re.fullmatch(schema.pattern, data) is None)
        ):
            raise _fail(source, path or "value", f"must be {schema.expected()}, got {_short(data)}")
        return data
    if isinstance(schema, ListOf):
        if not isinstance(data, list | tuple):
            raise _fail(source, path or "value", f"must be a list, got {_short(data)}")
        if not schema.min_len <= len(data) <= schema.max_len:
            raise _fail(
                source,
                path or "value",
                f"must hold {schema.min_len} to {schema.max_len} items, got {len(data)}",
            )
        return [
            check_document(v, schema.item, source, f"{path}[{i}]", defer=defer)
            for i, v in enumerate(data)
        ]
    if not isinstance(data, Mapping):
        raise _fail(source, path or "document", f"must be a mapping (object), got {_short(data)}")
    if isinstance(schema, MapOf):
        if len(data) > schema.max_len:
            raise _fail(
                source,
                path or "document",
                f"must hold at most {schema.max_len} entries, got {len(data)}",
            )
        mapped: dict[str, Any] = {}
        for key, value in data.items():
            check_document(key, schema.key, source, f"{_join(path, str(key))} (the name)")
            mapped[key] = check_document(value, schema.value, source, _join(path, key), defer=defer)
        return mapped
    missing = [k for k in schema.required if k not in data]
    if missing:
        raise _fail(source, _join(path, missing[0]), "is required")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise _fail(source, path or "document", f"has a non-string key {_short(key)}")
        declared = schema.fields.get(key)
        if declared is None:
            if schema.strict:
                known = ", ".join(schema.fields) or "none"
                raise _fail(source, _join(path, key), f"is not a known key (known: {known})")
            out[key] = value
            continue
        out[key] = check_document(value, declared, source, _join(path, key), defer=defer)
    return out


# --------------------------------------------------------------------------- parsing


def _json_depth_ok(text: str, max_depth: int) -> int | None:
    """The offset where ``text`` first nests deeper than ``max_depth``, or
    None. A linear scan that skips strings, so it costs far less than the
    parse it protects (the C decoder recurses and would raise RecursionError)."""
    depth = 0
    in_string = False
    escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                return i
        elif ch in "]}":
            depth -= 1
    return None


def parse_json(
    text: str | bytes,
    source: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Any:
    """Parse one JSON document under the size and depth limits; NaN and
    infinity literals are refused (JSON has none; Python's parser accepts them)."""
    if len(text) > max_bytes:
        raise _fail(source, "", f"is {len(text)} bytes, over the {max_bytes}-byte limit")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise _fail(source, "", f"is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if (where := _json_depth_ok(text, max_depth)) is not None:
        raise _fail(source, "", f"nests deeper than {max_depth} levels (at character {where})")

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(text, parse_constant=no_constant)
    except (ValueError, RecursionError) as e:
        raise _fail(source, "", f"is not valid JSON ({e})") from None


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases, under a depth limit."""

    max_depth = MAX_DEPTH

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _YAMLLimit(
                f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                "allowed (write the value out)"
            )
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise _YAMLLimit(
                f"line {event.start_mark.line + 1}: YAML anchors (&{event.anchor}) are not "
                "allowed (write the value out)"
            )
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > self.max_depth:
                raise _YAMLLimit(
                    f"line {event.start_mark.line + 1}: nests deeper than {self.max_depth} levels"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(
    text: str | bytes,
    source: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Any:
    """Parse one YAML document with the safe loader, refusing anchors and
    aliases (alias bombs, self-references) and nesting over ``max_depth``."""
    if len(text) > max_bytes:
        raise DocumentLimitError(f"{source} is {len(text)} bytes, over the {max_bytes}-byte limit")
    try:  # the reader decodes (and checks) the first characters at once
        loader = _NoAliasLoader(text)
    except yaml.YAMLError as e:
        raise _fail(
            source, "", f"is not a YAML document tcmbench accepts: {_yaml_reason(e)}"
        ) from None
    loader.max_depth = max_depth
    try:
        return loader.get_single_data()
    except (_YAMLLimit, RecursionError) as e:
        raise DocumentLimitError(
            f"{source} is not a YAML document tcmbench accepts: {_yaml_reason(e)}"
        ) from None
    except (yaml.YAMLError, ValueError, OverflowError) as e:
        # ValueError / OverflowError: the constructors' own (an integer of
        # 5000 digits, a date with month 13, !!float x)
        raise _fail(
            source, "", f"is not a YAML document tcmbench accepts: {_yaml_reason(e)}"
        ) from None
    finally:
        loader.dispose()


def _yaml_reason(e: BaseException) -> str:
    """A YAML error in one line: PyYAML's own message spans several (the
    context, the problem and a quoted excerpt of the document)."""
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    if problem is None:
        return " ".join(str(e).split()) or type(e).__name__
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())


# --------------------------------------------------------------------------- files and docs


def read_document(path: str | Path, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of document ``path``, refused *before* reading when the
    file is over ``max_bytes`` (a 10 GB config.json must not be read whole
    to find out it is too big). Errors name the file, one line."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as e:
        raise _fail(str(path), "", f"cannot be read ({e.strerror or type(e).__name__})") from None
    if len(data) > max_bytes:
        raise _fail(str(path), "", f"is over the {max_bytes}-byte limit")
    return data


def flatten(schema: Section, prefix: str = "") -> dict[str, Opt]:
    """Every :class:`Opt` leaf of ``schema`` under its dotted key path
    (``recipe.test.long_side``); a list of options appears once, as
    ``key[0..2]`` (fixed length) or ``key[]``. For generated documentation
    (``python -m tcmbench.docgen``'s ``options`` blocks), so the documented
    keys and ranges are the checked ones."""
    out: dict[str, Opt] = {}
    for key, field in schema.fields.items():
        path = _join(prefix, key)
        if isinstance(field, Section):
            out.update(flatten(field, path))
        elif isinstance(field, ListOf) and isinstance(field.item, Opt):
            fixed = field.min_len == field.max_len
            suffix = f"[0..{field.max_len - 1}]" if fixed else "[]"
            out[path + suffix] = field.item
        elif isinstance(field, Opt):
            out[path] = field
    return out
