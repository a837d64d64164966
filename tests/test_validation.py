"""The one validation layer for untrusted documents (tcmbench/safety/validation.py):
size and depth limits before parsing, YAML without aliases, and schemas
whose errors name the file, the key path and the allowed values."""

from __future__ import annotations

import time

import pytest

from tcmbench.contract.options import Opt
from tcmbench.errors import TcmbenchError
from tcmbench.safety.validation import (
    MAX_DEPTH,
    DocumentError,
    ListOf,
    Section,
    check_document,
    parse_json,
    parse_yaml,
)

TEST = Section(
    {
        "long_side": Opt(None, "int", ge=32, le=8192, nullable=True),
        "pad_divisor": Opt(32, "int", ge=1, le=256),
        "mean": ListOf(Opt(0.0, "float"), min_len=3, max_len=3),
    }
)
RECIPE = Section({"test": TEST, "name": Opt("", "str")}, required=("test",))


def test_a_document_error_is_a_user_error() -> None:
    assert issubclass(DocumentError, TcmbenchError)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"test": {"pad_divisor": 0}}, "config.json: test.pad_divisor must be an integer >= 1"),
        ({"test": {"long_side": "abc"}}, "config.json: test.long_side must be an integer >= 32"),
        ({"test": {"long_side": 1e9}}, "<= 8192 or null, got 1000000000.0"),
        ({"test": "abc"}, "config.json: test must be a mapping (object), got 'abc'"),
        ({"test": {"zz": 1}}, "config.json: test.zz is not a known key (known: long_side,"),
        ({"test": {"mean": [1, 2]}}, "config.json: test.mean must hold 3 to 3 items, got 2"),
        ({"test": {"mean": [1, 2, float("nan")]}}, "config.json: test.mean[2] must be a number"),
        ({}, "config.json: test is required"),
        ([], "config.json: document must be a mapping (object), got []"),
    ],
)
def test_a_value_outside_the_schema_names_file_key_and_range(doc: object, message: str) -> None:
    with pytest.raises(DocumentError) as err:
        check_document(doc, RECIPE, "config.json")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_fitting_document_comes_back_normalised() -> None:
    doc = {"test": {"long_side": 960.0, "mean": (1, 2, 3)}, "name": "x"}
    assert check_document(doc, RECIPE, "c") == {
        "test": {"long_side": 960, "mean": [1.0, 2.0, 3.0]},
        "name": "x",
    }
    loose = Section({"a": Opt(0, "int")}, strict=False)
    assert check_document({"a": 1, "b": "kept"}, loose, "c") == {"a": 1, "b": "kept"}


def test_deep_json_fails_fast_with_one_line() -> None:
    t0 = time.monotonic()
    with pytest.raises(DocumentError, match=f"nests deeper than {MAX_DEPTH} levels"):
        parse_json("[" * 100_000 + "]" * 100_000, "deep.json")
    assert time.monotonic() - t0 < 2
    # brackets inside strings do not count
    assert parse_json('{"a": "' + "[" * 1000 + '"}', "s.json") == {"a": "[" * 1000}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_that_are_not_numbers_are_refused(literal: str) -> None:
    with pytest.raises(DocumentError, match="is not valid JSON"):
        parse_json('{"lr": ' + literal + "}", "c.json")


def test_json_size_and_encoding_limits() -> None:
    with pytest.raises(DocumentError, match="over the 10-byte limit"):
        parse_json(b'{"a": 12345678}', "big.json", max_bytes=10)
    with pytest.raises(DocumentError, match="is not UTF-8 text"):
        parse_json(b'{"a": "\xff"}', "bin.json")
    assert parse_json(b'\xef\xbb\xbf{"a": 1}', "bom.json") == {"a": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [x, x]\nb: [*a, *a]\n", "YAML anchors (&a) are not allowed"),
        ("a: &x\n  b: *x\n", "YAML anchors (&x) are not allowed"),
        ("a: *nothing\n", "not a YAML document"),
        ("a: " + "[" * 5000 + "]" * 5000, f"nests deeper than {MAX_DEPTH} levels"),
        ("a: [\n", "not a YAML document"),
        ("a: !!python/object:os.system x\n", "not a YAML document"),
    ],
)
def test_yaml_bombs_and_tricks_are_refused(text: str, message: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(DocumentError, match=r"^grid\.yaml") as err:
        parse_yaml(text, "grid.yaml")
    assert message in str(err.value)
    assert time.monotonic() - t0 < 2


def test_plain_yaml_parses() -> None:
    assert parse_yaml("a: 1\nb: [x, {c: 2}]\n", "g.yaml") == {"a": 1, "b": ["x", {"c": 2}]}
