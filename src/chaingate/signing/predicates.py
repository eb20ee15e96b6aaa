"""Predicates to attest: the ``--type`` names, reading ``--predicate`` files, and large SBOMs.

``--type`` names map to predicate types as cosign's ``attest --type`` does;
anything else must itself be a URI. ``--predicate`` holds either a bare
predicate or a whole in-toto Statement v1; of a statement only the
``predicate`` is signed, under a subject chaingate writes itself, and the
statement must already name the image's digest (a statement about another
image is refused, not silently re-pointed). For the same reason an SBOM whose
``metadata.component`` names another image's digest is refused, and SLSA
provenance whose shape is the other version's than ``--type`` says is too.

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

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from chaingate import safejson
from chaingate.predicate_types import (
    COSIGN_VULN_V1,
    CYCLONEDX_BOM,
    OPENVEX,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    SLSA_VSA_V1,
    SPDX_DOCUMENT,
    is_cyclonedx,
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

#: cosign's ``attest --type`` names, exactly as cosign maps them: a workflow moved between cosign and
#: chaingate must sign the same type, so ``slsaprovenance`` is v0.2 here too and v1 is ``slsaprovenance1``.
PREDICATE_TYPES = {
    "slsaprovenance": SLSA_PROVENANCE_V02,
    "slsaprovenance02": SLSA_PROVENANCE_V02,
    "slsaprovenance1": SLSA_PROVENANCE_V1,
    "cyclonedx": CYCLONEDX_BOM,
    "spdxjson": SPDX_DOCUMENT,
    "vuln": COSIGN_VULN_V1,
    "openvex": OPENVEX,
    "vsa": SLSA_VSA_V1,
}
#: Top-level keys only one SLSA provenance version has, and the ``--type`` name of that version. A v1
#: predicate signed as v0.2 (or the reverse) is read by every verifier with the wrong schema: the
#: policy's builder and source checks would find nothing, or the wrong thing, where they look.
_PROVENANCE_SHAPES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    SLSA_PROVENANCE_V1: ("slsaprovenance1", ("buildDefinition", "runDetails")),
    SLSA_PROVENANCE_V02: ("slsaprovenance", ("builder", "invocation", "materials")),
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

    @property
    def described_images(self) -> tuple[str, ...]:
        """The image digests an SBOM predicate says it describes (empty for other predicates)."""
        return sbom_image_digests(self.predicate) if is_cyclonedx(self.predicate_type) else ()

    def check_subject(self, digest: str, same_image: Callable[[], Collection[str]] = tuple) -> None:
        """Refuse a statement or an SBOM about another image: signing it for this one would misattribute it.

        ``same_image`` lists the other digests that stand for the image being
        attested (an index's platform manifests, the image's config); it is
        called only when the SBOM names a digest other than ``digest``, so the
        usual case reads nothing more from the registry.
        """
        if self.statement is not None and not names_digest(self.statement, digest):
            named = ", ".join(
                f"{k}:{v}"
                for entry in self.statement.get("subject", [])
                for k, v in (entry.get("digest") or {}).items()
            )
            raise StatementError(
                f"{self.source}: the statement's subject ({named}) does not name the image digest {digest}"
            )
        stray = [d for d in self.described_images if d != digest]
        wrong = [d for d in stray if d not in set(same_image())] if stray else []
        if wrong:
            raise StatementError(
                f"{self.source}: the SBOM describes {', '.join(w[:80] for w in wrong)} (metadata.component), "
                f"not the image being attested ({digest})",
                hint="generate the SBOM of this image (chaingate sbom IMAGE@DIGEST), or attest the image it "
                "describes",
            )


def sbom_image_digests(doc: Mapping[str, Any]) -> tuple[str, ...]:
    """The image digests a CycloneDX document's ``metadata.component`` names, in the forms tools write.

    chaingate and syft write the manifest digest as the component's
    ``version`` (the form the gate's ``sbom`` clause reads); others give it as
    a SHA-256 ``hashes`` entry or as the version of an OCI purl
    (``pkg:oci/app@sha256%3A…``). Any ``sha256:`` value counts as naming a
    digest, well-formed or not: one that is not the image's is refused, not
    ignored.
    """
    metadata = doc.get("metadata")
    component = metadata.get("component") if isinstance(metadata, dict) else None
    if not isinstance(component, dict):
        return ()
    named: list[str] = []
    version = component.get("version")
    if isinstance(version, str) and version.startswith("sha256:"):
        named.append(version)
    hashes = component.get("hashes")
    for entry in hashes if isinstance(hashes, list) else ():
        if (
            isinstance(entry, dict)
            and entry.get("alg") == "SHA-256"
            and isinstance(entry.get("content"), str)
        ):
            named.append("sha256:" + entry["content"].lower())
    purl = component.get("purl")
    if isinstance(purl, str):
        _, at, purl_version = purl.partition("?")[0].partition("#")[0].rpartition("@")
        purl_version = unquote(purl_version)
        if at and purl_version.startswith("sha256:"):
            named.append(purl_version)
    return tuple(dict.fromkeys(named))


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


def _check_provenance_shape(doc: dict[str, Any], predicate_type: str, source: str, type_name: str) -> None:
    """Refuse SLSA provenance of one version under the other version's type (see ``_PROVENANCE_SHAPES``)."""
    if predicate_type not in _PROVENANCE_SHAPES:
        return
    for other, (name, keys) in _PROVENANCE_SHAPES.items():
        found = [key for key in keys if key in doc]
        if other != predicate_type and found:
            raise StatementError(
                f"{source}: the predicate is {other} provenance (it has {', '.join(found)}), but --type "
                f"{type_name} means {predicate_type}",
                hint=f"pass --type {name} (cosign's names: slsaprovenance is v0.2, slsaprovenance1 is v1)",
            )


def load_predicate(path: Path, predicate_type: str, *, type_name: str | None = None) -> LoadedPredicate:
    """Read and check ``path``: JSON, a bare predicate or a Statement v1, CycloneDX rules for SBOMs.

    ``type_name`` is the ``--type`` value as given, for messages (default: the type URI).
    """
    source = f"--predicate {path}"
    type_name = type_name or predicate_type
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
            shape = _PROVENANCE_SHAPES.get(statement["predicateType"])
            raise StatementError(
                f"{source}: the statement's predicateType {statement['predicateType']} differs from --type "
                f"{type_name} ({predicate_type})",
                hint=f"pass --type {shape[0]} (cosign's names: slsaprovenance is v0.2, slsaprovenance1 is v1)"
                if shape is not None and predicate_type in _PROVENANCE_SHAPES
                else None,
            )
        doc = statement.get("predicate", {})  # absent means empty; null, [] or "" are refused below
        exact = None
    if not isinstance(doc, dict):
        raise StatementError(f"{source}: a predicate must be a JSON object, not {type(doc).__name__}")
    _check_provenance_shape(doc, predicate_type, source, type_name)
    sbom = None
    if is_cyclonedx(predicate_type):
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
