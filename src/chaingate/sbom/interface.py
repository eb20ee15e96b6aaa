"""What the SBOM engine takes, what it raises, and the bounds it works within.

Layers come from image stores that already verify digests, but their content is
still whatever the image author put there: every size, count and depth the
engine walks is bounded here, in one place, so a hostile layer can cost time and
memory only up to these numbers and then fails with an error naming the layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from chaingate.errors import ChaingateError
from chaingate.oci.interface import Descriptor

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class SbomError(ChaingateError):
    """An image whose filesystem cannot be read safely or completely enough to describe it."""


@dataclass(frozen=True)
class LayerInput:
    """One layer blob, bottom layer first in the sequence given to the engine.

    ``open`` may be called more than once (a layer is re-read only when a link
    points at content the first pass did not keep); each call must return a
    fresh stream that verifies the blob against ``descriptor.digest`` by the
    time it reaches EOF.
    """

    descriptor: Descriptor
    open: Callable[[], IO[bytes]]


@dataclass(frozen=True)
class Limits:
    """Bounds on the work one SBOM may cost.

    The defaults are far above any real image (the largest public images have
    layers of a few GiB and tens of thousands of files) and far below what would
    exhaust a CI runner.
    """

    #: Decompressed bytes of one layer; beyond it the layer is treated as a decompression bomb.
    max_layer_bytes: int = 32 * GiB
    #: Decompressed bytes over all layers and passes together.
    max_total_bytes: int = 128 * GiB
    #: Past ``ratio_floor`` decompressed bytes, a layer may not expand by more than this factor.
    #: gzip cannot exceed ~1032:1, so this only ever stops zstd bombs and never a real gzip layer.
    max_ratio: int = 1100
    ratio_floor: int = 1 * GiB
    #: Decompressed bytes the next layers may hold, inflated ahead while the current one is parsed.
    readahead_bytes: int = 48 * MiB
    #: Tar members in one layer.
    max_members: int = 2_000_000
    #: Size of a pax extended header or GNU long-name record (normally a few hundred bytes).
    max_header_bytes: int = 1 * MiB
    #: Longest path kept in the view (Linux PATH_MAX is 4096).
    max_path_length: int = 4096
    #: Largest file a cataloger reads into memory (a package database, a jar, a lock file).
    max_file_bytes: int = 64 * MiB
    #: Symlinks followed while resolving one path (the Linux kernel stops at 40).
    max_link_depth: int = 40
    #: Archives inside archives (jar in war in ear); the outer archive is depth 0.
    max_archive_depth: int = 3
    #: Decompressed bytes read out of one top-level archive and everything nested in it.
    max_archive_bytes: int = 1 * GiB


DEFAULT_LIMITS = Limits()
