"""Build OCI 1.1 artifact manifests: what every chaingate attachment is made of.

An artifact manifest has the empty JSON config, one or more layers holding the
artifact's bytes, an ``artifactType`` and a ``subject`` pointing at the image;
that is the shape cosign v3 and actions/attest write for Sigstore bundles.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

from chaingate.oci import media
from chaingate.oci.digest import sha256_digest
from chaingate.oci.interface import Descriptor, ImageStore, Manifest


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes = field(repr=False)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(
            self.media_type, sha256_digest(self.data), len(self.data), None, dict(self.annotations)
        )


@dataclass(frozen=True)
class Artifact:
    manifest: Manifest
    blobs: tuple[Blob, ...]


def build_artifact(
    subject: Descriptor,
    artifact_type: str,
    layers: Sequence[Blob],
    *,
    annotations: Mapping[str, str] | None = None,
) -> Artifact:
    """An artifact manifest about ``subject``; serialised deterministically so equal inputs give equal digests."""
    empty = Blob(media.OCI_EMPTY, media.EMPTY_JSON)
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty.descriptor.to_dict(),
        "layers": [b.descriptor.to_dict() for b in layers],
        "subject": subject.bare().to_dict(),
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    manifest = Manifest.parse(raw, Descriptor(media.OCI_MANIFEST, sha256_digest(raw), len(raw)))
    return Artifact(manifest, (empty, *layers))


def push_blobs(store: ImageStore, artifact: Artifact) -> None:
    """Store the artifact's blobs that ``store`` lacks."""
    for blob in artifact.blobs:
        desc = blob.descriptor
        if not store.has_blob(desc):
            store.put_blob(desc, bytes_opener(blob.data))


def push_artifact(store: ImageStore, artifact: Artifact) -> Descriptor:
    """Store the artifact's blobs, then attach its manifest (blobs first, so no reader sees a dangling one)."""
    push_blobs(store, artifact)
    return store.attach(artifact.manifest)


def bytes_opener(data: bytes) -> Callable[[], IO[bytes]]:
    """A re-openable stream over ``data``, for :meth:`ImageStore.put_blob`."""
    return lambda: io.BytesIO(data)
