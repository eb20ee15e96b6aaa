"""Files the user names on the command line: read whole but bounded, written atomically.

Each is small by nature, so one read of ``limit + 1`` bytes tells a file that
is too large from one that fits without reading the rest; an unreadable or
oversized file is the user's mistake, reported by the caller's own error type
with the flag and path that named it.
"""

from __future__ import annotations

import os
from pathlib import Path

from chaingate.errors import ChaingateError


def read_user_file(path: Path, limit: int, source: str, error: type[ChaingateError], what: str = "") -> bytes:
    """The bytes of ``path``; ``error("<source>: …")`` when it cannot be read or is larger than ``limit``."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as e:
        raise error(f"{source}: {e.strerror or e}") from None
    if len(raw) > limit:
        raise error(f"{source}: larger than {limit} bytes{what}")
    return raw


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically: a reader never sees half a file, and a failed write leaves the old one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
