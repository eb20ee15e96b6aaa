"""Bounded, deadline-aware reading and streaming of HTTP bodies for the registry client.

A leaf of :mod:`chaingate.oci.client`: how one body is read or sent does not
depend on authentication or retries, and keeping it apart keeps the client's
request loop readable. Under a command deadline a slow server must not be able
to hold a read open past it, which ``requests`` alone cannot promise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO

import requests

from chaingate.oci.interface import Progress
from chaingate.oci.registries import Deadline, DeadlinePassed
from chaingate.text import one_line

MAX_ERROR_BODY = 64 * 1024
#: The most one read of a body asks for under a deadline, so the deadline is checked at least this often.
DEADLINE_CHUNK = 64 * 1024


def error_detail(resp: requests.Response, deadline: Deadline | None = None) -> str:
    """The registry's own words for an error (OCI error JSON), bounded and single-line."""
    try:
        raw = DecodedRaw(resp, deadline, "reading an error body").read(MAX_ERROR_BODY) if resp.raw else b""
    except DeadlinePassed:
        raise
    except Exception:  # the body is diagnostics only; an unreadable one is simply absent
        raw = b""
    try:
        doc = json.loads(raw)
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errors, list) and errors:
            parts = []
            for e in errors[:3]:
                if isinstance(e, dict):
                    parts.append(f"{e.get('code', '')}: {e.get('message', '')}".strip(": "))
            if parts:
                return one_line("; ".join(parts), 300)
    except ValueError:
        pass
    return one_line(raw.decode("utf-8", "replace"), 200)


class SizedBody:
    """A request body of known length read from a stream, reporting progress as it goes."""

    def __init__(self, stream: IO[bytes], size: int, what: str, progress: Progress) -> None:
        self._stream = stream
        self._size = size
        self._what = what
        self._progress = progress
        self._sent = 0

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self._stream.read(1024 * 1024)
            if not chunk:
                break
            self._sent += len(chunk)
            self._progress(self._what, self._sent, self._size)
            yield chunk


class DecodedRaw:
    """``resp.raw`` read with transfer/content decoding, as a plain binary stream.

    Under a deadline a body is read one socket read at a time (``read1``), each
    with its timeout clamped to the time left, and the deadline is checked
    between them: ``read(n)`` of urllib3 would otherwise loop inside one call
    for as long as the server keeps dripping bytes.
    """

    def __init__(
        self,
        resp: requests.Response,
        deadline: Deadline | None = None,
        doing: str = "reading a response body",
        read_timeout: float = 60.0,
    ) -> None:
        self._resp = resp
        self._deadline = deadline
        self._doing = doing
        self._read_timeout = read_timeout

    def read(self, n: int = -1) -> bytes:
        raw = self._resp.raw
        if self._deadline is None:
            data: bytes = raw.read(None if n < 0 else n, decode_content=True)
            return data
        parts: list[bytes] = []
        got = 0
        while n < 0 or got < n:
            self._arm(self._deadline)
            want = DEADLINE_CHUNK if n < 0 else min(DEADLINE_CHUNK, n - got)
            try:
                chunk: bytes = raw.read1(want, decode_content=True)
            except Exception:  # urllib3's ReadTimeoutError and friends: the deadline's, if it has passed
                if self._deadline.passed():
                    raise self._deadline.error(self._doing) from None
                raise
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def _arm(self, deadline: Deadline) -> None:
        """Check the deadline and let the next socket read wait no longer than the time left."""
        timeout = deadline.clamp(self._read_timeout, self._doing)
        sock = getattr(getattr(self._resp.raw, "connection", None), "sock", None)
        if sock is not None:
            sock.settimeout(timeout)

    def close(self) -> None:
        self._resp.close()
