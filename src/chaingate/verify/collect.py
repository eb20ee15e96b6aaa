"""Gathering every attachment of an image: referrers (API and fallback tag) and cosign's legacy tags.

The store has already fetched each referrer manifest by digest and checked
that it names the subject; here each Sigstore bundle blob is read through
:meth:`ImageStore.open_blob`, which checks its digest and size, after the
declared size has been checked against a bound, so a hostile registry can
neither substitute a bundle nor make the gate read gigabytes.

Collection runs in two passes. The first lists every attachment and keeps
only descriptors. The second reads each distinct bundle blob once, hands it
to ``verify`` for every subject it is attached to, and drops the bytes
before the next blob: twenty-four referrers naming one 16 MiB blob cost one
read, one verification per subject and 16 MiB, not twenty-four of each. All
the blobs of one image share one byte budget
(:data:`~chaingate.signing.bundle.MAX_IMAGE_BUNDLE_BYTES`), and the whole
command's deadline is checked before every read and every verification.

A single bad attachment is recorded as ignored and never stops collection:
a broken referrer beside good ones must not deny by itself (docs/design.md). A
failure to *list* attachments, an exhausted budget or a passed deadline, on
the other hand, propagates: the gate cannot know what it did not see, and an
attacker who could push the real attestations out of view with junk must
get a deny, not a verdict on what is left.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chaingate.oci import media
from chaingate.oci.errors import AuthError, OCIError, RegistryUnavailable, SizeLimitExceeded
from chaingate.oci.interface import Descriptor, ImageStore, Manifest, Progress, no_progress
from chaingate.oci.registries import Deadline, DeadlinePassed
from chaingate.signing.bundle import (
    MAX_BUNDLE_BYTES,
    MAX_IMAGE_BUNDLE_BYTES,
    BundleReadError,
    read_bundle_layer,
)
from chaingate.verify.interface import Attestation, Collected, FoundBundle, Ignored

#: Media types under which a Sigstore bundle is stored (v0.3, and the older versioned spelling).
BUNDLE_MEDIA_TYPES = (media.SIGSTORE_BUNDLE_V03, "application/vnd.dev.sigstore.bundle+json")
#: Attachments a single image may carry before the listing is treated as an attack on the gate.
MAX_ATTACHMENTS = 500

Verify = Callable[[FoundBundle], Attestation | Ignored]


class BundleBudgetExceeded(SizeLimitExceeded):
    """The bundles attached to one image add up to more than the gate reads."""


def is_bundle_type(media_type: str | None) -> bool:
    return media_type is not None and media_type.split(";", 1)[0].strip() in BUNDLE_MEDIA_TYPES


@dataclass(frozen=True)
class _Pending:
    """A bundle layer found in an attachment, not read yet."""

    referrer: str
    attached_to: str
    source: str
    layer: Descriptor


def collect(
    store: ImageStore,
    subjects: Sequence[str],
    verify: Verify,
    *,
    budget: int = MAX_IMAGE_BUNDLE_BYTES,
    deadline: Deadline | None = None,
    progress: Progress = no_progress,
) -> Collected:
    """Every Sigstore bundle attached to each of ``subjects``, verified by ``verify``, and every unusable one.

    Raises :class:`OCIError` when a listing itself fails (registry down,
    unreadable fallback index), :class:`BundleBudgetExceeded` past ``budget``
    bytes of distinct bundle blobs and :class:`DeadlinePassed` past
    ``deadline``; per-attachment problems are returned as ignored.
    """
    pending: list[_Pending] = []
    ignored: list[Ignored] = []
    seen: set[tuple[str, str]] = set()
    for subject in subjects:
        listing = store.referrers(subject)
        ignored.extend(Ignored(r.digest, f"{r.source}: {r.reason}") for r in listing.rejected)
        if len(listing.referrers) > MAX_ATTACHMENTS:
            raise OCIError(
                f"{store.display}@{subject}: {len(listing.referrers)} attachments, more than the "
                f"{MAX_ATTACHMENTS} the gate reads"
            )
        for index, referrer in enumerate(listing.referrers):
            progress("reading attachments", index, len(listing.referrers))
            if (referrer.descriptor.digest, subject) in seen:
                continue
            seen.add((referrer.descriptor.digest, subject))
            if not is_bundle_type(referrer.artifact_type):
                ignored.append(
                    Ignored(
                        referrer.descriptor.digest,
                        f"{referrer.source}: not a Sigstore bundle (artifactType {referrer.artifact_type or 'none'})",
                    )
                )
                continue
            _bundle_layers(referrer.manifest, subject, referrer.source, pending, ignored, legacy=False)
        _collect_legacy(store, subject, pending, ignored)
    verified, unreadable = _read_and_verify(store, pending, verify, budget, deadline, progress)
    if deadline is not None:
        deadline.check(f"collecting the attachments of {store.display}")
    return Collected(verified, (*ignored, *unreadable))


def _collect_legacy(store: ImageStore, subject: str, pending: list[_Pending], ignored: list[Ignored]) -> None:
    """cosign's ``sha256-<hex>.sig``/``.att`` tags: bundles in them count; the pre-bundle format cannot.

    cosign's old format keeps a certificate and a Rekor SET in annotations but
    no inclusion proof, and sigstore-python refuses a log entry without one,
    so such a signature is listed with that reason instead of being counted.
    """
    try:
        for suffix, manifest in store.legacy_attachments(subject):
            if suffix == "sbom":
                continue  # cosign's unsigned SBOM attachment: nothing to verify, never evidence.
            _bundle_layers(manifest, subject, f"legacy-tag:{suffix}", pending, ignored, legacy=True)
    except (RegistryUnavailable, AuthError):
        raise  # the registry, not an attachment, failed: what was not seen cannot be judged
    except OCIError as e:
        ignored.append(Ignored(f"{subject.replace(':', '-', 1)}.sig/.att", f"legacy-tag: {e.message}"))


def _bundle_layers(
    manifest: Manifest,
    subject: str,
    source: str,
    pending: list[_Pending],
    ignored: list[Ignored],
    *,
    legacy: bool,
) -> None:
    if manifest.is_index:
        ignored.append(Ignored(manifest.digest, f"{source}: an index, not an attachment manifest"))
        return
    try:
        layers = manifest.layers
    except OCIError as e:
        ignored.append(Ignored(manifest.digest, f"{source}: {e.message}"))
        return
    found = [layer for layer in layers if is_bundle_type(layer.media_type)]
    if not found:
        kinds = ", ".join(sorted({layer.media_type for layer in layers})) or "no layers"
        reason = (
            f"{source}: cosign's pre-bundle signature format ({kinds}) has no inclusion proof and cannot be "
            "verified offline; re-sign with cosign v3 or chaingate"
            if legacy
            else f"{source}: no Sigstore bundle layer ({kinds})"
        )
        ignored.append(Ignored(manifest.digest, reason))
        return
    if not legacy and len(found) != 1:
        ignored.append(
            Ignored(manifest.digest, f"{source}: {len(found)} bundle layers; the contract is exactly one")
        )
        return
    pending.extend(_Pending(manifest.digest, subject, source, layer) for layer in found)


def _read_and_verify(
    store: ImageStore,
    pending: list[_Pending],
    verify: Verify,
    budget: int,
    deadline: Deadline | None,
    progress: Progress,
) -> tuple[tuple[Attestation | Ignored, ...], tuple[Ignored, ...]]:
    """Each distinct blob read once and verified once per subject; outcomes in listing order.

    A blob's outcome does not depend on which referrer named it (verification
    reads only the bytes and the subject), so the first outcome is reused,
    relabelled, for every other referrer of the same blob and subject: each
    still counts (or is ignored) under its own referrer digest.
    """
    groups: dict[tuple[str, int], list[int]] = {}
    for index, item in enumerate(pending):
        groups.setdefault((item.layer.digest, item.layer.size), []).append(index)
    outcomes: dict[int, Attestation | Ignored] = {}
    unreadable: dict[int, Ignored] = {}
    used = 0
    done = 0
    for (digest, size), members in groups.items():
        first = pending[members[0]]
        if deadline is not None:
            deadline.check(f"reading bundle {digest} of {first.referrer}")
        if size <= MAX_BUNDLE_BYTES:  # a larger layer is refused by its own bound, unread
            if used + size > budget:
                raise BundleBudgetExceeded(
                    f"{store.display}: the bundles attached to {first.attached_to} exceed the gate's budget of "
                    f"{budget} bytes ({used} read, {first.referrer} names {size} more in bundle {digest})",
                    hint="an image carrying this much attestation data is denied rather than judged on a part",
                )
            used += size
        raw = _read_blob(store, first.layer)
        if isinstance(raw, str):
            for index in members:
                unreadable[index] = Ignored(pending[index].referrer, f"{pending[index].source}: {raw}")
            done += len(members)
            continue
        by_subject: dict[str, tuple[_Pending, Attestation | Ignored]] = {}
        for index in members:
            item = pending[index]
            progress("verifying attestations", done, len(pending))
            done += 1
            known = by_subject.get(item.attached_to)
            if known is not None:
                outcomes[index] = _relabel(known[1], known[0], item)
                continue
            if deadline is not None:
                deadline.check(f"verifying bundle {digest} of {item.referrer} (verification not started)")
            outcome = verify(FoundBundle(item.referrer, item.attached_to, item.source, raw))
            by_subject[item.attached_to] = (item, outcome)
            outcomes[index] = outcome
        del raw, by_subject  # one blob's bytes at a time
    progress("verifying attestations", len(pending), len(pending))
    verified = tuple(outcomes[i] for i in range(len(pending)) if i in outcomes)
    return verified, tuple(unreadable[i] for i in range(len(pending)) if i in unreadable)


def _relabel(outcome: Attestation | Ignored, first: _Pending, item: _Pending) -> Attestation | Ignored:
    """``first``'s outcome for the same blob and subject, as ``item``'s own."""
    if isinstance(outcome, Ignored):
        prefix = f"{first.source}: "
        reason = outcome.reason
        if reason.startswith(prefix):
            reason = f"{item.source}: {reason[len(prefix) :]}"
        return Ignored(item.referrer, reason)
    return dataclasses.replace(outcome, referrer=item.referrer, source=item.source)


def _read_blob(store: ImageStore, layer: Descriptor) -> bytes | str:
    """The blob's bytes, or why it cannot be read (a reason for every referrer naming it)."""
    try:
        return read_bundle_layer(store, layer)
    except DeadlinePassed:
        raise
    except BundleReadError as e:
        return str(e)
    except OCIError as e:
        return f"bundle blob {layer.digest}: {e.message}"
    except OSError as e:
        return f"bundle blob {layer.digest}: {e.strerror or e}"
