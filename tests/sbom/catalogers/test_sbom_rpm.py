"""rpm: header blobs in SQLite, Berkeley DB and ndb rpmdbs, built here the way rpm writes them."""

from __future__ import annotations

import shutil
import sqlite3
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from chaingate.sbom.catalogers import rpm
from chaingate.sbom.catalogers.base import CatalogContext, Distro, Found
from chaingate.sbom.catalogers.rpm import HeaderError, RpmCataloger, parse_header
from chaingate_testing.images import File, Symlink

LAYER = "sha256:" + "33" * 32
RHEL = Distro("rhel", "9.3")


def header(tags: dict[int, tuple[int, Any]]) -> bytes:
    """An rpm header blob (headerExport layout): counts, 16-byte index entries, then the data store."""
    index, data = [], bytearray()
    for tag, (kind, value) in sorted(tags.items()):
        if kind == rpm.TYPE_INT32:
            data.extend(bytes(-len(data) % 4))
            offset, count = len(data), len(value)
            data.extend(struct.pack(f">{count}i", *value))
        elif kind == rpm.TYPE_STRING:
            offset, count = len(data), 1
            data.extend(value.encode() + b"\0")
        else:
            offset, count = len(data), len(value)
            for item in value:
                data.extend(item.encode() + b"\0")
        index.append(struct.pack(">iIiI", tag, kind, offset, count))
    return struct.pack(">II", len(index), len(data)) + b"".join(index) + bytes(data)


def package(
    name: str,
    version: str,
    release: str,
    *,
    epoch: int | None = None,
    license: str = "MIT",
    provides: tuple[str, ...] = (),
    requires: tuple[str, ...] = (),
    files: tuple[str, ...] = (),
) -> bytes:
    tags: dict[int, tuple[int, Any]] = {
        rpm.TAG_NAME: (rpm.TYPE_STRING, name),
        rpm.TAG_VERSION: (rpm.TYPE_STRING, version),
        rpm.TAG_RELEASE: (rpm.TYPE_STRING, release),
        rpm.TAG_ARCH: (rpm.TYPE_STRING, "x86_64"),
        rpm.TAG_LICENSE: (rpm.TYPE_STRING, license),
        rpm.TAG_SOURCERPM: (rpm.TYPE_STRING, f"{name}-{version}-{release}.src.rpm"),
        rpm.TAG_PROVIDENAME: (rpm.TYPE_STRING_ARRAY, [name, *provides]),
        rpm.TAG_REQUIRENAME: (rpm.TYPE_STRING_ARRAY, ["rpmlib(CompressedFileNames)", *requires]),
    }
    if epoch is not None:
        tags[rpm.TAG_EPOCH] = (rpm.TYPE_INT32, [epoch])
    if files:
        dirs = sorted({f.rsplit("/", 1)[0] + "/" for f in files})
        tags[rpm.TAG_DIRNAMES] = (rpm.TYPE_STRING_ARRAY, dirs)
        tags[rpm.TAG_BASENAMES] = (rpm.TYPE_STRING_ARRAY, [f.rsplit("/", 1)[1] for f in files])
        tags[rpm.TAG_DIRINDEXES] = (rpm.TYPE_INT32, [dirs.index(f.rsplit("/", 1)[0] + "/") for f in files])
    return header(tags)


BLOBS = [
    package("glibc", "2.34", "83.el9_3.7", license="LGPL-2.1-or-later", provides=("libc.so.6()(64bit)",)),
    package(
        "bash",
        "5.1.8",
        "6.el9_1",
        license="GPLv3+",
        requires=("libc.so.6()(64bit)",),
        files=("/usr/bin/bash", "/bin/sh"),
    ),
    package("openssl-libs", "3.0.7", "25.el9_3", epoch=1, license="ASL 2.0", requires=("/bin/sh", "glibc")),
    package("gpg-pubkey", "fd431d51", "4ae0493b", license="pubkey"),
]


def rpmdb(tmp_path: Path, blobs: list[bytes] = BLOBS, *, wal: bool = False) -> bytes:
    path = tmp_path / "rpmdb.sqlite"
    db = sqlite3.connect(path)
    if wal:
        db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    db.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
    db.commit()
    db.close()
    return path.read_bytes()


def berkeley_db(blobs: list[bytes], page_size: int = 4096) -> bytes:
    """A little-endian Berkeley DB hash file as rpm 4.14 leaves it (layout of db_page.h).

    Page 0 is the hash metadata page; page 1 a hash page whose items alternate
    an inline key (the header number) and an off-page value pointing at a chain
    of overflow pages holding the header blob. On an overflow page the
    free-area-offset field holds the bytes used on that page.
    """
    header_size = 26

    def page_header(
        number: int, kind: int, entries: int = 0, next_page: int = 0, hf_offset: int = 0
    ) -> bytes:
        return bytes(8) + struct.pack("<IIIHHBB", number, 0, next_page, entries, hf_offset, 0, kind)

    pages: list[bytes] = [b""]  # the metadata page, written last
    items: list[bytes] = []
    next_free = 2
    for number, blob in enumerate(blobs, start=1):
        chunk = page_size - header_size
        chunks = [blob[i : i + chunk] for i in range(0, len(blob), chunk)]
        first = next_free
        for i, part in enumerate(chunks):
            nxt = next_free + 1 if i + 1 < len(chunks) else 0
            overflow = (
                page_header(next_free, rpm.BDB_PAGE_OVERFLOW, next_page=nxt, hf_offset=len(part)) + part
            )
            pages.append(overflow.ljust(page_size, b"\0"))
            next_free += 1
        items.append(bytes([1]) + struct.pack("<I", number))  # H_KEYDATA key
        items.append(bytes([rpm.BDB_ITEM_OFFPAGE]) + bytes(3) + struct.pack("<II", first, len(blob)))
    hash_page = bytearray(page_size)
    offsets, end = [], page_size
    for item in items:
        end -= len(item)
        hash_page[end : end + len(item)] = item
        offsets.append(end)
    hash_page[:header_size] = page_header(1, rpm.BDB_PAGE_HASH, entries=len(items), hf_offset=end)
    hash_page[header_size : header_size + 2 * len(offsets)] = struct.pack(f"<{len(offsets)}H", *offsets)
    pages.insert(1, bytes(hash_page))
    meta = bytearray(page_size)
    meta[8:36] = struct.pack(
        "<IIIIBBBBII", 0, rpm.BDB_HASH_MAGIC, 9, page_size, 0, rpm.BDB_PAGE_HASHMETA, 0, 0, 0, len(pages) - 1
    )
    pages[0] = bytes(meta)
    return b"".join(pages)


def ndb(blobs: list[bytes], *, slot_pages: int = 1, first_slot: int = 0) -> bytes:
    """An ndb ``Packages.db`` laid out as rpm's rpmpkg.c writes one (all little-endian).

    A 32-byte header (magic, version, generation, slot pages, next package
    index), then 16-byte slots ("Slot", package index, block offset, block
    count; free slots have offset 0), then each blob in 16-byte blocks: a head
    ("BlbS", index, timestamp, length), the header blob, zero padding, and a
    tail (Adler-32 of head, blob and padding, length, "BlbE"). ``first_slot``
    leaves that many free slots first, so a package can land on a later page.
    """
    area = bytearray(slot_pages * 4096)
    area[0:20] = struct.pack("<4sIIII", b"RpmP", 0, 7, slot_pages, len(blobs) + 1)
    for offset in range(32, len(area), 16):
        area[offset : offset + 4] = b"Slot"
    data = bytearray()
    for number, blob in enumerate(blobs):
        index, block = number + 1, (len(area) + len(data)) // 16
        count = -(-(16 + len(blob) + 12) // 16)
        body = struct.pack("<4sIII", b"BlbS", index, 1700000000, len(blob)) + blob
        body += bytes(count * 16 - 12 - len(body))
        data += body + struct.pack("<II4s", zlib.adler32(body), len(blob), b"BlbE")
        slot = 32 + 16 * (first_slot + number)
        area[slot : slot + 16] = struct.pack("<4sIII", b"Slot", index, block, count)
    return bytes(area + data)


SUSE_NDB = "usr/lib/sysimage/rpm/Packages.db"


def test_ndb_packages_file() -> None:
    big = package("kernel-default", "6.4.0", "150600.23.7.3", provides=("x" * 70_000,))
    packages = catalog(ndb([*BLOBS, big], slot_pages=2, first_slot=300), path=SUSE_NDB)
    assert sorted(packages) == ["bash", "glibc", "kernel-default", "openssl-libs"]
    assert [p.name for p in packages["bash"].depends_on] == ["glibc"]
    assert packages["kernel-default"].path == SUSE_NDB


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.__setitem__(slice(0, 4), b"RpmX"), "not an rpm ndb database"),
        (lambda d: d.__setitem__(slice(4, 8), struct.pack("<I", 1)), "ndb version 1"),
        (lambda d: d.__setitem__(slice(12, 16), struct.pack("<I", 9999)), "claims 9999 slot pages"),
        (lambda d: d.__setitem__(slice(32, 36), b"Slap"), "bad magic"),
        (lambda d: d.__setitem__(slice(40, 44), struct.pack("<I", 10**6)), "outside the data area"),
        (lambda d: d.__setitem__(slice(40, 44), struct.pack("<I", 3)), "outside the data area"),
        (lambda d: d.__setitem__(slice(4096 + 40, 4096 + 41), b"\xff"), "checksum mismatch"),
        (lambda d: d.__setitem__(slice(4096 + 4, 4096 + 8), struct.pack("<I", 5)), "bad head"),
        (lambda d: d.__setitem__(slice(56, 60), struct.pack("<I", 256)), "overlap"),
        (lambda d: d.extend(b"x"), "not a multiple of its block size"),
    ],
)
def test_ndb_structure_is_checked(damage: Any, message: str) -> None:
    data = bytearray(ndb(BLOBS[:2]))
    damage(data)
    notes: list[str] = []
    assert catalog(bytes(data), notes, path=SUSE_NDB) == {}
    assert message in notes[0]


def test_the_current_database_wins_over_a_stale_one(tmp_path: Path) -> None:
    stale = berkeley_db([package("old", "1", "1")])
    files = [
        Found("var/lib/rpm/Packages", LAYER, stale),
        Found(SUSE_NDB, LAYER, ndb(BLOBS[:1])),
    ]
    packages = RpmCataloger().catalog(files, CatalogContext(RHEL, [].append))
    assert [p.name for p in packages] == ["glibc"]


def catalog(
    data: bytes, notes: list[str] | None = None, path: str = "var/lib/rpm/rpmdb.sqlite"
) -> dict[str, Any]:
    packages = RpmCataloger().catalog(
        [Found(path, LAYER, data)],
        CatalogContext(RHEL, (notes if notes is not None else []).append),
    )
    return {p.name: p for p in packages}


def test_packages_from_header_blobs(tmp_path: Path) -> None:
    packages = catalog(rpmdb(tmp_path))
    assert sorted(packages) == ["bash", "glibc", "openssl-libs"]  # gpg-pubkey is a key, not software
    assert packages["openssl-libs"].purl.to_string() == (
        "pkg:rpm/rhel/openssl-libs@3.0.7-25.el9_3?arch=x86_64&distro=rhel-9.3&epoch=1"
        "&upstream=openssl-libs-3.0.7-25.el9_3.src.rpm"
    )
    assert packages["openssl-libs"].version == "1:3.0.7-25.el9_3"
    assert packages["openssl-libs"].licenses == ("Apache-2.0",)
    assert packages["bash"].licenses == ("GPL-3.0-or-later",)
    assert packages["glibc"].licenses == ("LGPL-2.1-or-later",)


def test_requires_resolve_through_provides_and_files(tmp_path: Path) -> None:
    packages = catalog(rpmdb(tmp_path))
    assert [p.name for p in packages["bash"].depends_on] == ["glibc"]
    assert sorted(p.name for p in packages["openssl-libs"].depends_on) == ["bash", "glibc"]
    assert packages["glibc"].depends_on == []


def test_berkeley_db_packages_file() -> None:
    big = package("kernel-headers", "4.18.0", "513.el8", provides=("x" * 9000,))  # spans three overflow pages
    data = berkeley_db([*BLOBS, big])
    packages = catalog(data, path="var/lib/rpm/Packages")
    assert sorted(packages) == ["bash", "glibc", "kernel-headers", "openssl-libs"]
    assert [p.name for p in packages["bash"].depends_on] == ["glibc"]


def test_berkeley_db_structure_is_checked() -> None:
    notes: list[str] = []
    data = bytearray(berkeley_db(BLOBS[:1]))
    data[2 * 4096 + 16 : 2 * 4096 + 20] = struct.pack("<I", 2)  # an overflow page pointing at itself
    data[2 * 4096 + 22 : 2 * 4096 + 24] = struct.pack("<H", 1)
    assert catalog(bytes(data), notes, path="var/lib/rpm/Packages") == {}
    assert "broken overflow chain" in notes[0]
    notes.clear()
    assert catalog(b"\0" * 4096, notes, path="var/lib/rpm/Packages") == {}
    assert "not a Berkeley DB hash database" in notes[0]


def test_a_database_left_in_wal_mode_is_read(tmp_path: Path) -> None:
    data = rpmdb(tmp_path, wal=True)
    assert data[18] == 2
    assert sorted(catalog(data)) == ["bash", "glibc", "openssl-libs"]


def test_malformed_headers_are_warned_about_not_fatal(tmp_path: Path) -> None:
    notes: list[str] = []
    truncated = BLOBS[0][:-10]
    lying = struct.pack(">II", 1, 4) + struct.pack(">iIiI", rpm.TAG_NAME, rpm.TYPE_STRING, 400, 1) + b"abc\0"
    packages = catalog(rpmdb(tmp_path, [truncated, lying, BLOBS[1]]), notes)
    assert sorted(packages) == ["bash"]
    assert len(notes) == 2 and "header 1" in notes[0] and "header 2" in notes[1]


def test_header_bounds_are_checked() -> None:
    with pytest.raises(HeaderError):
        parse_header(struct.pack(">II", 0x10000, 0))
    with pytest.raises(HeaderError):
        parse_header(
            struct.pack(">II", 1, 4) + struct.pack(">iIiI", rpm.TAG_NAME, rpm.TYPE_STRING, 0, 1) + b"abcd"
        )


def test_anything_but_a_packages_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (blob BLOB)")
    db.execute("CREATE VIEW Packages AS SELECT 1 AS hnum, blob FROM t")
    db.commit()
    db.close()
    notes: list[str] = []
    assert catalog(path.read_bytes(), notes) == {}
    assert notes == ["var/lib/rpm/rpmdb.sqlite: no Packages table; skipped"]
    notes.clear()
    assert catalog(b"not a database", notes) == {}
    assert "not an SQLite 3 database" in notes[0]


def test_end_to_end_through_the_fedora_symlink(tmp_path: Path, layer: Any, sbom: Any) -> None:
    doc = sbom(
        layer(
            File("etc/os-release", b'ID="rhel"\nVERSION_ID="9.3"\n'),
            File("usr/lib/sysimage/rpm/rpmdb.sqlite", rpmdb(tmp_path)),
            Symlink("var/lib/rpm", "../../usr/lib/sysimage/rpm"),
        )
    )
    rpms = [c for c in doc["components"] if c["type"] == "library"]
    assert sorted(c["name"] for c in rpms) == ["bash", "glibc", "openssl-libs"]
    paths = {p["value"] for c in rpms for p in c["properties"] if p["name"] == "chaingate:path"}
    assert paths == {"usr/lib/sysimage/rpm/rpmdb.sqlite"}  # found once, at its real path


SPEC = """\
Name: {name}
Version: 1.2.3
Release: 4
Epoch: 2
Summary: chaingate test package
License: {license}
BuildArch: noarch
{relations}
%description
A package rpmbuild makes, so the catalog reads what rpm itself writes.
%install
mkdir -p %{{buildroot}}/usr/share/{name}
echo hi > %{{buildroot}}/usr/share/{name}/hi.txt
%files
/usr/share/{name}/hi.txt
"""


@pytest.mark.skipif(
    shutil.which("rpmbuild") is None or shutil.which("rpm") is None,
    reason="rpm is installed by scripts/test.sh; only a bare pytest run lacks it",
)
def test_a_database_written_by_rpm_itself(tmp_path: Path) -> None:
    """Packages built by rpmbuild and recorded by rpm (Debian's rpm 4.18, SQLite backend)."""
    specs = {
        "hello-lib": ("MIT", "Provides: libhello.so.1()(64bit)"),
        "hello": ("GPLv2+ and MIT", "Requires: libhello.so.1()(64bit)\nRequires: /bin/sh"),
    }
    for name, (license_text, relations) in specs.items():
        spec = tmp_path / f"{name}.spec"
        spec.write_text(SPEC.format(name=name, license=license_text, relations=relations))
        subprocess.run(
            ["rpmbuild", "-bb", "--define", f"_topdir {tmp_path / 'top'}", str(spec)],
            check=True,
            capture_output=True,
            timeout=120,
        )
    built = sorted(str(p) for p in (tmp_path / "top" / "RPMS" / "noarch").glob("*.rpm"))
    root = tmp_path / "root"
    subprocess.run(
        [
            *("rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "-i"),
            *("--justdb", "--nodeps", "--noscripts", "--nosignature", *built),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = (root / "var/lib/rpm/rpmdb.sqlite").read_bytes()
    packages = catalog(data)
    assert sorted(packages) == ["hello", "hello-lib"]
    assert packages["hello"].purl.to_string() == (
        "pkg:rpm/rhel/hello@1.2.3-4?arch=noarch&distro=rhel-9.3&epoch=2&upstream=hello-1.2.3-4.src.rpm"
    )
    assert packages["hello"].version == "2:1.2.3-4"
    assert packages["hello"].licenses == ("GPL-2.0-or-later AND MIT",)
    assert [p.name for p in packages["hello"].depends_on] == ["hello-lib"]
    # ndb cannot be written here (Debian builds rpm without it): the same real header blobs in its framing.
    in_ndb = catalog(ndb(rpm.read_sqlite_rpmdb(data)), path=SUSE_NDB)
    assert {n: p.purl for n, p in in_ndb.items()} == {n: p.purl for n, p in packages.items()}
