"""``copy`` between layout, archive and registry, with attachments, in every auth mode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chaingate.oci import media
from chaingate.oci.archive import ArchiveStore
from chaingate.oci.artifact import Blob, build_artifact, push_artifact
from chaingate.oci.client import Registries
from chaingate.oci.copy import copy_image, copy_reference, destination_tag
from chaingate.oci.interface import OCIError, Platform
from chaingate.oci.layout import LayoutStore
from chaingate.oci.reference import parse_image_reference
from chaingate.oci.registry import RegistryStore
from chaingate.oci.stores import open_image
from chaingate_testing.ociregistry import OCIRegistry
from chaingate_testing.registry import DockerRegistry

pytestmark = pytest.mark.registry


def with_attachments(layout: Path) -> tuple[str, list[str]]:
    """Attach a bundle to the image and a second one to the bundle (a referrer of a referrer)."""
    store = LayoutStore.open_directory(layout)
    subject = store.resolve("latest")
    first = build_artifact(subject, media.SIGSTORE_BUNDLE_V03, [Blob(media.SIGSTORE_BUNDLE_V03, b'{"a":1}')])
    push_artifact(store, first)
    nested = build_artifact(
        first.manifest.descriptor, "application/vnd.example.note", [Blob("text/plain", b"about the bundle")]
    )
    push_artifact(store, nested)
    return subject.digest, [first.manifest.digest, nested.manifest.digest]


@pytest.mark.parametrize("mode", ["anonymous", "htpasswd", "token"])
def test_round_trip_through_each_registry_mode(
    mode: str,
    docker_registry: DockerRegistry,
    htpasswd_registry: DockerRegistry,
    token_registry: DockerRegistry,
    make_registries: Callable[..., Registries],
    sample_layout: Path,
    tmp_path: Path,
) -> None:
    reg = {"anonymous": docker_registry, "htpasswd": htpasswd_registry, "token": token_registry}[mode]
    config = reg.docker_config(tmp_path / "docker") if mode != "anonymous" else None
    registries = make_registries(config)
    digest, attached = with_attachments(sample_layout)
    if reg.token_server is not None:
        reg.token_server.clear()
    dst = RegistryStore(registries.client(reg.host), f"copy/{mode}")
    result = copy_image(LayoutStore.open_directory(sample_layout), "latest", dst, tag="v1")
    assert result.digest == digest
    assert sorted(result.referrers) == sorted(attached)
    assert dst.resolve("v1").digest == digest
    if reg.token_server is not None:
        scopes = {s for t in reg.token_server.issued for s in t.scopes}
        assert f"repository:copy/{mode}:pull,push" in scopes
    # Back out into a fresh layout and an archive: the same image and the same attachments.
    back = LayoutStore.open_directory(tmp_path / "back", create=True)
    again = copy_image(dst, "v1", back, tag="v1")
    assert again.digest == digest and sorted(again.referrers) == sorted(attached)
    archive = ArchiveStore(tmp_path / "out.tar", write=True)
    copy_image(dst, digest, archive, tag="v1")
    archive.close()
    reread = ArchiveStore(tmp_path / "out.tar")
    assert reread.default_target() == digest
    assert len(reread.referrers(digest).referrers) == 1
    reread.close()


def test_no_credentials_for_a_protected_registry_is_a_clear_error(
    htpasswd_registry: DockerRegistry, registries: Registries, sample_layout: Path
) -> None:
    dst = RegistryStore(registries.client(htpasswd_registry.host), "copy/denied")
    with pytest.raises(OCIError, match="requires credentials"):
        copy_image(LayoutStore.open_directory(sample_layout), "latest", dst, tag="v1")


def test_cross_repository_mount(
    docker_registry: DockerRegistry, registries: Registries, sample_layout: Path
) -> None:
    client = registries.client(docker_registry.host)
    first = copy_image(
        LayoutStore.open_directory(sample_layout), "latest", RegistryStore(client, "mount/a"), tag="v1"
    )
    assert first.blobs_copied == 3  # config and two layers
    second = copy_image(RegistryStore(client, "mount/a"), "v1", RegistryStore(client, "mount/b"), tag="v1")
    assert second.blobs_mounted == 3 and second.blobs_copied == 0
    third = copy_image(RegistryStore(client, "mount/a"), "v1", RegistryStore(client, "mount/b"), tag="v2")
    assert third.blobs_present == 3


def test_multi_arch_copy_and_platform_selection(
    oci_registry: OCIRegistry, registries: Registries, multiarch_layout: Path
) -> None:
    src = LayoutStore.open_directory(multiarch_layout)
    index_digest = src.resolve("latest").digest
    dst = RegistryStore(registries.client(oci_registry.host), "multi/all")
    full = copy_image(src, "latest", dst, tag="v1")
    assert full.digest == index_digest and full.media_type == media.OCI_INDEX
    assert full.manifests == 3
    arm = copy_image(
        src,
        "latest",
        RegistryStore(registries.client(oci_registry.host), "multi/arm"),
        tag="v1",
        platform=Platform.parse("linux/arm64"),
    )
    assert arm.media_type == media.OCI_MANIFEST and arm.digest != index_digest
    with pytest.raises(
        OCIError, match=r"no image for platform linux/s390x \(available: linux/amd64, linux/arm64/v8\)"
    ):
        copy_image(src, "latest", dst, platform=Platform.parse("linux/s390x"))


@pytest.mark.parametrize(
    ("src", "dst", "tag"),
    [
        ("oci:/in:v2", "example.com/app:v1", "v1"),
        ("oci:/in:v2", f"example.com/app@sha256:{'a' * 64}", None),
        ("oci:/in:v2", "oci:/out:v3", "v3"),
        ("oci:/in:v2", "oci:/out", "v2"),
        ("example.com/app:v4", "oci:/out", "v4"),
        ("docker-archive:/in.tar", "oci:/out", "latest"),
        ("oci:/in:v2", "docker-archive:/out.tar", None),
    ],
)
def test_the_destination_tag_is_its_own_else_the_sources_else_latest_for_a_layout(
    src: str, dst: str, tag: str | None
) -> None:
    assert destination_tag(parse_image_reference(src), parse_image_reference(dst)) == tag


def test_a_destination_pinning_another_digest_fails_and_leaves_no_archive(
    multiarch_layout: Path, tmp_path: Path
) -> None:
    index_digest = LayoutStore.open_directory(multiarch_layout).resolve("latest").digest
    arm = Platform.parse("linux/arm64")
    registries = Registries()
    out = tmp_path / "arm-layout"
    with pytest.raises(OCIError, match=rf"destination pins {index_digest} but the copied image is sha256:"):
        copy_reference(f"oci:{multiarch_layout}", f"oci:{out}@{index_digest}", registries, platform=arm)
    archive = tmp_path / "arm.tar"
    with pytest.raises(OCIError):
        copy_reference(
            f"oci:{multiarch_layout}",
            f"docker-archive:{archive}",
            registries,
            platform=Platform.parse("linux/s390x"),
        )
    assert not archive.exists()
    result = copy_reference(f"oci:{multiarch_layout}", f"docker-archive:{archive}", registries, platform=arm)
    assert archive.exists() and result.digest != index_digest
    assert (
        open_image(f"docker-archive:{archive}", registries).store.resolve(result.digest).digest
        == result.digest
    )
