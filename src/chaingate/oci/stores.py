"""Open any image reference as an :class:`ImageStore` and the target to resolve in it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chaingate.oci.archive import ArchiveStore
from chaingate.oci.errors import OCIError
from chaingate.oci.interface import Descriptor, ImageStore, Manifest, Platform
from chaingate.oci.layout import LayoutStore
from chaingate.oci.reference import (
    ArchiveReference,
    ImageReference,
    LayoutReference,
    Reference,
    parse_image_reference,
)
from chaingate.oci.registry import RegistryStore

if TYPE_CHECKING:
    from chaingate.oci.registries import Registries


@dataclass(frozen=True)
class OpenedImage:
    reference: ImageReference
    store: ImageStore
    #: The tag or digest to resolve in ``store``; None for a write target without one.
    target: str | None


def select_platform(store: ImageStore, index: Manifest, platform: Platform) -> Descriptor:
    """The child of ``index`` for ``platform``; an error listing what exists when none matches."""
    children = [d for d in index.manifests if d.platform is not None]
    for d in children:
        if d.platform is not None and platform.matches(d.platform):
            return d
    available = ", ".join(str(d.platform) for d in children) or "none"
    raise OCIError(
        f"{store.display}@{index.digest}: no image for platform {platform} (available: {available})"
    )


def open_image(
    reference: str | ImageReference,
    registries: Registries,
    *,
    write: bool = False,
    repo_tag: str | None = None,
    platform: Platform | None = None,
) -> OpenedImage:
    """Open ``reference`` for reading (the image must exist) or as a copy destination.

    ``repo_tag`` names the image inside a docker archive being written (what
    ``docker load`` will tag it as). With ``platform``, a multi-arch index is
    narrowed to that platform's manifest digest, so what is signed or described
    is the image that runs there, not the index; a single image stays as named.
    """
    ref = parse_image_reference(reference) if isinstance(reference, str) else reference
    opened = _open(ref, registries, write=write, repo_tag=repo_tag)
    if platform is None or opened.target is None:
        return opened
    try:
        root = opened.store.get_manifest(opened.store.resolve(opened.target).digest)
        if not root.is_index:
            return opened
        return dataclasses.replace(opened, target=select_platform(opened.store, root, platform).digest)
    except BaseException:
        opened.store.close()
        raise


def _open(ref: ImageReference, registries: Registries, *, write: bool, repo_tag: str | None) -> OpenedImage:
    if isinstance(ref, Reference):
        store: ImageStore = RegistryStore(registries.client(ref.api_host), ref.repository)
        return OpenedImage(ref, store, ref.target)
    if isinstance(ref, LayoutReference):
        layout = LayoutStore.open_directory(ref.path, create=write)
        target = ref.digest or ref.tag
        if target is None and not write:
            target = layout.default_target()
        return OpenedImage(ref, layout, target)
    assert isinstance(ref, ArchiveReference)
    archive = ArchiveStore(ref.path, write=write, repo_tag=repo_tag)
    return OpenedImage(ref, archive, None if write else archive.default_target())
