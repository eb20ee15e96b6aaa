"""The tar reader against Python's tarfile on every format it writes, and on the archives it must refuse."""

from __future__ import annotations

import io
import random
import tarfile
from collections.abc import Callable, Iterator

import pytest

from chaingate.sbom.tarstream import Member, TarFormatError, TarLimitError, TarStream
from support.tars import add, archive

FORMATS = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}


def chunked(data: bytes, size: int) -> Callable[[], bytes]:
    """The stream in pieces of ``size`` bytes, so headers and contents straddle chunk boundaries."""
    pieces: Iterator[bytes] = (data[i : i + size] for i in range(0, len(data), size))
    return lambda: next(pieces, b"")


def stream(data: bytes, size: int = 1 << 20, *, max_header_bytes: int = 1 << 20) -> TarStream:
    return TarStream(chunked(data, size), max_header_bytes=max_header_bytes, max_chained_headers=8)


def members(data: bytes, size: int = 1 << 20, *, read: bool = True) -> list[tuple[Member, bytes]]:
    tar = stream(data, size)
    found = []
    while (member := tar.next()) is not None:
        found.append((member, tar.content(member).read() if read else b""))
    return found


def everything(tar: tarfile.TarFile) -> None:
    add(tar, "etc/", type=tarfile.DIRTYPE, mode=0o755)
    add(tar, "etc/hostname", b"box\n", mode=0o644)
    add(tar, "usr/bin/tool", b"\x7fELF" + bytes(1020), mode=0o755)  # exactly two blocks
    add(tar, "empty", b"")
    add(tar, "d/" + "n" * 150, b"a name longer than the 100-byte field")
    add(tar, "deep/" + "/".join(["dir"] * 40) + "/file", b"beyond ustar's prefix+name")
    add(tar, "link", type=tarfile.SYMTYPE, linkname="l/" + "t" * 120)
    add(tar, "hard", type=tarfile.LNKTYPE, linkname="etc/hostname")
    add(tar, "dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
    add(tar, "fifo", type=tarfile.FIFOTYPE)
    add(tar, "naïve-ünïcode", b"utf-8 name")


def expected(data: bytes) -> list[tuple[str, bool, bool, bool, bool, int, int, str, bytes]]:
    result = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|", encoding="utf-8", errors="surrogateescape") as tar:
        for info in tar:
            content = tar.extractfile(info).read() if info.isreg() else b""  # type: ignore[union-attr]
            result.append(
                (info.name, info.isreg(), info.isdir(), info.issym(), info.islnk(), info.size, info.mode,
                 info.linkname, content)
            )  # fmt: skip
    return result


def ours(data: bytes, size: int) -> list[tuple[str, bool, bool, bool, bool, int, int, str, bytes]]:
    return [
        (m.name.rstrip("/"), m.isreg(), m.isdir(), m.issym(), m.islnk(), m.size, m.mode, m.linkname, content)
        for m, content in members(data, size)
    ]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunk", [1, 7, 512, 1000, 1 << 20])
def test_agrees_with_tarfile(fmt: str, chunk: int) -> None:
    data = archive(everything if fmt != "ustar" else _ustar_subset, FORMATS[fmt])
    assert ours(data, chunk) == expected(data)


def _ustar_subset(tar: tarfile.TarFile) -> None:
    # ustar has no long names beyond prefix+name and only ASCII: the members it can hold.
    add(tar, "etc/hostname", b"box\n")
    add(tar, "p/" + "q" * 120 + "/file", b"uses the prefix field")
    add(tar, "link", type=tarfile.SYMTYPE, linkname="etc/hostname")


def test_skipping_content_does_not_need_it_read() -> None:
    data = archive(everything)
    assert [m.name for m, _ in members(data, 300, read=False)] == [m.name for m, _ in members(data, 300)]


def test_partial_reads_then_next_member() -> None:
    data = archive(lambda t: (add(t, "a", b"0123456789" * 100), add(t, "b", b"second")))
    tar = stream(data, 64)
    first = tar.next()
    assert first is not None
    content = tar.content(first)
    assert content.read(3) == b"012"
    assert content.read(4) == b"3456"
    second = tar.next()
    assert second is not None
    assert second.name == "b"
    assert tar.content(second).read() == b"second"
    with pytest.raises(ValueError, match="after the next member"):
        content.read()


def test_end_block_then_rest_is_available() -> None:
    data = archive(lambda t: add(t, "a", b"1")) + b"trailing"
    tar = stream(data, 100)
    assert tar.next() is not None
    assert tar.next() is None
    assert tar.next() is None
    assert b"".join(tar.rest()).endswith(b"trailing")


def test_empty_stream_has_no_members() -> None:
    assert members(b"") == []


def test_gnu_prefix_area_is_not_a_name_prefix() -> None:
    # GNU headers keep atime/ctime where ustar keeps the prefix; Go (and so containerd) ignores it there.
    header = patched("file", tarfile.GNU_FORMAT, 345, b"14543210123")
    assert [m.name for m, _ in members(header + bytes(1024))] == ["file"]


def test_posix_prefix_is_applied() -> None:
    header = patched("file", tarfile.USTAR_FORMAT, 345, b"dir")
    assert [m.name for m, _ in members(header + bytes(1024))] == ["dir/file"]


def test_base256_size() -> None:
    header = patched("big", tarfile.GNU_FORMAT, 124, b"\x80" + (5).to_bytes(11, "big"))
    [(member, content)] = members(header + b"hello" + bytes(507) + bytes(1024))
    assert (member.size, content) == (5, b"hello")


def test_header_only_types_carry_no_data() -> None:
    header = patched("dir", tarfile.USTAR_FORMAT, 124, b"%011o\0" % 512, kind=tarfile.DIRTYPE)
    after = tarfile.TarInfo("after").tobuf(tarfile.USTAR_FORMAT)
    assert [m.name.rstrip("/") for m, _ in members(header + after + bytes(1024))] == ["dir", "after"]


def test_old_style_directory() -> None:
    info = tarfile.TarInfo("old/")
    info.type = tarfile.AREGTYPE
    [(member, _)] = members(info.tobuf(tarfile.USTAR_FORMAT) + bytes(1024))
    assert member.isdir()


def test_global_pax_headers_do_not_rename_members() -> None:
    data = archive(lambda t: add(t, "real", b"x"))
    global_header = tarfile.TarInfo.create_pax_global_header({"path": "renamed"})
    assert [m.name for m, _ in members(global_header + data)] == ["real"]


@pytest.mark.parametrize("size", ["-1", "²", "1e3", ""])
def test_invalid_pax_size(size: str) -> None:
    info = tarfile.TarInfo("f")
    info.pax_headers = {"size": size}
    with pytest.raises(TarFormatError, match="invalid pax size"):
        members(info.tobuf(tarfile.PAX_FORMAT) + bytes(1024))


def test_pax_size_overrides_the_header() -> None:
    info = tarfile.TarInfo("f")
    info.size = 3
    info.pax_headers = {"size": "3"}
    data = info.tobuf(tarfile.PAX_FORMAT) + b"abc" + bytes(509) + bytes(1024)
    [(member, content)] = members(data)
    assert (member.size, content) == (3, b"abc")


def patched(name: str, fmt: int, at: int, value: bytes, *, kind: bytes = tarfile.REGTYPE) -> bytes:
    """One header as tarfile writes it, with ``value`` written at offset ``at`` and the checksum made right."""
    info = tarfile.TarInfo(name)
    info.type = kind
    header = bytearray(info.tobuf(fmt))
    header[at : at + len(value)] = value
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def test_bad_checksum_names_the_offset() -> None:
    data = bytearray(archive(lambda t: (add(t, "a", b"1"), add(t, "b", b"2")), tarfile.USTAR_FORMAT))
    data[1024 + 10] ^= 0xFF
    with pytest.raises(TarFormatError, match="bad header checksum at offset 1024"):
        members(bytes(data))


@pytest.mark.parametrize("cut", [100, 512 + 2, 1024 + 300])
def test_truncation_is_an_error(cut: int) -> None:
    data = archive(lambda t: (add(t, "a", b"1" * 600), add(t, "b", b"2")), tarfile.USTAR_FORMAT)
    with pytest.raises(TarFormatError, match="the stream ends inside"):
        members(data[:cut])


def test_invalid_numeric_field() -> None:
    header = patched("f", tarfile.USTAR_FORMAT, 124, b"12_3\0\0\0\0\0\0\0\0")
    with pytest.raises(TarFormatError, match="invalid size field"):
        members(header)


@pytest.mark.parametrize("record", [b"99 path=x\n", b"abc path=x\n", b"11 pathx\n", b"6 a=b\nzz"])
def test_malformed_pax_records(record: bytes) -> None:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = len(record)
    data = info.tobuf(tarfile.USTAR_FORMAT) + record + bytes(-len(record) % 512)
    data += tarfile.TarInfo("f").tobuf(tarfile.USTAR_FORMAT) + bytes(1024)
    with pytest.raises(TarFormatError, match="pax record"):
        members(data)


def test_extended_header_size_is_bounded() -> None:
    info = tarfile.TarInfo("f")
    info.pax_headers = {"comment": "x" * 5000}
    with pytest.raises(TarLimitError, match="extended tar header of"):
        list(members_of(stream(info.tobuf(tarfile.PAX_FORMAT) + bytes(1024), max_header_bytes=1024)))


def test_chained_extended_headers_are_bounded() -> None:
    long_name = tarfile.TarInfo("././@LongLink")
    long_name.type = tarfile.GNUTYPE_LONGNAME
    long_name.size = 4
    one = long_name.tobuf(tarfile.USTAR_FORMAT) + b"name" + bytes(508)
    with pytest.raises(TarLimitError, match="more than 8 extended headers"):
        members(one * 9 + tarfile.TarInfo("f").tobuf(tarfile.USTAR_FORMAT) + bytes(1024))
    assert [
        m.name for m, _ in members(one * 8 + tarfile.TarInfo("f").tobuf(tarfile.USTAR_FORMAT) + bytes(1024))
    ] == ["name"]


def test_sparse_members_are_refused() -> None:
    old = tarfile.TarInfo("sparse")
    old.type = tarfile.GNUTYPE_SPARSE
    with pytest.raises(TarLimitError, match="GNU sparse member"):
        members(old.tobuf(tarfile.GNU_FORMAT) + bytes(1024))
    pax = tarfile.TarInfo("sparse")
    pax.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    with pytest.raises(TarLimitError, match="sparse member"):
        members(pax.tobuf(tarfile.PAX_FORMAT) + bytes(1024))


def members_of(tar: TarStream) -> Iterator[Member]:
    while (member := tar.next()) is not None:
        yield member


def test_damaged_archives_fail_only_with_tar_errors() -> None:
    """Seeded random damage: every outcome is a parse, a TarFormatError or a TarLimitError, never a crash."""
    rng = random.Random(2026)
    original = archive(everything)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(400):
        data = bytearray(original)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            del data[rng.randrange(len(data)) :]
        try:
            members(bytes(data), rng.choice([1, 100, 512, 1 << 20]))
            outcomes["parsed"] += 1
        except (TarFormatError, TarLimitError):
            outcomes["refused"] += 1
    assert outcomes["parsed"] > 0 and outcomes["refused"] > 0  # both paths were exercised
