"""CycloneDX 1.6 JSON for the packages found, built with cyclonedx-python-lib in linear time.

The library's own document path does not scale to real images: ``Bom.validate``
and ``register_dependency`` are quadratic, and a ``Bom`` keeps components in a
SortedSet whose comparisons rebuild a thirty-field tuple each time (measured:
4 s for 5,000 components before serialising a byte). So the library models and
serialises each piece, and this module does what it would have checked and
ordered, with sets and one sort:

* components are library ``Component`` objects serialised one by one
  (``as_json`` with the 1.6 view), ordered by purl, then path, then layer;
* dependencies are written as the schema's two-key objects, their references
  checked against the set of bom-refs;
* ``metadata``, ``serialNumber`` and ``version`` come from a component-less
  ``Bom`` serialised by the library.

Bom-refs are the purl when it is unique in the document, else the purl plus
``#`` and the path (then ``#2``, ``#3`` in that order for exact duplicates), so
the same image always yields the same references. The serial number is a
UUIDv5 of the image digest and platform. Only ``metadata.timestamp`` varies,
and ``SOURCE_DATE_EPOCH`` (or ``created``) fixes it.
"""

from __future__ import annotations

import gc
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense, License, LicenseExpression
from cyclonedx.model.tool import ToolRepository
from cyclonedx.schema.schema import SchemaVersion1Dot6
from cyclonedx.spdx import fixup_id, is_expression

from chaingate import __version__
from chaingate.sbom.catalogers.base import Distro, Package
from chaingate.sbom.interface import SbomError

SCHEMA_URI = "http://cyclonedx.org/schema/bom-1.6.schema.json"
PROPERTY_LAYER = "chaingate:layer"
PROPERTY_PATH = "chaingate:path"
PROPERTY_WARNING = "chaingate:warning"
_SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://chaingate.dev/sbom/serial-number")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while tens of thousands of model objects are created.

    None of them form cycles worth collecting, but every allocation burst
    triggers full scans of the heap: measured, this triples the cost of building
    5,000 components. The previous state is restored, so callers that run with
    the collector disabled keep it that way.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _clean(value: str) -> str:
    """Text safe for a UTF-8 document: tar names keep undecodable bytes as surrogates."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _serialise(obj: Any) -> dict[str, Any]:
    # py-serializable adds as_json when the class is decorated, which type checkers cannot see.
    data: dict[str, Any] = json.loads(obj.as_json(view_=SchemaVersion1Dot6))
    return data


class _Licenses:
    """License model objects per distinct license tuple: packages repeat a few licenses thousands of times."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, ...], list[License]] = {}

    def __call__(self, values: tuple[str, ...]) -> list[License]:
        found = self._cache.get(values)
        if found is None:
            found = self._cache[values] = self._make(values)
        return found

    @staticmethod
    def _make(values: tuple[str, ...]) -> list[License]:
        unique = list(dict.fromkeys(_clean(v) for v in values if v.strip()))
        if len(unique) == 1 and not fixup_id(unique[0]) and is_expression(unique[0]):
            return [LicenseExpression(unique[0])]
        licenses: list[License] = []
        for value in unique:
            spdx = fixup_id(value)
            # CycloneDX allows one expression or a list of licenses, never both: in a list an
            # expression is kept verbatim as a name.
            licenses.append(DisjunctiveLicense(id=spdx) if spdx else DisjunctiveLicense(name=value))
        return licenses


def _bom_refs(ordered: Sequence[tuple[str, Package]]) -> list[str]:
    counts: dict[str, int] = {}
    for purl, _ in ordered:
        counts[purl] = counts.get(purl, 0) + 1
    refs: list[str] = []
    used: set[str] = set()
    for purl, package in ordered:
        ref = purl if counts[purl] == 1 else f"{purl}#{_clean(package.path)}"
        base, n = ref, 1
        while ref in used:
            n += 1
            ref = f"{base}#{n}"
        used.add(ref)
        refs.append(ref)
    return refs


def _component(package: Package, ref: str, licenses: _Licenses) -> Component:
    properties = [
        Property(name=PROPERTY_LAYER, value=package.layer),
        Property(name=PROPERTY_PATH, value=_clean(package.path)),
        *(Property(name=k, value=_clean(v)) for k, v in package.properties),
    ]
    return Component(
        type=ComponentType.APPLICATION if package.component_type == "application" else ComponentType.LIBRARY,
        name=_clean(package.name),
        group=_clean(package.group) if package.group else None,
        version=_clean(package.version) if package.version else None,
        purl=package.purl,
        bom_ref=ref,
        licenses=licenses(package.licenses),
        properties=properties,
    )


def write_bom(
    packages: Sequence[Package],
    *,
    image_name: str,
    image_digest: str,
    platform: str | None,
    distro: Distro | None,
    timestamp: datetime,
    warnings: Sequence[str] = (),
) -> bytes:
    """The CycloneDX 1.6 JSON document describing the image, as UTF-8 bytes."""
    with _gc_paused():
        ordered = sorted(
            ((p.purl.to_string(), p) for p in packages),
            key=lambda item: (item[0], item[1].path, item[1].layer),
        )
        refs = _bom_refs(ordered)
        ref_of = {id(package): ref for (_, package), ref in zip(ordered, refs, strict=True)}
        licenses = _Licenses()
        components = [
            _serialise(_component(package, ref, licenses))
            for (_, package), ref in zip(ordered, refs, strict=True)
        ]
        contained = list(refs)
        if distro is not None:
            os_component = _operating_system(distro)
            components.insert(0, _serialise(os_component))
            contained.append(str(os_component.bom_ref.value))
        dependencies = _dependencies([p for _, p in ordered], refs, ref_of, image_digest, contained)
        skeleton = _serialise(_skeleton(image_name, image_digest, platform, distro, timestamp, warnings))
    document: dict[str, Any] = {
        "$schema": SCHEMA_URI,
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": skeleton["serialNumber"],
        "version": skeleton.get("version", 1),
        "metadata": skeleton["metadata"],
        "components": components,
        "dependencies": dependencies,
    }
    return (json.dumps(document, ensure_ascii=False, indent=None, separators=(",", ":")) + "\n").encode(
        "utf-8", "replace"
    )


def _dependencies(
    ordered: Sequence[Package],
    refs: Sequence[str],
    ref_of: dict[int, str],
    image_digest: str,
    contained: Sequence[str],
) -> list[dict[str, Any]]:
    """The dependency graph: the image contains every component; packages depend as their databases say.

    Written as the two-key objects the schema defines rather than through the
    library's ``Dependency``, whose SortedSet of children costs a fifth of the
    whole document at 5,000 components (a root with 5,000 children alone costs
    more than serialising every component). Every reference is checked against
    the set of bom-refs, which is the check ``Bom.validate`` makes quadratically.
    """
    known = set(refs)
    every = set(contained)
    if image_digest in every or len(every) != len(contained):
        raise SbomError(f"bom-refs collide with each other or with the image digest {image_digest}")
    out: list[dict[str, Any]] = [{"ref": image_digest, "dependsOn": sorted(every)}] if every else []
    for package, ref in zip(ordered, refs, strict=True):
        if package.depends_on is None:
            continue
        targets: set[str] = set()
        for dep in package.depends_on:
            dep_ref = ref_of.get(id(dep))
            if dep_ref is None or dep_ref not in known:
                raise SbomError(
                    f"{ref}: depends on a package that is not in the SBOM ({dep.purl.to_string()})"
                )
            if dep_ref != ref:
                targets.add(dep_ref)
        out.append({"ref": ref, "dependsOn": sorted(targets)})
    return out


def _operating_system(distro: Distro) -> Component:
    """The distribution as a component, where syft, trivy and the scanners reading their SBOMs look for it.

    Name and version are os-release's ID and VERSION_ID (what syft's decoder,
    and so grype, read back); ID_LIKE is kept because scanners fall back on it
    for derivatives they have no feed for (Rocky as RHEL, Mint as Ubuntu).
    """
    version = distro.version_id or distro.codename
    properties = [Property(name="chaingate:distro:id", value=_clean(distro.id))]
    for name, value in (
        ("chaingate:distro:versionID", distro.version_id),
        ("chaingate:distro:versionCodename", distro.codename),
        ("chaingate:distro:idLike", " ".join(distro.id_like)),
        (PROPERTY_LAYER, distro.layer),
        (PROPERTY_PATH, distro.path),
    ):
        if value:
            properties.append(Property(name=name, value=_clean(value)))
    return Component(
        type=ComponentType.OPERATING_SYSTEM,
        name=_clean(distro.id),
        version=_clean(version) if version else None,
        description=_clean(distro.pretty_name) if distro.pretty_name else None,
        bom_ref=_clean(f"os:{distro.id}@{version}" if version else f"os:{distro.id}"),
        properties=properties,
    )


def _skeleton(
    image_name: str,
    image_digest: str,
    platform: str | None,
    distro: Distro | None,
    timestamp: datetime,
    warnings: Sequence[str],
) -> Bom:
    root_properties = []
    if platform:
        root_properties.append(Property(name="chaingate:platform", value=platform))
    if distro:
        root_properties.append(Property(name="chaingate:distro", value=distro.qualifier()))
    root = Component(
        type=ComponentType.CONTAINER,
        name=_clean(image_name),
        version=image_digest,
        bom_ref=image_digest,
        properties=root_properties,
    )
    tool = Component(type=ComponentType.APPLICATION, name="chaingate", version=__version__)
    metadata = BomMetaData(
        timestamp=timestamp,
        tools=ToolRepository(components=[tool]),
        component=root,
        properties=[Property(name=PROPERTY_WARNING, value=_clean(w)) for w in sorted(set(warnings))],
    )
    serial = uuid.uuid5(_SERIAL_NAMESPACE, f"{image_digest}|{platform or ''}")
    return Bom(serial_number=serial, metadata=metadata)
