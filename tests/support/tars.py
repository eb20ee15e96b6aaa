"""Small tar archives written by Python's own ``tarfile``, the reference the tar reader is held to."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable


def archive(build: Callable[[tarfile.TarFile], None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """The bytes of a tar in ``fmt`` whose members ``build`` adds."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        build(tar)
    return buf.getvalue()


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields: object) -> None:
    """Add member ``name`` with ``data`` (regular files) and any ``TarInfo`` fields."""
    info = tarfile.TarInfo(name)
    for key, value in fields.items():
        setattr(info, key, value)
    if info.isreg():
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
