"""Gathering every attachment of an image: referrers (API and fallback tag) and cosign's legacy tags.

The store has already fetched each referrer manifest by digest and checked
that it names the subject; here each Sigstore bundle blob is read through
:meth:`ImageStore.open_blob`, which checks its digest and size, after the
declared size has been checked against a bound, so a hostile registry can
neither substitute a bundle nor make the gate read gigabytes.

A single bad attachment is recorded as ignored and never stops collection:
a broken referrer beside good ones must not deny by itself (DESIGN.md). A
failure to *list* attachments, on the other hand, propagates: the gate
cannot know what it did not see, so it fails closed.
"""

from __future__ import annotations

from collections.abc import Sequence

from chaingate.oci import media
from chaingate.oci.interface import (
    AuthError,
    Descriptor,
    ImageStore,
    Manifest,
    OCIError,
    Progress,
    RegistryUnavailable,
    no_progress,
)
from chaingate.signing.bundle import BundleReadError, read_bundle_layer
from chaingate.verify.interface import Collected, FoundBundle, Ignored

#: Media types under which a Sigstore bundle is stored (v0.3, and the older versioned spelling).
BUNDLE_MEDIA_TYPES = (media.SIGSTORE_BUNDLE_V03, "application/vnd.dev.sigstore.bundle+json")
#: Attachments a single image may carry before the listing is treated as an attack on the gate.
MAX_ATTACHMENTS = 500


def is_bundle_type(media_type: str | None) -> bool:
    return media_type is not None and media_type.split(";", 1)[0].strip() in BUNDLE_MEDIA_TYPES


def collect(store: ImageStore, subjects: Sequence[str], *, progress: Progress = no_progress) -> Collected:
    """Every Sigstore bundle attached to each of ``subjects``, and every attachment that was unusable.

    Raises :class:`OCIError` only when a listing itself fails (registry down,
    unreadable fallback index); per-attachment problems are returned as ignored.
    """
    bundles: list[FoundBundle] = []
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
            _read_bundles(store, referrer.manifest, subject, referrer.source, bundles, ignored, legacy=False)
        _collect_legacy(store, subject, bundles, ignored)
    return Collected(tuple(bundles), tuple(ignored))


def _collect_legacy(
    store: ImageStore, subject: str, bundles: list[FoundBundle], ignored: list[Ignored]
) -> None:
    """cosign's ``sha256-<hex>.sig``/``.att`` tags: bundles in them count; the pre-bundle format cannot.

    cosign's old format keeps a certificate and a Rekor SET in annotations but
    no inclusion proof, and sigstore-python refuses a log entry without one,
    so such a signature is listed with that reason instead of being counted.
    """
    try:
        for suffix, manifest in store.legacy_attachments(subject):
            if suffix == "sbom":
                continue  # cosign's unsigned SBOM attachment: nothing to verify, never evidence.
            source = f"legacy-tag:{suffix}"
            _read_bundles(store, manifest, subject, source, bundles, ignored, legacy=True)
    except (RegistryUnavailable, AuthError):
        raise  # the registry, not an attachment, failed: what was not seen cannot be judged
    except OCIError as e:
        ignored.append(Ignored(f"{subject.replace(':', '-', 1)}.sig/.att", f"legacy-tag: {e.message}"))


def _read_bundles(
    store: ImageStore,
    manifest: Manifest,
    subject: str,
    source: str,
    bundles: list[FoundBundle],
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
    for layer in found:
        raw = _read_blob(store, layer, manifest.digest, source, ignored)
        if raw is not None:
            bundles.append(FoundBundle(manifest.digest, subject, source, raw))


def _read_blob(
    store: ImageStore, layer: Descriptor, referrer: str, source: str, ignored: list[Ignored]
) -> bytes | None:
    try:
        return read_bundle_layer(store, layer)
    except BundleReadError as e:
        ignored.append(Ignored(referrer, f"{source}: {e}"))
    except OCIError as e:
        ignored.append(Ignored(referrer, f"{source}: bundle blob {layer.digest}: {e.message}"))
    except OSError as e:
        ignored.append(Ignored(referrer, f"{source}: bundle blob {layer.digest}: {e.strerror or e}"))
    return None
