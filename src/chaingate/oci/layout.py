"""An :class:`ImageStore` backed by an OCI image layout directory (``oci:DIR``).

Writable, with referrers: a referrer manifest is stored as a blob and listed in
``index.json`` (untagged, as oras and skopeo do), so the whole chain — sbom,
attest, verify — runs with no registry at all. ``index.json`` is updated under
an exclusive lock and replaced atomically, so parallel writers lose nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from chaingate import safejson
from chaingate.oci import media
from chaingate.oci.digest import VerifiedReader, hasher, read_bounded, validate_digest, verify_bytes
from chaingate.oci.errors import DigestMismatch, NotFound, OCIError
from chaingate.oci.interface import Descriptor, ImageStore, Manifest, Progress, ReferrerListing, no_progress
from chaingate.oci.registry import check_referrers, fallback_tag

_LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'


class LayoutFiles(Protocol):
    """Read access to the files of a layout, wherever they live (a directory, a tar)."""

    def read(self, name: str, limit: int) -> bytes: ...
    def open(self, name: str) -> IO[bytes]: ...
    def exists(self, name: str) -> bool: ...


class DirectoryFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / name

    def read(self, name: str, limit: int) -> bytes:
        try:
            with self._path(name).open("rb") as f:
                return read_bounded(f, limit, what=str(self._path(name)))
        except FileNotFoundError:
            raise NotFound(f"{self._path(name)}: not found") from None
        except OSError as e:
            raise OCIError(f"{self._path(name)}: cannot read ({e.strerror})") from None

    def open(self, name: str) -> IO[bytes]:
        try:
            return self._path(name).open("rb")
        except FileNotFoundError:
            raise NotFound(f"{self._path(name)}: not found") from None
        except OSError as e:
            raise OCIError(f"{self._path(name)}: cannot read ({e.strerror})") from None

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()


def blob_path(digest: str) -> str:
    algo, hexpart = validate_digest(digest).split(":", 1)
    return f"blobs/{algo}/{hexpart}"


class LayoutStore(ImageStore):
    """An OCI image layout; read-only when backed by anything other than a directory."""

    def __init__(self, files: LayoutFiles, display: str, *, writable_root: Path | None = None) -> None:
        self.files = files
        self.display = display
        self._root = writable_root

    @classmethod
    def open_directory(cls, path: Path, *, create: bool = False) -> LayoutStore:
        if create:
            path.mkdir(parents=True, exist_ok=True)
            marker = path / "oci-layout"
            if not marker.exists():
                _atomic_write(marker, _LAYOUT_VERSION)
            if not (path / "index.json").exists():
                _atomic_write(path / "index.json", _encode_index_json([]))
        elif not (path / "oci-layout").is_file():
            raise NotFound(
                f"oci:{path}: not an OCI image layout (no oci-layout file)",
                hint="create one with `chaingate copy IMAGE oci:DIR:TAG`",
            )
        return cls(DirectoryFiles(path), f"oci:{path}", writable_root=path)

    # -- index.json -------------------------------------------------------------------------------

    def index_entries(self) -> list[Descriptor]:
        raw = self.files.read("index.json", media.MAX_MANIFEST_BYTES)
        try:
            doc = safejson.loads(raw)
        except ValueError as e:
            raise OCIError(f"{self.display}: index.json is not valid JSON ({e})") from None
        manifests = doc.get("manifests") if isinstance(doc, dict) else None
        if not isinstance(manifests, list):
            raise OCIError(f"{self.display}: index.json has no manifests array")
        return [
            Descriptor.from_dict(m, f"{self.display} index.json manifests[{i}]")
            for i, m in enumerate(manifests)
        ]

    def default_target(self) -> str:
        """What ``oci:DIR`` without tag or digest means: the one image the layout holds."""
        candidates = [
            d
            for d in self.index_entries()
            if d.media_type in media.ALL_MANIFESTS
            and not d.artifact_type
            and not d.annotations.get(media.ANNOTATION_REF_NAME, "").startswith(("sha256-", "sha512-"))
        ]
        digests = sorted({d.digest for d in candidates})
        if len(digests) == 1:
            return digests[0]
        if not digests:
            raise NotFound(f"{self.display}: the layout holds no image")
        tags = sorted({d.annotations.get(media.ANNOTATION_REF_NAME, "") for d in candidates} - {""})
        raise OCIError(
            f"{self.display}: the layout holds {len(digests)} images; name one",
            hint=f"use oci:DIR:TAG (tags: {', '.join(tags) or 'none'}) or oci:DIR@DIGEST",
        )

    # -- reading ----------------------------------------------------------------------------------

    def resolve(self, tag_or_digest: str) -> Descriptor:
        if tag_or_digest.startswith(("sha256:", "sha512:")):
            return self.get_manifest(tag_or_digest).descriptor
        matches = [
            d for d in self.index_entries() if d.annotations.get(media.ANNOTATION_REF_NAME) == tag_or_digest
        ]
        if not matches:
            raise NotFound(
                f"{self.display}: no tag {tag_or_digest!r}", hint=f"tags: {', '.join(self.tags()) or 'none'}"
            )
        return self.get_manifest(matches[-1].digest).descriptor

    def get_manifest(self, digest: str) -> Manifest:
        raw = self.files.read(blob_path(digest), media.MAX_MANIFEST_BYTES)
        verify_bytes(raw, digest, what=f"manifest {self.display}@{digest}")
        # The document's own mediaType (or its shape) decides the type; Manifest.parse reads it.
        return Manifest.parse(raw, Descriptor(media.OCI_MANIFEST, digest, len(raw)))

    def open_blob(self, descriptor: Descriptor) -> IO[bytes]:
        stream = self.files.open(blob_path(descriptor.digest))
        return VerifiedReader(  # type: ignore[return-value]
            stream, descriptor.digest, descriptor.size, what=f"blob {descriptor.digest} in {self.display}"
        )

    def has_blob(self, descriptor: Descriptor) -> bool:
        if self._root is not None:
            path = self._root / blob_path(descriptor.digest)
            return path.is_file() and path.stat().st_size == descriptor.size
        return self.files.exists(blob_path(descriptor.digest))

    def tags(self) -> list[str]:
        return sorted(
            {
                d.annotations[media.ANNOTATION_REF_NAME]
                for d in self.index_entries()
                if media.ANNOTATION_REF_NAME in d.annotations
            }
        )

    def referrers(self, subject: str, artifact_type: str | None = None) -> ReferrerListing:
        listed: list[tuple[Any, str]] = []
        entries = self.index_entries()
        fallback = fallback_tag(subject)
        for d in entries:
            ref_name = d.annotations.get(media.ANNOTATION_REF_NAME)
            if ref_name == fallback:
                # A fallback index written by another tool (oras, cosign) into the layout.
                try:
                    index = self.get_manifest(d.digest)
                except OCIError:
                    continue
                if index.is_index:
                    listed.extend((m, "fallback-tag") for m in index.content["manifests"])
            elif ref_name is None and d.media_type in media.IMAGE_MANIFESTS:
                # Untagged manifests are referrer candidates; which subject they name is
                # read from the manifest itself, never from the index entry.
                try:
                    named = self.get_manifest(d.digest).subject
                except OCIError:
                    named = None
                if named is not None and named.digest == subject:
                    listed.append((d.to_dict(), "layout"))
        return check_referrers(self, subject, listed, artifact_type)

    # -- writing ----------------------------------------------------------------------------------

    def _writable(self) -> Path:
        if self._root is None:
            raise OCIError(f"{self.display}: read-only (layouts inside archives cannot be written in place)")
        return self._root

    def put_blob(
        self, descriptor: Descriptor, opener: Callable[[], IO[bytes]], *, progress: Progress = no_progress
    ) -> None:
        root = self._writable()
        target = root / blob_path(descriptor.digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hasher(descriptor.digest)
        size = 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, opener() as src:
                while chunk := src.read(1024 * 1024):
                    size += len(chunk)
                    if size > descriptor.size:
                        raise DigestMismatch(
                            f"blob {descriptor.digest}: more than the declared {descriptor.size} bytes"
                        )
                    h.update(chunk)
                    out.write(chunk)
                    progress(f"blob {descriptor.digest[:19]}", size, descriptor.size)
            actual = f"{descriptor.digest.split(':', 1)[0]}:{h.hexdigest()}"
            if size != descriptor.size or actual != descriptor.digest:
                raise DigestMismatch(
                    f"blob {descriptor.digest}: received {size} bytes hashing to {actual}, "
                    f"expected {descriptor.size} bytes"
                )
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _write_blob_bytes(self, digest: str, data: bytes) -> None:
        root = self._writable()
        verify_bytes(data, digest, what=f"blob {digest}")
        target = root / blob_path(digest)
        if target.is_file() and target.stat().st_size == len(data):
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(target, data)

    def put_manifest(self, manifest: Manifest, *, tag: str | None = None) -> Descriptor:
        self._write_blob_bytes(manifest.digest, manifest.raw)
        if tag:
            entry = manifest.descriptor.bare().with_annotations({media.ANNOTATION_REF_NAME: tag})
            with self._locked_index() as entries:
                entries[:] = [d for d in entries if d.annotations.get(media.ANNOTATION_REF_NAME) != tag]
                entries.append(entry)
        return manifest.descriptor

    def attach(self, referrer: Manifest) -> Descriptor:
        if referrer.subject is None:
            raise OCIError(f"referrer {referrer.digest} has no subject to attach to")
        self._write_blob_bytes(referrer.digest, referrer.raw)
        entry = Descriptor(
            referrer.media_type,
            referrer.digest,
            referrer.descriptor.size,
            referrer.artifact_type,
            referrer.annotations,
        )
        with self._locked_index() as entries:
            if not any(
                d.digest == referrer.digest and media.ANNOTATION_REF_NAME not in d.annotations
                for d in entries
            ):
                entries.append(entry)
        return referrer.descriptor

    @contextlib.contextmanager
    def _locked_index(self) -> Iterator[list[Descriptor]]:
        """Read-modify-write index.json under an exclusive lock, replacing it atomically."""
        root = self._writable()
        with (root / ".index.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                entries = self.index_entries()
                yield entries
                _atomic_write(root / "index.json", _encode_index_json([d.to_dict() for d in entries]))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _encode_index_json(manifests: list[dict[str, Any]]) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": manifests}
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
