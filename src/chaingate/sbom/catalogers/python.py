"""Installed Python distributions: ``*.dist-info/METADATA`` and ``*.egg-info`` anywhere in the image.

Names are normalised per PEP 503 (``Foo_Bar.baz`` -> ``foo-bar-baz``) because
that is the name advisories and package indexes use; the purl spec asks the same.
Dependencies come from ``Requires-Dist`` and are linked only to distributions
installed in the same directory (the same environment), skipping requirements
that only apply with an extra: what pip would have resolved, not what a
package could optionally use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from packageurl import PackageURL

from chaingate.sbom import licenses
from chaingate.sbom.catalogers.base import BytesCataloger, CatalogContext, Found, Package, text
from chaingate.sbom.interface import MiB

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical_name(name: str) -> str:
    """PEP 503 normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _environment(path: str) -> str:
    """The directory a distribution is installed into (``site-packages``), from its metadata path."""
    if path.endswith(("/METADATA", "/PKG-INFO")):
        path = path.rsplit("/", 1)[0]
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _header(message: Message, key: str) -> str:
    value = message.get(key)
    return str(value).strip() if value is not None else ""


def _licenses(message: Message) -> tuple[str, ...]:
    expression = _header(message, "License-Expression")
    if expression:
        value = licenses.normalise(expression)
        return (value,) if value else ()
    declared = _header(message, "License")
    if declared and licenses.spdx_id(declared):
        return (str(licenses.spdx_id(declared)),)
    from_classifiers = [licenses.from_classifier(str(c)) for c in message.get_all("Classifier") or []]
    found = tuple(dict.fromkeys(c for c in from_classifiers if c))
    if found:
        return found
    value = licenses.normalise(declared) if declared else None
    return (value,) if value else ()


class PythonCataloger(BytesCataloger):
    name = "python"

    @property
    def max_size(self) -> int:
        # METADATA carries the long description; a few MiB is already an outlier.
        return min(self.limits.max_file_bytes, 16 * MiB)

    def wants(self, path: str) -> bool:
        return path.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO", ".egg-info"))

    def catalog(self, files: Sequence[Found[bytes]], context: CatalogContext) -> list[Package]:
        packages: list[Package] = []
        requirements: list[tuple[Package, str, list[str]]] = []
        for found in files:
            message = HeaderParser(policy=compat32).parsestr(text(found.content))
            name, version = _header(message, "Name"), _header(message, "Version")
            if not name or not version:
                context.warn(f"{found.path}: Python metadata without Name and Version; skipped")
                continue
            normalised = canonical_name(name)
            package = Package(
                purl=PackageURL(type="pypi", name=normalised, version=version),
                name=normalised,
                version=version,
                layer=found.layer,
                path=found.path,
                licenses=_licenses(message),
            )
            packages.append(package)
            if found.path.endswith(".dist-info/METADATA"):
                requires = [str(r) for r in message.get_all("Requires-Dist") or []]
                requirements.append((package, _environment(found.path), requires))
        installed = {(_environment(p.path), p.name): p for p in packages}
        for package, environment, requires in requirements:
            deps: dict[int, Package] = {}
            for requirement in requires:
                requirement_part, _, marker = requirement.partition(";")
                if "extra" in marker:
                    continue
                m = _REQUIREMENT.match(requirement_part)
                target = installed.get((environment, canonical_name(m.group(1)))) if m else None
                if target is not None and target is not package:
                    deps[id(target)] = target
            package.depends_on = list(deps.values())
        return packages
