"""in-toto Statement v1 as plain JSON: building one, and checking one a user hands in.

Statements are plain dicts on purpose: what is signed is exactly the JSON
written here, and the in-toto protobuf bindings would add a heavy dependency
and a second serialisation to keep byte-stable. The checks are the parts of
https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md that a
signer must not get wrong: the ``_type``, a subject list where every subject
has a digest, a predicate type URI and an object predicate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from chaingate.errors import ChaingateError
from chaingate.predicate_types import IN_TOTO_STATEMENT_V1

#: What sigstore and cosign put in a DSSE envelope's ``payloadType`` for a statement.
PAYLOAD_TYPE = "application/vnd.in-toto+json"

_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_HEX = re.compile(r"^[0-9a-f]+$")


class StatementError(ChaingateError):
    """A statement or predicate that cannot be signed as given."""


def subject(name: str, digest: str) -> dict[str, Any]:
    """A statement subject for an OCI manifest digest (``sha256:<hex>`` becomes ``{"sha256": hex}``)."""
    algorithm, _, hexpart = digest.partition(":")
    return {"name": name, "digest": {algorithm: hexpart}}


def statement(
    subjects: list[dict[str, Any]], predicate_type: str, predicate: Mapping[str, Any]
) -> dict[str, Any]:
    """A Statement v1 document; key order follows the spec's schema so a reader sees it as documented."""
    return {
        "_type": IN_TOTO_STATEMENT_V1,
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def encode(doc: Mapping[str, Any]) -> bytes:
    """The exact bytes that get signed: compact, UTF-8, key order as built (stable for equal inputs)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def is_uri(value: str) -> bool:
    """Loosely RFC 3986: a scheme, then an authority or a path, no white space (TypeURI in in-toto)."""
    parts = urlsplit(value)
    return bool(
        parts.scheme
        and _URI_SCHEME.match(parts.scheme)
        and (parts.netloc or parts.path)
        and not any(c.isspace() for c in value)
    )


def is_statement(doc: Any) -> bool:
    """True for anything that claims to be an in-toto statement (any version), so it is never signed as a predicate."""
    return (
        isinstance(doc, dict) and isinstance(doc.get("_type"), str) and "in-toto.io/Statement" in doc["_type"]
    )


def check_statement(doc: Any, where: str) -> dict[str, Any]:
    """``doc`` as a Statement v1, or a :class:`StatementError` naming the first thing wrong with it."""
    if not isinstance(doc, dict):
        raise StatementError(f"{where}: an in-toto statement must be a JSON object")
    if doc.get("_type") != IN_TOTO_STATEMENT_V1:
        raise StatementError(
            f"{where}: _type is {doc.get('_type')!r}; only {IN_TOTO_STATEMENT_V1} is supported"
        )
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise StatementError(f"{where}: subject must be a non-empty array")
    for i, entry in enumerate(subjects):
        if not isinstance(entry, dict):
            raise StatementError(f"{where}: subject[{i}] must be an object")
        digest = entry.get("digest")
        if not isinstance(digest, dict) or not digest:
            raise StatementError(f"{where}: subject[{i}] has no digest")
        for algorithm, value in digest.items():
            if not isinstance(value, str) or not value:
                raise StatementError(f"{where}: subject[{i}].digest.{algorithm} must be a non-empty string")
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise StatementError(f"{where}: subject[{i}].name must be a string")
    predicate_type = doc.get("predicateType")
    if not isinstance(predicate_type, str) or not is_uri(predicate_type):
        raise StatementError(f"{where}: predicateType must be a URI, not {predicate_type!r}")
    predicate = doc.get("predicate", {})
    if predicate is not None and not isinstance(predicate, dict):
        raise StatementError(f"{where}: predicate must be a JSON object")
    return doc


def names_digest(doc: Mapping[str, Any], digest: str) -> bool:
    """True when a subject of the statement carries ``digest`` (``sha256:<hex>``), compared case-insensitively."""
    algorithm, _, hexpart = digest.partition(":")
    for entry in doc.get("subject", []):
        value = entry.get("digest", {}).get(algorithm) if isinstance(entry, dict) else None
        if isinstance(value, str) and _HEX.match(value.lower()) and value.lower() == hexpart.lower():
            return True
    return False
