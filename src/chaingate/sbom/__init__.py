"""Software bills of materials for container images.

``generate_sbom(layers, image_name=..., image_digest=...)`` reads an image's
layers once, as a squashed view of its final filesystem, catalogs the OS and
language packages it finds, and returns a CycloneDX 1.6 JSON document.
"""

from __future__ import annotations

from chaingate.sbom.engine import generate_sbom
from chaingate.sbom.interface import LayerInput, Limits, SbomError

__all__ = ["LayerInput", "Limits", "SbomError", "generate_sbom"]
