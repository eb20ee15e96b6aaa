"""The deployment record: which digest now runs where, who put it there, and on which decision.

It is printed (for the pipeline log and the evidence store) and attached to the
image as an OCI referrer, beside the decision record it cites by digest, so
anyone holding the image can find where it was deployed and why it was allowed.
The deploy has already happened when it is attached; a registry that refuses
the attachment is reported as a warning and never undoes or fails the deploy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import chaingate
from chaingate.deploy.interface import Decision, DeployResult
from chaingate.oci.artifact import Blob, build_artifact, push_artifact
from chaingate.oci.digest import sha256_digest
from chaingate.oci.interface import Descriptor
from chaingate.oci.stores import open_image
from chaingate.policy.record import DECISION_MEDIA_TYPE
from chaingate.policy.record import DEPLOYMENT_ARTIFACT_TYPE as DEPLOYMENT_ARTIFACT_TYPE
from chaingate.timeutil import format_time

if TYPE_CHECKING:
    from chaingate.oci.registries import Registries


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    """Sorted, compact JSON: the same record always has the same digest."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def deployer_identity(claims: Mapping[str, Any], fallback: str | None) -> dict[str, Any]:
    """Who deployed, from the IAM token's own claims (not from what the user said), else the ``--deployer`` flag."""
    account = claims.get("account")
    out = {
        "iamId": claims.get("iam_id") or fallback,
        "subject": claims.get("sub"),
        "subjectType": claims.get("sub_type"),
        "accountId": account.get("bss") if isinstance(account, Mapping) else None,
        "source": "iam-token" if claims.get("iam_id") else ("flag" if fallback else "unknown"),
    }
    return {k: v for k, v in out.items() if v is not None}


def deployment_record(
    result: DeployResult,
    decision: Decision,
    decision_bytes: bytes,
    *,
    deployer: Mapping[str, Any],
    started: datetime,
    finished: datetime,
) -> dict[str, Any]:
    project = result.project
    record: dict[str, Any] = {
        "mediaType": DEPLOYMENT_ARTIFACT_TYPE,
        "image": result.image_reference,
        "digest": decision.digest,
        **({"indexDigest": decision.index_digest} if decision.index_digest else {}),
        "platform": "ibm-code-engine",
        "project": {
            "id": project.id,
            "name": project.name,
            "region": project.region,
            "accountId": project.account_id,
            "resourceGroupId": project.resource_group_id,
        },
        result.target.kind: result.target.name,
        "created": result.created,
        "revision": result.revision,
        "previousImage": result.previous_image,
        "deployer": dict(deployer),
        "decision": {
            "digest": sha256_digest(decision_bytes),
            "mediaType": DECISION_MEDIA_TYPE,
            "verdict": decision.verdict,
            "mode": decision.mode,
        },
        "bindingsApplied": result.bindings_applied,
        "startedOn": format_time(started),
        "finishedOn": format_time(finished),
        "tool": {"name": "chaingate", "version": chaingate.__version__},
    }
    if result.job_run is not None:
        record["jobRun"] = {
            "name": result.job_run.name,
            "status": result.job_run.status,
            "succeeded": result.job_run.succeeded,
            "failed": result.job_run.failed,
        }
    if result.endpoint:
        record["endpoint"] = result.endpoint
    return record


def attach_deployment(
    registries: Registries,
    repository: str,
    digest: str,
    record: Mapping[str, Any],
    decision_bytes: bytes,
) -> Descriptor:
    """Attach the record (and the decision it cites) to ``repository@digest`` as one referrer.

    The subject is read by digest — no tag is resolved again — and the store
    checks what it reads against that digest.
    """
    opened = open_image(f"{repository}@{digest}", registries)
    with opened.store as store:
        subject = store.resolve(digest)
        artifact = build_artifact(
            subject,
            DEPLOYMENT_ARTIFACT_TYPE,
            [
                Blob(DEPLOYMENT_ARTIFACT_TYPE, canonical_json(record)),
                Blob(DECISION_MEDIA_TYPE, decision_bytes),
            ],
            annotations={"org.opencontainers.image.created": str(record.get("finishedOn", ""))},
        )
        return push_artifact(store, artifact)
