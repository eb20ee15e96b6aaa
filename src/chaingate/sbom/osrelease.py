"""The image's operating system, from os-release(5).

OS packages are only meaningful with their distribution (the same deb version
means different code on Debian and Ubuntu), so the distro goes into every OS
package's purl and is read like any cataloged file: from the final view, with
``etc/os-release`` preferred and ``usr/lib/os-release`` as the documented
fallback (Debian and Fedora make the first a symlink to the second).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from chaingate.sbom.catalogers.base import BytesReader, Distro, Found, text
from chaingate.sbom.interface import KiB

_PATHS = ("etc/os-release", "usr/lib/os-release")


class OSReleaseReader(BytesReader):
    name = "os-release"
    exact_paths = _PATHS

    @property
    def max_size(self) -> int:
        return 64 * KiB

    def wants(self, path: str) -> bool:
        return path in _PATHS


def parse_os_release(data: bytes) -> dict[str, str]:
    """KEY=value lines with shell quoting, as os-release(5) defines them."""
    fields: dict[str, str] = {}
    for line in text(data).splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        fields[key.strip()] = " ".join(parts)
    return fields


def distro_from(found: Sequence[Found[bytes]]) -> Distro | None:
    by_path = {f.path: f for f in found}
    for path in _PATHS:
        if path in by_path:
            fields = parse_os_release(by_path[path].content)
            distro_id = fields.get("ID", "").strip().lower()
            if distro_id:
                return Distro(
                    id=distro_id,
                    version_id=fields.get("VERSION_ID") or None,
                    codename=fields.get("VERSION_CODENAME") or None,
                    pretty_name=fields.get("PRETTY_NAME") or None,
                    id_like=tuple(fields.get("ID_LIKE", "").lower().split()),
                    path=path,
                    layer=by_path[path].layer,
                )
    return None
