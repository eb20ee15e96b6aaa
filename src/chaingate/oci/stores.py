"""Open any image reference as an :class:`ImageStore` and the target to resolve in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chaingate.oci.archive import ArchiveStore
from chaingate.oci.interface import ImageStore
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


def open_image(
    reference: str | ImageReference,
    registries: Registries,
    *,
    write: bool = False,
    repo_tag: str | None = None,
) -> OpenedImage:
    """Open ``reference`` for reading (the image must exist) or as a copy destination.

    ``repo_tag`` names the image inside a docker archive being written (what
    ``docker load`` will tag it as).
    """
    ref = parse_image_reference(reference) if isinstance(reference, str) else reference
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
