"""Errors and results of keyless signing.

Signing talks to three services (an OIDC provider, Fulcio, Rekor) and then a
registry. Every failure among them is a :class:`SigningError` whose message
says which of them failed and what, if anything, was left behind, because a
half-finished attestation is exactly what an operator must be able to see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaingate.errors import ChaingateError
from chaingate.timeutil import format_epoch


class SigningError(ChaingateError):
    """Keyless signing or attaching failed; the message names the service or store at fault."""


class IdentityTokenError(SigningError):
    """No usable OIDC identity token: missing, malformed, expired, or for another audience."""


class TrustConfigError(SigningError):
    """The Sigstore trust configuration could not be loaded or names no usable services."""


@dataclass(frozen=True)
class SignerIdentity:
    """Who signed, as the Fulcio certificate states it.

    ``san`` is the certificate's subject alternative name (an email, or a URI
    such as a GitHub workflow ref); ``issuer`` the OIDC issuer Fulcio
    verified; ``claims`` the Fulcio identity extensions by name (GitHub
    workflow repository, ref, sha, trigger, …).
    """

    san: str
    issuer: str | None
    claims: Mapping[str, str] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"san": self.san, "issuer": self.issuer}
        if self.claims:
            out["claims"] = dict(self.claims)
        return out


@dataclass(frozen=True)
class TransparencyLogEntry:
    """Where the signature was logged: Rekor's index and its (trusted) integration time."""

    log_index: int
    integrated_time: int
    log_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "logIndex": self.log_index,
            "integratedTime": self.integrated_time,
            "integratedTimeUTC": format_epoch(self.integrated_time),
            "logId": self.log_id,
        }


@dataclass(frozen=True)
class AttachedReferrer:
    """An artifact attached to the image: the referrer manifest and the blob it carries."""

    digest: str
    artifact_type: str
    blob_digest: str
    blob_size: int


@dataclass(frozen=True)
class AttestationResult:
    """What ``attest`` / ``sign`` did: the signed statement's bundle and where it now lives."""

    image: str
    subject_digest: str
    predicate_type: str
    referrer: AttachedReferrer
    identity: SignerIdentity
    tlog: TransparencyLogEntry
    #: An SBOM too large to sign inline, attached as its own referrer before the attestation.
    sbom_referrer: AttachedReferrer | None = None
    bundle: bytes = field(default=b"", repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": self.image,
            "digest": self.subject_digest,
            "predicateType": self.predicate_type,
            "referrer": self.referrer.digest,
            "artifactType": self.referrer.artifact_type,
            "bundleDigest": self.referrer.blob_digest,
            "signer": self.identity.to_dict(),
            "rekor": self.tlog.to_dict(),
        }
        if self.sbom_referrer is not None:
            out["sbomReferrer"] = {
                "digest": self.sbom_referrer.digest,
                "blobDigest": self.sbom_referrer.blob_digest,
                "size": self.sbom_referrer.blob_size,
            }
        return out
