"""Software bills of materials for container images.

``generate_sbom(layers, image_name=..., image_digest=...)`` reads an image's
layers once, as a squashed view of its final filesystem, catalogs the OS and
language packages it finds, and returns a CycloneDX 1.6 JSON document.

``generate_sbom`` is loaded on first use: it needs cyclonedx-python-lib, the
largest import of the SBOM path, and ``import chaingate.sbom`` (for its errors
and limits, or a submodule) should not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaingate.sbom.interface import LayerInput, Limits, SbomError

if TYPE_CHECKING:
    from chaingate.sbom.engine import generate_sbom

__all__ = ["LayerInput", "Limits", "SbomError", "generate_sbom"]


def __getattr__(name: str) -> object:
    if name == "generate_sbom":
        from chaingate.sbom.engine import generate_sbom

        return generate_sbom
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
