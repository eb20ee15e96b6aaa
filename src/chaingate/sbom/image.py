"""The SBOM of an image in any store: resolve once, pick the platform, stream the layers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import IO

from chaingate.oci.interface import Descriptor, ImageStore, Platform, Progress, no_progress
from chaingate.oci.stores import select_platform
from chaingate.sbom.engine import generate_sbom
from chaingate.sbom.interface import DEFAULT_LIMITS, LayerInput, SbomError

#: What a multi-arch image means when no --platform is given (the common CI target, as syft defaults to).
DEFAULT_PLATFORM = Platform("linux", "amd64")


@dataclass(frozen=True)
class ImageSbom:
    digest: str
    platform: str | None
    document: bytes


def image_sbom(
    store: ImageStore,
    target: str,
    image_name: str,
    *,
    platform: Platform | None = None,
    created: datetime | None = None,
    progress: Progress = no_progress,
) -> ImageSbom:
    """CycloneDX of the image ``target`` names; an index is narrowed to one platform first.

    The SBOM describes the platform manifest it was built from, and its
    ``metadata.component`` carries that digest, so a verifier can tell which
    image of a multi-arch index it covers.
    """
    root = store.get_manifest(store.resolve(target).digest)
    platform_text: str | None = None
    if root.is_index:
        if platform is None and not any(
            d.platform and DEFAULT_PLATFORM.matches(d.platform) for d in root.manifests
        ):
            listed = ", ".join(str(d.platform) for d in root.manifests if d.platform) or "none"
            raise SbomError(
                f"{image_name}: multi-arch image without linux/amd64; pass --platform (available: {listed})"
            )
        child = select_platform(store, root, platform or DEFAULT_PLATFORM)
        platform_text = str(child.platform)
        root = store.get_manifest(child.digest)
        if root.is_index:
            raise SbomError(f"{image_name}: nested index {root.digest} is not an image")
    layers = [LayerInput(d, _opener(store, d)) for d in root.layers]
    document = generate_sbom(
        layers,
        image_name=image_name,
        image_digest=root.digest,
        platform=platform_text,
        created=created,
        progress=progress,
        # Reading ahead leaves the next layers' streams unread while one is parsed: fine for files, but an
        # idle HTTP response may be dropped, so registry layers are read one after the other.
        limits=replace(DEFAULT_LIMITS, readahead_bytes=0) if store.remote else DEFAULT_LIMITS,
    )
    return ImageSbom(root.digest, platform_text, document)


def _opener(store: ImageStore, descriptor: Descriptor) -> Callable[[], IO[bytes]]:
    return lambda: store.open_blob(descriptor)
