"""YAML from users' files, checked for shape on the token stream before PyYAML composes it.

PyYAML's composer and constructor recurse once per nesting level, so a page
of ``[`` exhausts the interpreter's stack (a ``RecursionError``, not a
``YAMLError``), and an alias is how a small file makes exponential work
(each ``*name`` visits the shared node again). Both are refused while the
text is only being scanned, with the line at fault, so the policy loader and
the bindings manifest report them like any other mistake in the file.

This module imports nothing from chaingate, so any module may use it.
"""

from __future__ import annotations

import yaml

_OPENING = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSING = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


class YAMLShapeError(ValueError):
    """Nested deeper than allowed, or an alias: ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def check_shape(text: str | bytes, *, max_depth: int, what: str) -> None:
    """Raise :class:`YAMLShapeError` at the first alias or at nesting deeper than ``max_depth``.

    ``what`` names the kind of file in the alias message ("a policy"). A
    syntax error is left to the caller's own ``yaml`` call, which reports it
    with PyYAML's marks.
    """
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, yaml.AliasToken):
            raise YAMLShapeError(token.start_mark.line + 1, f"YAML aliases (*name) are not allowed in {what}")
        if isinstance(token, _OPENING):
            depth += 1
            if depth > max_depth:
                raise YAMLShapeError(token.start_mark.line + 1, f"nested deeper than {max_depth} levels")
        elif isinstance(token, _CLOSING):
            depth -= 1
