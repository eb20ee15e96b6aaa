"""The fixture image builder: exact bytes, and formats that an independent tool (skopeo) reads.

Every other test trusts these images, so the checks here recompute each digest
from raw bytes with hashlib/tarfile/gzip instead of going through chaingate's
own stores.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

from chaingate.oci import media
from chaingate.oci.interface import Platform
from chaingate_testing.images import (
    BuiltBlob,
    BuiltImage,
    Dir,
    File,
    Hardlink,
    Layer,
    OpaqueDir,
    RawMember,
    Symlink,
    Whiteout,
    build_image,
    build_index,
    build_layer,
    sample_image,
    write_docker_archive,
    write_layout,
)

SKOPEO = shutil.which("skopeo")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is installed by scripts/test.sh")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def members(tar_bytes: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return tar.getmembers()


def tar_files(path: Path) -> dict[str, bytes]:
    """Regular files of a tar on disk, by name."""
    out = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                out[m.name] = f.read()
    return out


def uncompressed(blob: BuiltBlob) -> bytes:
    mt = blob.descriptor.media_type
    if mt.endswith(("gzip", "+gzip")):
        return gzip.decompress(blob.data)
    if mt.endswith("+zstd"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(blob.data)
    return blob.data


def small_image(marker: bytes = b"x", **kwargs: Any) -> BuiltImage:
    return build_image(
        [
            Layer([Dir("etc"), File("etc/marker", marker)]),
            Layer([File("app/x", b"1")], compression="none"),
            Layer([File("app/y", b"2" * 1000)], compression="zstd"),
        ],
        **kwargs,
    )


# -- determinism and exactness ------------------------------------------------------------------------


def test_same_inputs_give_identical_bytes_even_in_a_fresh_interpreter() -> None:
    a, b = small_image(), small_image()
    assert a == b
    assert a.digest == b.digest
    assert small_image(b"y").digest != a.digest
    # sample_image is cached; the uncached builder must agree with the cached result.
    assert sample_image.__wrapped__().manifest.data == sample_image().manifest.data
    code = "from chaingate_testing.images import sample_image; print(sample_image().digest)"
    other = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert other.stdout.strip() == sample_image().digest


def test_descriptors_config_and_manifest_agree_with_the_bytes() -> None:
    img = small_image(
        entrypoint=["/app/run"],
        labels={"a": "b"},
        annotations={"org.example": "1"},
        created="2020-02-02T00:00:00Z",
    )
    for blob in [img.manifest, *img.blobs()]:
        assert blob.descriptor.digest == sha256(blob.data)
        assert blob.descriptor.size == len(blob.data)
    manifest = json.loads(img.manifest.data)
    config = json.loads(img.config.data)
    assert canonical(manifest) == img.manifest.data
    assert canonical(config) == img.config.data
    assert manifest == {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "config": {"mediaType": media.OCI_CONFIG, "digest": img.config.digest, "size": len(img.config.data)},
        "layers": [
            {"mediaType": t, "digest": b.digest, "size": len(b.data)}
            for t, b in zip(
                (media.OCI_LAYER_GZIP, media.OCI_LAYER_TAR, media.OCI_LAYER_ZSTD), img.layers, strict=True
            )
        ],
        "annotations": {"org.example": "1"},
    }
    assert config == {
        "architecture": "amd64",
        "os": "linux",
        "created": "2020-02-02T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": ["/app/run"],
            "Labels": {"a": "b"},
        },
        "rootfs": {"type": "layers", "diff_ids": list(img.diff_ids)},
        "history": [{"created": "2020-02-02T00:00:00Z", "created_by": "chaingate test layer"}] * 3,
    }
    assert img.blobs() == [img.config, *img.layers]
    assert img.platform == Platform("linux", "amd64")


def test_diff_ids_are_the_digests_of_the_decompressed_tars() -> None:
    img = small_image()
    for blob, diff_id in zip(img.layers, img.diff_ids, strict=True):
        assert sha256(uncompressed(blob)) == diff_id
    assert img.layers[1].data == uncompressed(img.layers[1])  # "none" is the tar itself
    assert [m.name for m in members(uncompressed(img.layers[2]))] == ["app/y"]
    # gzip header: no timestamp, no file name (FLG without FNAME), so nothing varies between runs.
    header = img.layers[0].data[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0
    assert header[4:8] == b"\0\0\0\0"


def test_members_are_written_in_order_with_fixed_metadata() -> None:
    blob, diff_id = build_layer(
        Layer(
            [
                File("/zeta", b"z", mode=0o600, uid=1000, gid=1001),
                Dir("etc/"),
                File("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
                Symlink("etc/mtab", "/proc/self/mounts"),
                Hardlink("etc/passwd-", "etc/passwd"),
                File("bin/sh", b"\x7fELF", mode=0o4755),
            ],
            compression="none",
        )
    )
    assert blob.descriptor.media_type == media.OCI_LAYER_TAR
    assert diff_id == sha256(blob.data)
    got = members(blob.data)
    assert [m.name for m in got] == ["zeta", "etc", "etc/passwd", "etc/mtab", "etc/passwd-", "bin/sh"]
    assert all(m.mtime == 0 and m.uname == "" and m.gname == "" for m in got)
    assert [(m.uid, m.gid) for m in got] == [(1000, 1001)] + [(0, 0)] * 5
    assert [m.mode for m in got] == [0o600, 0o755, 0o644, 0o777, 0o644, 0o4755]
    assert got[1].isdir()
    assert got[3].issym()
    assert got[3].linkname == "/proc/self/mounts"
    assert got[4].islnk()
    assert got[4].linkname == "etc/passwd"
    # Directories carry the trailing slash docker's own tars have.
    assert b"etc/\0" in blob.data


def test_whiteouts_and_opaque_directories_get_the_names_overlay_readers_expect() -> None:
    blob, _ = build_layer(
        Layer(
            [Whiteout("etc/motd"), Whiteout("/top"), OpaqueDir("var/cache/"), File("var/cache/new", b"n")],
            compression="gzip",
        )
    )
    got = members(gzip.decompress(blob.data))
    assert [m.name for m in got] == ["etc/.wh.motd", ".wh.top", "var/cache/.wh..wh..opq", "var/cache/new"]
    assert all(m.isfile() and m.size == 0 for m in got[:3])


def test_raw_member_passes_hostile_names_through_and_typed_entries_refuse_them() -> None:
    evil = tarfile.TarInfo("../evil")
    absolute = tarfile.TarInfo("/etc/shadow")
    device = tarfile.TarInfo("dev/sda")
    device.type, device.devmajor, device.devminor = tarfile.BLKTYPE, 8, 0
    blob, _ = build_layer(
        Layer(
            [RawMember(evil, b"pwned"), RawMember(absolute, b"root::0:0"), RawMember(device)],
            compression="none",
        )
    )
    with tarfile.open(fileobj=io.BytesIO(blob.data)) as tar:
        got = tar.getmembers()
        assert [m.name for m in got] == ["../evil", "/etc/shadow", "dev/sda"]
        f = tar.extractfile(got[0])
        assert f is not None
        assert f.read() == b"pwned"
        assert got[1].size == len(b"root::0:0")
        assert got[2].isblk()
        assert (got[2].devmajor, got[2].devminor) == (8, 0)
    for bad in (File("../evil"), Symlink("a/./b", "x"), Dir(""), Whiteout("a//b"), Hardlink("a", "../b")):
        with pytest.raises(ValueError, match="RawMember"):
            build_layer(Layer([bad]))
    with pytest.raises(ValueError, match="only regular files"):
        build_layer(Layer([RawMember(device, b"x")]))


def test_docker_media_types() -> None:
    img = build_image(
        [Layer([File("a", b"a")]), Layer([File("b", b"b")], compression="none")], docker_media_types=True
    )
    manifest = json.loads(img.manifest.data)
    assert img.manifest.descriptor.media_type == manifest["mediaType"] == media.DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == media.DOCKER_CONFIG
    assert [d["mediaType"] for d in manifest["layers"]] == [media.DOCKER_LAYER_GZIP, media.DOCKER_LAYER_TAR]
    # The layer bytes do not depend on the media type family.
    assert (
        img.diff_ids
        == build_image([Layer([File("a", b"a")]), Layer([File("b", b"b")], compression="none")]).diff_ids
    )
    with pytest.raises(ValueError, match="no zstd layer type"):
        build_image([Layer([File("a")], compression="zstd")], docker_media_types=True)
    index = build_index([img])
    assert (
        index.index.descriptor.media_type
        == json.loads(index.index.data)["mediaType"]
        == media.DOCKER_MANIFEST_LIST
    )


def test_index_descriptors_carry_each_platform() -> None:
    images = [
        build_image([Layer([File("etc/arch", arch.encode())])], platform=Platform("linux", arch, variant))
        for arch, variant in (("amd64", None), ("arm64", "v8"), ("arm", "v7"))
    ]
    built = build_index(images, annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"})
    doc = json.loads(built.index.data)
    assert built.digest == sha256(built.index.data)
    assert doc["mediaType"] == media.OCI_INDEX
    assert doc["schemaVersion"] == 2
    assert doc["annotations"] == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    assert [m["platform"] for m in doc["manifests"]] == [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm64", "variant": "v8"},
        {"os": "linux", "architecture": "arm", "variant": "v7"},
    ]
    assert [(m["digest"], m["size"]) for m in doc["manifests"]] == [
        (i.digest, len(i.manifest.data)) for i in images
    ]
    assert json.loads(images[1].config.data)["variant"] == "v8"


# -- OCI layouts ----------------------------------------------------------------------------------


def read_layout(root: Path) -> list[dict[str, Any]]:
    """index.json entries, after checking every blob file hashes to its name."""
    assert json.loads((root / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    for blob in (root / "blobs" / "sha256").iterdir():
        assert "sha256:" + blob.name == sha256(blob.read_bytes())
    index = json.loads((root / "index.json").read_bytes())
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == media.OCI_INDEX
    manifests: list[dict[str, Any]] = index["manifests"]
    return manifests


def blob_file(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.split(":", 1)[1]


def test_layout_is_written_and_later_writes_add_to_it(tmp_path: Path) -> None:
    root = tmp_path / "nested" / "layout"
    first, second, third = small_image(b"1"), small_image(b"2"), small_image(b"3")
    assert write_layout(root, first) == root
    entries = read_layout(root)
    assert entries == [
        {
            "mediaType": media.OCI_MANIFEST,
            "digest": first.digest,
            "size": len(first.manifest.data),
            "annotations": {media.ANNOTATION_REF_NAME: "latest"},
        }
    ]
    for blob in [first.manifest, *first.blobs()]:
        assert blob_file(root, blob.digest).read_bytes() == blob.data

    write_layout(root, second, tag="v2")
    write_layout(root, third, tag=None)
    write_layout(root, third, tag=None)  # idempotent: no duplicate untagged entry
    assert [(e["digest"], e.get("annotations")) for e in read_layout(root)] == [
        (first.digest, {media.ANNOTATION_REF_NAME: "latest"}),
        (second.digest, {media.ANNOTATION_REF_NAME: "v2"}),
        (third.digest, None),
    ]
    # Re-using a tag moves it; the first image's blobs stay (they may be shared).
    write_layout(root, third, tag="latest")
    assert [(e["digest"], e.get("annotations")) for e in read_layout(root)] == [
        (second.digest, {media.ANNOTATION_REF_NAME: "v2"}),
        (third.digest, None),
        (third.digest, {media.ANNOTATION_REF_NAME: "latest"}),
    ]
    assert blob_file(root, first.digest).is_file()


def test_layout_of_an_index_holds_every_child(tmp_path: Path) -> None:
    images = [
        build_image([Layer([File("a", arch.encode())])], platform=Platform("linux", arch))
        for arch in ("amd64", "s390x")
    ]
    built = build_index(images)
    write_layout(tmp_path, built, tag="multi")
    assert [(e["digest"], e["mediaType"]) for e in read_layout(tmp_path)] == [(built.digest, media.OCI_INDEX)]
    for img in images:
        for blob in [img.manifest, *img.blobs()]:
            assert blob_file(tmp_path, blob.digest).read_bytes() == blob.data


# -- docker archives ------------------------------------------------------------------------------


def test_legacy_docker_archive_has_the_structure_docker_save_writes(tmp_path: Path) -> None:
    img = small_image()
    path = write_docker_archive(
        tmp_path / "out" / "a.tar", img, repo_tags=("example.com:5000/team/app:1", "app")
    )
    files = tar_files(path)
    (entry,) = json.loads(files["manifest.json"])
    config_hex = img.config.digest.split(":", 1)[1]
    assert entry["Config"] == f"{config_hex}.json"
    assert files[entry["Config"]] == img.config.data
    assert entry["RepoTags"] == ["example.com:5000/team/app:1", "app"]
    ids = [d.split(":", 1)[1] for d in img.diff_ids]
    assert entry["Layers"] == [f"{i}/layer.tar" for i in ids]
    for layer_id, diff_id in zip(ids, img.diff_ids, strict=True):
        assert sha256(files[f"{layer_id}/layer.tar"]) == diff_id  # uncompressed, whatever the blob was
        assert files[f"{layer_id}/VERSION"] == b"1.0"
        assert json.loads(files[f"{layer_id}/json"])["id"] == layer_id
    assert json.loads(files[f"{ids[1]}/json"])["parent"] == ids[0]
    assert json.loads(files["repositories"]) == {
        "example.com:5000/team/app": {"1": ids[-1]},
        "app": {"latest": ids[-1]},
    }
    with tarfile.open(path) as tar:
        assert all(m.mtime == 0 and m.uname == "" for m in tar.getmembers())
        assert [m.name for m in tar.getmembers() if m.isdir()] == sorted(ids)
    assert (
        write_docker_archive(
            tmp_path / "b.tar", img, repo_tags=("example.com:5000/team/app:1", "app")
        ).read_bytes()
        == path.read_bytes()
    )


def test_oci_docker_archive_embeds_a_layout_that_manifest_json_points_into(tmp_path: Path) -> None:
    img = small_image()
    path = write_docker_archive(tmp_path / "a.tar", img, repo_tags=("sample:1",), oci_layout=True)
    files = tar_files(path)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["sample:1"]
    assert files[entry["Config"]] == img.config.data
    assert [sha256(files[name]) for name in entry["Layers"]] == [b.digest for b in img.layers]
    index = json.loads(files["index.json"])
    assert index["manifests"] == [
        {
            "mediaType": media.OCI_MANIFEST,
            "digest": img.digest,
            "size": len(img.manifest.data),
            "annotations": {
                "io.containerd.image.name": "docker.io/library/sample:1",
                media.ANNOTATION_REF_NAME: "1",
            },
        }
    ]
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert sha256(data) == "sha256:" + name.rsplit("/", 1)[1]
    assert files[f"blobs/sha256/{img.digest.split(':', 1)[1]}"] == img.manifest.data


# -- the sample image -------------------------------------------------------------------------------


def test_sample_image_is_a_small_debian_with_packages_of_three_ecosystems() -> None:
    img = sample_image()
    assert img.platform == Platform("linux", "amd64")
    assert len(img.layers) == 2
    base = {m.name: m for m in members(uncompressed(img.layers[0]))}
    with tarfile.open(fileobj=io.BytesIO(uncompressed(img.layers[0]))) as tar:

        def read(name: str) -> str:
            f = tar.extractfile(base[name])
            assert f is not None
            return f.read().decode()

        os_release = read("etc/os-release")
        assert "ID=debian" in os_release
        assert 'VERSION_ID="12"' in os_release
        assert "VERSION_CODENAME=bookworm" in os_release
        stanzas = read("var/lib/dpkg/status").strip().split("\n\n")
        assert [s.splitlines()[0] for s in stanzas] == [
            "Package: base-files",
            "Package: ca-certificates",
            "Package: libc6",
        ]
        assert [s for s in stanzas if "\nSource: " in s] == [stanzas[2]]
        assert "Source: glibc" in stanzas[2]
        metadata = read("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA")
        assert "Name: six\nVersion: 1.16.0\n" in metadata
        assert json.loads(read("app/package.json"))["version"] == "1.0.0"
        assert json.loads(read("app/node_modules/left-pad/package.json"))["version"] == "1.3.0"
    top = [m.name for m in members(uncompressed(img.layers[1]))]
    assert "app/package.json" in top
    assert "app/node_modules/.wh.left-pad" in top


# -- an independent reader ------------------------------------------------------------------------


def skopeo(*args: str) -> bytes:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, timeout=60).stdout


@needs_skopeo
def test_skopeo_reads_layouts_and_both_archive_formats(tmp_path: Path) -> None:
    img = sample_image()
    multi = build_index(
        [
            build_image([Layer([File("a", a.encode())])], platform=Platform("linux", a))
            for a in ("amd64", "arm64")
        ]
    )
    root = write_layout(tmp_path / "layout", img)
    write_layout(root, multi, tag="multi")
    assert skopeo("inspect", "--raw", f"oci:{root}:latest") == img.manifest.data
    assert skopeo("inspect", "--raw", f"oci:{root}:multi") == multi.index.data
    arm = json.loads(skopeo("inspect", "--override-arch", "arm64", f"oci:{root}:multi"))
    # skopeo's Digest is the index's; the layers show which instance it chose.
    assert arm["Digest"] == multi.digest
    assert arm["Layers"] == [multi.images[1].layers[0].digest]
    assert arm["Architecture"] == "arm64"
    # A copy reads every blob and checks it against its digest.
    skopeo("copy", "--quiet", f"oci:{root}:latest", f"dir:{tmp_path / 'copied'}")
    assert (tmp_path / "copied" / "manifest.json").read_bytes() == img.manifest.data

    legacy = write_docker_archive(tmp_path / "legacy.tar", img)
    seen = json.loads(skopeo("inspect", f"docker-archive:{legacy}"))
    assert seen["Layers"] == list(img.diff_ids)
    assert (seen["Architecture"], seen["Os"], seen["Created"]) == ("amd64", "linux", "2024-01-01T00:00:00Z")
    assert json.loads(skopeo("inspect", "--config", "--raw", f"docker-archive:{legacy}")) == json.loads(
        img.config.data
    )

    new = write_docker_archive(tmp_path / "new.tar", img, oci_layout=True)
    assert json.loads(skopeo("inspect", f"docker-archive:{new}"))["Layers"] == list(img.diff_ids)
    skopeo("copy", "--quiet", f"docker-archive:{new}", f"oci:{tmp_path / 'roundtrip'}:t")
