"""Small, byte-for-byte reproducible container images, built in pure Python.

Every fixture image of the suite and the demo comes from here, so no test
needs docker, a network or a pulled base image, and a digest written into a
test stays valid forever: the same inputs always give the same bytes (fixed
mtimes and owners, PAX tars, gzip without timestamp or file name, canonical
JSON). Entries are written in the order given and nothing is added behind the
caller's back — no implied parent directories, no re-sorting — because the
layers that matter most in tests (whiteouts, hostile paths) are exactly the
ones where order and presence are the point.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import functools
import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from chaingate.oci import media
from chaingate.oci.interface import Descriptor, Platform
from chaingate.oci.reference import parse_reference

__all__ = [
    "BuiltBlob",
    "BuiltImage",
    "BuiltIndex",
    "Dir",
    "Entry",
    "File",
    "Hardlink",
    "Layer",
    "OpaqueDir",
    "RawMember",
    "Symlink",
    "Whiteout",
    "build_image",
    "build_index",
    "build_layer",
    "sample_image",
    "write_docker_archive",
    "write_layout",
]

#: Fixed so that a zlib upgrade is the only thing that could ever change a gzip layer's digest.
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
LINUX_AMD64 = Platform("linux", "amd64")
DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
_LAYOUT_MARKER = b'{"imageLayoutVersion":"1.0.0"}'
_CONTAINERD_NAME = "io.containerd.image.name"


# -- layer entries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class File:
    """A regular file; ``uid``/``gid`` exist for tests of ownership-sensitive checks."""

    path: str
    content: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Dir:
    """A directory entry; parents are never implied, so list every one the layer should carry."""

    path: str
    mode: int = 0o755


@dataclass(frozen=True)
class Symlink:
    """A symbolic link; ``target`` is stored verbatim (relative or absolute, dangling or not)."""

    path: str
    target: str


@dataclass(frozen=True)
class Hardlink:
    """A hard link to an earlier member of the same layer (``target`` is an archive path)."""

    path: str
    target: str


@dataclass(frozen=True)
class Whiteout:
    """Deletes ``path`` from the layers below: written as ``.wh.<name>`` in its parent directory."""

    path: str


@dataclass(frozen=True)
class OpaqueDir:
    """Hides everything the layers below put in ``path``: written as ``<path>/.wh..wh..opq``."""

    path: str


@dataclass(frozen=True)
class RawMember:
    """A tar member written exactly as given, for the hostile layers the typed entries refuse.

    The only change made is the size of a regular file, set to ``len(content)``,
    so the archive itself stays well-formed whatever the header claims.
    """

    info: tarfile.TarInfo
    content: bytes = b""


Entry = File | Dir | Symlink | Hardlink | Whiteout | OpaqueDir | RawMember


@dataclass(frozen=True)
class Layer:
    """One filesystem layer; ``created_by`` becomes its history entry in the config."""

    entries: Sequence[Entry]
    compression: Literal["gzip", "none", "zstd"] = "gzip"
    created_by: str = "chaingate test layer"


# -- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltBlob:
    """Bytes and the descriptor that names them; the two always agree."""

    descriptor: Descriptor
    data: bytes

    @classmethod
    def of(cls, media_type: str, data: bytes) -> BuiltBlob:
        return cls(Descriptor(media_type, _sha256(data), len(data)), data)

    @property
    def digest(self) -> str:
        return self.descriptor.digest


@dataclass(frozen=True)
class BuiltImage:
    """A single-platform image: manifest, config and layer blobs, ready to write anywhere."""

    manifest: BuiltBlob
    config: BuiltBlob
    layers: tuple[BuiltBlob, ...]
    #: Digests of the uncompressed layer tars, in layer order (the config's ``rootfs.diff_ids``).
    diff_ids: tuple[str, ...]

    @property
    def digest(self) -> str:
        return self.manifest.descriptor.digest

    @property
    def platform(self) -> Platform:
        """Read back from the config, so it is whatever the image really declares."""
        return Platform.from_dict(json.loads(self.config.data), f"config {self.config.digest}")

    def blobs(self) -> list[BuiltBlob]:
        """What must be stored before the manifest may be: config, then layers."""
        return [self.config, *self.layers]


@dataclass(frozen=True)
class BuiltIndex:
    """A multi-platform image: the index and every image it lists."""

    index: BuiltBlob
    images: tuple[BuiltImage, ...]

    @property
    def digest(self) -> str:
        return self.index.descriptor.digest


# -- building ---------------------------------------------------------------------------------------


def build_layer(layer: Layer) -> tuple[BuiltBlob, str]:
    """The compressed layer blob (with the OCI media type of its compression) and its diff id."""
    tar = _layer_tar(layer.entries)
    if layer.compression == "none":
        return BuiltBlob.of(media.OCI_LAYER_TAR, tar), _sha256(tar)
    if layer.compression == "gzip":
        return BuiltBlob.of(media.OCI_LAYER_GZIP, _gzip(tar)), _sha256(tar)
    if layer.compression == "zstd":
        return BuiltBlob.of(media.OCI_LAYER_ZSTD, _zstd(tar)), _sha256(tar)
    raise ValueError(f"layer compression must be 'gzip', 'none' or 'zstd', not {layer.compression!r}")


def build_image(
    layers: Sequence[Layer],
    *,
    platform: Platform = LINUX_AMD64,
    env: Sequence[str] = DEFAULT_ENV,
    entrypoint: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    created: str = "2024-01-01T00:00:00Z",
    annotations: Mapping[str, str] | None = None,
    docker_media_types: bool = False,
) -> BuiltImage:
    """An image manifest, its config and layers; docker media types give a Docker v2 schema 2 manifest."""
    built = [build_layer(layer) for layer in layers]
    layer_blobs = tuple(_as_docker_layer(blob) if docker_media_types else blob for blob, _ in built)
    diff_ids = tuple(diff_id for _, diff_id in built)

    container_config: dict[str, Any] = {}
    if env:
        container_config["Env"] = list(env)
    if entrypoint is not None:
        container_config["Entrypoint"] = list(entrypoint)
    if labels is not None:
        container_config["Labels"] = dict(labels)
    config_doc: dict[str, Any] = {
        **platform.to_dict(),
        "created": created,
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": created, "created_by": layer.created_by} for layer in layers],
    }
    config = BuiltBlob.of(media.DOCKER_CONFIG if docker_media_types else media.OCI_CONFIG, _json(config_doc))

    manifest_type = media.DOCKER_MANIFEST if docker_media_types else media.OCI_MANIFEST
    manifest_doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config.descriptor.to_dict(),
        "layers": [blob.descriptor.to_dict() for blob in layer_blobs],
    }
    if annotations:
        if docker_media_types:
            raise ValueError(
                "Docker v2 schema 2 manifests have no annotations; build an OCI manifest instead"
            )
        manifest_doc["annotations"] = dict(annotations)
    manifest = BuiltBlob.of(manifest_type, _json(manifest_doc))
    return BuiltImage(manifest=manifest, config=config, layers=layer_blobs, diff_ids=diff_ids)


def build_index(images: Sequence[BuiltImage], *, annotations: Mapping[str, str] | None = None) -> BuiltIndex:
    """An index over ``images``; a Docker manifest list when every image is a Docker manifest."""
    docker = bool(images) and all(
        img.manifest.descriptor.media_type == media.DOCKER_MANIFEST for img in images
    )
    index_type = media.DOCKER_MANIFEST_LIST if docker else media.OCI_INDEX
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": [
            Descriptor(
                img.manifest.descriptor.media_type,
                img.digest,
                img.manifest.descriptor.size,
                platform=img.platform,
            ).to_dict()
            for img in images
        ],
    }
    if annotations:
        if docker:
            raise ValueError(
                "Docker manifest lists have no annotations; build OCI images for an annotated index"
            )
        doc["annotations"] = dict(annotations)
    return BuiltIndex(index=BuiltBlob.of(index_type, _json(doc)), images=tuple(images))


# -- writing ----------------------------------------------------------------------------------------


def write_layout(directory: Path, image: BuiltImage | BuiltIndex, *, tag: str | None = "latest") -> Path:
    """Write (or add to) an OCI image layout, so several fixtures can share one directory.

    An ``index.json`` entry with the same tag is replaced, as ``docker tag``
    would move a tag; other entries, including ones written by other tools, are
    kept verbatim. ``index.json`` is rewritten under the same lock file the
    layout store uses, so a concurrent ``chaingate`` writer loses nothing.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "oci-layout").exists():
        _atomic_write(directory / "oci-layout", _LAYOUT_MARKER)
    top = image.manifest if isinstance(image, BuiltImage) else image.index
    for blob in (*_all_blobs(image), top):
        target = directory / _blob_name(blob.digest)
        if not (target.is_file() and target.stat().st_size == blob.descriptor.size):
            target.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(target, blob.data)

    entry = top.descriptor.bare().to_dict()
    if tag is not None:
        entry["annotations"] = {media.ANNOTATION_REF_NAME: tag}
    with _locked(directory / ".index.lock"):
        index_path = directory / "index.json"
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": []}
        if index_path.exists():
            doc = json.loads(index_path.read_bytes())
            if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
                raise ValueError(f"{index_path}: not an OCI image index (no manifests array)")
        doc["manifests"] = [m for m in doc["manifests"] if not _same_slot(m, entry, tag)] + [entry]
        _atomic_write(index_path, _json(doc))
    return directory


def write_docker_archive(
    path: Path,
    image: BuiltImage,
    *,
    repo_tags: Sequence[str] = ("sample:latest",),
    oci_layout: bool = False,
) -> Path:
    """Write what ``docker save`` writes, in the legacy or the docker >= 25 (OCI layout) format.

    Members are in lexical order with directory entries, as docker's own tar
    walk produces them. The legacy format stores layers uncompressed under
    ``<diff id hex>/layer.tar``, so its synthesised manifest names diff ids;
    the OCI variant keeps the image's own blobs, so its digest survives.
    """
    members: dict[str, bytes | None] = {}  # name -> content; None for a directory
    if oci_layout:
        members["blobs/"] = None
        members["blobs/sha256/"] = None
        for blob in (*image.blobs(), image.manifest):
            members[_blob_name(blob.digest)] = blob.data
        entries = []
        for repo_tag in repo_tags or (None,):
            entry = image.manifest.descriptor.bare().to_dict()
            if repo_tag is not None:
                ref = parse_reference(repo_tag)
                entry["annotations"] = {
                    _CONTAINERD_NAME: str(ref),
                    media.ANNOTATION_REF_NAME: ref.tag or "latest",
                }
            entries.append(entry)
        members["index.json"] = _json(
            {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": entries}
        )
        members["oci-layout"] = _LAYOUT_MARKER
        config_name = _blob_name(image.config.digest)
        layer_names = [_blob_name(blob.digest) for blob in image.layers]
        top_id = _hex(image.layers[-1].digest) if image.layers else None
    else:
        config_name = f"{_hex(image.config.digest)}.json"
        members[config_name] = image.config.data
        platform = image.platform
        layer_names, parent = [], None
        for blob, diff_id in zip(image.layers, image.diff_ids, strict=True):
            layer_id = _hex(diff_id)
            layer_names.append(f"{layer_id}/layer.tar")
            if f"{layer_id}/" in members:
                continue
            legacy = {"id": layer_id, "created": _created(image), "os": platform.os}
            legacy["architecture"] = platform.architecture
            if parent is not None:
                legacy["parent"] = parent
            members[f"{layer_id}/"] = None
            members[f"{layer_id}/VERSION"] = b"1.0"
            members[f"{layer_id}/json"] = _json(legacy)
            members[f"{layer_id}/layer.tar"] = _uncompressed(blob)
            parent = layer_id
        top_id = parent
    members["manifest.json"] = _json(
        [{"Config": config_name, "RepoTags": list(repo_tags), "Layers": layer_names}]
    )
    if repo_tags and top_id is not None:
        repositories: dict[str, dict[str, str]] = {}
        for repo_tag in repo_tags:
            repo, _, tag = _split_tag(repo_tag)
            repositories.setdefault(repo, {})[tag] = top_id
        members["repositories"] = _json(repositories)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for name in sorted(members):
            content = members[name]
            if content is None:
                tar.addfile(_info(name.rstrip("/"), tarfile.DIRTYPE, mode=0o755))
            else:
                tar.addfile(_info(name, tarfile.REGTYPE, mode=0o644, size=len(content)), io.BytesIO(content))
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, buf.getvalue())
    return path


# -- the demo's sample image --------------------------------------------------------------------------


_OS_RELEASE = b"""\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

_DPKG_STATUS = b"""\
Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 340
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u5
Replaces: base, dpkg (<= 1.15.0), miscutils
Provides: base
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system, and
 several important miscellaneous files, such as /etc/debian_version,
 /etc/host.conf, /etc/issue, /etc/motd, /etc/profile, and others,
 and the text of several common licenses in use on Debian systems.
Homepage: https://tracker.debian.org/pkg/base-files

Package: ca-certificates
Status: install ok installed
Priority: optional
Section: misc
Installed-Size: 384
Maintainer: Julien Cristau <jcristau@debian.org>
Architecture: all
Multi-Arch: foreign
Version: 20230311
Description: Common CA certificates
 Contains the certificate authorities shipped with Mozilla's browser to allow
 SSL-based applications to check for the authenticity of SSL connections.

Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12986
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system. This package includes shared versions of the standard C library
 and the standard math library, as well as many others.
Homepage: https://www.gnu.org/software/libc/libc.html
"""

_SIX_METADATA = b"""\
Metadata-Version: 2.1
Name: six
Version: 1.16.0
Summary: Python 2 and 3 compatibility utilities
Home-page: https://github.com/benjaminp/six
Author: Benjamin Peterson
Author-email: benjamin@python.org
License: MIT
Platform: UNKNOWN
Classifier: Development Status :: 5 - Production/Stable
Classifier: Programming Language :: Python :: 3
Classifier: License :: OSI Approved :: MIT License
Requires-Python: >=2.7, !=3.0.*, !=3.1.*, !=3.2.*

Six is a Python 2 and 3 compatibility library.
"""


def _package_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, indent=2).encode() + b"\n"


@functools.cache
def sample_image() -> BuiltImage:
    """The README demo's image: small enough to read whole, real enough for every cataloger.

    Layer 1 is a Debian 12 slice (os-release, three dpkg packages — ``libc6``
    with a ``Source:`` field —, the ``six`` dist-info) and a node app depending
    on ``ms`` and ``left-pad``. Layer 2 is an ``npm prune``: it rewrites
    ``app/package.json`` (1.0.0 -> 1.0.1, without left-pad) and whites out
    ``app/node_modules/left-pad``, so a correct reader of the merged filesystem
    sees ``ms`` only.
    """
    dist_packages = "usr/lib/python3/dist-packages"
    base = Layer(
        [
            Dir("etc"),
            File("etc/debian_version", b"12.5\n"),
            File("etc/os-release", _OS_RELEASE),
            Dir("usr"),
            Dir("usr/lib"),
            Dir("usr/lib/python3"),
            Dir(dist_packages),
            File(
                f"{dist_packages}/six.py", b'"""Utilities for writing code that runs on Python 2 and 3"""\n'
            ),
            Dir(f"{dist_packages}/six-1.16.0.dist-info"),
            File(f"{dist_packages}/six-1.16.0.dist-info/METADATA", _SIX_METADATA),
            File(f"{dist_packages}/six-1.16.0.dist-info/top_level.txt", b"six\n"),
            Dir("var"),
            Dir("var/lib"),
            Dir("var/lib/dpkg"),
            File("var/lib/dpkg/status", _DPKG_STATUS),
            Dir("app"),
            File(
                "app/package.json",
                _package_json(
                    {
                        "name": "sample-app",
                        "version": "1.0.0",
                        "private": True,
                        "main": "server.js",
                        "license": "Apache-2.0",
                        "dependencies": {"left-pad": "^1.3.0", "ms": "^2.1.3"},
                    }
                ),
            ),
            File("app/server.js", b"const ms = require('ms');\nconsole.log(`up in ${ms(1500)}`);\n"),
            Dir("app/node_modules"),
            Dir("app/node_modules/left-pad"),
            File(
                "app/node_modules/left-pad/package.json",
                _package_json(
                    {"name": "left-pad", "version": "1.3.0", "license": "WTFPL", "main": "index.js"}
                ),
            ),
            File("app/node_modules/left-pad/index.js", b"module.exports = leftPad;\n"),
            Dir("app/node_modules/ms"),
            File(
                "app/node_modules/ms/package.json",
                _package_json(
                    {
                        "name": "ms",
                        "version": "2.1.3",
                        "description": "Tiny millisecond conversion utility",
                        "repository": "vercel/ms",
                        "license": "MIT",
                        "main": "./index",
                    }
                ),
            ),
            File(
                "app/node_modules/ms/index.js", b"module.exports = function (val) { return val + 'ms'; };\n"
            ),
        ],
        created_by="ADD rootfs.tar / # buildkit",
    )
    prune = Layer(
        [
            Dir("app"),
            File(
                "app/package.json",
                _package_json(
                    {
                        "name": "sample-app",
                        "version": "1.0.1",
                        "private": True,
                        "main": "server.js",
                        "license": "Apache-2.0",
                        "dependencies": {"ms": "^2.1.3"},
                    }
                ),
            ),
            Dir("app/node_modules"),
            Whiteout("app/node_modules/left-pad"),
        ],
        created_by="RUN /bin/sh -c npm prune --omit=dev # buildkit",
    )
    return build_image(
        [base, prune],
        env=(*DEFAULT_ENV, "NODE_ENV=production"),
        entrypoint=("node", "/app/server.js"),
        labels={
            "org.opencontainers.image.title": "chaingate sample",
            "org.opencontainers.image.version": "1.0.1",
        },
    )


# -- internals -------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def _blob_name(digest: str) -> str:
    algo, hexpart = digest.split(":", 1)
    return f"blobs/{algo}/{hexpart}"


def _json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _info(
    name: str, kind: bytes, *, mode: int, size: int = 0, linkname: str = "", uid: int = 0, gid: int = 0
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def _clean(path: str, what: str) -> str:
    """The archive name of a typed entry: leading and trailing slashes dropped, nothing else changed.

    ``..``, ``.`` and empty components are refused rather than normalised: a
    layer that escapes its root is a test of its own, made with RawMember.
    """
    name = path.strip("/")
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"{what} {path!r}: not a plain path inside the image (use RawMember for hostile names)"
        )
    return name


def _member(entry: Entry) -> tuple[tarfile.TarInfo, bytes]:
    if isinstance(entry, File):
        name = _clean(entry.path, "File")
        info = _info(
            name, tarfile.REGTYPE, mode=entry.mode, size=len(entry.content), uid=entry.uid, gid=entry.gid
        )
        return info, entry.content
    if isinstance(entry, Dir):
        return _info(_clean(entry.path, "Dir"), tarfile.DIRTYPE, mode=entry.mode), b""
    if isinstance(entry, Symlink):
        return _info(_clean(entry.path, "Symlink"), tarfile.SYMTYPE, mode=0o777, linkname=entry.target), b""
    if isinstance(entry, Hardlink):
        target = _clean(entry.target, "Hardlink target")
        return _info(_clean(entry.path, "Hardlink"), tarfile.LNKTYPE, mode=0o644, linkname=target), b""
    if isinstance(entry, Whiteout):
        parent, _, leaf = _clean(entry.path, "Whiteout").rpartition("/")
        name = f"{parent}/.wh.{leaf}" if parent else f".wh.{leaf}"
        return _info(name, tarfile.REGTYPE, mode=0o644), b""
    if isinstance(entry, OpaqueDir):
        return _info(f"{_clean(entry.path, 'OpaqueDir')}/.wh..wh..opq", tarfile.REGTYPE, mode=0o644), b""
    if isinstance(entry, RawMember):
        info = copy.copy(entry.info)
        if info.isreg():
            info.size = len(entry.content)
        elif entry.content:
            raise ValueError(f"RawMember {info.name!r}: only regular files carry content")
        return info, entry.content
    raise TypeError(f"not a layer entry: {entry!r}")


def _layer_tar(entries: Sequence[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for entry in entries:
            info, content = _member(entry)
            tar.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="", compresslevel=GZIP_LEVEL) as gz:
        gz.write(data)
    return buf.getvalue()


def _zstd_module() -> Any:
    try:
        import zstandard
    except ImportError:
        raise RuntimeError(
            "zstd layers need the 'zstandard' module: pip install zstandard (or use compression='gzip')"
        ) from None
    return zstandard


def _zstd(data: bytes) -> bytes:
    return bytes(_zstd_module().ZstdCompressor(level=ZSTD_LEVEL).compress(data))


def _uncompressed(blob: BuiltBlob) -> bytes:
    mt = blob.descriptor.media_type
    if mt in (media.OCI_LAYER_TAR, media.DOCKER_LAYER_TAR):
        return blob.data
    if mt in (media.OCI_LAYER_GZIP, media.DOCKER_LAYER_GZIP):
        return gzip.decompress(blob.data)
    if mt == media.OCI_LAYER_ZSTD:
        return bytes(_zstd_module().ZstdDecompressor().decompressobj().decompress(blob.data))
    raise ValueError(f"layer {blob.digest}: unknown layer media type {mt}")


def _as_docker_layer(blob: BuiltBlob) -> BuiltBlob:
    docker_type = {
        media.OCI_LAYER_GZIP: media.DOCKER_LAYER_GZIP,
        media.OCI_LAYER_TAR: media.DOCKER_LAYER_TAR,
    }.get(blob.descriptor.media_type)
    if docker_type is None:
        raise ValueError(
            "Docker v2 schema 2 manifests have no zstd layer type; use compression='gzip' or OCI media types"
        )
    return BuiltBlob.of(docker_type, blob.data)


def _all_blobs(image: BuiltImage | BuiltIndex) -> list[BuiltBlob]:
    if isinstance(image, BuiltImage):
        return image.blobs()
    out: list[BuiltBlob] = []
    for child in image.images:
        out += [*child.blobs(), child.manifest]
    return out


def _same_slot(existing: Any, entry: Mapping[str, Any], tag: str | None) -> bool:
    """Whether an index.json entry is the one ``entry`` replaces: same tag, or the same untagged digest."""
    if not isinstance(existing, dict):
        return False
    notes = existing.get("annotations")
    ref_name = notes.get(media.ANNOTATION_REF_NAME) if isinstance(notes, dict) else None
    if tag is not None:
        return bool(ref_name == tag)
    return ref_name is None and existing.get("digest") == entry["digest"]


def _created(image: BuiltImage) -> str:
    created = json.loads(image.config.data).get("created")
    return created if isinstance(created, str) else "1970-01-01T00:00:00Z"


def _split_tag(repo_tag: str) -> tuple[str, str, str]:
    """``repo:tag`` split as docker's ``repositories`` file wants it (a ``:`` before the last ``/`` is a port)."""
    repo, sep, tag = repo_tag.rpartition(":")
    if not sep or "/" in tag:
        return repo_tag, ":", "latest"
    return repo, sep, tag


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600 would lock other users (and containers) out
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
