"""Verifying one Sigstore bundle: signature, chain, log, signer identity, and what the statement is about.

sigstore-python's own :class:`Verifier` does the cryptography (certificate
chain at the signing time, SCT, Rekor inclusion proof, checkpoint and SET,
DSSE signature, log-entry consistency). Identity is chaingate's: a policy
signer is an issuer plus an exact subject *or an anchored regular
expression*, and sigstore's ``Identity`` policy only knows exact subjects.
So the signers are handed to sigstore as one :class:`SignersPolicy` object
implementing its ``VerificationPolicy`` protocol (rather than ``UnsafeNoOp``
plus a check afterwards): sigstore calls it at the point of its own identity
check, after the chain and SCT and before the log, so no bundle is counted
without it; a mismatch raises :class:`IdentityMismatch`, a subclass of
sigstore's ``VerificationError`` this module tells apart from a broken
signature, so the reason says which of the two it was.

What the statement says is checked after the signature, never before:
its subject must carry the digest the bundle is attached to (a valid
statement about another image is a replay), and its predicate type is read
from the signed payload, never from manifest annotations.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier
from sigstore.errors import VerificationError

from chaingate import safejson
from chaingate.policy.clauses import (
    Attestation,
    CertificateFacts,
    is_gate_record,
    provenance_disagreements,
)
from chaingate.policy.model import SIGNER_CLAIMS, Signer
from chaingate.predicate_types import (
    IN_TOTO_STATEMENT_V01,
    IN_TOTO_STATEMENT_V1,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
)
from chaingate.provenance.statement import PAYLOAD_TYPE
from chaingate.signing.interface import TrustConfigError
from chaingate.text import one_line
from chaingate.verify.interface import FoundBundle, Ignored

if TYPE_CHECKING:
    from sigstore.verify import Verifier

STATEMENT_TYPES = (IN_TOTO_STATEMENT_V1, IN_TOTO_STATEMENT_V01)
_FULCIO_ARC = "1.3.6.1.4.1.57264.1."
#: Fulcio's OIDC issuer: the DER-encoded v2 extension, else the raw v1 one.
_ISSUER_EXTENSIONS = ((8, True), (1, False))
#: Sigstore's "other name" SAN (usernames), DER UTF8String.
_OTHERNAME_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")


class TrustRoot:
    """The verifier for a whole verification, built once: from a trust config, or public-good Sigstore.

    An explicit ``--trust-config`` that cannot be read is the user's mistake and
    raises (exit 2) before anything is fetched. The public-good root comes over
    TUF; when that fails the gate cannot verify anything, which denies with the
    reason instead of raising, as for any other outage.
    """

    def __init__(self, trust_config: Path | None) -> None:
        self.trust_config = trust_config
        self._verifier: Verifier | None = None
        self._problem: str | None = None
        if trust_config is not None:
            from sigstore.verify import Verifier

            from chaingate.signing.trust import load_trust_config

            config = load_trust_config(trust_config)
            try:
                self._verifier = Verifier(trusted_root=config.trusted_root)
            except Exception as e:  # sigstore refuses a root without logs, keys, …
                raise TrustConfigError(
                    f"--trust-config {trust_config}: not usable for verification ({one_line(e)})"
                ) from None

    def verifier(self) -> Verifier | str:
        """The verifier, or why there is none (a reason every bundle is then ignored with)."""
        if self._verifier is not None:
            return self._verifier
        if self._problem is None:
            from sigstore.verify import Verifier

            try:
                self._verifier = Verifier.production()
            except Exception as e:  # TUF and network failures come in many types; all mean "no root"
                self._problem = (
                    f"the public-good Sigstore trust root is unavailable ({one_line(e) or type(e).__name__})"
                )
                return self._problem
            return self._verifier
        return self._problem


class IdentityMismatch(VerificationError):
    """The certificate verified, but its identity is not one the policy's ``signers`` names."""


class SignersPolicy:
    """sigstore's ``VerificationPolicy`` protocol over the policy's ``signers`` (see the module docs)."""

    def __init__(self, signers: Sequence[Signer]) -> None:
        self.signers = tuple(signers)
        self.matched: Signer | None = None
        self.identity: tuple[str, str] | None = None
        self.facts = CertificateFacts()

    def verify(self, cert: x509.Certificate) -> None:
        try:
            issuer = _issuer(cert)
            sans = _sans(cert)
            self.facts = certificate_facts(cert)
        except (ValueError, x509.ExtensionNotFound) as e:
            raise IdentityMismatch(f"unreadable signing certificate identity ({one_line(e)})") from None
        self.identity = (", ".join(sans) or "no SAN", issuer or "none")
        for signer in self.signers:
            if issuer is None or signer.issuer != issuer:
                continue
            if signer.subject is not None and signer.subject not in sans:
                continue
            if signer.subject_regexp is not None and not any(
                signer.subject_regexp.fullmatch(s) for s in sans
            ):
                continue
            if all(_claim_matches(cert, name, value) for name, value in signer.claims.items()):
                self.matched = signer
                return
        raise IdentityMismatch(
            f"signer {self.identity[0]} (issuer {self.identity[1]}) matches no signers entry of the policy"
        )


def _der_utf8(data: bytes) -> str:
    """The text of a DER UTF8String; ValueError for anything else (a malformed claim never matches)."""
    if len(data) < 2 or data[0] != 0x0C:
        raise ValueError("not a DER UTF8String")
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            raise ValueError("bad DER length")
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if offset + length != len(data):
        raise ValueError("DER length does not match the value")
    return data[offset:].decode("utf-8")


def _extension(cert: x509.Certificate, arc: int, der: bool) -> str | None:
    try:
        ext = cert.extensions.get_extension_for_oid(ObjectIdentifier(f"{_FULCIO_ARC}{arc}"))
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise ValueError(f"extension {_FULCIO_ARC}{arc} has an unexpected type")
    return _der_utf8(value.value) if der else value.value.decode("utf-8")


def _issuer(cert: x509.Certificate) -> str | None:
    for arc, der in _ISSUER_EXTENSIONS:
        value = _extension(cert, arc, der)
        if value is not None:
            return value
    return None


def _sans(cert: x509.Certificate) -> list[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    out: list[str] = list(names.get_values_for_type(x509.RFC822Name))
    out += names.get_values_for_type(x509.UniformResourceIdentifier)
    out += [
        _der_utf8(o.value) for o in names.get_values_for_type(x509.OtherName) if o.type_id == _OTHERNAME_OID
    ]
    return out


def certificate_facts(cert: x509.Certificate) -> CertificateFacts:
    """The build facts of Fulcio's DER-encoded CI extensions; ValueError when one is malformed."""
    return CertificateFacts(
        source_repository_uri=_extension(cert, 12, True),
        source_repository_digest=_extension(cert, 13, True),
        source_repository_ref=_extension(cert, 14, True),
        build_signer_uri=_extension(cert, 9, True),
        build_config_uri=_extension(cert, 18, True),
        runner_environment=_extension(cert, 11, True),
    )


def _claim_matches(cert: x509.Certificate, name: str, expected: str) -> bool:
    present = 0
    for arc, der, path_only in SIGNER_CLAIMS[name]:
        value = _extension(cert, arc, der)
        if value is None:
            continue
        present += 1
        if path_only:
            # .12 holds https://github.com/org/app; the legacy claim is org/app.
            value = value.split("://", 1)[-1].split("/", 1)[-1]
        if value != expected:
            return False
    return present > 0


def verify_bundle(trust: TrustRoot, found: FoundBundle, signers: Sequence[Signer]) -> Attestation | Ignored:
    """An :class:`Attestation` when ``found`` counts, else why not (see the module docs for the order)."""

    def ignore(reason: str) -> Ignored:
        return Ignored(found.referrer, f"{found.source}: {reason}")

    verifier = trust.verifier()
    if isinstance(verifier, str):
        return ignore(verifier)
    from chaingate.signing.bundle import load_bundle

    try:
        bundle = load_bundle(found.raw)
    except Exception as e:  # sigstore raises InvalidBundle, ValueError, KeyError… for bad input
        return ignore(f"not a loadable Sigstore bundle ({one_line(e, 200)})")
    if bundle._dsse_envelope is None:
        return ignore("a message signature, not a DSSE attestation: it cannot say which image it is about")
    policy = SignersPolicy(signers)
    try:
        payload_type, payload = verifier.verify_dsse(bundle, policy)
    except IdentityMismatch as e:
        return ignore(str(e))
    except Exception as e:  # any verification failure, whatever its type, means "does not count"
        return ignore(f"bundle does not verify: {one_line(e)}")
    if policy.matched is None or policy.identity is None:
        return ignore(
            "sigstore did not apply the signer policy"
        )  # defensive: never count an unchecked identity
    if payload_type != PAYLOAD_TYPE:
        return ignore(f"DSSE payload type {payload_type!r} is not an in-toto statement")
    statement = _statement(payload)
    if isinstance(statement, str):
        return ignore(statement)
    if not _names_digest(statement, found.attached_to):
        named = ", ".join(_subject_digests(statement)) or "no digest"
        return ignore(
            f"its statement is about {named}, not {found.attached_to} (a replay from another image?)"
        )
    signed_at = _signed_at(verifier, bundle)
    if signed_at is None:
        return ignore("no trusted signing time (neither a Rekor integrated time nor a TSA timestamp)")
    predicate = statement.get("predicate")
    attestation = Attestation(
        referrer=found.referrer,
        attached_to=found.attached_to,
        source=found.source,
        predicate_type=statement["predicateType"],
        predicate=predicate if isinstance(predicate, dict) else {},
        signed_at=signed_at,
        signer=policy.identity[0],
        issuer=policy.identity[1],
        certificate=policy.facts,
    )
    if is_gate_record(attestation.predicate_type):
        return ignore(
            f"{attestation.predicate_type} is a gate's own record (signed by {attestation.signer}): "
            "it never counts towards any clause"
        )
    if attestation.predicate_type in (SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V02):
        issues = provenance_disagreements(attestation)
        if issues:
            return ignore("provenance contradicts its signing certificate: " + "; ".join(issues))
    return attestation


def _statement(payload: bytes) -> dict[str, Any] | str:
    try:
        statement = safejson.loads(payload)
    except ValueError as e:  # not JSON, NaN/Infinity, a huge number, or nested too deep
        return f"the signed payload is not usable JSON ({one_line(e, 120)})"
    if not isinstance(statement, dict):
        return "the signed payload is not a JSON object"
    if statement.get("_type") not in STATEMENT_TYPES:
        return f"the signed payload is not an in-toto statement (_type {statement.get('_type')!r})"
    if not isinstance(statement.get("predicateType"), str) or not statement["predicateType"]:
        return "the statement has no predicateType"
    predicate = statement.get("predicate")
    if predicate is not None and not isinstance(predicate, dict):
        return "the statement's predicate is not an object"
    if not isinstance(statement.get("subject"), list):
        return "the statement has no subject list"
    return statement


def _subject_digests(statement: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for entry in statement.get("subject", []):
        digest = entry.get("digest") if isinstance(entry, dict) else None
        if isinstance(digest, dict):
            out.extend(f"{k}:{v}" for k, v in sorted(digest.items()) if isinstance(v, str))
    return out


def _names_digest(statement: dict[str, Any], digest: str) -> bool:
    algorithm, _, hexpart = digest.partition(":")
    for entry in statement.get("subject", []):
        value = entry.get("digest", {}).get(algorithm) if isinstance(entry, dict) else None
        if isinstance(value, str) and value.lower() == hexpart:
            return True
    return False


def _signed_at(verifier: Verifier, bundle: Any) -> datetime | None:
    """The earliest verified signing time: what sigstore itself established for the chain check.

    ``_establish_time`` is the step sigstore's ``verify_dsse`` just ran and
    accepted (it re-verifies TSA timestamps and takes the Rekor integrated time
    only with its inclusion promise, which verification has checked); reading
    it again is the only way sigstore-python exposes the verified time.
    """
    try:
        times = [result.time for result in verifier._establish_time(bundle)]
    except Exception:  # a time sigstore cannot re-establish is no trusted time
        return None
    return min(times) if times else None
