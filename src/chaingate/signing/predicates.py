"""Predicates to attest: the ``--type`` names, reading ``--predicate`` files, and large SBOMs.

``--type`` names map to predicate types as cosign's ``attest --type`` does;
anything else must itself be a URI. ``--predicate`` holds either a bare
predicate or a whole in-toto Statement v1; of a statement only the
``predicate`` is signed, under a subject chaingate writes itself, and the
statement must already name the image's digest (a statement about another
image is refused, not silently re-pointed).

Large SBOMs
-----------
A CycloneDX SBOM (1.4 to 1.6, JSON) larger than :data:`MAX_INLINE_SBOM_BYTES`
is not put inside the DSSE envelope (Rekor and registries limit entry and
manifest sizes, and every verifier would download it twice). Instead:

1. its exact bytes are attached to the image as their own referrer:
   ``artifactType`` and layer media type ``application/vnd.cyclonedx+json``,
   the empty config, ``subject`` = the image;
2. the signed statement (predicate type ``https://cyclonedx.org/bom``) carries
   this predicate, which binds the SBOM by digest::

       {
         "sbomReference": {
           "digest": "sha256:<hex of the SBOM bytes>",
           "size": <number of bytes>,
           "mediaType": "application/vnd.cyclonedx+json",
           "uri": "oci://<registry>/<repo>@sha256:<SBOM referrer manifest digest>"
         },
         "specVersion": "<the SBOM's specVersion>",
         "serialNumber": "<the SBOM's serialNumber, when it has one>",
         "metadata": {"timestamp": "<the SBOM's metadata.timestamp, when it has one>"}
       }

   ``uri`` is present for registry images only (a layout path means nothing
   elsewhere); readers find the blob among the image's referrers by digest.
   ``bomFormat`` is deliberately absent, so nothing mistakes the reference for
   an (empty) SBOM; ``metadata.timestamp`` sits where CycloneDX puts it, so
   the policy's ``maxAge`` reads it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaingate import safejson
from chaingate.predicate_types import (
    COSIGN_VULN_V1,
    CYCLONEDX_BOM,
    SLSA_PROVENANCE_V1,
    SLSA_VSA_V1,
    SPDX_DOCUMENT,
)
from chaingate.provenance.statement import (
    StatementError,
    check_statement,
    encode,
    is_statement,
    is_uri,
    names_digest,
)
from chaingate.userfiles import read_user_file

CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json"
CYCLONEDX_VERSIONS = frozenset({"1.4", "1.5", "1.6"})

#: cosign's ``attest --type`` names.
PREDICATE_TYPES = {
    "slsaprovenance": SLSA_PROVENANCE_V1,
    "slsaprovenance1": SLSA_PROVENANCE_V1,
    "cyclonedx": CYCLONEDX_BOM,
    "spdxjson": SPDX_DOCUMENT,
    "vuln": COSIGN_VULN_V1,
    "vsa": SLSA_VSA_V1,
}
#: SBOMs up to this size are signed inline; larger ones are attached by reference (see module docs).
MAX_INLINE_SBOM_BYTES = 1024 * 1024
#: A predicate file larger than this is refused before it is parsed.
MAX_PREDICATE_BYTES = 256 * 1024 * 1024


def predicate_type_for(name: str) -> str:
    """The predicate type URI for a ``--type`` value: a cosign name, or a URI as is."""
    known = PREDICATE_TYPES.get(name.lower())
    if known is not None:
        return known
    if not is_uri(name):
        raise StatementError(
            f"--type: {name!r} is neither a known type ({', '.join(PREDICATE_TYPES)}) nor a URI",
            hint="give a predicate type URI, e.g. https://example.com/my-predicate/v1",
        )
    return name


@dataclass(frozen=True)
class LoadedPredicate:
    """A predicate ready to sign, and where it came from (for messages)."""

    predicate_type: str
    predicate: dict[str, Any] = field(repr=False)
    source: str
    #: The statement it was taken from, when the file held one: its subject must name the image.
    statement: dict[str, Any] | None = field(default=None, repr=False)
    #: Exact SBOM bytes to attach as their own referrer (the SBOM was larger than the inline limit).
    sbom: bytes | None = field(default=None, repr=False)

    def check_subject(self, digest: str) -> None:
        """Refuse a statement about another image: signing it for this one would misattribute it."""
        if self.statement is not None and not names_digest(self.statement, digest):
            named = ", ".join(
                f"{k}:{v}"
                for entry in self.statement.get("subject", [])
                for k, v in (entry.get("digest") or {}).items()
            )
            raise StatementError(
                f"{self.source}: the statement's subject ({named}) does not name the image digest {digest}"
            )


def _check_cyclonedx(doc: dict[str, Any], source: str) -> None:
    if doc.get("bomFormat") != "CycloneDX":
        raise StatementError(
            f"{source}: not a CycloneDX JSON document (bomFormat is {doc.get('bomFormat')!r})"
        )
    version = doc.get("specVersion")
    if version not in CYCLONEDX_VERSIONS:
        raise StatementError(
            f"{source}: CycloneDX specVersion {version!r} is not supported (1.4, 1.5 or 1.6)"
        )


def load_predicate(path: Path, predicate_type: str) -> LoadedPredicate:
    """Read and check ``path``: JSON, a bare predicate or a Statement v1, CycloneDX rules for SBOMs."""
    source = f"--predicate {path}"
    raw = read_user_file(path, MAX_PREDICATE_BYTES, source, StatementError)
    try:
        doc = safejson.loads(raw)
    except ValueError as e:
        raise StatementError(f"{source}: not valid JSON ({e})") from None
    statement: dict[str, Any] | None = None
    exact: bytes | None = raw
    if is_statement(doc):
        statement = check_statement(doc, source)
        if statement["predicateType"] != predicate_type:
            raise StatementError(
                f"{source}: the statement's predicateType {statement['predicateType']} differs from --type "
                f"({predicate_type})"
            )
        doc = statement.get("predicate") or {}
        exact = None
    if not isinstance(doc, dict):
        raise StatementError(f"{source}: a predicate must be a JSON object, not {type(doc).__name__}")
    sbom = None
    if predicate_type == CYCLONEDX_BOM:
        _check_cyclonedx(doc, source)
        data = exact if exact is not None else encode(doc)
        if len(data) > MAX_INLINE_SBOM_BYTES:
            sbom = data
    return LoadedPredicate(predicate_type, doc, source, statement, sbom)


def sbom_reference_predicate(
    sbom: dict[str, Any], blob_digest: str, size: int, uri: str | None
) -> dict[str, Any]:
    """The predicate that stands in for an SBOM attached by reference (shape in the module docs)."""
    reference: dict[str, Any] = {"digest": blob_digest, "size": size, "mediaType": CYCLONEDX_MEDIA_TYPE}
    if uri:
        reference["uri"] = uri
    out: dict[str, Any] = {"sbomReference": reference, "specVersion": sbom.get("specVersion")}
    if isinstance(sbom.get("serialNumber"), str):
        out["serialNumber"] = sbom["serialNumber"]
    metadata = sbom.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("timestamp"), str):
        out["metadata"] = {"timestamp": metadata["timestamp"]}
    return out
