"""The CycloneDX writer: references, licenses, order, dependencies, and the schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from chaingate.sbom import SbomError
from chaingate.sbom.bom import write_bom
from chaingate.sbom.catalogers.base import Distro, Package
from chaingate.sbom.licenses import from_classifier, normalise, spdx_id
from chaingate.sbom.osrelease import parse_os_release

DIGEST = "sha256:" + "cd" * 32
LAYER = "sha256:" + "ef" * 32
WHEN = datetime(2024, 6, 1, tzinfo=UTC)


def pkg(name: str, version: str = "1.0", path: str = "p", **kwargs: Any) -> Package:
    return Package(PackageURL(type="npm", name=name, version=version), name, version, LAYER, path, **kwargs)


def write(
    packages: list[Package], warnings: tuple[str, ...] = (), distro: Distro | None = None
) -> tuple[bytes, dict[str, Any]]:
    out = write_bom(
        packages,
        image_name="registry.example/app",
        image_digest=DIGEST,
        platform=None,
        distro=distro,
        timestamp=WHEN,
        warnings=warnings,
    )
    return out, json.loads(out)


def test_components_are_ordered_by_purl_then_path_with_unique_refs() -> None:
    packages = [pkg("zlib"), pkg("abc", path="b"), pkg("abc", path="a"), pkg("abc", path="a"), pkg("mid")]
    out, doc = write(packages)
    assert [(c["purl"], c["bom-ref"]) for c in doc["components"]] == [
        ("pkg:npm/abc@1.0", "pkg:npm/abc@1.0#a"),
        ("pkg:npm/abc@1.0", "pkg:npm/abc@1.0#a#2"),
        ("pkg:npm/abc@1.0", "pkg:npm/abc@1.0#b"),
        ("pkg:npm/mid@1.0", "pkg:npm/mid@1.0"),
        ("pkg:npm/zlib@1.0", "pkg:npm/zlib@1.0"),
    ]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out.decode()) is None


def test_licenses_ids_names_and_expressions() -> None:
    packages = [
        pkg("a", licenses=("mit",)),
        pkg("b", licenses=("MIT OR Apache-2.0",)),
        pkg("c", licenses=("MIT", "Some Custom License")),
        pkg("d", licenses=("MIT AND BSD-3-Clause", "GPL-2.0-only")),
    ]
    out, doc = write(packages)
    licenses = {c["name"]: c["licenses"] for c in doc["components"]}
    assert licenses["a"] == [{"license": {"id": "MIT"}}]
    assert licenses["b"] == [{"expression": "MIT OR Apache-2.0"}]
    assert {"license": {"name": "Some Custom License"}} in licenses["c"]
    # One expression among several licenses: the schema allows no mix, so it is kept as a name.
    assert {"license": {"name": "MIT AND BSD-3-Clause"}} in licenses["d"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out.decode()) is None


def test_dependencies_are_checked_and_sorted() -> None:
    a, b, c = pkg("a"), pkg("b"), pkg("c")
    a.depends_on = [c, b, a]
    b.depends_on = []
    _, doc = write([c, b, a])
    assert doc["dependencies"] == [
        {"ref": DIGEST, "dependsOn": ["pkg:npm/a@1.0", "pkg:npm/b@1.0", "pkg:npm/c@1.0"]},
        {"ref": "pkg:npm/a@1.0", "dependsOn": ["pkg:npm/b@1.0", "pkg:npm/c@1.0"]},
        {"ref": "pkg:npm/b@1.0", "dependsOn": []},
    ]
    a.depends_on = [pkg("stranger")]
    with pytest.raises(SbomError, match="not in the SBOM"):
        write([a])


def test_warnings_and_undecodable_paths() -> None:
    odd = pkg("odd", path="usr/lib/caf\udce9/x")
    out, doc = write([odd], warnings=("b problem", "a problem", "b problem"))
    assert [p["value"] for p in doc["metadata"]["properties"]] == ["a problem", "b problem"]
    assert {"name": "chaingate:path", "value": "usr/lib/caf\ufffd/x"} in doc["components"][0]["properties"]
    assert out.endswith(b"\n")


def test_the_operating_system_is_a_component() -> None:
    rocky = Distro(
        "rocky",
        "9.3",
        pretty_name="Rocky Linux 9.3 (Blue Onyx)",
        id_like=("rhel", "centos", "fedora"),
        path="usr/lib/os-release",
        layer=LAYER,
    )
    out, doc = write([pkg("a")], distro=rocky)
    assert doc["components"][0] == {
        "type": "operating-system",
        "bom-ref": "os:rocky@9.3",
        "name": "rocky",
        "version": "9.3",
        "description": "Rocky Linux 9.3 (Blue Onyx)",
        "properties": [
            {"name": "chaingate:distro:id", "value": "rocky"},
            {"name": "chaingate:distro:idLike", "value": "rhel centos fedora"},
            {"name": "chaingate:distro:versionID", "value": "9.3"},
            {"name": "chaingate:layer", "value": LAYER},
            {"name": "chaingate:path", "value": "usr/lib/os-release"},
        ],
    }
    assert doc["dependencies"][0] == {"ref": DIGEST, "dependsOn": ["os:rocky@9.3", "pkg:npm/a@1.0"]}
    assert doc["metadata"]["component"]["properties"] == [{"name": "chaingate:distro", "value": "rocky-9.3"}]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out.decode()) is None
    # A rolling release has only a codename; an image without os-release has no such component.
    _, sid = write([], distro=Distro("debian", None, "trixie"))
    assert [(c["bom-ref"], c["version"]) for c in sid["components"]] == [("os:debian@trixie", "trixie")]
    assert write([pkg("a")])[1]["components"][0]["type"] == "library"


def test_spdx_mapping() -> None:
    assert spdx_id("apache-2.0") == "Apache-2.0"
    assert spdx_id("Apache License, Version 2.0") == "Apache-2.0"
    assert spdx_id("GPLv2+") == "GPL-2.0-or-later"
    assert spdx_id("BSD") is None
    assert normalise("BSD") == "BSD"
    assert normalise("UNKNOWN") is None
    assert normalise("MIT OR (Apache-2.0 AND BSD-2-Clause)") == "MIT OR (Apache-2.0 AND BSD-2-Clause)"
    # Fedora's legacy rpm tags and npm's lower-case operators become expressions when every operand maps.
    assert normalise("GPLv2+ and MIT") == "GPL-2.0-or-later AND MIT"
    assert (
        normalise("(GPLv2+ or LGPLv3+) and ASL 2.0")
        == "(GPL-2.0-or-later OR LGPL-3.0-or-later) AND Apache-2.0"
    )
    assert normalise("mit or apache-2.0") == "MIT OR Apache-2.0"
    assert normalise("GPLv2+ and LGPLv2+ with exceptions") == "GPLv2+ and LGPLv2+ with exceptions"
    assert normalise("BSD and MIT") == "BSD and MIT"
    assert normalise("(MIT or") == "(MIT or"
    assert (
        from_classifier("License :: OSI Approved :: GNU General Public License v3 (GPLv3)") == "GPL-3.0-only"
    )
    assert from_classifier("License :: OSI Approved :: Eclipse Public License 2.0 (EPL-2.0)") == "EPL-2.0"
    assert from_classifier("License :: OSI Approved :: BSD License") == "BSD License"
    assert from_classifier("License :: OSI Approved") is None
    assert from_classifier("Programming Language :: Python") is None


def test_os_release_parsing() -> None:
    fields = parse_os_release(
        b'# comment\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nBAD="x\n'
    )
    assert fields == {
        "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
        "ID": "debian",
        "VERSION_ID": "12",
        "BAD": "x",
    }
    assert Distro("alpine", "3.19.1").qualifier(major_minor=True) == "alpine-3.19"
    assert Distro("alpine", "3.19.1").qualifier() == "alpine-3.19.1"
    assert Distro("debian").qualifier() == "debian"
