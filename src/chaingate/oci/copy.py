"""Copy an image and everything attached to it between stores.

Attachments are the point of chaingate, so a copy that dropped them would be a
silent downgrade: referrers (and referrers of referrers, bounded) follow the
image, re-attached through the destination's own mechanism — referrers API,
fallback index or layout — and cosign's legacy tags are copied as tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chaingate.oci.archive import ArchiveStore
from chaingate.oci.errors import OCIError
from chaingate.oci.interface import (
    Descriptor,
    ImageStore,
    Manifest,
    Platform,
    Progress,
    RejectedReferrer,
    no_progress,
)
from chaingate.oci.reference import ImageReference, LayoutReference, Reference, parse_image_reference
from chaingate.oci.stores import open_image, select_platform

if TYPE_CHECKING:
    from chaingate.oci.registries import Registries

#: How deep referrers of referrers are followed, and how many are copied at most.
MAX_REFERRER_DEPTH = 4
MAX_REFERRERS = 1000


@dataclass(frozen=True)
class CopyResult:
    digest: str
    media_type: str
    manifests: int
    blobs_copied: int
    blobs_mounted: int
    blobs_present: int
    referrers: tuple[str, ...]
    legacy_tags: tuple[str, ...]
    rejected: tuple[RejectedReferrer, ...]


@dataclass
class _Counts:
    manifests: int = 0
    copied: int = 0
    mounted: int = 0
    present: int = 0
    referrers: list[str] = field(default_factory=list)
    legacy: list[str] = field(default_factory=list)
    rejected: list[RejectedReferrer] = field(default_factory=list)
    done: set[str] = field(default_factory=set)


def destination_tag(src: ImageReference, dst: ImageReference) -> str | None:
    """The tag a copy gets at ``dst``, or None to push by digest only.

    A registry destination keeps its own tag (none when it pins a digest). A
    layout entry without a name cannot be found again by ``oci:DIR``, so it
    takes the destination's tag, else the source's, else ``latest``, as skopeo
    does. A docker archive is named by ``repo_tag`` instead (see ``open_image``).
    """
    if isinstance(dst, Reference):
        return dst.tag if dst.digest is None else None
    if isinstance(dst, LayoutReference):
        source_tag = src.tag if isinstance(src, Reference | LayoutReference) else None
        return dst.tag or source_tag or "latest"
    return None


def check_digest_pin(dst: ImageReference, display: str, result: CopyResult) -> None:
    """Refuse a copy whose destination names a digest other than the image copied.

    ``REPO@sha256:…`` as a destination is a claim about what lands there; a
    copy (a platform selection, a rewritten manifest) that produced another
    digest must fail rather than leave the user believing the pin held.
    """
    pin = dst.digest if isinstance(dst, Reference | LayoutReference) else None
    if pin and pin != result.digest:
        raise OCIError(f"{display}: destination pins {pin} but the copied image is {result.digest}")


def copy_reference(
    src: str,
    dst: str,
    registries: Registries,
    *,
    platform: Platform | None = None,
    referrers: bool = True,
    progress: Progress = no_progress,
) -> CopyResult:
    """Copy the image named ``src`` to ``dst`` (both image references as typed), attachments included.

    A docker archive being written is aborted on any failure, so a half-written
    tar never looks like a finished one; every store is closed either way.
    """
    src_ref = parse_image_reference(src)
    dst_ref = parse_image_reference(dst)
    source = open_image(src_ref, registries)
    try:
        assert source.target is not None
        repo_tag = src_ref.name if isinstance(src_ref, Reference) else None
        destination = open_image(dst_ref, registries, write=True, repo_tag=repo_tag)
        try:
            result = copy_image(
                source.store,
                source.target,
                destination.store,
                tag=destination_tag(src_ref, dst_ref),
                platform=platform,
                referrers=referrers,
                progress=progress,
            )
            check_digest_pin(dst_ref, dst, result)
        except BaseException:
            if isinstance(destination.store, ArchiveStore):
                destination.store.abort()
            raise
    finally:
        source.store.close()
    destination.store.close()
    return result


def copy_image(
    src: ImageStore,
    target: str,
    dst: ImageStore,
    *,
    tag: str | None = None,
    platform: Platform | None = None,
    referrers: bool = True,
    skip_artifact_types: frozenset[str] = frozenset(),
    progress: Progress = no_progress,
) -> CopyResult:
    """Copy the image ``target`` of ``src`` into ``dst`` (tagging it ``tag``) with its attachments.

    ``skip_artifact_types``: referrers of these artifact types are not copied (``mirror`` leaves the
    source's own gate records behind: they describe someone else's decision).
    """
    root = src.get_manifest(src.resolve(target).digest)
    if platform is not None and root.is_index:
        root = src.get_manifest(select_platform(src, root, platform).digest)
    counts = _Counts()
    copied = _copy_tree(src, dst, root, counts, progress)
    dst.put_manifest(root, tag=tag)
    counts.manifests += 1
    if referrers:
        for digest in copied:
            _copy_referrers(src, dst, digest, counts, progress, depth=1, skip=skip_artifact_types)
    return CopyResult(
        digest=root.digest,
        media_type=root.media_type,
        manifests=counts.manifests,
        blobs_copied=counts.copied,
        blobs_mounted=counts.mounted,
        blobs_present=counts.present,
        referrers=tuple(counts.referrers),
        legacy_tags=tuple(counts.legacy),
        rejected=tuple(counts.rejected),
    )


def _copy_tree(
    src: ImageStore, dst: ImageStore, manifest: Manifest, counts: _Counts, progress: Progress
) -> list[str]:
    """Copy the blobs and child manifests of ``manifest`` (not ``manifest`` itself); return all manifest digests."""
    digests = [manifest.digest]
    if manifest.is_index:
        for child_desc in manifest.manifests:
            child = src.get_manifest(child_desc.digest)
            digests.extend(_copy_tree(src, dst, child, counts, progress))
            dst.put_manifest(child)
            counts.manifests += 1
    else:
        for blob in manifest.children():
            _copy_blob(src, dst, blob, counts, progress)
    return digests


def _copy_blob(
    src: ImageStore, dst: ImageStore, blob: Descriptor, counts: _Counts, progress: Progress
) -> None:
    if blob.digest in counts.done:
        return
    counts.done.add(blob.digest)
    if dst.has_blob(blob):
        counts.present += 1
    elif dst.mount_blob(blob, src):
        counts.mounted += 1
    else:
        dst.put_blob(blob, lambda: src.open_blob(blob), progress=progress)
        counts.copied += 1


def _copy_referrers(
    src: ImageStore,
    dst: ImageStore,
    subject: str,
    counts: _Counts,
    progress: Progress,
    depth: int,
    skip: frozenset[str] = frozenset(),
) -> None:
    listing = src.referrers(subject)
    counts.rejected.extend(listing.rejected)
    for ref in listing.referrers:
        if len(counts.referrers) >= MAX_REFERRERS:
            raise OCIError(
                f"{src.display}: more than {MAX_REFERRERS} referrers; refusing to copy an unbounded tree"
            )
        if ref.descriptor.digest in counts.referrers or ref.artifact_type in skip:
            continue
        _copy_tree(src, dst, ref.manifest, counts, progress)
        dst.attach(ref.manifest)
        counts.manifests += 1
        counts.referrers.append(ref.descriptor.digest)
        if depth < MAX_REFERRER_DEPTH:
            _copy_referrers(src, dst, ref.descriptor.digest, counts, progress, depth + 1, skip)
    for suffix, legacy in src.legacy_attachments(subject):
        _copy_tree(src, dst, legacy, counts, progress)
        tag = f"{subject.replace(':', '-', 1)}.{suffix}"
        dst.put_manifest(legacy, tag=tag)
        counts.manifests += 1
        counts.legacy.append(tag)
