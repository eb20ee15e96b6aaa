"""An :class:`ImageStore` for ``docker-archive:FILE`` (``docker save`` / ``docker load`` tarballs).

Two formats exist: the legacy one (``manifest.json`` + ``<id>/layer.tar``), for
which a Docker v2 manifest is synthesised from the config and uncompressed
layers exactly as skopeo does, and the docker >= 25 one, which embeds an OCI
image layout and is read through :class:`LayoutStore`. Archives are written in
the newer format, with ``manifest.json`` beside the layout so ``docker load``
reads them, and with referrers kept in the embedded layout.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

from chaingate import safejson
from chaingate.oci import media
from chaingate.oci.digest import VerifiedReader, read_bounded, sha256_digest
from chaingate.oci.errors import NotFound, OCIError
from chaingate.oci.interface import Descriptor, ImageStore, Manifest, Progress, ReferrerListing, no_progress
from chaingate.oci.layout import LayoutStore, blob_path

_MAX_MANIFEST_JSON = 4 * 1024 * 1024


def _reopener(fileobj: object) -> Callable[[Path], IO[bytes]]:
    """How to open the archive again, by the file object tarfile chose for it (the caller closes it)."""
    kind: Any = next((k for k in (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile) if isinstance(fileobj, k)), None)
    if kind is None:
        return lambda p: p.open("rb")
    return lambda p: cast(IO[bytes], kind(p, "rb"))


class _Section(io.RawIOBase):
    """One member's bytes through a file handle of its own.

    ``TarFile.extractfile`` streams share the archive's one file position, so
    two of them read at once (the SBOM reads the next layers ahead) would read
    each other's bytes. A short read is left to the caller's digest check.
    """

    def __init__(self, f: IO[bytes], size: int) -> None:
        super().__init__()
        self._f = f
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._left)
        if want <= 0:
            return 0
        data = self._f.read(want)
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()


class TarFiles:
    """Members of an (uncompressed, gzip, bzip2 or xz) tar, by normalised name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._tar = tarfile.open(path, "r:*")  # noqa: SIM115 — closed by ArchiveStore.close
            self._reopen = _reopener(self._tar.fileobj)
            self._members = {
                os.path.normpath(m.name).lstrip("/"): m for m in self._tar.getmembers() if m.isfile()
            }
        except FileNotFoundError:
            raise NotFound(f"docker-archive:{path}: no such file") from None
        except (tarfile.TarError, OSError) as e:
            raise OCIError(f"docker-archive:{path}: not a readable tar archive ({e})") from None

    def _member(self, name: str) -> tarfile.TarInfo:
        member = self._members.get(os.path.normpath(name).lstrip("/"))
        if member is None:
            raise NotFound(f"docker-archive:{self.path}: no member {name}")
        return member

    def read(self, name: str, limit: int) -> bytes:
        with self.open(name) as f:
            return read_bounded(f, limit, what=f"docker-archive:{self.path}:{name}")

    def open(self, name: str) -> IO[bytes]:
        """A stream of the member that may be read alongside streams of other members."""
        member = self._member(name)
        try:
            f = self._reopen(self.path)
        except OSError as e:
            raise OCIError(f"docker-archive:{self.path}: {e.strerror or e}") from None
        try:
            f.seek(member.offset_data)
        except (OSError, EOFError) as e:
            f.close()
            raise OCIError(f"docker-archive:{self.path}: member {name}: {e}") from None
        return cast(IO[bytes], io.BufferedReader(_Section(f, member.size), buffer_size=1 << 20))

    def size(self, name: str) -> int:
        return self._member(name).size

    def exists(self, name: str) -> bool:
        return os.path.normpath(name).lstrip("/") in self._members

    def close(self) -> None:
        self._tar.close()


class ArchiveStore(ImageStore):
    """A docker archive; read-only when opened for reading, written whole on close otherwise."""

    def __init__(self, path: Path, *, write: bool = False, repo_tag: str | None = None) -> None:
        self.path = path
        self.display = f"docker-archive:{path}"
        self._repo_tag = repo_tag
        self._files: TarFiles | None = None
        self._inner: LayoutStore | None = None
        self._legacy: dict[str, tuple[str, int]] = {}  # digest -> (member, size) for legacy archives
        self._legacy_manifest: Manifest | None = None
        self._staging: Path | None = None
        if write:
            self._staging = Path(tempfile.mkdtemp(prefix=".chaingate-archive-", dir=path.parent or Path(".")))
            self._inner = LayoutStore.open_directory(self._staging, create=True)
            return
        self._files = TarFiles(path)
        if self._files.exists("index.json") and self._files.exists("oci-layout"):
            self._inner = LayoutStore(self._files, self.display)
        elif self._files.exists("manifest.json"):
            self._load_legacy()
        else:
            self._files.close()
            raise OCIError(f"{self.display}: neither a docker save archive (manifest.json) nor an OCI layout")

    # -- the legacy format --------------------------------------------------------------------------

    def _load_legacy(self) -> None:
        assert self._files is not None
        try:
            doc = safejson.loads(self._files.read("manifest.json", _MAX_MANIFEST_JSON))
        except ValueError as e:
            raise OCIError(f"{self.display}: manifest.json is not valid JSON ({e})") from None
        if not isinstance(doc, list) or len(doc) != 1 or not isinstance(doc[0], dict):
            count = len(doc) if isinstance(doc, list) else 0
            raise OCIError(f"{self.display}: manifest.json must describe exactly one image (found {count})")
        entry = doc[0]
        config_name, layer_names = entry.get("Config"), entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layer_names, list):
            raise OCIError(f"{self.display}: manifest.json entry needs Config and Layers")
        config_raw = self._files.read(config_name, media.MAX_CONFIG_BYTES)
        config_digest = sha256_digest(config_raw)
        self._legacy[config_digest] = (config_name, len(config_raw))
        layers = []
        for name in layer_names:
            if not isinstance(name, str):
                raise OCIError(f"{self.display}: manifest.json Layers must be file names")
            digest, compressed = self._hash_member(name)
            size = self._files.size(name)
            self._legacy[digest] = (name, size)
            layer_type = media.DOCKER_LAYER_GZIP if compressed else media.DOCKER_LAYER_TAR
            layers.append({"mediaType": layer_type, "size": size, "digest": digest})
        manifest_doc = {
            "schemaVersion": 2,
            "mediaType": media.DOCKER_MANIFEST,
            "config": {"mediaType": media.DOCKER_CONFIG, "size": len(config_raw), "digest": config_digest},
            "layers": layers,
        }
        raw = json.dumps(manifest_doc, indent=3).encode()
        self._legacy_manifest = Manifest.parse(
            raw, Descriptor(media.DOCKER_MANIFEST, sha256_digest(raw), len(raw))
        )
        tags = entry.get("RepoTags")
        self._legacy_tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []

    def _hash_member(self, name: str) -> tuple[str, bool]:
        """The sha256 digest of a member, and whether it is gzip-compressed (docker saves plain tars)."""
        assert self._files is not None
        h = hashlib.sha256()
        with self._files.open(name) as f:
            head = f.read(2)
            h.update(head)
            while chunk := f.read(1024 * 1024):
                h.update(chunk)
        return "sha256:" + h.hexdigest(), head == b"\x1f\x8b"

    def default_target(self) -> str:
        if self._legacy_manifest is not None:
            return self._legacy_manifest.digest
        return self._layout().default_target()

    def _layout(self) -> LayoutStore:
        assert self._inner is not None
        return self._inner

    # -- ImageStore ---------------------------------------------------------------------------------

    def resolve(self, tag_or_digest: str) -> Descriptor:
        if self._legacy_manifest is not None:
            m = self._legacy_manifest
            if tag_or_digest in (m.digest, *self._legacy_tags):
                return m.descriptor
            raise NotFound(f"{self.display}: no image {tag_or_digest!r}")
        return self._layout().resolve(tag_or_digest)

    def get_manifest(self, digest: str) -> Manifest:
        if self._legacy_manifest is not None:
            if digest != self._legacy_manifest.digest:
                raise NotFound(f"{self.display}: no manifest {digest}")
            return self._legacy_manifest
        return self._layout().get_manifest(digest)

    def open_blob(self, descriptor: Descriptor) -> IO[bytes]:
        if self._legacy_manifest is not None:
            assert self._files is not None
            member = self._legacy.get(descriptor.digest)
            if member is None:
                raise NotFound(f"{self.display}: no blob {descriptor.digest}")
            return VerifiedReader(  # type: ignore[return-value]
                self._files.open(member[0]),
                descriptor.digest,
                descriptor.size,
                what=f"blob {descriptor.digest} in {self.display}",
            )
        return self._layout().open_blob(descriptor)

    def has_blob(self, descriptor: Descriptor) -> bool:
        if self._legacy_manifest is not None:
            return descriptor.digest in self._legacy
        return self._layout().has_blob(descriptor)

    def tags(self) -> list[str]:
        if self._legacy_manifest is not None:
            return list(self._legacy_tags)
        return self._layout().tags()

    def referrers(self, subject: str, artifact_type: str | None = None) -> ReferrerListing:
        if self._legacy_manifest is not None:
            return ReferrerListing((), ())
        return self._layout().referrers(subject, artifact_type)

    def put_blob(
        self, descriptor: Descriptor, opener: Callable[[], IO[bytes]], *, progress: Progress = no_progress
    ) -> None:
        self._writable().put_blob(descriptor, opener, progress=progress)

    def put_manifest(self, manifest: Manifest, *, tag: str | None = None) -> Descriptor:
        return self._writable().put_manifest(manifest, tag=tag or "latest")

    def attach(self, referrer: Manifest) -> Descriptor:
        return self._writable().attach(referrer)

    def _writable(self) -> LayoutStore:
        if self._staging is None:
            raise OCIError(
                f"{self.display}: opened for reading; archives are written whole by `chaingate copy`"
            )
        return self._layout()

    # -- writing the tar ------------------------------------------------------------------------------

    def close(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None
        if self._staging is None:
            return
        staging, self._staging = self._staging, None
        try:
            self._write_tar(staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def abort(self) -> None:
        """Drop a half-written archive: nothing is written to the target path."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def _write_tar(self, staging: Path) -> None:
        layout = LayoutStore.open_directory(staging)
        docker_manifest: list[dict[str, Any]] = []
        for entry in layout.index_entries():
            tag = entry.annotations.get(media.ANNOTATION_REF_NAME)
            if tag is None or entry.media_type not in media.IMAGE_MANIFESTS:
                continue
            manifest = layout.get_manifest(entry.digest)
            repo_tag = f"{self._repo_tag}:{tag}" if self._repo_tag else None
            docker_manifest.append(
                {
                    "Config": blob_path(manifest.config.digest),
                    "RepoTags": [repo_tag] if repo_tag else [],
                    "Layers": [blob_path(d.digest) for d in manifest.layers],
                }
            )
        manifest_json = json.dumps(docker_manifest, separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent or Path("."), prefix=".tmp-")
        try:
            with (
                os.fdopen(fd, "wb") as f,
                tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar,
            ):
                for name in ("oci-layout", "index.json"):
                    _add_file(tar, name, (staging / name).read_bytes())
                _add_file(tar, "manifest.json", manifest_json)
                for blob in sorted((staging / "blobs").rglob("*")):
                    if blob.is_file() and not blob.name.startswith(".tmp-"):
                        info = _info(blob.relative_to(staging).as_posix(), blob.stat().st_size)
                        with blob.open("rb") as content:
                            tar.addfile(info, content)
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))
