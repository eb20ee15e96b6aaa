"""The values passed between the verification stages: found bundles, ignored attachments, the decision.

Verification runs in three stages with a narrowing trust boundary: collect
(bytes that match their digests), bundles (signatures that verify, signers
the policy names, statements about this image) and the policy's clauses.
Each stage hands the next only what it established, and records what it
dropped and why, so the decision can list every attachment it did not count.
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
    bundles: tuple[FoundBundle, ...]
    ignored: tuple[Ignored, ...]
