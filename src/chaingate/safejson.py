"""JSON from files, registries and tokens, parsed so that hostile input is a ``ValueError`` and nothing else.

:func:`json.loads` accepts what JSON does not (``NaN``, ``Infinity``), turns
``1e400`` into an infinite float, and raises :class:`RecursionError` for deep
nesting; a document that parses just under the interpreter's limit can still
exhaust the stack of whatever walks it later (``json.dumps``, pydantic,
recursive checks). Every one of those would escape a caller's
``except ValueError`` as a traceback. :func:`loads` turns them all into
:class:`JSONInputError`, a ``ValueError`` with a one-line message, so each
parser keeps its single ``except ValueError`` and its own error naming the file.
"""

from __future__ import annotations

import json
from typing import Any

#: Deeper than any manifest, bundle, token, SBOM or provenance chaingate reads (they nest ten to thirty levels),
#: and shallow enough that any recursive walk of the result stays far from the interpreter's limit.
MAX_DEPTH = 128


class JSONInputError(ValueError):
    """JSON that is refused: not JSON, a non-finite number, or nested deeper than :data:`MAX_DEPTH`."""


def _reject_constant(name: str) -> Any:
    raise JSONInputError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JSONInputError(f"the number {text[:40]} is out of range")
    return value


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH, finite: bool = True) -> Any:
    """Parse ``data`` as strict JSON whose containers nest at most ``max_depth`` deep.

    ``finite=False`` keeps ``NaN``, ``Infinity`` and overflowing numbers as floats, for a caller
    that checks each number it uses itself and can then name the field at fault.
    """
    try:
        if finite:
            value = json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)
        else:
            value = json.loads(data)
    except RecursionError:
        raise JSONInputError(f"nested deeper than {max_depth} levels") from None
    except JSONInputError:
        raise
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an integer of more than 4300 digits
        raise JSONInputError(" ".join(str(e).split())[:200]) from None
    check_depth(value, max_depth)
    return value


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a parsed document nested deeper than ``max_depth``; iterative, so it cannot overflow itself."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= max_depth:
            raise JSONInputError(f"nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
