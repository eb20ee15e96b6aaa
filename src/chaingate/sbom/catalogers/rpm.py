"""RPM packages from the rpm database: SQLite (RPM >= 4.16) or Berkeley DB (RHEL/UBI 8, Amazon Linux 2).

The SQLite database (Fedora 33+, RHEL/UBI 9, Amazon Linux 2023) is opened with
the standard library's sqlite3 entirely in memory (``Connection.deserialize``:
no temporary copy on disk), read-only, with untrusted-schema protections on
and a step budget, and only the ``Packages`` table is read. A database left in
WAL mode is read as of its last checkpoint (rpm checkpoints when it closes
the database, so that is the installed state).

The Berkeley DB ``Packages`` file (a hash database) is walked page by page
here, as go-rpmdb and syft do: every hash page's values that live on overflow
pages are header blobs, reassembled from their page chains with every page
number, length and chain bounds-checked.

SUSE's ``Packages.db`` (rpm's own "ndb" format, SLES 15 SP3+ and openSUSE) is
read as rpm's ``rpmpkg.c`` reads it: a slot table of (package index, block
offset, block count) after a 32-byte header, each slot pointing at a blob
framed by a head (magic, index, timestamp, length) and a tail (Adler-32 of
head, blob and padding, length, magic); every field is checked as rpm does.

Each header blob is parsed here (index entries, then a data store, all offsets
bounds-checked): name, version, release, epoch, arch, license, source rpm, and
requires/provides/file lists to link dependencies the way rpm resolves them.
"""

from __future__ import annotations

import itertools
import sqlite3
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from chaingate.sbom import licenses
from chaingate.sbom.catalogers.base import BytesCataloger, CatalogContext, Found, Package, distro_package

SQLITE_PATHS = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
BDB_PATHS = ("var/lib/rpm/Packages", "usr/lib/sysimage/rpm/Packages")
NDB_PATHS = ("var/lib/rpm/Packages.db", "usr/lib/sysimage/rpm/Packages.db")

TAG_NAME = 1000
TAG_VERSION = 1001
TAG_RELEASE = 1002
TAG_EPOCH = 1003
TAG_LICENSE = 1014
TAG_ARCH = 1022
TAG_SOURCERPM = 1044
TAG_PROVIDENAME = 1047
TAG_REQUIRENAME = 1049
TAG_DIRINDEXES = 1116
TAG_BASENAMES = 1117
TAG_DIRNAMES = 1118

TYPE_INT32 = 4
TYPE_STRING = 6
TYPE_STRING_ARRAY = 8
TYPE_I18NSTRING = 9

_MAX_INDEX = 0xFFFF
_MAX_DATA = 256 * 1024 * 1024
#: Progress-handler calls (one per 1000 SQLite VM instructions) allowed for the whole read: a real
#: rpmdb needs a few thousand; a crafted schema or corrupt b-tree loop is stopped at two billion instructions.
_MAX_SQLITE_CALLS = 2_000_000
_WANTED_TAGS = frozenset(
    {
        TAG_NAME,
        TAG_VERSION,
        TAG_RELEASE,
        TAG_EPOCH,
        TAG_LICENSE,
        TAG_ARCH,
        TAG_SOURCERPM,
        TAG_PROVIDENAME,
        TAG_REQUIRENAME,
        TAG_DIRINDEXES,
        TAG_BASENAMES,
        TAG_DIRNAMES,
    }
)


class HeaderError(ValueError):
    """A header blob whose structure does not hold together."""


@dataclass
class RpmHeader:
    name: str = ""
    version: str = ""
    release: str = ""
    epoch: int | None = None
    arch: str = ""
    license: str = ""
    source_rpm: str = ""
    provides: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _strings(data: bytes, offset: int, count: int) -> list[str]:
    out: list[str] = []
    pos = offset
    for _ in range(count):
        end = data.find(b"\x00", pos)
        if end < 0:
            raise HeaderError("unterminated string")
        out.append(data[pos:end].decode("utf-8", errors="replace"))
        pos = end + 1
    return out


def parse_header(blob: bytes) -> RpmHeader:
    """An rpmdb header blob: big-endian index count and data length, 16-byte index entries, data store."""
    if len(blob) < 8:
        raise HeaderError("header shorter than its preamble")
    index_count, data_length = struct.unpack(">II", blob[:8])
    if index_count > _MAX_INDEX or data_length > _MAX_DATA:
        raise HeaderError(f"header declares {index_count} entries and {data_length} data bytes")
    data_start = 8 + 16 * index_count
    if len(blob) < data_start + data_length:
        raise HeaderError("header shorter than it declares")
    data = blob[data_start : data_start + data_length]
    header = RpmHeader()
    strings: dict[int, list[str]] = {}
    ints: dict[int, list[int]] = {}
    for i in range(index_count):
        tag, kind, offset, count = struct.unpack(">iIiI", blob[8 + 16 * i : 24 + 16 * i])
        if tag not in _WANTED_TAGS:
            continue
        if offset < 0 or offset >= data_length or count > data_length:
            raise HeaderError(f"tag {tag} points outside the data store")
        if kind in (TYPE_STRING, TYPE_I18NSTRING):
            strings[tag] = _strings(data, offset, 1)
        elif kind == TYPE_STRING_ARRAY:
            strings[tag] = _strings(data, offset, count)
        elif kind == TYPE_INT32:
            if offset + 4 * count > data_length:
                raise HeaderError(f"tag {tag} runs past the data store")
            ints[tag] = list(struct.unpack(f">{count}i", data[offset : offset + 4 * count]))

    def one(tag: int) -> str:
        values = strings.get(tag)
        return values[0] if values else ""

    header.name, header.version, header.release = one(TAG_NAME), one(TAG_VERSION), one(TAG_RELEASE)
    header.arch, header.license, header.source_rpm = one(TAG_ARCH), one(TAG_LICENSE), one(TAG_SOURCERPM)
    epoch = ints.get(TAG_EPOCH)
    header.epoch = epoch[0] if epoch else None
    header.provides = strings.get(TAG_PROVIDENAME, [])
    header.requires = strings.get(TAG_REQUIRENAME, [])
    dirnames, basenames = strings.get(TAG_DIRNAMES, []), strings.get(TAG_BASENAMES, [])
    for base, index in zip(basenames, ints.get(TAG_DIRINDEXES, []), strict=False):
        if 0 <= index < len(dirnames):
            header.files.append(dirnames[index] + base)
    return header


def read_sqlite_rpmdb(data: bytes) -> list[bytes]:
    """Header blobs of an rpmdb.sqlite, read from memory and refusing anything but a plain Packages table."""
    if len(data) < 100 or not data.startswith(b"SQLite format 3\x00"):
        raise HeaderError("not an SQLite 3 database")
    image = bytearray(data)
    if image[18] == 2 or image[19] == 2:
        image[18] = image[19] = 1  # WAL -> rollback journal: an in-memory database cannot have a WAL
    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(bytes(image))
        connection.execute("PRAGMA trusted_schema = OFF")
        connection.execute("PRAGMA query_only = ON")
        steps = [0]

        def budget() -> int:
            steps[0] += 1
            return 1 if steps[0] > _MAX_SQLITE_CALLS else 0

        connection.set_progress_handler(budget, 1000)
        kind = connection.execute("SELECT type FROM sqlite_master WHERE name = 'Packages'").fetchone()
        if not kind or kind[0] != "table":
            raise HeaderError("no Packages table")
        return [
            bytes(row[0]) for row in connection.execute("SELECT blob FROM Packages ORDER BY hnum") if row[0]
        ]
    except sqlite3.Error as e:
        raise HeaderError(f"unreadable database ({e})") from None
    finally:
        connection.close()


#: Berkeley DB constants (db_page.h): hash metadata magic, page types, hash item types.
BDB_HASH_MAGIC = 0x061561
BDB_PAGE_HASHMETA = 8
BDB_PAGE_HASH = 13
BDB_PAGE_HASH_UNSORTED = 2
BDB_PAGE_OVERFLOW = 7
BDB_ITEM_OFFPAGE = 3
BDB_PAGE_HEADER = 26


def read_bdb_rpmdb(data: bytes) -> list[bytes]:
    """Header blobs of a Berkeley DB hash ``Packages`` file: every value stored on overflow pages."""
    if len(data) < 512:
        raise HeaderError("not a Berkeley DB file")
    for order in ("<", ">"):
        magic, _, page_size = struct.unpack(f"{order}III", data[12:24])
        if magic == BDB_HASH_MAGIC:
            break
    else:
        raise HeaderError("not a Berkeley DB hash database")
    if data[24] != 0:
        raise HeaderError("encrypted Berkeley DB database")
    if data[25] != BDB_PAGE_HASHMETA or page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        raise HeaderError("malformed Berkeley DB metadata page")
    (last_page,) = struct.unpack(f"{order}I", data[32:36])
    pages = min(last_page + 1, len(data) // page_size)

    blobs: list[bytes] = []
    assembled = 0
    for number in range(1, pages):
        raw = data[number * page_size : (number + 1) * page_size]
        if raw[25] not in (BDB_PAGE_HASH, BDB_PAGE_HASH_UNSORTED):
            continue
        (entries,) = struct.unpack(f"{order}H", raw[20:22])
        if BDB_PAGE_HEADER + 2 * entries > page_size:
            raise HeaderError(f"page {number}: more entries than fit")
        offsets = struct.unpack(f"{order}{entries}H", raw[BDB_PAGE_HEADER : BDB_PAGE_HEADER + 2 * entries])
        for offset in offsets[1::2]:  # entries alternate key, value
            if offset + 12 > page_size or raw[offset] != BDB_ITEM_OFFPAGE:
                continue  # values of rpm headers are always far larger than an inline item
            first, total = struct.unpack(f"{order}II", raw[offset + 4 : offset + 12])
            blobs.append(_overflow_chain(data, order, page_size, pages, first, total))
            # Every page belongs to at most one chain; items sharing pages would multiply memory.
            assembled += total
            if assembled > len(data):
                raise HeaderError("overflow items overlap")
    return blobs


#: ndb layout (rpm lib/backend/ndb/rpmpkg.c), little-endian throughout.
NDB_MAGIC = b"RpmP"
NDB_SLOT_MAGIC = b"Slot"
NDB_BLOB_HEAD = b"BlbS"
NDB_BLOB_TAIL = b"BlbE"
NDB_HEADER_SIZE = 32
NDB_PAGE_SIZE = 4096
NDB_BLOCK = 16
NDB_HEAD_SIZE = 16
NDB_TAIL_SIZE = 12
#: Slot pages allowed: each holds 256 packages, and the largest distributions install a few thousand.
NDB_MAX_SLOT_PAGES = 2048


def read_ndb_rpmdb(data: bytes) -> list[bytes]:
    """Header blobs of an ndb ``Packages.db``, in block order, each checked against its slot and checksum."""
    if len(data) < NDB_HEADER_SIZE or data[:4] != NDB_MAGIC:
        raise HeaderError("not an rpm ndb database")
    version, _, slot_pages = struct.unpack_from("<III", data, 4)
    if version != 0:
        raise HeaderError(f"ndb version {version} (only 0 exists)")
    if len(data) % NDB_BLOCK:
        raise HeaderError("ndb file size is not a multiple of its block size")
    if not 0 < slot_pages <= NDB_MAX_SLOT_PAGES or slot_pages * NDB_PAGE_SIZE > len(data):
        raise HeaderError(f"ndb header claims {slot_pages} slot pages")
    blocks = len(data) // NDB_BLOCK
    first_data_block = slot_pages * (NDB_PAGE_SIZE // NDB_BLOCK)
    slots: list[tuple[int, int, int]] = []
    for offset in range(NDB_HEADER_SIZE, slot_pages * NDB_PAGE_SIZE, NDB_BLOCK):
        magic, index, block, count = struct.unpack_from("<4sIII", data, offset)
        if magic != NDB_SLOT_MAGIC:
            raise HeaderError(f"ndb slot at byte {offset}: bad magic")
        if not block:
            continue  # a free slot
        if not index or not count or block < first_data_block or block + count > blocks:
            raise HeaderError(f"ndb slot at byte {offset}: points outside the data area")
        slots.append((block, count, index))
    slots.sort()
    for (block, count, _), (next_block, _, _) in itertools.pairwise(slots):
        if block + count > next_block:
            raise HeaderError(f"ndb blobs at blocks {block} and {next_block} overlap")
    return [_ndb_blob(data, block, count, index) for block, count, index in slots]


def _ndb_blob(data: bytes, block: int, count: int, index: int) -> bytes:
    start = block * NDB_BLOCK
    end = start + count * NDB_BLOCK
    head_magic, head_index, _, length = struct.unpack_from("<4sIII", data, start)
    if head_magic != NDB_BLOB_HEAD or head_index != index:
        raise HeaderError(f"ndb blob at block {block}: bad head for package {index}")
    if count != -(-(NDB_HEAD_SIZE + length + NDB_TAIL_SIZE) // NDB_BLOCK):
        raise HeaderError(f"ndb blob at block {block}: {length} bytes do not fill {count} blocks")
    checksum, tail_length, tail_magic = struct.unpack_from("<II4s", data, end - NDB_TAIL_SIZE)
    if tail_magic != NDB_BLOB_TAIL or tail_length != length:
        raise HeaderError(f"ndb blob at block {block}: bad tail")
    if zlib.adler32(data[start : end - NDB_TAIL_SIZE]) != checksum:
        raise HeaderError(f"ndb blob at block {block}: checksum mismatch")
    return data[start + NDB_HEAD_SIZE : start + NDB_HEAD_SIZE + length]


def _overflow_chain(data: bytes, order: str, page_size: int, pages: int, first: int, total: int) -> bytes:
    if total > _MAX_DATA:
        raise HeaderError(f"overflow item of {total} bytes")
    out = bytearray()
    number = first
    seen: set[int] = set()
    while number:
        if number in seen or not 0 < number < pages:
            raise HeaderError(f"broken overflow chain at page {number}")
        seen.add(number)
        raw = data[number * page_size : (number + 1) * page_size]
        if raw[25] != BDB_PAGE_OVERFLOW:
            raise HeaderError(f"page {number} is not an overflow page")
        # On an overflow page the free-area offset field holds the number of bytes used.
        (next_page,) = struct.unpack(f"{order}I", raw[16:20])
        (used,) = struct.unpack(f"{order}H", raw[22:24])
        if BDB_PAGE_HEADER + used > page_size:
            raise HeaderError(f"overflow page {number} claims {used} bytes")
        out += raw[BDB_PAGE_HEADER : BDB_PAGE_HEADER + used]
        if len(out) >= total:
            break
        number = next_page
    if len(out) < total:
        raise HeaderError("overflow chain shorter than its item")
    return bytes(out[:total])


class RpmCataloger(BytesCataloger):
    name = "rpm"
    exact_paths = SQLITE_PATHS + NDB_PATHS + BDB_PATHS

    def wants(self, path: str) -> bool:
        return path in SQLITE_PATHS or path in NDB_PATHS or path in BDB_PATHS

    def catalog(self, files: Sequence[Found[bytes]], context: CatalogContext) -> list[Package]:
        distro = context.distro
        namespace = distro.id if distro else None
        distro_qualifier = distro.qualifier() if distro else None
        records: list[tuple[Package, RpmHeader]] = []
        sqlite = [f for f in files if f.path in SQLITE_PATHS]
        ndb = [f for f in files if f.path in NDB_PATHS]
        # A converted database may leave the old Berkeley DB file behind; the SQLite or ndb one is current.
        for found in sqlite or ndb or files:
            reader = (
                read_sqlite_rpmdb
                if found.path in SQLITE_PATHS
                else read_ndb_rpmdb
                if found.path in NDB_PATHS
                else read_bdb_rpmdb
            )
            try:
                blobs = reader(found.content)
            except HeaderError as e:
                context.warn(f"{found.path}: {e}; skipped")
                continue
            for number, blob in enumerate(blobs, start=1):
                try:
                    header = parse_header(blob)
                except HeaderError as e:
                    context.warn(f"{found.path}: package header {number}: {e}; skipped")
                    continue
                if not header.name or not header.version or header.name == "gpg-pubkey":
                    continue  # gpg-pubkey entries are imported signing keys, not software
                version = f"{header.version}-{header.release}" if header.release else header.version
                qualifiers = {"arch": header.arch}
                if header.epoch is not None:
                    qualifiers["epoch"] = str(header.epoch)
                if distro_qualifier:
                    qualifiers["distro"] = distro_qualifier
                if header.source_rpm:
                    qualifiers["upstream"] = header.source_rpm
                license_value = licenses.normalise(header.license) if header.license else None
                package = distro_package(
                    "rpm",
                    namespace,
                    header.name,
                    version,
                    qualifiers,
                    found,
                    licenses=(license_value,) if license_value else (),
                    shown_version=f"{header.epoch}:{version}" if header.epoch is not None else None,
                )
                records.append((package, header))
        _link(records)
        return [package for package, _ in records]


def _link(records: list[tuple[Package, RpmHeader]]) -> None:
    """Requires resolved through Provides (rpm's own capabilities) and owned files (``/bin/sh``)."""
    providers: dict[str, Package] = {}
    for package, header in records:
        providers.setdefault(header.name, package)
        for capability in header.provides:
            providers.setdefault(capability, package)
        for path in header.files:
            providers.setdefault(path, package)
    for package, header in records:
        deps: dict[int, Package] = {}
        for requirement in header.requires:
            if requirement.startswith("rpmlib("):
                continue  # features of rpm itself, provided by no package
            target = providers.get(requirement)
            if target is not None and target is not package:
                deps[id(target)] = target
        package.depends_on = list(deps.values())
