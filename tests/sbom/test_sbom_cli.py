"""``chaingate sbom`` end to end: every image store gives the same components, and failures leave nothing behind.

The engine's rules are proved on hand-fed layers in the other SBOM tests;
these run the command a CI step runs, so what they guard is the wiring a
library test cannot see: store resolution (layout, both docker archive
formats, a registry), platform selection, the output file, exit codes, and
the reproducibility a signed SBOM needs.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chaingate.cli import run
from chaingate.oci.interface import Platform
from chaingate.sbom import image as sbom_image
from chaingate.sbom.interface import DEFAULT_LIMITS, Limits, MiB
from chaingate_testing.images import (
    BuiltImage,
    Dir,
    File,
    Layer,
    OpaqueDir,
    Whiteout,
    build_image,
    build_index,
    write_docker_archive,
    write_layout,
)
from chaingate_testing.registry import DockerRegistry

OS_RELEASE = b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
SITE = "usr/lib/python3/dist-packages"


def dpkg_entry(name: str, version: str, arch: str, status: str = "install ok installed") -> bytes:
    return f"Package: {name}\nStatus: {status}\nArchitecture: {arch}\nVersion: {version}\n\n".encode()


def dist_info(name: str, version: str) -> list[File]:
    base = f"{SITE}/{name}-{version}.dist-info"
    return [File(f"{base}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode())]


def npm_package(name: str, version: str) -> File:
    doc = {"name": name, "version": version, "license": "MIT"}
    return File(f"app/node_modules/{name}/package.json", json.dumps(doc).encode())


def jar(group: str, artifact: str, version: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            zipfile.ZipInfo("META-INF/MANIFEST.MF", (2024, 1, 1, 0, 0, 0)), b"Manifest-Version: 1.0\r\n"
        )
        props = f"groupId={group}\nartifactId={artifact}\nversion={version}\n".encode()
        zf.writestr(
            zipfile.ZipInfo(f"META-INF/maven/{group}/{artifact}/pom.properties", (2024, 1, 1, 0, 0, 0)), props
        )
    return buf.getvalue()


def app_image(arch: str = "amd64") -> BuiltImage:
    """Four ecosystems over three layers, with a removed deb, a whiteout and an opaque directory.

    What a later layer hides is named ``hidden-*`` so a test can tell at a
    glance that no store leaks lower-layer content into the SBOM.
    """
    base = Layer(
        [
            File("etc/os-release", OS_RELEASE),
            File(
                "var/lib/dpkg/status",
                dpkg_entry("libc6", "2.36-9+deb12u4", arch)
                + dpkg_entry("procps", "2:4.0.2-3", arch, "deinstall ok config-files"),
            ),
            *dist_info("requests", "2.32.3"),
            *dist_info("hidden-six", "1.16.0"),
            npm_package("ms", "2.1.3"),
            File("opt/lib/hidden-old-1.0.jar", jar("com.example", "hidden-old", "1.0")),
        ],
        compression="zstd",
    )
    app = Layer(
        [File("opt/lib/core-2.0.jar", jar("com.example", "core", "2.0")), npm_package("debug", "4.3.7")]
    )
    cleanup = Layer(
        [
            Dir(SITE),
            Whiteout(f"{SITE}/hidden-six-1.16.0.dist-info"),
            Dir("opt"),
            Dir("opt/lib"),
            OpaqueDir("opt/lib"),
            File("opt/lib/core-2.0.jar", jar("com.example", "core", "2.0")),
        ],
        compression="none",
    )
    return build_image([base, app, cleanup], platform=Platform("linux", arch))


EXPECTED = {
    ("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12", "var/lib/dpkg/status"),
    ("pkg:maven/com.example/core@2.0", "opt/lib/core-2.0.jar"),
    ("pkg:npm/debug@4.3.7", "app/node_modules/debug/package.json"),
    ("pkg:npm/ms@2.1.3", "app/node_modules/ms/package.json"),
    ("pkg:pypi/requests@2.32.3", f"{SITE}/requests-2.32.3.dist-info/METADATA"),
}


def components(document: dict[str, Any]) -> set[tuple[str, str]]:
    """Each component as (purl, path): what must not depend on the store (layer digests may: legacy archives)."""
    out = set()
    for c in document["components"]:
        if c["type"] == "operating-system":
            continue
        path = next(p["value"] for p in c.get("properties", []) if p["name"] == "chaingate:path")
        out.add((c["purl"], path))
    return out


def sbom(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert run(["sbom", *args]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


@pytest.fixture
def image() -> BuiltImage:
    return app_image()


@pytest.fixture
def layout(tmp_path: Path, image: BuiltImage) -> Path:
    return write_layout(tmp_path / "layout", image, tag="v1")


@pytest.mark.parametrize("store", ["oci", "docker-archive-legacy", "docker-archive-oci"])
def test_every_local_store_gives_the_same_components(
    store: str, image: BuiltImage, layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if store == "oci":
        ref = f"oci:{layout}:v1"
    else:
        archive = write_docker_archive(
            tmp_path / "image.tar", image, repo_tags=("app:v1",), oci_layout=store.endswith("oci")
        )
        ref = f"docker-archive:{archive}"
    document = sbom([ref], capsys)
    assert components(document) == EXPECTED
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"
    if store != "docker-archive-legacy":  # a legacy archive has no manifest: its digest is synthesised
        assert document["metadata"]["component"]["version"] == image.digest


@pytest.mark.registry
def test_registry_reference_gives_the_same_components(
    layout: Path,
    image: BuiltImage,
    docker_registry: DockerRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    dest = f"{docker_registry.host}/sbom/app:v1"
    assert run(["copy", f"oci:{layout}:v1", dest]) == 0
    capsys.readouterr()
    budgets: list[int] = []
    real = sbom_image.generate_sbom

    def recording(*args: Any, limits: Limits, **kwargs: Any) -> bytes:
        budgets.append(limits.readahead_bytes)
        return real(*args, limits=limits, **kwargs)

    monkeypatch.setattr(sbom_image, "generate_sbom", recording)
    document = sbom([dest], capsys)
    assert budgets == [0]  # registry layers are read one after the other: no HTTP response idles
    assert sbom([f"oci:{layout}:v1"], capsys) and budgets == [0, DEFAULT_LIMITS.readahead_bytes]
    assert components(document) == EXPECTED
    assert document["metadata"]["component"]["version"] == image.digest
    assert document["metadata"]["component"]["name"] == f"{docker_registry.host}/sbom/app"


def test_output_file_is_valid_cyclonedx(
    layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    out = tmp_path / "sbom.cdx.json"
    assert run(["sbom", f"oci:{layout}:v1", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"to {out}" in captured.err
    text = out.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    assert components(json.loads(text)) == EXPECTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout", "sbom.cdx.json"]


@pytest.fixture
def multiarch(tmp_path: Path) -> tuple[Path, dict[str, BuiltImage]]:
    images = {arch: app_image(arch) for arch in ("amd64", "arm64")}
    return write_layout(tmp_path / "multi", build_index(list(images.values())), tag="v1"), images


def test_multiarch_defaults_to_linux_amd64(
    multiarch: tuple[Path, dict[str, BuiltImage]], capsys: pytest.CaptureFixture[str]
) -> None:
    layout, images = multiarch
    document = sbom([f"oci:{layout}:v1"], capsys)
    root = document["metadata"]["component"]
    assert root["version"] == images["amd64"].digest
    assert {"name": "chaingate:platform", "value": "linux/amd64"} in root["properties"]
    assert any("arch=amd64" in purl for purl, _ in components(document))


def test_multiarch_with_platform_describes_that_image(
    multiarch: tuple[Path, dict[str, BuiltImage]], capsys: pytest.CaptureFixture[str]
) -> None:
    layout, images = multiarch
    document = sbom(["--platform", "linux/arm64", f"oci:{layout}:v1"], capsys)
    root = document["metadata"]["component"]
    assert root["version"] == images["arm64"].digest
    assert {"name": "chaingate:platform", "value": "linux/arm64"} in root["properties"]
    debs = {purl for purl, _ in components(document) if purl.startswith("pkg:deb/")}
    assert debs == {"pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=arm64&distro=debian-12"}


def test_multiarch_without_amd64_needs_platform(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = build_index([app_image("arm64"), app_image("s390x")])
    layout = write_layout(tmp_path / "multi", index, tag="v1")
    with pytest.raises(SystemExit) as exc:
        run(["sbom", f"oci:{layout}:v1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("chaingate: error: ") and "pass --platform" in err
    assert "linux/arm64" in err and "linux/s390x" in err


@pytest.mark.parametrize("damage", ["flipped-byte", "truncated"])
def test_corrupt_layer_fails_with_one_line_and_writes_nothing(
    damage: str, layout: Path, image: BuiltImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged blob is caught by digest or by decompression, never turned into a partial SBOM."""
    blob = layout / "blobs" / "sha256" / image.layers[1].digest.split(":", 1)[1]
    data = bytearray(blob.read_bytes())
    if damage == "flipped-byte":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) // 2 :]
    blob.write_bytes(bytes(data))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(SystemExit) as exc:
        run(["sbom", f"oci:{layout}:v1", "-o", str(out_dir / "sbom.json")])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("chaingate:")]
    assert len(errors) == 1 and errors[0].startswith("chaingate: error: "), captured.err
    assert "Traceback" not in captured.err
    assert image.layers[1].digest in errors[0]
    assert list(out_dir.iterdir()) == []
    assert captured.out == ""


def _image_ref(store: str, image: BuiltImage, directory: Path) -> str:
    if store == "oci":
        return f"oci:{write_layout(directory / 'layout', image, tag='v1')}:v1"
    archive = write_docker_archive(
        directory / "image.tar", image, repo_tags=("app:v1",), oci_layout=store.endswith("oci")
    )
    return f"docker-archive:{archive}"


@pytest.mark.parametrize("store", ["oci", "docker-archive-legacy", "docker-archive-oci"])
def test_inflate_budget_covers_all_layers_of_one_image(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two layers of 600 KiB each fit a 1 MiB budget alone, not together: the budget is the image's."""
    real = sbom_image.generate_sbom

    def small_budget(*args: Any, limits: Limits, **kwargs: Any) -> bytes:
        return real(*args, limits=replace(limits, max_total_bytes=1 * MiB), **kwargs)

    monkeypatch.setattr(sbom_image, "generate_sbom", small_budget)
    layers = [Layer([File(f"data/{name}", bytes(600 * 1024))]) for name in ("bottom", "top")]
    for alone in layers:
        image = build_image([alone])
        assert run(["sbom", _image_ref(store, image, tmp_path / image.digest[7:19])]) == 0
    capsys.readouterr()
    image = build_image(layers)
    with pytest.raises(SystemExit) as exc:
        run(["sbom", _image_ref(store, image, tmp_path / "both")])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("chaingate:")]
    assert len(errors) == 1 and "Traceback" not in captured.err, captured.err
    # Layers are read top first, so the bottom one is where the sum goes over.
    bottom = image.diff_ids[0] if store == "docker-archive-legacy" else image.layers[0].digest
    assert errors[0] == (
        f"chaingate: error: layer {bottom}: the image decompresses to more than {1 * MiB} bytes in all"
    )
    assert captured.out == ""
    assert [t for t in threading.enumerate() if t.name == "sbom-layer-prefetch"] == []


def test_source_date_epoch_makes_output_byte_identical(
    layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    outputs = []
    for name in ("first.json", "second.json"):
        assert run(["sbom", f"oci:{layout}:v1", "-o", str(tmp_path / name)]) == 0
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    capsys.readouterr()


def test_a_local_image_needs_no_http_stack(layout: Path, tmp_path: Path) -> None:
    """requests and urllib3 were a third of the start-up of an SBOM that never talks to a registry."""
    code = (
        "import sys\n"
        "from chaingate.cli import run\n"
        f"assert run(['sbom', 'oci:{layout}:v1', '-o', {str(tmp_path / 'out.json')!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'urllib3')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
    assert json.loads((tmp_path / "out.json").read_text())["components"]
