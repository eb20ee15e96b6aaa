"""Shared constants are defined once: predicate type URIs in ``predicate_types``, the digest grammar in ``oci.digest``.

Six modules spelled the predicate types and four wrote their own digest
pattern (one let a trailing newline through); these checks read every product
module's string literals, docstrings aside, so a new copy fails here, naming
the module and the line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import chaingate
from chaingate import predicate_types

SRC = Path(chaingate.__file__).parent
#: Each URI and prefix the module defines.
URIS = frozenset(
    value
    for name, value in vars(predicate_types).items()
    if name.isupper() and isinstance(value, str | tuple)
    for value in (value if isinstance(value, tuple) else (value,))
)


def literals(path: Path) -> Iterator[tuple[int, str]]:
    """Every string constant of ``path`` except docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def product_modules(*allowed: str) -> Iterator[Path]:
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        # The stand-ins play other parties (a registry, a signer), who spell the types themselves.
        if not relative.startswith("testing/") and relative not in allowed:
            yield path


def test_predicate_types_are_spelled_only_in_predicate_types() -> None:
    assert "https://slsa.dev/provenance/v1" in URIS  # the set is read from the module, not empty
    copies = [
        f"{path.relative_to(SRC)}:{line}: {value!r}"
        for path in product_modules("predicate_types.py")
        for line, value in literals(path)
        if value in URIS
    ]
    assert not copies, "import these from chaingate.predicate_types:\n" + "\n".join(copies)


def test_the_digest_pattern_is_written_only_in_oci_digest() -> None:
    copies = [
        f"{path.relative_to(SRC)}:{line}: {value!r}"
        for path in product_modules("oci/digest.py")
        for line, value in literals(path)
        if "sha256:" in value and ("{64}" in value or "a-f" in value)
    ]
    assert not copies, "build on chaingate.oci.digest (is_digest, SHA256_PATTERN):\n" + "\n".join(copies)
