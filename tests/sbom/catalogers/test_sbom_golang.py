"""Go: build info found in a streamed ELF binary.

There is no Go toolchain on the test machines, so the binaries are built here
byte by byte. What matters to the reader is laid out exactly as the Go linker
(cmd/link, ``Link.buildinfo``) writes its ``.go.buildinfo`` section since Go
1.18, and as ``debug/buildinfo`` reads it back: the section starts 16-byte
aligned with the 14-byte magic ``\\xff Go buildinf:``, the pointer size, the
flags (bit 1, ``flagsVersionInl``: strings inline), 16 padding bytes, then
the Go version and the module information, each prefixed by its length as a
uvarint, the module information framed by cmd/go's 16-byte
``infoStart``/``infoEnd`` sentinels and ending in a newline. The rest of the
file is filler around it: an ELF identification, and a misaligned copy of the
magic where a string constant might hold one.
"""

from __future__ import annotations

import io
from typing import Any

from chaingate.sbom.catalogers.base import CatalogContext, Found
from chaingate.sbom.catalogers.golang import (
    INFO_END,
    INFO_START,
    MAGIC,
    BuildInfo,
    GoCataloger,
    pseudo_version,
    read_buildinfo,
    stdlib_version,
)
from chaingate_testing.images import File

LAYER = "sha256:" + "66" * 32
MODINFO = (
    "path\texample.com/app/cmd/server\n"
    "mod\texample.com/app\t(devel)\t\n"
    "dep\tgithub.com/google/uuid\tv1.6.0\th1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n"
    "dep\tgolang.org/x/net\tv0.20.0\th1:aCL9BSgETF1k+blQaYUBx9hJ9LOGP3gAVemcZlf1Kpo=\n"
    "=>\tgolang.org/x/net\tv0.21.0\th1:AQyQV4dYCvJ7vGmJyKki9+PBdyvhkSd8EIx/qb0AYv4=\n"
    "dep\texample.com/local\tv0.0.0-00010101000000-000000000000\t\n"
    "=>\t../local\t\t\n"
    "build\t-buildmode=exe\n"
    "build\t-compiler=gc\n"
    'build\t-ldflags="-s -w"\n'
    "build\tCGO_ENABLED=0\n"
    "build\tGOARCH=amd64\n"
    "build\tGOOS=linux\n"
    "build\tvcs=git\n"
    "build\tvcs.revision=0123456789abcdef0123456789abcdef01234567\n"
    "build\tvcs.time=2024-03-05T10:11:12Z\n"
    "build\tvcs.modified=true\n"
)


def uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def buildinfo_section(go_version: str, modinfo: str, *, flags: int = 0x2) -> bytes:
    header = MAGIC + bytes([8, flags]) + bytes(16)
    framed = INFO_START + modinfo.encode() + INFO_END
    return header + uvarint(len(go_version)) + go_version.encode() + uvarint(len(framed)) + framed


def go_binary(
    modinfo: str = MODINFO, go_version: str = "go1.22.3", *, at: int = 4096, flags: int = 0x2
) -> bytes:
    """An ELF file with the build-info section at offset ``at`` (16-byte aligned, as the linker aligns it)."""
    assert at % 16 == 0
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)
    decoy = b"rodata: " + MAGIC + b" is just a string here"  # misaligned: must be skipped
    prefix = (ident + decoy).ljust(at, b"\x90")
    return prefix + buildinfo_section(go_version, modinfo, flags=flags) + b"\x00" * 512


def catalog(content: BuildInfo) -> dict[str, Any]:
    packages = GoCataloger().catalog(
        [Found("usr/local/bin/server", LAYER, content)], CatalogContext(None, [].append)
    )
    return {p.name: p for p in packages}


def test_reads_the_inline_format_across_chunk_boundaries() -> None:
    # Header in the first 1 MiB chunk, module information running into the second.
    info = read_buildinfo(io.BytesIO(go_binary(at=(1 << 20) - 32)))
    assert info is not None
    assert info.go_version == "go1.22.3"
    assert info.modinfo == MODINFO


def test_non_elf_and_non_go_files_are_ignored() -> None:
    assert read_buildinfo(io.BytesIO(b"#!/bin/sh\necho " + MAGIC)) is None
    assert read_buildinfo(io.BytesIO(b"\x7fELF" + bytes(100_000))) is None


def test_modules_replacements_and_the_devel_main_module() -> None:
    info = read_buildinfo(io.BytesIO(go_binary()))
    assert info is not None
    packages = catalog(info)
    main = packages["example.com/app"]
    assert main.component_type == "application"
    assert main.version == "v0.0.0-20240305101112-0123456789ab+dirty"
    assert main.purl.to_string() == "pkg:golang/example.com/app@v0.0.0-20240305101112-0123456789ab%2Bdirty"
    assert dict(main.properties) == {
        "chaingate:go:toolchain": "go1.22.3",
        "chaingate:go:package": "example.com/app/cmd/server",
    }
    assert packages["golang.org/x/net"].purl.to_string() == "pkg:golang/golang.org/x/net@v0.21.0"
    # A replacement by a local directory keeps the module's own coordinates.
    assert packages["example.com/local"].version == "v0.0.0-00010101000000-000000000000"
    assert packages["stdlib"].purl.to_string() == "pkg:golang/stdlib@1.22.3"
    assert sorted(p.name for p in main.depends_on or []) == [
        "example.com/local",
        "github.com/google/uuid",
        "golang.org/x/net",
        "stdlib",
    ]
    assert packages["github.com/google/uuid"].depends_on is None


def test_devel_without_vcs_stamp_has_no_version() -> None:
    packages = catalog(BuildInfo("go1.21.0", "path\tx.io/tool\nmod\tx.io/tool\t(devel)\t\n"))
    assert packages["x.io/tool"].version is None
    assert packages["x.io/tool"].purl.to_string() == "pkg:golang/x.io/tool"


def test_version_helpers() -> None:
    assert stdlib_version("go1.20") == "1.20.0"
    assert stdlib_version("go1.21rc2") == "1.21.0-rc.2"
    assert stdlib_version("go1.22.1 X:boringcrypto") == "1.22.1"
    assert stdlib_version("devel go1.23-abcdef") is None
    assert pseudo_version({"vcs.revision": "abc", "vcs.time": "2024-01-01T00:00:00Z"}) is None
    assert pseudo_version({"vcs.revision": "A" * 40, "vcs.time": "2024-01-01T00:00:00Z"}) == (
        "v0.0.0-20240101000000-aaaaaaaaaaaa"
    )


def test_end_to_end_and_the_pre_1_18_format(layer: Any, sbom: Any) -> None:
    doc = sbom(
        layer(
            File("usr/local/bin/server", go_binary(), mode=0o755),
            File("usr/local/bin/legacy", go_binary(flags=0x0), mode=0o755),
            File("usr/local/share/not-executable", go_binary(), mode=0o644),
        )
    )
    assert [c["name"] for c in doc["components"]] == [
        "example.com/app",
        "example.com/local",
        "github.com/google/uuid",
        "golang.org/x/net",
        "stdlib",
    ]
    main = doc["components"][0]
    assert main["type"] == "application"
    warnings = [p["value"] for p in doc["metadata"]["properties"] if p["name"] == "chaingate:warning"]
    assert len(warnings) == 1 and "usr/local/bin/legacy" in warnings[0] and "pre-1.18" in warnings[0]
    deps = {d["ref"]: d["dependsOn"] for d in doc["dependencies"]}
    assert len(deps[main["bom-ref"]]) == 4
