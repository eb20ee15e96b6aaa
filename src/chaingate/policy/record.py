"""The decision: the verdict, how it was reached, and the two documents that carry it onward.

A decision outlives the process that made it: it is written next to a deploy,
stored as evidence and (signed) attached to the image. So it is a frozen
value, and both its JSON record (docs/design.md, "Decision record") and its SLSA
VSA v1 statement are derived from it deterministically: the same decision
always serialises to the same documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import chaingate
from chaingate.errors import ChaingateError
from chaingate.policy.interface import ClauseResult, Mode
from chaingate.predicate_types import IN_TOTO_STATEMENT_V1, SLSA_VSA_V1
from chaingate.timeutil import format_time

#: The name verify/vsa.py imports; the URI itself is defined in chaingate.predicate_types.
VSA_PREDICATE_TYPE = SLSA_VSA_V1
#: Who verified, as the VSA's ``verifier.id`` names it.
VERIFIER_ID = "https://chaingate.dev/verifier/v1"
#: Version of the decision record's own shape; bumped only when a field changes meaning.
#: The decision record's media type where it travels as a blob (beside a deployment record, or mirrored).
DECISION_MEDIA_TYPE = "application/vnd.chaingate.decision.v1+json"
#: The deployment record's artifact type (``deploy`` attaches it beside the decision it cites).
DEPLOYMENT_ARTIFACT_TYPE = "application/vnd.chaingate.deployment.v1+json"
#: Referrers that are a gate's own records: never evidence, and left behind when an image is mirrored.
GATE_RECORD_ARTIFACT_TYPES = frozenset({DECISION_MEDIA_TYPE, DEPLOYMENT_ARTIFACT_TYPE})
RECORD_VERSION = 1


@dataclass(frozen=True)
class Decision:
    """What the gate decided about one image digest, and why (see the module docs for why it is frozen)."""

    image: str
    digest: str
    #: ``REGISTRY/REPO`` of the verified image (the reference itself for a layout or archive).
    repository: str
    mode: Mode
    verdict: Literal["allow", "deny"]
    clauses: tuple[ClauseResult, ...]
    #: (attachment digest, reason) for every attachment that was found but did not count.
    ignored: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...]
    policy_digest: str = ""
    policy_path: str = ""
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    project: str | None = None
    #: With ``--platform``: the multi-arch index :attr:`digest` (the platform manifest, what runs) was
    #: selected from. Its attachments counted too; the decision, VSA and deploy name :attr:`digest`.
    index_digest: str | None = None
    #: (referrer digest, predicate type) of every attestation that counted: the VSA's inputs.
    inputs: tuple[tuple[str, str], ...] = ()
    tool_version: str = chaingate.__version__
    #: The SLSA build level the gate verified: 2 when signed provenance from a builder the policy
    #: pins passed, 1 when provenance passed without pinned builders, else 0.
    slsa_build_level: int = 0

    @property
    def allowed(self) -> bool:
        """Whether the caller may proceed: an allow, or any verdict in warn mode."""
        return self.verdict == "allow" or self.mode == "warn"

    def record(self) -> dict[str, Any]:
        """The JSON decision record of docs/design.md."""
        out: dict[str, Any] = {
            "recordVersion": RECORD_VERSION,
            "image": self.image,
            "digest": self.digest,
            "repository": self.repository,
        }
        if self.index_digest:
            out["indexDigest"] = self.index_digest
        out.update(
            {
                "policyDigest": self.policy_digest,
                "policy": self.policy_path,
                "project": self.project,
                "mode": self.mode,
                "verdict": self.verdict,
                "allowed": self.allowed,
                "clauses": [c.to_dict() for c in self.clauses],
                "ignored": [{"digest": d, "reason": r} for d, r in self.ignored],
                "warnings": list(self.warnings),
                "time": format_time(self.time),
                "tool": {"name": "chaingate", "version": self.tool_version},
                "toolVersion": self.tool_version,
            }
        )
        return out

    def vsa_statement(self) -> dict[str, Any]:
        """An in-toto Statement v1 with a SLSA VSA v1 predicate about :attr:`digest`.

        ``verificationResult`` is the verdict itself, not what warn mode let
        through: a consumer of the VSA must not mistake a warned-through denial
        for a pass. ``verifiedLevels`` carries :attr:`slsa_build_level`.
        """
        if not self.digest:
            raise ChaingateError(f"{self.image}: no digest was verified, so there is no VSA to write")
        algorithm, _, hexpart = self.digest.partition(":")
        passed = self.verdict == "allow"
        levels = [f"SLSA_BUILD_LEVEL_{self.slsa_build_level}"] if passed else ["FAILED"]
        predicate: dict[str, Any] = {
            "verifier": {"id": VERIFIER_ID, "version": {"chaingate": self.tool_version}},
            "timeVerified": format_time(self.time),
            "resourceUri": f"oci://{self.repository}@{self.digest}",
            "policy": self._policy_descriptor(),
            "inputAttestations": [
                {"uri": f"oci://{self.repository}@{referrer}", "digest": _digest_set(referrer)}
                for referrer, _ in self.inputs
            ],
            "verificationResult": "PASSED" if passed else "FAILED",
            "verifiedLevels": levels,
            "slsaVersion": "1.0",
        }
        return {
            "_type": IN_TOTO_STATEMENT_V1,
            "subject": [{"name": self.repository, "digest": {algorithm: hexpart}}],
            "predicateType": SLSA_VSA_V1,
            "predicate": predicate,
        }

    def _policy_descriptor(self) -> dict[str, Any]:
        """The VSA's policy ResourceDescriptor: a file URI only when the policy was a file (not ``(flags)``)."""
        out: dict[str, Any] = {}
        if self.policy_path and not self.policy_path.startswith("("):
            out["uri"] = Path(self.policy_path).resolve().as_uri()
        out["digest"] = _digest_set(self.policy_digest)
        return out


def _digest_set(digest: str) -> dict[str, str]:
    algorithm, _, hexpart = digest.partition(":")
    return {algorithm: hexpart} if hexpart else {}
