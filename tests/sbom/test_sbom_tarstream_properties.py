"""Hostile tar streams: members, or one TarFormatError/TarLimitError; never another exception, never a hang."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaingate.sbom.tarstream import TarFormatError, TarLimitError, TarStream
from support.strategies import mutated_bytes, outcome
from support.tars import add, archive


def _small(tar: tarfile.TarFile) -> None:
    add(tar, "etc/", type=tarfile.DIRTYPE, mode=0o755)
    add(tar, "etc/os-release", b"ID=debian\n")
    add(tar, "d/" + "n" * 120, b"long name")
    add(tar, "link", type=tarfile.SYMTYPE, linkname="l/" + "t" * 110)


SMALL = {
    name: archive(_small, fmt) for name, fmt in (("pax", tarfile.PAX_FORMAT), ("gnu", tarfile.GNU_FORMAT))
}


def _walk(data: bytes, chunk: int, read_every: int) -> int:
    """Drive the reader as the SBOM view does; only its two error types may come out."""
    count, error = outcome(lambda: _members(data, chunk, read_every), TarFormatError, TarLimitError)
    assert error is None or "\n" not in str(error)
    return count or 0


def _members(data: bytes, chunk: int, read_every: int) -> int:
    pieces: Iterator[bytes] = (data[i : i + chunk] for i in range(0, len(data), chunk))
    tar = TarStream(lambda: next(pieces, b""), max_header_bytes=1 << 16, max_chained_headers=8)
    count = 0
    while (member := tar.next()) is not None:
        count += 1
        assert member.size >= 0 and isinstance(member.name, str)
        if read_every and count % read_every == 0:
            content = tar.content(member)
            while content.read(7):
                pass
    for _ in tar.rest():
        pass
    return count


chunks = st.sampled_from([1, 7, 512, 1 << 20])
reads = st.sampled_from([0, 1, 2])


def test_the_small_archives_read() -> None:
    assert {name: _walk(data, 512, 1) for name, data in SMALL.items()} == {"pax": 4, "gnu": 4}


@given(st.binary(max_size=2048), chunks, reads)
def test_any_bytes(data: bytes, chunk: int, read_every: int) -> None:
    _walk(data, chunk, read_every)


@given(st.sampled_from(sorted(SMALL)).flatmap(lambda name: mutated_bytes(SMALL[name])), chunks, reads)
def test_a_small_archive_with_bytes_mutated(data: bytes, chunk: int, read_every: int) -> None:
    _walk(data, chunk, read_every)


pax_keys = st.sampled_from(["size", "path", "linkpath", "GNU.sparse.map", "mtime", "uid", "x"]) | st.text(
    min_size=1, max_size=8
).filter(lambda k: "=" not in k)
pax_values = (
    st.text(max_size=40)
    | st.sampled_from(["-1", "0", "18446744073709551616", "9" * 19, "9" * 5000, "1e3", " 5", "٣"])
    | st.integers(0, 1 << 70).map(str)
)


@given(st.dictionaries(pax_keys, pax_values, max_size=4), chunks, reads)
def test_any_pax_records(records: dict[str, str], chunk: int, read_every: int) -> None:
    def build(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("f")
        info.size = 3
        info.pax_headers = records
        tar.addfile(info, io.BytesIO(b"abc"))
        add(tar, "g", b"after")

    try:
        data = archive(build, tarfile.PAX_FORMAT)
    except (ValueError, UnicodeError):  # records tarfile itself will not write
        return
    _walk(data, chunk, read_every)


# -- found by the properties, pinned -------------------------------------------------------------------


@pytest.mark.parametrize("size", ["9" * 5000, "9" * 20, str(1 << 63)])
def test_a_pax_size_beyond_int64_is_a_format_error(size: str) -> None:
    # Found by test_any_pax_records: int() of more than 4300 digits raised ValueError.
    def build(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("f")
        info.pax_headers = {"size": size}
        tar.addfile(info, io.BytesIO(b""))

    tar = TarStream(
        iter([archive(build, tarfile.PAX_FORMAT), b""]).__next__,
        max_header_bytes=1 << 16,
        max_chained_headers=8,
    )
    with pytest.raises(TarFormatError, match="invalid pax size"):
        tar.next()
