"""Fixtures for the SBOM tests: tiny layers built in memory, fed through digest-verifying streams.

Layers come from :mod:`chaingate_testing.images`, so they are real tar blobs
(gzip, zstd or plain) exactly as a store would hand them over; every
``open()`` is counted, which is how the tests check that each layer is
streamed once.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import pytest

from chaingate.oci.digest import VerifiedReader
from chaingate.sbom import LayerInput, Limits, generate_sbom
from chaingate.sbom.catalogers.base import CatalogContext, Distro, Found
from chaingate_testing.images import BuiltBlob, Entry, Layer, build_layer

IMAGE_DIGEST = "sha256:" + "ab" * 32
CREATED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
LAYER = "sha256:" + "11" * 32


@dataclass
class Opens:
    """How many times each layer was opened, by digest."""

    counts: dict[str, int] = field(default_factory=dict)

    def opener(self, blob: BuiltBlob) -> Callable[[], IO[bytes]]:
        def open_blob() -> IO[bytes]:
            self.counts[blob.digest] = self.counts.get(blob.digest, 0) + 1
            return VerifiedReader(
                io.BytesIO(blob.data), blob.digest, len(blob.data), what=f"layer {blob.digest}"
            )

        return open_blob


@pytest.fixture
def opens() -> Opens:
    return Opens()


@pytest.fixture
def layer(opens: Opens) -> Callable[..., LayerInput]:
    """``layer(File(...), Whiteout(...), compression="zstd")`` -> a LayerInput of those entries."""

    def make(*entries: Entry, compression: str = "gzip") -> LayerInput:
        blob, _ = build_layer(Layer(list(entries), compression=compression))  # type: ignore[arg-type]
        return LayerInput(blob.descriptor, opens.opener(blob))

    return make


@pytest.fixture
def sbom() -> Callable[..., dict[str, Any]]:
    """Run generate_sbom over layers (bottom first) and return the parsed document."""

    def run(*layers: LayerInput, limits: Limits | None = None, **kwargs: Any) -> dict[str, Any]:
        options: dict[str, Any] = {"image_name": "registry.example/team/app", "image_digest": IMAGE_DIGEST}
        options["created"] = CREATED
        options.update(kwargs)
        if limits is not None:
            options["limits"] = limits
        doc: dict[str, Any] = json.loads(generate_sbom(list(layers), **options))
        return doc

    return run


def packages(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The components that are packages: everything but the operating system."""
    return [c for c in doc["components"] if c["type"] != "operating-system"]


def purls(doc: dict[str, Any]) -> list[str]:
    return [c["purl"] for c in packages(doc)]


def prop(component: dict[str, Any], name: str) -> str | None:
    return next((p["value"] for p in component.get("properties", []) if p["name"] == name), None)


def warnings(doc: dict[str, Any]) -> list[str]:
    return [p["value"] for p in doc["metadata"].get("properties", []) if p["name"] == "chaingate:warning"]


def found(path: str, content: Any, layer: str = LAYER) -> Found[Any]:
    return Found(path, layer, content)


def context(distro: Distro | None = None, notes: list[str] | None = None) -> CatalogContext:
    sink = notes if notes is not None else []
    return CatalogContext(distro=distro, warn=sink.append)


def dependencies(doc: dict[str, Any]) -> dict[str, list[str]]:
    return {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}


def names(components: Sequence[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in components]


@pytest.fixture
def helpers() -> Any:
    """The module-level helpers, for tests in subdirectories that cannot import this conftest."""
    return _Helpers()


class _Helpers:
    packages = staticmethod(packages)
    purls = staticmethod(purls)
    prop = staticmethod(prop)
    warnings = staticmethod(warnings)
    found = staticmethod(found)
    context = staticmethod(context)
    dependencies = staticmethod(dependencies)
    names = staticmethod(names)
