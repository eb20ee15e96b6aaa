"""generate_sbom: layers in, CycloneDX 1.6 JSON out.

The engine only wires the parts: the view reads the layers once (see
:mod:`chaingate.sbom.view`), os-release names the distribution, each cataloger
turns its captured files into packages, and :mod:`chaingate.sbom.bom` writes
the document. Problems that leave the SBOM incomplete but still truthful (an
oversized jar, a malformed METADATA) become ``chaingate:warning`` properties in
its metadata; problems that would make it untruthful (a corrupt or hostile
layer) raise :class:`SbomError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chaingate.oci.digest import is_digest
from chaingate.oci.interface import Progress, no_progress
from chaingate.sbom.bom import write_bom
from chaingate.sbom.catalogers import default_catalogers
from chaingate.sbom.catalogers.base import CatalogContext, Cataloger, FileReader, Found, Package
from chaingate.sbom.interface import DEFAULT_LIMITS, LayerInput, Limits, SbomError
from chaingate.sbom.osrelease import OSReleaseReader, distro_from
from chaingate.sbom.view import build_view


def sbom_timestamp(created: datetime | None, environ: Mapping[str, str] | None = None) -> datetime:
    """``created``, else ``SOURCE_DATE_EPOCH`` (reproducible-builds.org), else now; always UTC, whole seconds."""
    if created is not None:
        when = created if created.tzinfo is not None else created.replace(tzinfo=UTC)
        return when.astimezone(UTC).replace(microsecond=0)
    env = os.environ if environ is None else environ
    epoch = env.get("SOURCE_DATE_EPOCH")
    if epoch is not None and epoch.strip():
        if not epoch.strip().isdigit():
            raise SbomError(
                f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds",
                hint="set it to a Unix timestamp such as $(git log -1 --format=%ct), or unset it",
            )
        try:
            return datetime.fromtimestamp(int(epoch.strip()), tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise SbomError(f"SOURCE_DATE_EPOCH={epoch!r} is out of range") from None
    return datetime.now(UTC).replace(microsecond=0)


def generate_sbom(
    layers: Sequence[LayerInput],
    *,
    image_name: str,
    image_digest: str,
    platform: str | None = None,
    created: datetime | None = None,
    progress: Progress = no_progress,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """The CycloneDX 1.6 JSON SBOM of an image, from its layers (bottom first) and manifest digest.

    Deterministic: the same layers give the same bytes except
    ``metadata.timestamp``, which ``created`` or ``SOURCE_DATE_EPOCH`` fixes.
    """
    if not is_digest(image_digest):
        raise SbomError(f"image digest {image_digest!r} is not sha256:<64 hex> or sha512:<128 hex>")
    if not image_name:
        raise SbomError("an SBOM needs the image name")
    timestamp = sbom_timestamp(created)
    catalogers = default_catalogers(limits)
    readers: list[FileReader[Any]] = [OSReleaseReader(limits), *catalogers]
    view = build_view(layers, readers, limits, progress)
    context = CatalogContext(distro=distro_from(view.found(0)), warn=view.warn)
    packages = catalog_all(catalogers, view.found, context)
    return write_bom(
        packages,
        image_name=image_name,
        image_digest=image_digest,
        platform=platform,
        distro=context.distro,
        timestamp=timestamp,
        warnings=view.warnings,
    )


def catalog_all(
    catalogers: Sequence[Cataloger[Any]], found: Callable[[int], list[Found[Any]]], context: CatalogContext
) -> list[Package]:
    """Run each cataloger over its captures; ``found(i)`` gives reader ``i``'s files (reader 0 is os-release)."""
    packages: list[Package] = []
    for index, cataloger in enumerate(catalogers, start=1):
        packages.extend(cataloger.catalog(found(index), context))
    return packages
