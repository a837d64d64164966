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
  :class:`~tcmbench.models.options.Opt` fields (types, ranges, finite
  numbers, choices), nested sections and :class:`ListOf` lists;
  :func:`check_document` checks a parsed document against it and returns the
  normalised data, or raises one :class:`DocumentError` naming the file, the
  key path (``recipe.test.long_side``) and what is allowed.

Torch-free and dependency-free (the declared-option type :class:`Opt` is the
project's own), so every reader, however light, can use it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from tcmbench.errors import TcmbenchError
from tcmbench.models.options import Opt, check_value

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


@dataclass(frozen=True)
class ListOf:
    """A list whose items all fit ``item``, with a bounded length."""

    item: Opt | Section | ListOf
    min_len: int = 0
    max_len: int = 10_000
    nullable: bool = False


@dataclass(frozen=True)
class Section:
    """A mapping with declared keys. ``strict`` makes an undeclared key an
    error (a setting this tcmbench does not know would otherwise be dropped
    silently); ``required`` keys must be present."""

    fields: Mapping[str, Opt | Section | ListOf]
    strict: bool = True
    required: tuple[str, ...] = ()
    nullable: bool = False
    help: str = ""


Field = Opt | Section | ListOf


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(source: str, path: str, problem: str) -> DocumentError:
    where = f"{source}: {path}" if path else source
    return DocumentError(f"{where} {problem}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_document(data: Any, schema: Field, source: str, path: str = "") -> Any:
    """``data`` checked against ``schema``; returns the normalised value
    (integral floats as ints, tuples as lists). Raises :class:`DocumentError`
    for the first value that does not fit."""
    if isinstance(schema, Opt):
        value, problem = check_value(data, schema)
        if problem is not None:
            raise _fail(source, path or "value", problem)
        return value
    if data is None and schema.nullable:
        return None
    if isinstance(schema, ListOf):
        if not isinstance(data, list | tuple):
            raise _fail(source, path or "value", f"must be a list, got {_short(data)}")
        if not schema.min_len <= len(data) <= schema.max_len:
            raise _fail(
                source,
                path or "value",
                f"must hold {schema.min_len} to {schema.max_len} items, got {len(data)}",
            )
        return [check_document(v, schema.item, source, f"{path}[{i}]") for i, v in enumerate(data)]
    if not isinstance(data, Mapping):
        raise _fail(source, path or "document", f"must be a mapping (object), got {_short(data)}")
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
        out[key] = check_document(value, declared, source, _join(path, key))
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
            raise yaml.YAMLError(
                f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                "allowed (write the value out)"
            )
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.YAMLError(
                f"line {event.start_mark.line + 1}: YAML anchors (&{event.anchor}) are not "
                "allowed (write the value out)"
            )
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > self.max_depth:
                raise yaml.YAMLError(
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
        raise _fail(source, "", f"is {len(text)} bytes, over the {max_bytes}-byte limit")
    loader = _NoAliasLoader(text)
    loader.max_depth = max_depth
    try:
        return loader.get_single_data()
    except (yaml.YAMLError, RecursionError) as e:
        raise _fail(source, "", f"is not a YAML document tcmbench accepts: {e}") from None
    finally:
        loader.dispose()
