"""``chaingate deploy``: the gate and the deploy in one process, so what was verified is what runs.

The order is the point. The image reference is resolved once, by the gate; the
deploy then uses only ``decision.digest``. Everything that can say no — the
policy, the IAM audit, a bindings manifest naming secrets that do not exist, a
deployer flag that is not the identity actually holding the credentials — says
it before the first write call, so a denied deploy leaves Code Engine untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaingate.deploy.codeengine import CodeEngine, DeployOptions, deploy, digest_reference
from chaingate.deploy.ibmcloud import token_claims
from chaingate.deploy.interface import (
    Decision,
    DeployError,
    DeployResult,
    GateDenied,
    IamAuditReport,
    Target,
)
from chaingate.deploy.record import attach_deployment, canonical_json, deployer_identity, deployment_record
from chaingate.errors import ChaingateError
from chaingate.oci.interface import Descriptor, Platform
from chaingate.oci.registries import Registries
from chaingate.text import one_line

log = logging.getLogger(__name__)


class Denied(GateDenied):
    """A denial with the reasons to show, one per line, after the one-line message."""

    def __init__(self, message: str, reasons: list[str]) -> None:
        super().__init__(message)
        self.reasons = reasons

    def diagnostics(self) -> str:
        return "\n".join([self.message, *(f"  - {r}" for r in self.reasons)])


@dataclass
class DeployOutcome:
    decision: Decision
    result: DeployResult
    record: dict[str, Any]
    audit: IamAuditReport | None = None
    attached: Descriptor | None = None
    warnings: list[str] = field(default_factory=list)


def evaluate(
    image: str,
    policy_path: Path,
    *,
    registries: Registries,
    trust_config: Path | None,
    project: str | None,
    platform: Platform | None = None,
) -> Decision:
    """The gate's decision for ``image``, computed here and now by ``chaingate.verify``."""
    from chaingate.policy import load_policy
    from chaingate.verify import verify_image

    policy = load_policy(policy_path)
    decision: Decision = verify_image(
        image, policy, registries=registries, trust_config=trust_config, project=project, platform=platform
    )
    return decision


def denial_reasons(decision: Decision) -> list[str]:
    """The failing clauses of a decision, as ``clause: reason`` lines."""
    reasons = [f"{c.clause}: {c.reason or 'failed'}" for c in decision.clauses if c.result == "fail"]
    return reasons or [f"verdict {decision.verdict}"]


def gated_deploy(
    decision: Decision,
    ce: CodeEngine,
    target: Target,
    options: DeployOptions,
    *,
    registries: Registries | None,
    audit: Callable[[], IamAuditReport] | None = None,
    deployer: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DeployOutcome:
    """Deploy ``decision.digest`` to ``target`` if, and only if, every check before the first write passes.

    ``registries`` None skips attaching the record (it is still returned).
    """
    if not decision.allowed:
        raise Denied(f"{decision.image} ({decision.digest or 'unresolved'}): denied by policy",
                     denial_reasons(decision))  # fmt: skip
    if not decision.digest:
        raise Denied(f"{decision.image}: no digest was verified, so there is nothing to deploy", [])
    image_reference = digest_reference(decision.repository, decision.digest)
    report = None
    if audit is not None:
        report = audit()
        if not report.passed:
            raise Denied(
                f"IAM audit of project {target.project_id}: identities besides {report.deployer} can deploy",
                [f"{f.subject}: {f.message}" for f in report.findings],
            )
    if deployer is not None:
        ce.project(target.project_id)  # authenticates, so the token's identity is known before any write
        actual = token_claims(ce.authenticator).get("iam_id")
        if actual and actual != deployer:
            raise DeployError(f"--deployer: is {deployer} but the Code Engine credentials are {actual}")
    started = now()
    result = deploy(ce, target, image_reference, options)
    finished = now()
    decision_bytes = canonical_json(decision.record())
    who = deployer_identity(token_claims(ce.authenticator), deployer)
    record = deployment_record(
        result, decision, decision_bytes, deployer=who, started=started, finished=finished
    )
    outcome = DeployOutcome(decision, result, record, report)
    if registries is not None:
        try:
            outcome.attached = attach_deployment(
                registries, decision.repository, decision.digest, record, decision_bytes
            )
        except Exception as e:
            # The image already runs: whatever goes wrong with the registry now must not read as a failed
            # deploy (a pipeline would retry a deploy that succeeded), so it is reported, not raised.
            detail = e.message if isinstance(e, ChaingateError) else f"{type(e).__name__}: {one_line(e)}"
            message = f"deployed, but the deployment record was not attached to {image_reference}: {detail}"
            log.warning("%s", message)
            outcome.warnings.append(message)
    return outcome


def summary(outcome: DeployOutcome) -> Mapping[str, Any]:
    """What the CLI prints as JSON: the record, plus where it was attached and any warnings."""
    out = dict(outcome.record)
    out["attachedAs"] = outcome.attached.digest if outcome.attached else None
    out["warnings"] = list(outcome.warnings)
    return out
