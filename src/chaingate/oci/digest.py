"""Content digests, and readers that refuse a byte the digest does not vouch for.

Digest is identity in chaingate: every manifest and blob we read is checked
against the digest we asked for, and every stream is bounded by the size its
descriptor declares, so a hostile or broken server can neither substitute
content nor exhaust memory.
"""

from __future__ import annotations

import hashlib
import re
from typing import IO, Any

from chaingate.oci.errors import DigestMismatch, OCIError, SizeLimitExceeded

#: The one digest grammar of chaingate: OCI's two registered algorithms, lowercase hex of their
#: exact length. Every other module builds on these instead of writing its own pattern, so a policy,
#: a reference, an SBOM and a deployment cannot disagree about what a digest is.
SHA256_PATTERN = "sha256:[a-f0-9]{64}"
DIGEST_PATTERN = f"(?:{SHA256_PATTERN}|sha512:[a-f0-9]{{128}})"
_DIGEST_RE = re.compile(DIGEST_PATTERN)
_SHA256_RE = re.compile(SHA256_PATTERN)


def is_digest(text: str) -> bool:
    """Whether ``text`` is exactly one sha256 or sha512 digest."""
    # fullmatch, not match with ``$``: ``$`` also matches before a trailing newline, which would let
    # "sha256:<hex>\n" through into URLs, file names and comparisons.
    return _DIGEST_RE.fullmatch(text) is not None


def is_sha256_digest(text: str) -> bool:
    """Whether ``text`` is exactly one sha256 digest (what policies and deployments pin)."""
    return _SHA256_RE.fullmatch(text) is not None


def validate_digest(digest: str, *, where: str = "digest") -> str:
    """Return ``digest`` if it is a well-formed sha256/sha512 digest, else raise naming ``where``."""
    if not isinstance(digest, str) or not is_digest(digest):
        raise OCIError(f"{where}: malformed digest {digest!r} (expected sha256:<64 hex> or sha512:<128 hex>)")
    return digest


def hasher(digest: str) -> Any:
    """A fresh hash object for the algorithm of ``digest``."""
    return hashlib.new(validate_digest(digest).split(":", 1)[0])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_bytes(data: bytes, digest: str, *, what: str, expected_size: int | None = None) -> bytes:
    """Return ``data`` if it hashes to ``digest`` (and has the expected size), else raise."""
    if expected_size is not None and len(data) != expected_size:
        raise DigestMismatch(f"{what}: size {len(data)} does not match the expected {expected_size} bytes")
    h = hasher(digest)
    h.update(data)
    algo = digest.split(":", 1)[0]
    actual = f"{algo}:{h.hexdigest()}"
    if actual != digest:
        raise DigestMismatch(f"{what}: content digest {actual} does not match the expected {digest}")
    return data


def read_bounded(stream: IO[bytes], limit: int, *, what: str) -> bytes:
    """Read a whole stream to its end, refusing one larger than ``limit`` bytes.

    It reads until ``read`` returns nothing, because one read of a network
    stream may return less than is left: stopping early would hand back a
    truncated prefix, and a :class:`VerifiedReader` checks its digest only once
    it reaches the end.
    """
    chunks: list[bytes] = []
    total = 0
    while chunk := stream.read(min(1024 * 1024, limit + 1 - total)):
        total += len(chunk)
        if total > limit:
            raise SizeLimitExceeded(f"{what}: larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class VerifiedReader:
    """A read-only stream that checks size and digest as the bytes pass.

    It raises :class:`DigestMismatch` when the stream ends short, runs long, or
    hashes wrong. Consumers must treat what they read as untrusted until EOF
    has been reached without an error — which every chaingate consumer does by
    reading to the end (``read()`` returning ``b""``) before acting on results.
    """

    def __init__(self, raw: IO[bytes], digest: str, size: int, *, what: str) -> None:
        if size < 0:
            raise OCIError(f"{what}: negative size {size}")
        self._raw = raw
        self._digest = digest
        self._hash = hasher(digest)
        self._remaining = size
        self._size = size
        self._what = what
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._done or n == 0:
            return b""
        want = self._remaining if n is None or n < 0 else min(n, self._remaining)
        chunk = self._raw.read(want) if want > 0 else b""
        if chunk:
            self._hash.update(chunk)
            self._remaining -= len(chunk)
            if self._remaining > 0:
                return chunk
        if want > 0 and not chunk and self._remaining > 0:
            self._done = True
            raise DigestMismatch(
                f"{self._what}: stream ended after {self._size - self._remaining} of {self._size} bytes"
            )
        # The declared size has been read: anything more is a server lying about the size.
        if self._raw.read(1):
            self._done = True
            raise SizeLimitExceeded(f"{self._what}: more data than the declared {self._size} bytes")
        self._done = True
        algo = self._digest.split(":", 1)[0]
        actual = f"{algo}:{self._hash.hexdigest()}"
        if actual != self._digest:
            raise DigestMismatch(
                f"{self._what}: content digest {actual} does not match the expected {self._digest}"
            )
        return chunk

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> VerifiedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
