"""The values passed between the verification stages: found bundles, ignored attachments, the decision.

Verification runs in three stages with a narrowing trust boundary: collect
(bytes that match their digests), bundles (signatures that verify, signers
the policy names, statements about this image) and the policy's clauses.
Each stage hands the next only what it established, and records what it
dropped and why, so the decision can list every attachment it did not count.
The first two run interleaved, one bundle at a time (see ``collect``), so an
image's bundles are never all in memory together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chaingate.policy.clauses import Attestation
from chaingate.policy.interface import ClauseResult
from chaingate.policy.record import Decision

__all__ = ["Attestation", "ClauseResult", "Collected", "Decision", "FoundBundle", "Ignored"]


@dataclass(frozen=True)
class Ignored:
    """An attachment that was found but does not count, and why."""

    digest: str
    reason: str


@dataclass(frozen=True)
class FoundBundle:
    """A Sigstore bundle read from an attachment whose manifest and blob matched their digests.

    Nothing about its content is trusted yet: it has not been verified.
    """

    #: Digest of the referrer (or legacy tag) manifest the bundle came from.
    referrer: str
    #: The manifest digest it was attached to: its statement must name exactly this digest.
    attached_to: str
    #: ``referrers-api``, ``fallback-tag``, ``layout`` or ``legacy-tag:<suffix>``.
    source: str
    raw: bytes = field(repr=False)


@dataclass(frozen=True)
class Collected:
    """Every attachment of an image: what each bundle came to, and what could not be a bundle at all.

    Bundles are read and verified one at a time while they are collected, so
    no more than one bundle's bytes are held at once; what remains of each is
    its outcome.
    """

    #: One outcome per bundle found, in listing order: an attestation that counts, or why it does not.
    verified: tuple[Attestation | Ignored, ...]
    #: Attachments that are not readable Sigstore bundles (rejected referrers, other artifacts, bad blobs).
    ignored: tuple[Ignored, ...]
