from __future__ import annotations

import json

import pytest

from chaingate.oci import media
from chaingate.oci.digest import sha256_digest
from chaingate.oci.errors import OCIError
from chaingate.oci.interface import Descriptor, Manifest, Platform

D = "sha256:" + "b" * 64


def parse(doc: object, media_type: str = media.OCI_MANIFEST) -> Manifest:
    raw = json.dumps(doc).encode()
    return Manifest.parse(raw, Descriptor(media_type, sha256_digest(raw), len(raw)))


def test_platform_parse_and_match() -> None:
    assert Platform.parse("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert str(Platform.parse("linux/amd64")) == "linux/amd64"
    assert Platform.parse("linux/arm64").matches(Platform("linux", "arm64", "v8"))
    assert Platform.parse("linux/arm64/v8").matches(Platform("linux", "arm64"))
    assert not Platform.parse("linux/arm/v7").matches(Platform("linux", "arm", "v6"))
    assert not Platform.parse("linux/amd64").matches(Platform("windows", "amd64"))
    for bad in ("linux", "linux/", "a/b/c/d"):
        with pytest.raises(OCIError, match="--platform"):
            Platform.parse(bad)


def test_descriptor_validation_names_the_place() -> None:
    good = {
        "mediaType": "x",
        "digest": D,
        "size": 3,
        "annotations": {"a": "b"},
        "platform": {"os": "linux", "architecture": "amd64"},
    }
    d = Descriptor.from_dict(good, "here")
    assert d.to_dict() == good
    for bad, msg in [
        ({"digest": D, "size": 1}, "mediaType"),
        ({"mediaType": "x", "size": 1}, "digest"),
        ({"mediaType": "x", "digest": D, "size": -1}, "size"),
        ({"mediaType": "x", "digest": D, "size": True}, "size"),
        ({"mediaType": "x", "digest": "sha256:1", "size": 1}, "malformed"),
        ({"mediaType": "x", "digest": D, "size": 1, "annotations": {"a": 1}}, "annotations"),
    ]:
        with pytest.raises(OCIError, match=msg) as exc:
            Descriptor.from_dict(bad, "manifest X layers[0]")
        assert "manifest X layers[0]" in exc.value.message


def test_manifest_parse_detects_type_and_rejects_garbage() -> None:
    cfg = {"mediaType": media.OCI_CONFIG, "digest": D, "size": 2}
    m = parse({"schemaVersion": 2, "config": cfg, "layers": []})
    assert m.media_type == media.OCI_MANIFEST and not m.is_index and m.artifact_type is None
    idx = parse({"schemaVersion": 2, "manifests": []}, "application/octet-stream")
    assert idx.is_index
    art = parse(
        {
            "schemaVersion": 2,
            "config": {**cfg, "mediaType": media.OCI_EMPTY},
            "layers": [],
            "subject": {"mediaType": media.OCI_MANIFEST, "digest": D, "size": 9},
        }
    )
    assert art.artifact_type == media.OCI_EMPTY and art.subject is not None
    for doc, msg in [
        ([], "not a JSON object"),
        ({"schemaVersion": 1}, "schema 1"),
        ({"schemaVersion": 3}, "schemaVersion"),
        ({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": {}}, "manifests array"),
        ({"schemaVersion": 2, "config": cfg, "layers": [{"digest": D}]}, r"layers\[0\]"),
        ({"schemaVersion": 2, "config": cfg, "subject": {"mediaType": "x"}}, "subject"),
    ]:
        with pytest.raises(OCIError, match=msg):
            parse(doc)
    with pytest.raises(OCIError, match="not valid JSON"):
        Manifest.parse(b"{nope", Descriptor(media.OCI_MANIFEST, sha256_digest(b"{nope"), 5))
