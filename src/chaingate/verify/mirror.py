"""``chaingate mirror``: copy an upstream image into an internal store only when the gate allows it.

Practitioners mirror public images instead of pulling them directly: a
scheduled job fetches by digest, verifies what it can, and stores the result
where the deploys read. The order here is what makes that safe:

1. Both references are checked before anything is read or written (exit 2).
2. The gate (:func:`chaingate.verify.verify_image`) resolves SRC exactly once;
   from then on only ``decision.digest`` is read, so what was verified is what
   is copied. A deny returns before the destination is even opened: nothing
   is written there, not even a layout directory.
3. On an allow, that digest is copied with its attachments
   (:func:`chaingate.oci.copy.copy_image`), then the decision record is attached
   to it in DST as an unsigned referrer (:data:`DECISION_MEDIA_TYPE`). Like every
   record of the gate it never counts as evidence: the gate reads only Sigstore
   bundles, so a later ``verify`` of the copy lists it as ignored.

Idempotence: a copy skips blobs DST already holds, and re-putting a manifest
with the same bytes changes nothing. A decision record is attached only when DST
holds none for this digest with the same *substance* (verdict, mode, policy
digest, each clause's result, evidence and exception, the attachments ignored):
a nightly job re-mirroring an unchanged image would otherwise add one referrer a
night, and every later reader (the gate, ``copy``) would have to list them all.
Times and reasons (which quote ages) are left out of that fingerprint, so the
first record of a decision is kept; a decision that changed in substance (a new
scan, another policy) is attached beside the earlier ones as history.

``--platform`` follows ``verify``: the decision names the platform manifest,
and that manifest (what runs) is what is mirrored, with its own attachments.
The index's attachments are not copied: they are about the index digest, which
DST does not receive. Without ``--platform`` the whole index is mirrored, every
platform manifest and every attachment of each included.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaingate.errors import ChaingateError
from chaingate.oci.artifact import Blob, build_artifact, push_artifact
from chaingate.oci.copy import CopyResult, copy_image, destination_tag
from chaingate.oci.digest import sha256_digest
from chaingate.oci.errors import OCIError
from chaingate.oci.interface import ImageStore, Platform, Progress, no_progress
from chaingate.oci.media import ANNOTATION_CREATED
from chaingate.oci.reference import ArchiveReference, LayoutReference, Reference, parse_image_reference
from chaingate.oci.registries import Deadline, Registries
from chaingate.oci.stores import open_image
from chaingate.policy.model import Policy
from chaingate.policy.record import DECISION_MEDIA_TYPE, GATE_RECORD_ARTIFACT_TYPES, Decision
from chaingate.timeutil import format_time
from chaingate.verify.gate import verify_image

if TYPE_CHECKING:
    from chaingate.oci.reference import ImageReference

#: Annotation on the decision referrer: the fingerprint that makes re-mirroring idempotent.
ANNOTATION_FINGERPRINT = "dev.chaingate.decision.fingerprint"
#: The gate's whole deadline when the caller's registries have none, as ``verify``'s default. The copy
#: after it is bounded per request only: a large image may rightly take longer than the gate.
GATE_SECONDS = 300.0


@dataclass(frozen=True)
class MirrorResult:
    """What ``mirror`` did: the gate's decision, and on an allow the copy and the decision referrer."""

    source: str
    destination: str
    decision: Decision
    #: None when nothing was copied (a deny, or no digest to copy).
    copy: CopyResult | None = None
    #: Digest of the decision referrer in DST (new, or the earlier identical one).
    decision_referrer: str | None = None
    #: False when DST already held a decision record with the same substance.
    decision_attached: bool = False
    #: Why an allowed image was still not mirrored (its evidence could not travel with it).
    refused: str | None = None

    @property
    def mirrored(self) -> bool:
        return self.copy is not None

    def to_dict(self) -> dict[str, Any]:
        """The ``--format json`` document: digest, verdict, what was copied, where the decision went."""
        copied = self.copy
        return {
            "source": self.source,
            "destination": self.destination,
            "digest": self.decision.digest or None,
            "indexDigest": self.decision.index_digest,
            "verdict": self.decision.verdict,
            "mode": self.decision.mode,
            "mirrored": self.mirrored,
            "refused": self.refused,
            "copied": None
            if copied is None
            else {
                "manifests": copied.manifests,
                "blobsCopied": copied.blobs_copied,
                "blobsMounted": copied.blobs_mounted,
                "blobsPresent": copied.blobs_present,
                "referrers": list(copied.referrers),
                "legacyTags": list(copied.legacy_tags),
            },
            "decisionReferrer": self.decision_referrer,
            "decisionAttached": self.decision_attached,
            "decision": self.decision.record(),
        }


def check_destination(dst: str) -> ImageReference:
    """``dst`` parsed, or a usage error: it must be able to hold the image's attachments and the decision."""
    ref = parse_image_reference(dst)
    if isinstance(ref, ArchiveReference):
        raise ChaingateError(
            f"{dst}: a docker archive cannot carry attachments; mirror into a registry or an oci: layout"
        )
    return ref


def mirror_image(
    src: str,
    dst: str,
    policy: Policy,
    *,
    registries: Registries,
    trust_config: Path | None = None,
    platform: Platform | None = None,
    progress: Progress = no_progress,
) -> MirrorResult:
    """Gate ``src`` with ``policy`` and, on an allow, copy exactly the verified digest to ``dst``.

    Raises only for the caller's mistakes (a bad reference, an unreadable
    trust config, a DST pinned to another digest) and for failures while
    writing DST; a deny is a result, with nothing written (see the module docs).
    """
    src_ref = parse_image_reference(src)
    dst_ref = check_destination(dst)
    decision = _gate(src, policy, registries, trust_config, platform)
    # Only an allow is mirrored: warn mode reports a deny (for a deploy), but a mirror exists to hold only
    # what the gate allows, so a warned-through deny is not copied.
    if decision.verdict != "allow" or not decision.digest:
        return MirrorResult(src, dst, decision)
    pin = dst_ref.digest if isinstance(dst_ref, Reference | LayoutReference) else None
    if pin and pin != decision.digest:
        raise OCIError(f"{dst}: destination pins {pin} but the gate verified {decision.digest}")
    source = open_image(src_ref, registries)
    with source.store as src_store:
        refused = _evidence_left_behind(src_store, decision)
        if refused is not None:
            return MirrorResult(src, dst, decision, refused=refused)
        destination = open_image(dst_ref, registries, write=True)
        with destination.store as dst_store:
            # By digest only: the source store checks every byte against it, and no tag is read again.
            copied = copy_image(
                src_store,
                decision.digest,
                dst_store,
                tag=destination_tag(src_ref, dst_ref),
                skip_artifact_types=GATE_RECORD_ARTIFACT_TYPES,
                progress=progress,
            )
            referrer, attached = attach_decision(dst_store, decision)
    return MirrorResult(src, dst, decision, copied, referrer, attached)


def _evidence_left_behind(store: ImageStore, decision: Decision) -> str | None:
    """Why the copy could not be verified again in DST, or None: with ``--platform`` only the platform
    manifest is copied, so evidence attached to the index would stay behind and DST would hold an image
    whose recorded decision cites attestations it does not carry."""
    if decision.index_digest is None:
        return None
    on_index = {r.descriptor.digest for r in store.referrers(decision.index_digest).referrers}
    # cosign's legacy .sig/.att tags of the index count in the gate too, and stay behind just the same.
    on_index |= {manifest.digest for _, manifest in store.legacy_attachments(decision.index_digest)}
    carried = sorted(on_index & {referrer for referrer, _ in decision.inputs})
    if not carried:
        return None
    return (
        f"{len(carried)} attestation(s) that allowed it are attached to the index {decision.index_digest}, "
        "which --platform does not copy; mirror the index (without --platform) so they travel with it"
    )


def _gate(
    src: str, policy: Policy, registries: Registries, trust_config: Path | None, platform: Platform | None
) -> Decision:
    """The gate's decision, under a whole deadline of its own when the caller set none."""
    if registries.options.deadline is not None:
        return verify_image(src, policy, registries=registries, trust_config=trust_config, platform=platform)
    deadline = Deadline.after(GATE_SECONDS, name="the gate's deadline")
    gate_registries = Registries(dataclasses.replace(registries.options, deadline=deadline))
    try:
        return verify_image(
            src, policy, registries=gate_registries, trust_config=trust_config, platform=platform
        )
    finally:
        gate_registries.close()


def decision_fingerprint(decision: Decision) -> str:
    """The digest of what a decision decided, without when or how it was worded (see the module docs)."""
    substance = {
        "digest": decision.digest,
        "indexDigest": decision.index_digest,
        "policyDigest": decision.policy_digest,
        "mode": decision.mode,
        "verdict": decision.verdict,
        "clauses": [[c.clause, c.result, list(c.evidence), c.exception_id] for c in decision.clauses],
        "ignored": sorted(digest for digest, _ in decision.ignored),
    }
    return sha256_digest(json.dumps(substance, sort_keys=True, separators=(",", ":")).encode())


def attach_decision(store: ImageStore, decision: Decision) -> tuple[str, bool]:
    """Attach the decision record to ``decision.digest`` in ``store`` unless an identical one is there.

    Returns the referrer's digest and whether it was attached now. The
    referrer manifests read back are digest-checked by the store; their
    fingerprint annotation only saves a write, it is never evidence.
    """
    fingerprint = decision_fingerprint(decision)
    for existing in store.referrers(decision.digest, DECISION_MEDIA_TYPE).referrers:
        annotations = existing.manifest.content.get("annotations")
        if isinstance(annotations, dict) and annotations.get(ANNOTATION_FINGERPRINT) == fingerprint:
            return existing.descriptor.digest, False
    record = json.dumps(decision.record(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    artifact = build_artifact(
        store.resolve(decision.digest),
        DECISION_MEDIA_TYPE,
        [Blob(DECISION_MEDIA_TYPE, record.encode())],
        annotations={ANNOTATION_CREATED: format_time(decision.time), ANNOTATION_FINGERPRINT: fingerprint},
    )
    return push_artifact(store, artifact).digest, True
