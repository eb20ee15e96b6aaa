"""dpkg: the status database, distroless status.d, removed packages, Source and Depends."""

from __future__ import annotations

from typing import Any

from chaingate.sbom.catalogers.base import CatalogContext, Distro, Found
from chaingate.sbom.catalogers.dpkg import DpkgCataloger, copyright_licenses, debian_license
from chaingate_testing.images import Dir, File

LAYER = "sha256:" + "11" * 32
DEBIAN = Distro("debian", "12", "bookworm")

STATUS = b"""\
Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14
Provides: libgcc1 (= 1:12.2.0-14)
Depends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)

Package: gcc-12-base
Status: install ok installed
Architecture: amd64
Source: gcc-12
Version: 12.2.0-14

Package: passwd
Status: install ok installed
Architecture: amd64
Source: shadow (1:4.13+dfsg1-1)
Version: 1:4.13+dfsg1-1+b1
Pre-Depends: libc6:amd64 (>= 2.34)
Depends: libgcc1 | libgcc-s1, not-installed-anywhere

Package: purged-tool
Status: purge ok not-installed
Architecture: amd64
Version: 1.0

Package: removed-tool
Status: deinstall ok config-files
Architecture: amd64
Version: 2.0

Package: going-away
Status: deinstall ok installed
Architecture: amd64
Version: 3.0

Package: half-done
Status: install reinstreq half-installed
Architecture: amd64
Version: 4.0
"""


def catalog(
    *files: Found[bytes], distro: Distro | None = DEBIAN, notes: list[str] | None = None
) -> dict[str, Any]:
    packages = DpkgCataloger().catalog(
        list(files), CatalogContext(distro, (notes if notes is not None else []).append)
    )
    return {p.name: p for p in packages}


def test_installed_packages_with_purl_qualifiers() -> None:
    packages = catalog(Found("var/lib/dpkg/status", LAYER, STATUS))
    assert sorted(packages) == ["gcc-12-base", "half-done", "libc6", "libgcc-s1", "passwd"]
    assert packages["libc6"].purl.to_string() == (
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc"
    )
    # The source version is kept when the binary was rebuilt from it under another version.
    assert packages["passwd"].purl.qualifiers["upstream"] == "shadow@1:4.13+dfsg1-1"
    assert packages["gcc-12-base"].purl.qualifiers["upstream"] == "gcc-12"
    assert packages["passwd"].version == "1:4.13+dfsg1-1+b1"
    assert packages["libc6"].layer == LAYER and packages["libc6"].path == "var/lib/dpkg/status"


def test_removed_and_purged_packages_are_not_reported() -> None:
    packages = catalog(Found("var/lib/dpkg/status", LAYER, STATUS))
    assert not {"purged-tool", "removed-tool", "going-away"} & set(packages)


def test_depends_and_provides_link_installed_packages() -> None:
    packages = catalog(Found("var/lib/dpkg/status", LAYER, STATUS))

    def deps(name: str) -> list[str]:
        return sorted(p.name for p in packages[name].depends_on)

    assert deps("libc6") == ["libgcc-s1"]
    assert deps("libgcc-s1") == ["gcc-12-base", "libc6"]
    # Pre-Depends with an arch qualifier, an alternative satisfied through Provides, a missing one ignored.
    assert deps("passwd") == ["libc6", "libgcc-s1"]
    assert deps("gcc-12-base") == []


def test_distroless_status_d_one_file_per_package() -> None:
    cataloger = DpkgCataloger()
    assert cataloger.wants("var/lib/dpkg/status.d/libssl3")
    assert cataloger.wants("var/lib/dpkg/status.d/python3.11-minimal")
    assert not cataloger.wants("var/lib/dpkg/status.d/libssl3.md5sums")
    assert not cataloger.wants("var/lib/dpkg/status-old")
    files = [
        Found(
            "var/lib/dpkg/status.d/base",
            LAYER,
            b"Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n",
        ),
        Found(
            "var/lib/dpkg/status.d/libssl3",
            LAYER,
            b"Package: libssl3\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\nSource: openssl\n",
        ),
    ]
    packages = catalog(*files)
    assert packages["libssl3"].purl.to_string() == (
        "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
    )
    assert packages["base-files"].path == "var/lib/dpkg/status.d/base"


def test_namespace_follows_the_distribution() -> None:
    record = b"Package: bash\nStatus: install ok installed\nVersion: 5.2.21-2ubuntu4\nArchitecture: amd64\n"
    ubuntu = catalog(Found("var/lib/dpkg/status", LAYER, record), distro=Distro("ubuntu", "24.04", "noble"))
    assert (
        ubuntu["bash"].purl.to_string()
        == "pkg:deb/ubuntu/bash@5.2.21-2ubuntu4?arch=amd64&distro=ubuntu-24.04"
    )
    unknown = catalog(Found("var/lib/dpkg/status", LAYER, record), distro=None)
    assert unknown["bash"].purl.to_string() == "pkg:deb/debian/bash@5.2.21-2ubuntu4?arch=amd64"
    sid = catalog(Found("var/lib/dpkg/status", LAYER, record), distro=Distro("debian", None, "trixie"))
    assert sid["bash"].purl.qualifiers["distro"] == "debian-trixie"


def test_records_without_a_version_are_warned_about() -> None:
    notes: list[str] = []
    packages = catalog(
        Found("var/lib/dpkg/status", LAYER, b"Package: broken\nStatus: install ok installed\n"), notes=notes
    )
    assert packages == {}
    assert notes == ["var/lib/dpkg/status: dpkg record 'broken' has no Version; skipped"]


def test_end_to_end_status_d_and_os_release(layer: Any, sbom: Any) -> None:
    doc = sbom(
        layer(
            File("etc/os-release", b'PRETTY_NAME="Distroless"\nID=debian\nVERSION_ID="12"\n'),
            Dir("var/lib/dpkg/status.d"),
            File(
                "var/lib/dpkg/status.d/tzdata",
                b"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n",
            ),
            File("var/lib/dpkg/status.d/tzdata.md5sums", b"d41d8cd98f00b204e9800998ecf8427e  usr/share/x\n"),
        )
    )
    assert [c["purl"] for c in doc["components"] if c["type"] == "library"] == [
        "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12"
    ]
    assert doc["components"][0]["description"] == "Distroless"


DEP5 = b"""\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: GNU C Library

Files: *
Copyright: 1991-2023 Free Software Foundation, Inc.
License: LGPL-2.1+

Files: debian/*
License: GPL-2+ or Artistic

License: LGPL-2.1+
 This library is free software; you can redistribute it ...
"""


def test_licenses_from_copyright_files() -> None:
    assert debian_license("GPL-2") == "GPL-2.0-only"
    assert debian_license("LGPL-2.1+") == "LGPL-2.1-or-later"
    assert debian_license("BSD-3-clause") == "BSD-3-Clause"
    assert debian_license("Expat") == "MIT"
    assert debian_license("public-domain") == "public-domain"
    assert copyright_licenses("see /usr/share/common-licenses/GPL-3 for the text") == ("GPL-3.0-only",)
    assert DpkgCataloger().wants("usr/share/doc/libc6/copyright")
    assert not DpkgCataloger().wants("usr/share/doc/libc6/examples/copyright")
    packages = catalog(
        Found("var/lib/dpkg/status", LAYER, STATUS),
        Found("usr/share/doc/libc6/copyright", LAYER, DEP5),
    )
    assert packages["libc6"].licenses == ("Artistic-1.0-Perl", "GPL-2.0-or-later", "LGPL-2.1-or-later")
    assert packages["gcc-12-base"].licenses == ()
