"""OCI layouts and docker archives as image stores, checked against skopeo where it can read them."""

from __future__ import annotations

import gzip
import json
import lzma
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from chaingate.oci import media
from chaingate.oci.archive import ArchiveStore
from chaingate.oci.artifact import Blob, build_artifact, push_artifact
from chaingate.oci.copy import copy_image
from chaingate.oci.digest import sha256_digest
from chaingate.oci.errors import DigestMismatch, NotFound, OCIError
from chaingate.oci.layout import LayoutStore, blob_path
from chaingate_testing.images import File, Layer, build_image, write_docker_archive, write_layout

SKOPEO = shutil.which("skopeo")


def image(marker: bytes = b"x"):  # type: ignore[no-untyped-def]
    return build_image(
        [Layer([File("etc/marker", marker)]), Layer([File("app/x", b"1")], compression="none")]
    )


def test_layout_default_target_tags_and_errors(tmp_path: Path) -> None:
    img = image()
    layout = LayoutStore.open_directory(write_layout(tmp_path / "l", img, tag="v1"))
    assert layout.default_target() == img.digest
    assert layout.resolve("v1").digest == img.digest
    assert layout.tags() == ["v1"]
    with pytest.raises(NotFound, match="no tag 'v2'") as exc:
        layout.resolve("v2")
    assert exc.value.hint is not None and "v1" in exc.value.hint
    write_layout(tmp_path / "l", image(b"y"), tag="v2")
    with pytest.raises(OCIError, match="holds 2 images; name one"):
        layout.default_target()
    with pytest.raises(NotFound, match="not an OCI image layout"):
        LayoutStore.open_directory(tmp_path / "nothing")


def test_layout_blob_tampering_is_detected(tmp_path: Path) -> None:
    img = image()
    root = write_layout(tmp_path / "l", img)
    layer = img.layers[0].descriptor
    path = root / blob_path(layer.digest)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch), LayoutStore.open_directory(root).open_blob(layer) as f:
        f.read()
    manifest_path = root / blob_path(img.digest)
    manifest_path.write_bytes(manifest_path.read_bytes() + b" ")
    with pytest.raises(DigestMismatch):
        LayoutStore.open_directory(root).get_manifest(img.digest)


def test_layout_referrers_survive_concurrent_writers(tmp_path: Path) -> None:
    img = image()
    root = write_layout(tmp_path / "l", img)
    subject = LayoutStore.open_directory(root).resolve("latest")
    digests: list[str] = []

    def worker(i: int) -> None:
        store = LayoutStore.open_directory(root)
        art = build_artifact(subject, media.SIGSTORE_BUNDLE_V03, [Blob(media.SIGSTORE_BUNDLE_V03, b"%d" % i)])
        push_artifact(store, art)
        digests.append(art.manifest.digest)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    listing = LayoutStore.open_directory(root).referrers(subject.digest)
    assert sorted(r.descriptor.digest for r in listing.referrers) == sorted(digests)
    assert {r.source for r in listing.referrers} == {"layout"}
    # The image itself is still what oci:DIR means.
    assert LayoutStore.open_directory(root).default_target() == img.digest


def test_legacy_docker_archive(tmp_path: Path) -> None:
    img = image()
    path = write_docker_archive(tmp_path / "a.tar", img, repo_tags=("sample:1",))
    store = ArchiveStore(path)
    digest = store.default_target()
    manifest = store.get_manifest(digest)
    assert manifest.media_type == media.DOCKER_MANIFEST
    # Layers are stored uncompressed in the legacy format: their digests are the diff ids.
    assert [d.digest for d in manifest.layers] == list(img.diff_ids)
    assert manifest.config.digest == img.config.descriptor.digest
    for d in manifest.layers:
        with store.open_blob(d) as f:
            assert len(f.read()) == d.size
    assert store.tags() == ["sample:1"]
    store.close()


def test_archive_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        ArchiveStore(tmp_path / "missing.tar")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(OCIError, match="not a readable tar"):
        ArchiveStore(tmp_path / "junk.tar")
    with tarfile.open(tmp_path / "two.tar", "w") as tar:
        data = json.dumps([{"Config": "a.json", "Layers": []}, {"Config": "b.json", "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        import io

        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(OCIError, match="exactly one image"):
        ArchiveStore(tmp_path / "two.tar")


def test_archive_round_trip_keeps_referrers(tmp_path: Path) -> None:
    img = image()
    root = write_layout(tmp_path / "l", img)
    src = LayoutStore.open_directory(root)
    subject = src.resolve("latest")
    art = build_artifact(subject, media.SIGSTORE_BUNDLE_V03, [Blob(media.SIGSTORE_BUNDLE_V03, b"{}")])
    push_artifact(src, art)
    out = ArchiveStore(tmp_path / "out.tar", write=True, repo_tag="example.com/sample")
    result = copy_image(src, "latest", out, tag="v1")
    out.close()
    assert result.referrers == (art.manifest.digest,)
    back = ArchiveStore(tmp_path / "out.tar")
    assert back.default_target() == img.digest
    assert [r.descriptor.digest for r in back.referrers(img.digest).referrers] == [art.manifest.digest]
    with tarfile.open(tmp_path / "out.tar") as tar:
        manifest_json = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest_json[0]["RepoTags"] == ["example.com/sample:v1"]
    assert manifest_json[0]["Config"] == blob_path(img.config.descriptor.digest)
    back.close()


@pytest.mark.skipif(
    SKOPEO is None, reason="skopeo is installed by scripts/test.sh; only a bare pytest run lacks it"
)
def test_skopeo_reads_what_we_write_and_we_read_what_it_writes(tmp_path: Path) -> None:
    img = image()
    root = write_layout(tmp_path / "l", img)
    out = ArchiveStore(tmp_path / "ours.tar", write=True, repo_tag="example.com/sample")
    copy_image(LayoutStore.open_directory(root), "latest", out, tag="v1")
    out.close()
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"docker-archive:{tmp_path / 'ours.tar'}"],
        check=True,
        capture_output=True,
    ).stdout
    assert json.loads(raw)["config"]["digest"] == img.config.descriptor.digest
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            f"oci:{root}:latest",
            f"docker-archive:{tmp_path / 'theirs.tar'}:x/y:z",
        ],
        check=True,
        capture_output=True,
    )
    theirs = ArchiveStore(tmp_path / "theirs.tar")
    manifest = theirs.get_manifest(theirs.default_target())
    assert manifest.config.digest == img.config.descriptor.digest
    for d in manifest.layers:
        with theirs.open_blob(d) as f:
            f.read()
    theirs.close()
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--preserve-digests",
            f"oci:{root}:latest",
            f"oci:{tmp_path / 'skopeo-layout'}:t",
        ],
        check=True,
        capture_output=True,
    )
    assert LayoutStore.open_directory(tmp_path / "skopeo-layout").resolve("t").digest == img.digest


@pytest.mark.parametrize("compress", ["none", "gzip", "xz"])
def test_archive_blobs_can_be_read_side_by_side(tmp_path: Path, compress: str) -> None:
    """The SBOM reads the next layers ahead while it parses one: streams must not share a file position."""
    layers = [Layer([File(f"d{i}/f", bytes([i]) * 300_000)], compression="none") for i in range(3)]
    path = write_docker_archive(tmp_path / "a.tar", build_image(layers), repo_tags=("s:1",))
    if compress != "none":
        data = path.read_bytes()
        path = tmp_path / f"a.tar.{compress}"
        with gzip.open(path, "wb") if compress == "gzip" else lzma.open(path, "wb") as f:
            f.write(data)
    store = ArchiveStore(path)
    blobs = store.get_manifest(store.default_target()).layers
    start = threading.Barrier(len(blobs))
    read: list[bytes] = [b""] * len(blobs)

    def read_blob(i: int) -> None:
        parts = []
        with store.open_blob(blobs[i]) as f:
            start.wait()
            while piece := f.read(512):
                parts.append(piece)
        read[i] = b"".join(parts)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows, between any seek and read
    try:
        threads = [threading.Thread(target=read_blob, args=(i,)) for i in range(len(blobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert [sha256_digest(r) for r in read] == [d.digest for d in blobs]
    store.close()


def test_open_image_narrows_an_index_to_the_platform_and_keeps_a_single_image(
    multiarch_layout: Path, sample_layout: Path
) -> None:
    from chaingate.oci.interface import Platform
    from chaingate.oci.registries import Registries
    from chaingate.oci.stores import open_image

    registries = Registries()
    index = LayoutStore.open_directory(multiarch_layout)
    arm = next(
        d
        for d in index.get_manifest(index.resolve("latest").digest).manifests
        if d.platform and d.platform.architecture == "arm64"
    )
    opened = open_image(f"oci:{multiarch_layout}", registries, platform=Platform.parse("linux/arm64"))
    assert opened.target == arm.digest
    assert open_image(f"oci:{multiarch_layout}", registries).target == index.resolve("latest").digest
    single = open_image(f"oci:{sample_layout}:latest", registries, platform=Platform.parse("linux/arm64"))
    assert single.target == "latest"
    with pytest.raises(
        OCIError, match=r"no image for platform linux/s390x \(available: linux/amd64, linux/arm64/v8\)"
    ):
        open_image(f"oci:{multiarch_layout}", registries, platform=Platform.parse("linux/s390x"))
