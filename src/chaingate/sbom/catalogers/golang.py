"""Go modules compiled into executables, from the build information the Go linker embeds.

Since Go 1.18 the linker writes a pointer-free blob, 16-byte aligned in the
binary's data: the 14-byte magic ``\\xff Go buildinf:``, a pointer-size byte, a
flags byte (bit 1 set: strings inline), 16 bytes of padding, then the Go
version and the module information as two uvarint-length-prefixed strings, the
latter framed by 16-byte sentinels (``debug/buildinfo`` documents the layout).
The blob is found by scanning the stream, so a binary is never held in memory
and ELF section headers (at the end of the file) are never needed; older
pointer-based blobs need virtual-address translation over the whole file and
are reported as a warning instead.

The module information lists the main module (``mod``), each dependency
(``dep``) with its replacement (``=>``) and the build settings (``build``).
A main module built from a checkout reports version ``(devel)``; then the
version is the pseudo-version of its VCS stamp,
``v0.0.0-<vcs.time as yyyymmddhhmmss>-<vcs.revision[:12]>`` (``+dirty`` when
``vcs.modified=true``), the form ``go`` itself derives from a commit; without a
VCS stamp the main module gets no version. The toolchain becomes a
``pkg:golang/stdlib`` component, so standard-library advisories match.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from packageurl import PackageURL

from chaingate.sbom.catalogers.base import CatalogContext, Cataloger, Found, Package, Skip
from chaingate.sbom.interface import KiB, MiB

MAGIC = b"\xff Go buildinf:"
HEADER_SIZE = 32
ALIGN = 16
FLAG_INLINE = 0x2
INFO_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
INFO_END = bytes.fromhex("f932433186182072008242104116d8f2")
_ELF = b"\x7fELF"
_CHUNK = 1 * MiB
#: The Go version string and module list of even the largest programs are tens of KiB.
_MAX_STRING = 4 * MiB


@dataclass(frozen=True)
class BuildInfo:
    go_version: str
    modinfo: str


class _Blob:
    """Bytes from the magic onwards, extended from the stream only as far as the parser asks."""

    def __init__(self, data: bytes, more: Callable[[int], bytes]) -> None:
        self.data = data
        self._more = more

    def need(self, end: int) -> bytes:
        while len(self.data) < end:
            chunk = self._more(max(end - len(self.data), 64 * KiB))
            if not chunk:
                raise Skip("Go build info is truncated")
            self.data += chunk
        return self.data


def _uvarint(blob: _Blob, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(10):
        byte = blob.need(pos + i + 1)[pos + i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos + i + 1
        shift += 7
    raise Skip("Go build info has a malformed length")


def _string(blob: _Blob, pos: int) -> tuple[str, int]:
    length, pos = _uvarint(blob, pos)
    if length > _MAX_STRING:
        raise Skip(f"Go build info string of {length} bytes")
    data = blob.need(pos + length)[pos : pos + length]
    return data.decode("utf-8", errors="replace"), pos + length


def read_buildinfo(stream: IO[bytes]) -> BuildInfo | None:
    """The build info of a Go ELF binary read as a stream, or None if it is not one."""
    first = stream.read(_CHUNK)
    if not first.startswith(_ELF):
        return None
    data, offset = first, 0  # offset: position of data[0] in the file
    while True:
        start = 0
        while True:
            i = data.find(MAGIC, start)
            if i < 0:
                break
            if (offset + i) % ALIGN == 0:
                return _parse(_Blob(data[i:], stream.read))
            start = i + 1
        chunk = stream.read(_CHUNK)
        if not chunk:
            return None
        keep = len(MAGIC) - 1
        offset += len(data) - keep
        data = data[-keep:] + chunk


def _parse(blob: _Blob) -> BuildInfo:
    header = blob.need(HEADER_SIZE)
    if not header[15] & FLAG_INLINE:
        raise Skip("Go build info in the pre-1.18 pointer format is not supported")
    version, pos = _string(blob, HEADER_SIZE)
    modinfo, _ = _string(blob, pos)
    # The framing check debug/buildinfo makes: 16 sentinel bytes each side, text ending in a newline.
    modinfo = modinfo[16:-16] if len(modinfo) >= 33 and modinfo[-17] == "\n" else ""
    if not version:
        raise Skip("Go build info without a Go version")
    return BuildInfo(version, modinfo)


@dataclass
class _Module:
    path: str
    version: str


def _unquote(value: str) -> str:
    if value.startswith('"'):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


def parse_modinfo(modinfo: str) -> tuple[str | None, _Module | None, list[_Module], dict[str, str]]:
    """(main package path, main module, dependencies, build settings) from the module information text."""
    package_path: str | None = None
    main: _Module | None = None
    deps: list[_Module] = []
    settings: dict[str, str] = {}
    last: _Module | None = None
    for line in modinfo.splitlines():
        fields = line.split("\t")
        kind = fields[0]
        if kind == "path" and len(fields) >= 2:
            package_path = fields[1]
        elif kind == "mod" and len(fields) >= 3:
            main = last = _Module(fields[1], fields[2])
        elif kind == "dep" and len(fields) >= 3:
            last = _Module(fields[1], fields[2])
            deps.append(last)
        elif kind == "=>" and len(fields) >= 3 and last is not None:
            # A replacement by a local directory has no version: the original coordinates still name it.
            if fields[2]:
                last.path, last.version = fields[1], fields[2]
        elif kind == "build" and len(fields) >= 2:
            key, sep, value = "\t".join(fields[1:]).partition("=")
            if sep:
                settings[_unquote(key)] = _unquote(value)
    return package_path, main, deps, settings


def pseudo_version(settings: dict[str, str]) -> str | None:
    """The pseudo-version of a VCS-stamped ``(devel)`` build, or None without a usable stamp."""
    revision, stamp = settings.get("vcs.revision", ""), settings.get("vcs.time", "")
    if len(revision) < 12 or not re.fullmatch(r"[0-9a-fA-F]+", revision) or not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    suffix = "+dirty" if settings.get("vcs.modified") == "true" else ""
    return f"v0.0.0-{when.strftime('%Y%m%d%H%M%S')}-{revision[:12].lower()}{suffix}"


def stdlib_version(go_version: str) -> str | None:
    """``go1.22.3`` -> ``1.22.3``, ``go1.20`` -> ``1.20.0``, ``go1.21rc2`` -> ``1.21.0-rc.2``; None for devel builds."""
    m = re.fullmatch(
        r"go(\d+)\.(\d+)(?:\.(\d+))?(?:(rc|beta)(\d+))?", go_version.split()[0] if go_version else ""
    )
    if not m:
        return None
    major, minor, patch, pre, pre_n = m.groups()
    version = f"{major}.{minor}.{patch or 0}"
    return f"{version}-{pre}.{pre_n}" if pre else version


def _purl(path: str, version: str | None) -> PackageURL:
    namespace, _, name = path.rpartition("/")
    return PackageURL(type="golang", namespace=namespace or None, name=name, version=version or None)


class GoCataloger(Cataloger[BuildInfo]):
    name = "go"
    wants_executables = True

    @property
    def max_size(self) -> int:
        # Binaries are scanned as they stream by, never held: their size costs time, not memory.
        return self.limits.max_layer_bytes

    def wants(self, path: str) -> bool:
        return False

    def capture(self, path: str, stream: IO[bytes], size: int) -> BuildInfo | None:
        return read_buildinfo(stream)

    def catalog(self, files: Sequence[Found[BuildInfo]], context: CatalogContext) -> list[Package]:
        packages: list[Package] = []
        for found in files:
            packages.extend(self._binary(found))
        return packages

    def _binary(self, found: Found[BuildInfo]) -> list[Package]:
        info = found.content
        package_path, main, deps, settings = parse_modinfo(info.modinfo)
        toolchain = (("chaingate:go:toolchain", info.go_version),)
        packages: list[Package] = []
        for dep in deps:
            if dep.path:
                packages.append(
                    Package(
                        purl=_purl(dep.path, dep.version),
                        name=dep.path,
                        version=dep.version or None,
                        layer=found.layer,
                        path=found.path,
                    )
                )
        std = stdlib_version(info.go_version)
        if std:
            packages.append(
                Package(
                    purl=PackageURL(type="golang", name="stdlib", version=std),
                    name="stdlib",
                    version=std,
                    layer=found.layer,
                    path=found.path,
                    properties=toolchain,
                )
            )
        if main is not None and main.path:
            version: str | None = main.version
            if not version or version == "(devel)":
                version = pseudo_version(settings)
            properties = toolchain + ((("chaingate:go:package", package_path),) if package_path else ())
            packages.append(
                Package(
                    purl=_purl(main.path, version),
                    name=main.path,
                    version=version,
                    layer=found.layer,
                    path=found.path,
                    component_type="application",
                    depends_on=list(packages),
                    properties=properties,
                )
            )
        return packages
