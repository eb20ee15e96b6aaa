"""Hypothesis strategies for hostile input, shared by the property tests and ``benchmarks/fuzz.py``.

Each parser is fed three kinds of input: values of the right format but any
shape (random JSON or YAML), a valid document with one part replaced, removed
or wrapped (what gets past the first checks), and raw bytes mutated at random
(what a truncated download or a hostile server sends). Deep nesting and the
numbers JSON cannot hold (``NaN``, ``1e400``, integers of thousands of digits)
are drawn often, since they are what broke the parsers before.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from hypothesis import strategies as st

T = TypeVar("T")


def outcome(call: Callable[[], T], *errors: type[Exception]) -> tuple[T | None, Exception | None]:
    """``call()``'s value, or the error if it raised one of ``errors``; anything else escapes and fails the test."""
    try:
        return call(), None
    except errors as e:
        return None, e


#: Numbers that broke a parser once: non-finite, past float range, past int-to-str range, past 64 bits.
NASTY_NUMBERS: list[Any] = [
    float("nan"),
    float("inf"),
    -float("inf"),
    1e300,
    -1e300,
    10**30,
    2**63,
    2**64 + 1,
    -(2**63) - 1,
    0,
    -1,
    True,
    False,
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(NASTY_NUMBERS),
    st.text(max_size=20),
    st.sampled_from(["", " ", "\n", "sha256:" + "a" * 64, "sha256:" + "a" * 64 + "\n", "latest", "1", "NaN"]),
)

json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

#: YAML adds keys of any scalar type and dates.
yaml_scalars = scalars | st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
yaml_values: st.SearchStrategy[Any] = st.recursive(
    yaml_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none()), children, max_size=4
        )
    ),
    max_leaves=20,
)


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    """Arrays or objects nested from a little past any sane depth to far past the interpreter's stack."""
    depth = draw(st.sampled_from([129, 1000, 5000, 100_000]) | st.integers(100, 3000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"b":', b"}]")]))
    closed = draw(st.booleans())
    return opener * depth + b"1" + (closer * depth if closed else b"")


@st.composite
def deep_yaml(draw: st.DrawFn, deepest: int = 100_000) -> str:
    """YAML nested past the policy's bound; ``deepest`` caps it where PyYAML's own scanner is the cost."""
    depth = draw(
        st.sampled_from([d for d in (65, 1000, 20_000, 100_000) if d <= deepest]) | st.integers(60, 2000)
    )
    style = draw(st.sampled_from(["flow-list", "flow-map", "block"]))
    if style == "flow-list":
        return "[" * depth + "1" + "]" * depth
    if style == "flow-map":
        return "{a: " * depth + "1" + "}" * depth
    return "".join(" " * i + "- \n" for i in range(min(depth, 1200)))


def json_text(value: Any) -> bytes:
    """``value`` as JSON text; NaN and Infinity are written the way Python (and hostile clients) write them."""
    return json.dumps(value).encode()


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out.extend(_paths(value, (*prefix, i)))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: Any, values: st.SearchStrategy[Any] = json_values) -> Any:
    """``base`` with one to three parts replaced by a random value, deleted, or wrapped in a list."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            doc = draw(values)
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if not isinstance(parent, dict | list):  # an earlier mutation changed the shape under the path
            continue
        key = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "wrap", "number"]))
        if action == "delete":
            del parent[key]
        elif action == "wrap":
            parent[key] = [parent[key]]
        elif action == "number":
            parent[key] = draw(st.sampled_from(NASTY_NUMBERS))
        else:
            parent[key] = draw(values)
    return doc


@st.composite
def mutated_bytes(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` with a few bytes flipped, cut out, inserted or duplicated, or truncated."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            data.extend(draw(st.binary(min_size=1, max_size=16)))
            continue
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "set", "delete", "insert", "truncate", "repeat"]))
        if action == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            data[at] = draw(st.sampled_from([0, 0x20, 0x30, 0x37, 0x38, 0x5B, 0x7B, 0x80, 0xFF]))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif action == "truncate":
            del data[at:]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 600))]
    return bytes(data)
