from __future__ import annotations

import io

import pytest

from chaingate.oci.digest import (
    VerifiedReader,
    is_digest,
    is_sha256_digest,
    read_bounded,
    sha256_digest,
    validate_digest,
    verify_bytes,
)
from chaingate.oci.errors import DigestMismatch, OCIError, SizeLimitExceeded

DATA = b"hello, supply chain" * 1000
DIGEST = sha256_digest(DATA)


def read_all(reader: VerifiedReader, chunk: int = 4096) -> bytes:
    out = b""
    while piece := reader.read(chunk):
        out += piece
    return out


def test_verified_reader_accepts_exact_content() -> None:
    assert read_all(VerifiedReader(io.BytesIO(DATA), DIGEST, len(DATA), what="t")) == DATA
    assert VerifiedReader(io.BytesIO(DATA), DIGEST, len(DATA), what="t").read() == DATA


def test_verified_reader_rejects_a_flipped_byte() -> None:
    bad = bytearray(DATA)
    bad[500] ^= 1
    with pytest.raises(DigestMismatch, match="does not match"):
        read_all(VerifiedReader(io.BytesIO(bytes(bad)), DIGEST, len(DATA), what="t"))


def test_verified_reader_rejects_short_and_long_streams() -> None:
    with pytest.raises(DigestMismatch, match="ended after"):
        read_all(VerifiedReader(io.BytesIO(DATA[:-1]), DIGEST, len(DATA), what="t"))
    with pytest.raises(SizeLimitExceeded, match="more data"):
        read_all(VerifiedReader(io.BytesIO(DATA + b"x"), DIGEST, len(DATA), what="t"))


def test_verified_reader_zero_length_reads_and_empty_blob() -> None:
    empty = VerifiedReader(io.BytesIO(b""), sha256_digest(b""), 0, what="t")
    assert empty.read(0) == b""
    assert empty.read() == b""
    r = VerifiedReader(io.BytesIO(DATA), DIGEST, len(DATA), what="t")
    assert r.read(0) == b""
    assert read_all(r) == DATA


def test_verify_bytes_and_validate() -> None:
    assert verify_bytes(DATA, DIGEST, what="x") == DATA
    with pytest.raises(DigestMismatch):
        verify_bytes(DATA + b"!", DIGEST, what="x")
    with pytest.raises(DigestMismatch, match="size"):
        verify_bytes(DATA, DIGEST, what="x", expected_size=1)
    with pytest.raises(OCIError, match="malformed digest"):
        validate_digest("sha256:ABC")
    assert validate_digest("sha512:" + "0" * 128)


def test_read_bounded() -> None:
    assert read_bounded(io.BytesIO(b"abc"), 3, what="x") == b"abc"
    with pytest.raises(SizeLimitExceeded, match="limit of 2"):
        read_bounded(io.BytesIO(b"abc"), 2, what="x")


class Trickle(io.BytesIO):
    """A network-like stream: each read returns at most a few bytes, however many were asked for."""

    def read(self, n: int | None = -1) -> bytes:
        return super().read(7 if n is None or n < 0 else min(n, 7))


def test_read_bounded_reads_short_reads_to_the_end_and_so_checks_the_digest() -> None:
    assert (
        read_bounded(VerifiedReader(Trickle(DATA), DIGEST, len(DATA), what="t"), len(DATA), what="t") == DATA
    )
    bad = bytearray(DATA)
    bad[-1] ^= 1
    with pytest.raises(DigestMismatch):
        read_bounded(VerifiedReader(Trickle(bytes(bad)), DIGEST, len(DATA), what="t"), len(DATA), what="t")
    with pytest.raises(SizeLimitExceeded):
        read_bounded(Trickle(DATA), len(DATA) - 1, what="t")


@pytest.mark.parametrize(
    ("text", "any_digest", "sha256"),
    [
        ("sha256:" + "a" * 64, True, True),
        ("sha512:" + "0" * 128, True, False),
        ("sha256:" + "a" * 64 + "\n", False, False),  # ``$`` would have let the newline through
        ("sha256:" + "a" * 63, False, False),
        ("sha256:" + "a" * 128, False, False),  # a sha512-long hex under the sha256 name
        ("sha512:" + "0" * 64, False, False),
        ("sha256:" + "A" * 64, False, False),
        ("md5:" + "a" * 32, False, False),
        (" sha256:" + "a" * 64, False, False),
    ],
)
def test_one_digest_grammar(text: str, any_digest: bool, sha256: bool) -> None:
    assert is_digest(text) is any_digest
    assert is_sha256_digest(text) is sha256
    if not any_digest:
        with pytest.raises(OCIError, match="malformed digest"):
            validate_digest(text)
