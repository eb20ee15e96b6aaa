"""The catalogers chaingate runs, one module per ecosystem, all behind :class:`base.Cataloger`."""

from __future__ import annotations

from typing import Any

from chaingate.sbom.catalogers.apk import ApkCataloger
from chaingate.sbom.catalogers.base import CatalogContext, Cataloger, Found, Package
from chaingate.sbom.catalogers.dpkg import DpkgCataloger
from chaingate.sbom.catalogers.golang import GoCataloger
from chaingate.sbom.catalogers.java import JavaCataloger
from chaingate.sbom.catalogers.npm import NpmCataloger
from chaingate.sbom.catalogers.python import PythonCataloger
from chaingate.sbom.catalogers.rpm import RpmCataloger
from chaingate.sbom.interface import DEFAULT_LIMITS, Limits

__all__ = ["CatalogContext", "Cataloger", "Found", "Package", "default_catalogers"]


def default_catalogers(limits: Limits = DEFAULT_LIMITS) -> list[Cataloger[Any]]:
    """Every cataloger, OS package databases first (the order only affects warnings, not the SBOM)."""
    return [
        DpkgCataloger(limits),
        ApkCataloger(limits),
        RpmCataloger(limits),
        PythonCataloger(limits),
        NpmCataloger(limits),
        GoCataloger(limits),
        JavaCataloger(limits),
    ]
