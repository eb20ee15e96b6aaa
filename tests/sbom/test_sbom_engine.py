"""generate_sbom end to end: the sample image, schema validity, determinism, timestamps and size."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from chaingate.sbom import LayerInput, SbomError, generate_sbom
from chaingate.sbom.engine import sbom_timestamp
from chaingate_testing.images import File, Symlink, sample_image

DIGEST = "sha256:" + "ab" * 32


def sample_layers() -> tuple[str, list[LayerInput]]:
    image = sample_image()
    return image.digest, [LayerInput(b.descriptor, lambda d=b.data: io.BytesIO(d)) for b in image.layers]


def test_sample_image_components_and_layers(helpers: Any) -> None:
    digest, layers = sample_layers()
    doc = json.loads(generate_sbom(layers, image_name="registry.example/sample", image_digest=digest))
    assert helpers.purls(doc) == [
        "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12",
        "pkg:deb/debian/ca-certificates@20230311?arch=all&distro=debian-12",
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc",
        "pkg:npm/ms@2.1.3",
        "pkg:pypi/six@1.16.0",
    ]  # left-pad was whited out by the second layer
    ms = helpers.packages(doc)[3]
    props = {p["name"]: p["value"] for p in ms["properties"]}
    assert props == {
        "chaingate:layer": layers[0].descriptor.digest,
        "chaingate:path": "app/node_modules/ms/package.json",
    }
    root = doc["metadata"]["component"]
    assert (root["type"], root["name"], root["version"], root["bom-ref"]) == (
        "container",
        "registry.example/sample",
        digest,
        digest,
    )
    assert doc["metadata"]["tools"]["components"] == [
        {"name": "chaingate", "type": "application", "version": "0.1.0"}
    ]
    assert doc["dependencies"][0] == {
        "ref": digest,
        "dependsOn": sorted(c["bom-ref"] for c in doc["components"]),
    }


def test_small_bom_passes_strict_schema_validation(layer: Any) -> None:
    digest, layers = sample_layers()
    extra = layer(File("app/lib/a.jar", b"not a zip"))  # a warning, in metadata properties
    out = generate_sbom([*layers, extra], image_name="sample", image_digest=digest, platform="linux/amd64")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out.decode()) is None
    assert json.loads(out)["specVersion"] == "1.6"


def test_same_layers_same_bytes_except_the_timestamp() -> None:
    digest, layers = sample_layers()
    first = json.loads(generate_sbom(layers, image_name="x", image_digest=digest))
    second = json.loads(generate_sbom(layers, image_name="x", image_digest=digest))
    first["metadata"].pop("timestamp")
    second["metadata"].pop("timestamp")
    assert first == second
    assert first["serialNumber"].startswith("urn:uuid:")
    fixed = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert generate_sbom(layers, image_name="x", image_digest=digest, created=fixed) == generate_sbom(
        layers, image_name="x", image_digest=digest, created=fixed
    )


def test_serial_number_follows_the_image_digest() -> None:
    _, layers = sample_layers()
    a = json.loads(generate_sbom(layers, image_name="x", image_digest="sha256:" + "1" * 64))
    b = json.loads(generate_sbom(layers, image_name="x", image_digest="sha256:" + "2" * 64))
    assert a["serialNumber"] != b["serialNumber"]


def test_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    doc = json.loads(generate_sbom([], image_name="x", image_digest=DIGEST))
    assert doc["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(SbomError, match="SOURCE_DATE_EPOCH"):
        generate_sbom([], image_name="x", image_digest=DIGEST)


def test_created_wins_and_is_normalised_to_utc_seconds() -> None:
    naive = datetime(2024, 2, 3, 4, 5, 6, 789)
    assert sbom_timestamp(naive, {"SOURCE_DATE_EPOCH": "0"}) == datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert sbom_timestamp(None, {}).tzinfo is UTC


def test_empty_image_is_a_valid_bom() -> None:
    out = generate_sbom([], image_name="scratch", image_digest=DIGEST)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out.decode()) is None
    doc = json.loads(out)
    assert doc["components"] == [] and doc["dependencies"] == []


def test_bad_arguments() -> None:
    with pytest.raises(SbomError, match="image digest"):
        generate_sbom([], image_name="x", image_digest="latest")
    with pytest.raises(SbomError, match="image name"):
        generate_sbom([], image_name="", image_digest=DIGEST)


def test_os_release_through_its_usual_symlink(layer: Any, sbom: Any, helpers: Any) -> None:
    doc = sbom(
        layer(
            File("usr/lib/os-release", b'ID=ubuntu\nVERSION_ID="24.04"\n'),
            Symlink("etc/os-release", "../usr/lib/os-release"),
            File(
                "var/lib/dpkg/status",
                b"Package: bash\nStatus: install ok installed\nVersion: 5.2\nArchitecture: amd64\n",
            ),
        ),
        platform="linux/arm64",
    )
    assert helpers.purls(doc) == ["pkg:deb/ubuntu/bash@5.2?arch=amd64&distro=ubuntu-24.04"]
    system = doc["components"][0]
    assert (system["type"], system["name"], system["version"]) == ("operating-system", "ubuntu", "24.04")
    assert helpers.prop(system, "chaingate:path") == "usr/lib/os-release"  # where the file is, not the link
    assert "os:ubuntu@24.04" in doc["dependencies"][0]["dependsOn"]
    root_props = {p["name"]: p["value"] for p in doc["metadata"]["component"]["properties"]}
    assert root_props == {"chaingate:distro": "ubuntu-24.04", "chaingate:platform": "linux/arm64"}


def test_five_thousand_components(layer: Any, sbom: Any, helpers: Any) -> None:
    """Runs, and stays linear: no timing assertion here (benchmarks measure speed)."""
    records = []
    for i in range(5000):
        depends = f"Depends: pkg{i - 1:04d}, pkg{(i * 7) % 5000:04d}\n" if i else ""
        records.append(
            f"Package: pkg{i:04d}\nStatus: install ok installed\nVersion: 1.{i}\nArchitecture: amd64\n{depends}"
        )
    status = "\n".join(records).encode()
    doc = sbom(layer(File("var/lib/dpkg/status", status)))
    assert len(helpers.packages(doc)) == 5000
    assert len(doc["dependencies"]) == 5001
    refs = {c["bom-ref"] for c in doc["components"]}
    assert all(set(d["dependsOn"]) <= refs for d in doc["dependencies"][1:])


DEB = b"Package: bash\nStatus: install ok installed\nVersion: 5.2\nArchitecture: amd64\n"
BASH = "pkg:deb/debian/bash@5.2?arch=amd64&distro=debian-12"
DEBIAN = File("etc/os-release", b'ID=debian\nVERSION_ID="12"\n')


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("var/lib/dpkg", "../../../../var/lib/.pkgdb"),  # more .. than the link is deep: clamped at /
        ("var/lib/dpkg", "/var/lib/.pkgdb"),
        ("var/lib/dpkg", "/../../var/lib/./.pkgdb/"),
        ("var", "../../../../srv/var-real/../var-real"),
    ],
)
def test_dpkg_database_behind_a_symlink_is_catalogued(
    layer: Any, sbom: Any, helpers: Any, link: str, target: str
) -> None:
    real = "srv/var-real/lib/dpkg" if link == "var" else "var/lib/.pkgdb"
    doc = sbom(layer(DEBIAN, File(f"{real}/status", DEB)), layer(Symlink(link, target)))
    assert helpers.purls(doc) == [BASH]
    assert helpers.prop(helpers.packages(doc)[0], "chaingate:path") == "var/lib/dpkg/status"
    assert helpers.warnings(doc) == []


def test_distroless_status_d_behind_a_symlink_is_catalogued(layer: Any, sbom: Any, helpers: Any) -> None:
    doc = sbom(
        layer(
            DEBIAN,
            File("var/lib/.pkgdb/status.d/bash", DEB),
            File("var/lib/.pkgdb/status.d/bash.md5sums", b"not a record"),
            Symlink("var/lib/dpkg", "../../../../var/lib/.pkgdb"),
        )
    )
    assert helpers.purls(doc) == [BASH]
    assert helpers.prop(helpers.packages(doc)[0], "chaingate:path") == "var/lib/dpkg/status.d/bash"


@pytest.mark.parametrize(
    ("links", "problem"),
    [
        ([Symlink("var/lib/dpkg", "loop"), Symlink("var/lib/loop", "../lib/loop")], "more than 40 symlinks"),
        ([Symlink("var/lib/dpkg", "/gone/db")], "symlink var/lib/dpkg -> /gone/db leads to nothing"),
    ],
)
def test_unresolvable_package_database_is_a_warning_in_the_sbom(
    layer: Any, sbom: Any, helpers: Any, links: list[Symlink], problem: str
) -> None:
    doc = sbom(layer(DEBIAN, File("var/lib/.pkgdb/status", DEB), *links))
    assert helpers.purls(doc) == []
    warned = [w for w in helpers.warnings(doc) if w.startswith("var/lib/dpkg/status (dpkg): not read: ")]
    assert len(warned) == 1 and problem in warned[0]
