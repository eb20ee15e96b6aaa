"""Strict JSON for hostile input: every refusal is a ValueError with one line."""

from __future__ import annotations

import math

import pytest

from chaingate import safejson


def test_nesting_up_to_the_bound_parses_and_one_more_level_is_refused() -> None:
    assert safejson.loads("[" * 128 + "]" * 128) is not None
    with pytest.raises(safejson.JSONInputError, match=r"^nested deeper than 128 levels$"):
        safejson.loads("[" * 129 + "]" * 129)
    with pytest.raises(safejson.JSONInputError, match=r"^nested deeper than 3 levels$"):
        safejson.loads('{"a": [{"b": []}]}', max_depth=3)


def test_nesting_past_the_interpreters_stack_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^nested deeper than 128 levels$"):
        safejson.loads(b"[" * 1_000_000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NaN", "NaN is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
        ("[1e400]", "the number 1e400 is out of range"),
        ("1" * 5000, "Exceeds the limit"),
        (b"\xff", "codec can't decode"),
    ],
)
def test_what_json_cannot_hold_is_refused(text: str | bytes, message: str) -> None:
    with pytest.raises(safejson.JSONInputError, match=message):
        safejson.loads(text)


def test_finite_false_keeps_the_numbers_for_the_caller_to_name() -> None:
    value = safejson.loads('{"exp": NaN, "iat": 1e400}', finite=False)
    assert math.isnan(value["exp"]) and value["iat"] == math.inf
