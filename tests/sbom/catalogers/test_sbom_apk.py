"""apk: the installed database, its provides/depends graph, and the alpine-<major.minor> distro."""

from __future__ import annotations

from typing import Any

from chaingate.sbom.catalogers.apk import ApkCataloger
from chaingate.sbom.catalogers.base import CatalogContext, Distro, Found
from chaingate_testing.images import File

LAYER = "sha256:" + "22" * 32

INSTALLED = b"""\
C:Q1SJBAxsuWPcGtvhvLZzWmFW1A/Lw=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
t:1705574185
c:8a3bb4ad
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
R:libc.musl-x86_64.so.1

P:busybox
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
o:busybox
D:so:libc.musl-x86_64.so.1
p:/bin/sh cmd:busybox=1.36.1-r15 cmd:sh=1.36.1-r15
F:bin
R:busybox
R:sh

P:ssl_client
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
o:busybox
D:so:libc.musl-x86_64.so.1 so:libssl.so.3 !busybox-static

P:alpine-baselayout
V:3.4.3-r2
A:x86_64
L:GPL-2.0-only
o:alpine-baselayout
D:alpine-baselayout-data=3.4.3-r2 /bin/sh

P:alpine-baselayout-data
V:3.4.3-r2
A:x86_64
L:GPL-2.0-only
o:alpine-baselayout
"""


ALPINE = Distro("alpine", "3.19.1")


def catalog(distro: Distro | None = ALPINE) -> dict[str, Any]:
    packages = ApkCataloger().catalog(
        [Found("lib/apk/db/installed", LAYER, INSTALLED)], CatalogContext(distro, [].append)
    )
    return {p.name: p for p in packages}


def test_packages_with_purl_and_license() -> None:
    packages = catalog()
    assert sorted(packages) == [
        "alpine-baselayout",
        "alpine-baselayout-data",
        "busybox",
        "musl",
        "ssl_client",
    ]
    assert packages["musl"].purl.to_string() == (
        "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19"
    )
    assert packages["musl"].licenses == ("MIT",)
    assert packages["ssl_client"].purl.qualifiers["upstream"] == "busybox"
    assert "upstream" not in packages["busybox"].purl.qualifiers


def test_dependencies_through_provides_files_and_versions() -> None:
    packages = catalog()

    def deps(name: str) -> list[str]:
        return sorted(p.name for p in packages[name].depends_on)

    assert deps("busybox") == ["musl"]
    assert deps("ssl_client") == ["musl"]  # libssl is not installed; !busybox-static is a conflict
    assert deps("alpine-baselayout") == ["alpine-baselayout-data", "busybox"]  # /bin/sh is a busybox file
    assert deps("musl") == []


def test_wolfi_keeps_its_whole_version_id() -> None:
    packages = catalog(Distro("wolfi", "20230201"))
    assert packages["musl"].purl.namespace == "wolfi"
    assert packages["musl"].purl.qualifiers["distro"] == "wolfi-20230201"


def test_end_to_end(layer: Any, sbom: Any) -> None:
    doc = sbom(
        layer(
            File("etc/os-release", b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n'),
            File("lib/apk/db/installed", INSTALLED),
        )
    )
    busybox = next(c for c in doc["components"] if c["name"] == "busybox")
    assert busybox["licenses"] == [{"license": {"id": "GPL-2.0-only"}}]
    deps = {d["ref"]: d["dependsOn"] for d in doc["dependencies"]}
    assert deps[busybox["bom-ref"]] == [
        "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19"
    ]
