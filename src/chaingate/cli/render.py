"""What the commands print: text for humans, JSON documents for machines, progress, output files.

Only the CLI prints, so the wording of every line a pipeline log shows is
here, apart from the decision table and the inspection tree (in ``verify`` and
``inspect``, which the CI adapters render too). Text quoted from registries
and servers goes through ``one_line``. Library types are imported only for
the type checker: importing this module costs nothing at start-up.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from chaingate.text import one_line
from chaingate.userfiles import write_atomic

if TYPE_CHECKING:
    from chaingate.deploy.interface import BindingsManifest, BindingsReport, IamAuditReport, Target
    from chaingate.deploy.run import DeployOutcome
    from chaingate.oci.copy import CopyResult
    from chaingate.signing.interface import AttestationResult
    from chaingate.verify.mirror import MirrorResult
    from chaingate.verify.vsa import VsaAttachment


class ProgressPrinter:
    """Progress for humans: a redrawn bar on a terminal, sparse plain lines in CI logs."""

    def __init__(self, stream: TextIO | None = None, *, interactive: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        if interactive is None:
            interactive = self.stream.isatty() and not os.environ.get("CI")
        self.interactive = interactive
        self._last: dict[str, int] = {}
        self._drawn = 0.0

    def __call__(self, what: str, done: int, total: int | None) -> None:
        if self.interactive:
            now = time.monotonic()
            if total and done < total and now - self._drawn < 0.1:
                return
            self._drawn = now
            if total:
                width = 30
                filled = int(width * done / total) if total else width
                bar = "#" * filled + "-" * (width - filled)
                self.stream.write(f"\r{what} [{bar}] {done * 100 // total:3d}%")
            else:
                self.stream.write(f"\r{what} {done} bytes")
            if total and done >= total:
                self.stream.write("\n")
            self.stream.flush()
            return
        # Plain: one line at each quarter, so CI logs stay short.
        quarter = 4 * done // total if total else 0
        if self._last.get(what) == quarter:
            return
        self._last[what] = quarter
        if total and done >= total:
            self.stream.write(f"{what}: done ({total} bytes)\n")
        elif total:
            self.stream.write(f"{what}: {quarter * 25}%\n")
        self.stream.flush()


def write_output(path: str | None, data: bytes) -> None:
    """Write a result to the file named by ``-o`` (see :func:`write_file`), or to stdout."""
    if not path:
        sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
        sys.stdout.flush()
        return
    write_file(path, data)


def write_file(path: str, data: bytes) -> None:
    """Replace ``path`` atomically: a reader never sees half a file, and a failed write leaves the old one."""
    write_atomic(Path(path), data)


def copy_document(result: CopyResult) -> dict[str, object]:
    return {
        "digest": result.digest,
        "mediaType": result.media_type,
        "manifests": result.manifests,
        "blobsCopied": result.blobs_copied,
        "blobsMounted": result.blobs_mounted,
        "blobsPresent": result.blobs_present,
        "referrers": list(result.referrers),
        "legacyTags": list(result.legacy_tags),
        "ignored": [{"digest": r.digest, "reason": r.reason} for r in result.rejected],
    }


def copy_text(src: str, dst: str, result: CopyResult) -> str:
    lines = [
        f"copied {src} -> {dst}\n  digest: {result.digest}\n"
        f"  manifests: {result.manifests}, blobs copied: {result.blobs_copied}, mounted: {result.blobs_mounted}, "
        f"already present: {result.blobs_present}\n  referrers: {len(result.referrers)}, "
        f"legacy tags: {len(result.legacy_tags)}"
    ]
    lines += [f"  ignored referrer {r.digest}: {one_line(r.reason, 1000)}" for r in result.rejected]
    return "\n".join(lines)


def mirror_text(result: MirrorResult) -> str:
    """The lines after the decision table: what reached DST, or that nothing did."""
    decision = result.decision
    if result.refused is not None:
        return f"\nnot mirrored: {result.refused}; nothing was written to {result.destination}"
    if result.copy is None:
        why = "denied" if decision.digest else "not resolved"
        return f"\nnot mirrored: {result.source} was {why}; nothing was written to {result.destination}"
    text = "\n" + copy_text(result.source, result.destination, result.copy)
    state = "attached" if result.decision_attached else "already recorded (identical decision)"
    text += f"\n  decision: {result.decision_referrer} {state}"
    return text


def attestation_text(result: AttestationResult) -> str:
    identity = result.identity
    text = (
        f"attached {result.predicate_type} to {result.image}\n"
        f"  digest:   {result.subject_digest}\n"
        f"  referrer: {result.referrer.digest} ({result.referrer.artifact_type})\n"
        f"  rekor:    log index {result.tlog.log_index} "
        f"(integrated {result.tlog.to_dict()['integratedTimeUTC']})\n"
        f"  signer:   {identity.san} (issuer {identity.issuer})"
    )
    if result.sbom_referrer is not None:
        text += (
            f"\n  sbom:     {result.sbom_referrer.digest} ({result.sbom_referrer.blob_size} bytes, "
            "attached by reference)"
        )
    return text


def vsa_text(attachment: VsaAttachment, output: str | None) -> str:
    """The lines after the decision table: where the VSA went (or why not), and the file written."""
    if attachment.result is not None:
        text = f"\ndecision signed and attached: VSA referrer {attachment.result.referrer.digest}"
    else:
        text = f"\ndecision record not signed: {attachment.reason}"
    if output:
        text += f"\nwrote {output}"
    return text


def deploy_text(outcome: DeployOutcome, target: Target) -> str:
    result, decision = outcome.result, outcome.decision
    lines = [
        f"deployed {result.image_reference}\n  to:       {target} ({result.project.region or 'region ?'})"
    ]
    if result.revision:
        label = "job run" if result.job_run else "revision"
        lines.append(f"  {label}: {' ' * (8 - len(label))}{result.revision}")
    lines.append(f"  previous: {result.previous_image or '(created now)'}")
    lines.append(f"  decision: {outcome.record['decision']['digest']} ({decision.verdict}, {decision.mode})")
    lines.append(f"  deployer: {outcome.record['deployer'].get('iamId', 'unknown')}")
    if outcome.attached is not None:
        lines.append(f"  record:   attached as {outcome.attached.digest}")
    if decision.verdict != "allow":
        lines.append("  warning: deployed in warn mode although the policy denies this image")
    lines += [f"  warning: {one_line(warning, 1000)}" for warning in outcome.warnings]
    return "\n".join(lines)


def iam_audit_text(report: IamAuditReport) -> str:
    verdict = "passed" if report.passed else "FAILED"
    lines = [
        one_line(
            f"IAM audit of project {report.project.id} ({report.project.name}) for deployer "
            f"{report.deployer}: {verdict}",
            2000,
        )
    ]
    for grant in report.grants:
        held = f"grant {grant.policy_id}: {grant.subject} holds {', '.join(grant.roles)} on {grant.scope}"
        lines.append("  " + one_line(held, 2000))
    lines += [f"  checked trusted profile {profile}" for profile in report.profiles_checked]
    lines += [f"  finding: {one_line(f.subject)}: {one_line(f.message, 1000)}" for f in report.findings]
    if not report.deployer_can_write:
        lines.append(
            f"  note: {report.deployer} itself holds no Code Engine write role here; its deploys will fail"
        )
    return "\n".join(lines)


def bindings_text(report: BindingsReport, manifest: BindingsManifest) -> str:
    state = "no drift" if report.clean else f"{len(report.drift)} difference(s)"
    lines = [f"bindings of {report.target} vs {manifest.source}: {state}"]
    for d in report.drift:
        change = (
            f"{d.change}: {d.identity}: expected {d.expected or '(nothing)'}, runs {d.actual or '(nothing)'}"
        )
        lines.append("  " + one_line(change, 2000))
    return "\n".join(lines)
