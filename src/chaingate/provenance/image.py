"""Provenance for an image in a store: resolve it once, read its base images, build the statement.

The reference is resolved to a digest exactly once and everything after that
(configs, annotations, the subject) is read by that digest, so the statement
describes the bytes that were looked at even if the tag moves meanwhile.

Base images come from the OCI ``org.opencontainers.image.base.digest`` /
``.base.name`` keys — as manifest annotations (where the image spec defines
them) or as config labels (where ``docker buildx`` and ``buildah`` put them)
— and from ``--base-image`` flags, which must be pinned by digest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chaingate import safejson
from chaingate.oci import media
from chaingate.oci.digest import read_bounded, validate_digest
from chaingate.oci.errors import InvalidReference, OCIError
from chaingate.oci.interface import ImageStore, Manifest
from chaingate.oci.reference import (
    ArchiveReference,
    ImageReference,
    LayoutReference,
    Reference,
    parse_reference,
)
from chaingate.provenance.context import BuildContext, BuildContextError
from chaingate.provenance.slsa import BaseImage, check_context, provenance_statement

BASE_DIGEST_KEY = "org.opencontainers.image.base.digest"
BASE_NAME_KEY = "org.opencontainers.image.base.name"
#: A multi-platform index lists a handful of images; more than this is not an image to describe.
MAX_PLATFORMS = 64


@dataclass(frozen=True)
class Provenance:
    """The statement and the digest it is about (what the reference resolved to)."""

    digest: str
    statement: dict[str, Any]


def subject_name(reference: ImageReference) -> str:
    """The statement subject's name: ``REGISTRY/REPO`` as ``gh attestation`` writes it.

    A layout or archive has no name that means anything elsewhere, so it gets
    the in-toto placeholder ``_``; subjects are matched by digest anyway.
    """
    if isinstance(reference, Reference):
        return reference.name
    assert isinstance(reference, LayoutReference | ArchiveReference)
    return "_"


def parse_base_image(text: str, what: str, source: str) -> BaseImage:
    """A ``--base-image`` value: a registry reference pinned by digest (a tag alone could have moved)."""
    try:
        ref = parse_reference(text)
    except InvalidReference as e:
        raise BuildContextError(f"{what}: {e.message}") from None
    if ref.digest is None:
        raise BuildContextError(
            f"{what}: {text!r} is not pinned by digest",
            hint="write NAME@sha256:HEX (e.g. docker.io/library/debian:12@sha256:…)",
        )
    return BaseImage(text, f"oci://{ref.name}", ref.digest, source)


def _from_keys(values: Mapping[str, str], where: str, source: str) -> BaseImage | None:
    digest = values.get(BASE_DIGEST_KEY, "").strip()
    if not digest:
        return None
    try:
        digest = validate_digest(digest, where=f"{where} {BASE_DIGEST_KEY}")
    except OCIError as e:
        raise BuildContextError(e.message) from None
    name = values.get(BASE_NAME_KEY, "").strip() or None
    uri = None
    if name:
        try:
            ref = parse_reference(name)
        except InvalidReference as e:
            raise BuildContextError(f"{where} {BASE_NAME_KEY}: {e.message}") from None
        if ref.digest is not None and ref.digest != digest:
            raise BuildContextError(
                f"{where}: {BASE_NAME_KEY} pins {ref.digest} but {BASE_DIGEST_KEY} says {digest}"
            )
        uri = f"oci://{ref.name}"
    return BaseImage(name, uri, digest, source)


def _config_labels(store: ImageStore, manifest: Manifest) -> dict[str, str]:
    config = manifest.config
    if config.size > media.MAX_CONFIG_BYTES:
        raise OCIError(f"config {config.digest}: {config.size} bytes is larger than any image config")
    with store.open_blob(config) as stream:
        raw = read_bounded(stream, media.MAX_CONFIG_BYTES, what=f"config {config.digest}")
    try:
        doc = safejson.loads(raw)
    except ValueError:
        raise OCIError(f"config {config.digest}: not valid JSON") from None
    runtime = doc.get("config") if isinstance(doc, dict) else None
    labels = runtime.get("Labels") if isinstance(runtime, dict) else None
    if not isinstance(labels, dict):
        return {}
    return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}


def _image_manifests(store: ImageStore, root: Manifest) -> Iterable[Manifest]:
    if not root.is_index:
        yield root
        return
    children = [d for d in root.manifests if d.media_type in media.IMAGE_MANIFESTS]
    if len(children) > MAX_PLATFORMS:
        raise OCIError(f"index {root.digest}: {len(children)} images is more than {MAX_PLATFORMS}")
    for child in children:
        yield store.get_manifest(child.digest)


def base_images_of(store: ImageStore, root: Manifest) -> list[BaseImage]:
    """Base images the image declares, per platform image: manifest annotations first, then config labels."""
    found: list[BaseImage] = []
    for manifest in _image_manifests(store, root):
        where = f"manifest {manifest.digest}"
        declared = _from_keys(manifest.annotations, where, "annotation")
        if declared is None:
            declared = _from_keys(
                _config_labels(store, manifest), f"config {manifest.config.digest}", "label"
            )
        if declared is not None:
            found.append(declared)
    if root.is_index:
        declared = _from_keys(root.annotations, f"index {root.digest}", "annotation")
        if declared is not None:
            found.append(declared)
    return found


def image_provenance(
    store: ImageStore,
    target: str,
    reference: ImageReference,
    context: BuildContext,
    *,
    base_images: Sequence[BaseImage] = (),
    generated_at: datetime,
) -> Provenance:
    """Resolve ``target`` once and describe the image it names: a Statement v1 with a SLSA v1 predicate."""
    check_context(context)
    descriptor = store.resolve(target)
    root = store.get_manifest(descriptor.digest)
    bases = [*base_images_of(store, root), *base_images]
    return Provenance(
        root.digest,
        provenance_statement(subject_name(reference), root.digest, context, bases, generated_at=generated_at),
    )
