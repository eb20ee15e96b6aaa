"""The in-toto statement and predicate type URIs chaingate writes and judges, defined once.

The gate sorts attestations by these strings: a provenance clause reads only
SLSA types, a scan clause only cosign's vuln type, and the gate's own records
never count as evidence. Six modules spelled them separately before, where one
typo would have made a clause skip evidence it should judge, so every module
and test takes them from here.

This module imports nothing, so any module may use it.
"""

from __future__ import annotations

#: in-toto Statement v1, what chaingate writes; v0.1 is still read from older signers.
IN_TOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
IN_TOTO_STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
#: SLSA Verification Summary Attestation: what ``verify`` signs about its decision.
SLSA_VSA_V1 = "https://slsa.dev/verification_summary/v1"
CYCLONEDX_BOM = "https://cyclonedx.org/bom"
#: SPDX names its versions below this (``…/Document/v2.3``), so it is also matched as a prefix.
SPDX_DOCUMENT = "https://spdx.dev/Document"
COSIGN_VULN_V1 = "https://cosign.sigstore.dev/attestation/vuln/v1"
#: OpenVEX, as cosign's ``--type openvex`` names it (the document carries its own ``@context`` version).
OPENVEX = "https://openvex.dev/ns"
#: cosign v3's signature, written as a statement with an empty predicate.
COSIGN_SIGN_V1 = "https://sigstore.dev/cosign/sign/v1"

#: The gate's own outputs, as prefixes (any version). They describe a decision, not the artifact, so they
#: never count towards any clause whoever signed them: otherwise run 1's signed denial record would be
#: run 2's signature.
GATE_RECORD_PREFIXES = ("https://slsa.dev/verification_summary/", "https://chaingate.dev/deployment/")


def is_cyclonedx(predicate_type: str) -> bool:
    """CycloneDX under its own type, or a versioned spelling of it (``https://cyclonedx.org/bom/v1.6``)."""
    return predicate_type == CYCLONEDX_BOM or predicate_type.startswith(CYCLONEDX_BOM + "/")
