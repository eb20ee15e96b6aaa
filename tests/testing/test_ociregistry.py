"""The in-repo OCI registry must itself be right, or client tests against it prove nothing.

Everything here goes through raw ``requests`` on the wire, the way our client
and third-party tools will talk to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chaingate_testing.ociregistry import Fault, OCIRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SBOM = "application/vnd.cyclonedx+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}


def manifest_bytes(
    config: bytes,
    layers: list[bytes],
    *,
    config_type: str = OCI_CONFIG,
    subject: dict[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> bytes:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_type, config),
        "layers": [descriptor(LAYER, layer) for layer in layers],
    }
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    if subject is not None:
        doc["subject"] = subject
    if annotations is not None:
        doc["annotations"] = annotations
    return json.dumps(doc, sort_keys=True).encode()


def push_blob(reg: OCIRegistry, repo: str, data: bytes) -> str:
    digest = sha256(data)
    resp = requests.post(
        f"{reg.url}/v2/{repo}/blobs/uploads/", params={"digest": digest}, data=data, timeout=5
    )
    assert resp.status_code == 201, resp.text
    return digest


def put_manifest(
    reg: OCIRegistry, repo: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
) -> requests.Response:
    return requests.put(
        f"{reg.url}/v2/{repo}/manifests/{reference}",
        data=body,
        headers={"Content-Type": media_type},
        timeout=5,
    )


def push_image(
    reg: OCIRegistry, repo: str, tag: str = "v1", layer: bytes = b"layer-bytes"
) -> tuple[str, bytes]:
    config = b'{"architecture":"amd64","os":"linux"}'
    push_blob(reg, repo, config)
    push_blob(reg, repo, layer)
    body = manifest_bytes(config, [layer])
    resp = put_manifest(reg, repo, tag, body)
    assert resp.status_code == 201, resp.text
    return resp.headers["Docker-Content-Digest"], body


def error_codes(resp: requests.Response) -> list[str]:
    return [e["code"] for e in resp.json()["errors"]]


@pytest.fixture
def reg() -> Iterator[OCIRegistry]:
    with OCIRegistry() as registry:
        yield registry


# -- base and blobs ------------------------------------------------------------


def test_ping_answers_as_a_v2_registry(reg: OCIRegistry) -> None:
    assert reg.url == f"http://{reg.host}"
    assert reg.host.startswith("127.0.0.1:")
    resp = requests.get(f"{reg.url}/v2/", timeout=5)
    assert resp.status_code == 200
    assert resp.json() == {}
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_monolithic_post_stores_blob_and_head_get_serve_it(reg: OCIRegistry) -> None:
    data = b"hello blob"
    digest = sha256(data)
    resp = requests.post(f"{reg.url}/v2/app/blobs/uploads/", params={"digest": digest}, data=data, timeout=5)
    assert resp.status_code == 201
    assert resp.headers["Location"] == f"/v2/app/blobs/{digest}"
    assert resp.headers["Docker-Content-Digest"] == digest

    head = requests.head(f"{reg.url}/v2/app/blobs/{digest}", timeout=5)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.headers["Content-Type"] == "application/octet-stream"
    get = requests.get(f"{reg.url}/v2/app/blobs/{digest}", timeout=5)
    assert get.content == data
    assert reg.get_stored("app", digest) == data


def test_post_then_put_upload(reg: OCIRegistry) -> None:
    data = b"x" * 1000
    start = requests.post(f"{reg.url}/v2/ns/app/blobs/uploads/", timeout=5)
    assert start.status_code == 202
    location = start.headers["Location"]
    assert location.startswith("/v2/ns/app/blobs/uploads/")
    assert start.headers["Docker-Upload-UUID"] in location
    done = requests.put(reg.url + location, params={"digest": sha256(data)}, data=data, timeout=5)
    assert done.status_code == 201
    assert reg.get_stored("ns/app", sha256(data)) == data


def test_chunked_upload_in_order_then_status_then_close(reg: OCIRegistry) -> None:
    data = bytes(range(256)) * 40
    first, second, last = data[:4000], data[4000:9000], data[9000:]
    location = requests.post(f"{reg.url}/v2/app/blobs/uploads/", timeout=5).headers["Location"]

    r1 = requests.patch(reg.url + location, data=first, headers={"Content-Range": "0-3999"}, timeout=5)
    assert r1.status_code == 202
    assert r1.headers["Range"] == "0-3999"
    r2 = requests.patch(reg.url + r1.headers["Location"], data=second, timeout=5)  # Content-Range is optional
    assert r2.headers["Range"] == "0-8999"

    status = requests.get(reg.url + r2.headers["Location"], timeout=5)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-8999"

    done = requests.put(
        reg.url + r2.headers["Location"],
        params={"digest": sha256(data)},
        data=last,
        headers={"Content-Range": f"9000-{len(data) - 1}"},
        timeout=5,
    )
    assert done.status_code == 201, done.text
    assert reg.get_stored("app", sha256(data)) == data


def test_streamed_chunked_transfer_encoding_is_read(reg: OCIRegistry) -> None:
    parts = [b"abc", b"defgh", b"ij"]
    data = b"".join(parts)
    location = requests.post(f"{reg.url}/v2/app/blobs/uploads/", timeout=5).headers["Location"]
    resp = requests.put(reg.url + location, params={"digest": sha256(data)}, data=iter(parts), timeout=5)
    assert resp.status_code == 201
    assert reg.get_stored("app", sha256(data)) == data


def test_out_of_order_chunk_is_416_and_upload_survives(reg: OCIRegistry) -> None:
    location = requests.post(f"{reg.url}/v2/app/blobs/uploads/", timeout=5).headers["Location"]
    requests.patch(reg.url + location, data=b"12345", headers={"Content-Range": "0-4"}, timeout=5)
    resp = requests.patch(reg.url + location, data=b"xx", headers={"Content-Range": "10-11"}, timeout=5)
    assert resp.status_code == 416
    assert resp.headers["Range"] == "0-4"
    assert requests.get(reg.url + location, timeout=5).headers["Range"] == "0-4"


def test_digest_mismatch_is_rejected_and_upload_discarded(reg: OCIRegistry) -> None:
    location = requests.post(f"{reg.url}/v2/app/blobs/uploads/", timeout=5).headers["Location"]
    requests.patch(reg.url + location, data=b"actual", timeout=5)
    wrong = sha256(b"something else")
    resp = requests.put(reg.url + location, params={"digest": wrong}, timeout=5)
    assert resp.status_code == 400
    assert error_codes(resp) == ["DIGEST_INVALID"]
    assert reg.get_stored("app", wrong) is None
    assert reg.get_stored("app", sha256(b"actual")) is None
    gone = requests.get(reg.url + location, timeout=5)
    assert gone.status_code == 404
    assert error_codes(gone) == ["BLOB_UPLOAD_UNKNOWN"]

    mono = requests.post(
        f"{reg.url}/v2/app/blobs/uploads/", params={"digest": wrong}, data=b"actual", timeout=5
    )
    assert mono.status_code == 400
    assert error_codes(mono) == ["DIGEST_INVALID"]


def test_mount_links_existing_blob_and_falls_back_to_a_session(reg: OCIRegistry) -> None:
    digest = push_blob(reg, "source/repo", b"shared layer")
    mounted = requests.post(
        f"{reg.url}/v2/target/blobs/uploads/", params={"mount": digest, "from": "source/repo"}, timeout=5
    )
    assert mounted.status_code == 201
    assert mounted.headers["Location"] == f"/v2/target/blobs/{digest}"
    assert requests.head(f"{reg.url}/v2/target/blobs/{digest}", timeout=5).status_code == 200

    unknown = sha256(b"nowhere")
    fallback = requests.post(
        f"{reg.url}/v2/target/blobs/uploads/", params={"mount": unknown, "from": "source/repo"}, timeout=5
    )
    assert fallback.status_code == 202
    assert "/blobs/uploads/" in fallback.headers["Location"]
    assert requests.head(f"{reg.url}/v2/other/blobs/{digest}", timeout=5).status_code == 404


def test_blob_range_request(reg: OCIRegistry) -> None:
    digest = push_blob(reg, "app", b"0123456789")
    resp = requests.get(f"{reg.url}/v2/app/blobs/{digest}", headers={"Range": "bytes=2-5"}, timeout=5)
    assert resp.status_code == 206
    assert resp.content == b"2345"
    assert resp.headers["Content-Range"] == "bytes 2-5/10"


def test_bodies_over_max_body_are_413() -> None:
    with OCIRegistry(max_body=100) as small:
        data = b"z" * 101
        resp = requests.post(
            f"{small.url}/v2/app/blobs/uploads/", params={"digest": sha256(data)}, data=data, timeout=5
        )
        assert resp.status_code == 413
        assert error_codes(resp) == ["SIZE_INVALID"]
        # The limit is on the blob, not only on one request's body.
        location = requests.post(f"{small.url}/v2/app/blobs/uploads/", timeout=5).headers["Location"]
        assert requests.patch(small.url + location, data=b"a" * 60, timeout=5).status_code == 202
        assert requests.patch(small.url + location, data=b"a" * 60, timeout=5).status_code == 413


def test_invalid_names_and_digests_are_400(reg: OCIRegistry) -> None:
    bad_name = requests.head(f"{reg.url}/v2/Upper/blobs/{sha256(b'')}", timeout=5)
    assert bad_name.status_code == 400
    bad_digest = requests.get(f"{reg.url}/v2/app/blobs/sha256:abc", timeout=5)
    assert bad_digest.status_code == 400
    assert error_codes(bad_digest) == ["DIGEST_INVALID"]
    missing = requests.get(f"{reg.url}/v2/app/blobs/{sha256(b'none')}", timeout=5)
    assert missing.status_code == 404
    assert error_codes(missing) == ["BLOB_UNKNOWN"]


# -- manifests -----------------------------------------------------------------


def test_manifest_push_by_tag_and_pull_by_tag_and_digest(reg: OCIRegistry) -> None:
    digest, body = push_image(reg, "app", tag="v1")
    assert digest == sha256(body)
    for ref in ("v1", digest):
        get = requests.get(f"{reg.url}/v2/app/manifests/{ref}", headers={"Accept": OCI_MANIFEST}, timeout=5)
        assert get.status_code == 200
        assert get.content == body  # exact bytes, never re-serialised
        assert get.headers["Content-Type"] == OCI_MANIFEST
        assert get.headers["Docker-Content-Digest"] == digest
        head = requests.head(f"{reg.url}/v2/app/manifests/{ref}", timeout=5)
        assert head.headers["Content-Length"] == str(len(body))
    assert reg.tags("app") == ["v1"]
    missing = requests.get(f"{reg.url}/v2/app/manifests/nope", timeout=5)
    assert missing.status_code == 404
    assert error_codes(missing) == ["MANIFEST_UNKNOWN"]


def test_manifest_push_by_digest_checks_the_digest(reg: OCIRegistry) -> None:
    config, layer = b"{}", b"L"
    push_blob(reg, "app", config)
    push_blob(reg, "app", layer)
    body = manifest_bytes(config, [layer])
    ok = put_manifest(reg, "app", sha256(body), body)
    assert ok.status_code == 201
    assert ok.headers["Location"] == f"/v2/app/manifests/{sha256(body)}"
    assert ok.headers["Docker-Content-Digest"] == sha256(body)
    assert "OCI-Subject" not in ok.headers

    wrong = put_manifest(reg, "app", sha256(b"other"), body)
    assert wrong.status_code == 400
    assert error_codes(wrong) == ["DIGEST_INVALID"]
    assert reg.get_stored("app", sha256(b"other")) is None


def test_manifest_with_missing_blobs_or_children_is_rejected(reg: OCIRegistry) -> None:
    config = b"{}"
    push_blob(reg, "app", config)
    body = manifest_bytes(config, [b"never pushed", b"nor this"])
    resp = put_manifest(reg, "app", "v1", body)
    assert resp.status_code == 400
    assert error_codes(resp) == ["MANIFEST_BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"]
    assert reg.tags("app") == []

    _, child = push_image(reg, "app", tag="child")
    ghost = {"mediaType": OCI_MANIFEST, "digest": sha256(b"ghost"), "size": 5}
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, child), ghost],
    }
    bad_index = put_manifest(reg, "app", "multi", json.dumps(index).encode(), OCI_INDEX)
    assert bad_index.status_code == 400
    assert error_codes(bad_index) == ["MANIFEST_BLOB_UNKNOWN"]
    index["manifests"] = [descriptor(OCI_MANIFEST, child)]
    good_index = put_manifest(reg, "app", "multi", json.dumps(index).encode(), OCI_INDEX)
    assert good_index.status_code == 201
    assert requests.get(f"{reg.url}/v2/app/manifests/multi", timeout=5).headers["Content-Type"] == OCI_INDEX


@pytest.mark.parametrize(
    ("body", "media_type"),
    [
        (b"not json", OCI_MANIFEST),
        (b'{"schemaVersion": 1}', OCI_MANIFEST),
        (json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode(), OCI_INDEX),
        (
            json.dumps({"schemaVersion": 2, "layers": [{"digest": "sha256:short", "size": 1}]}).encode(),
            OCI_MANIFEST,
        ),
    ],
    ids=["not-json", "schema-1", "content-type-mismatch", "bad-descriptor"],
)
def test_malformed_manifests_are_manifest_invalid(reg: OCIRegistry, body: bytes, media_type: str) -> None:
    resp = put_manifest(reg, "app", "v1", body, media_type)
    assert resp.status_code == 400
    assert error_codes(resp) == ["MANIFEST_INVALID"]


# -- referrers -----------------------------------------------------------------


def push_referrers(reg: OCIRegistry, repo: str) -> tuple[str, str, str]:
    """An image with an SBOM (artifactType set) and a signature (type only on the config)."""
    image_digest, image = push_image(reg, repo)
    subject = descriptor(OCI_MANIFEST, image)
    empty = b"{}"
    push_blob(reg, repo, empty)
    sbom_layer, sig_layer = b'{"bomFormat":"CycloneDX"}', b"signature"
    push_blob(reg, repo, sbom_layer)
    push_blob(reg, repo, sig_layer)
    sbom = manifest_bytes(
        empty,
        [sbom_layer],
        config_type=OCI_EMPTY,
        artifact_type=SBOM,
        subject=subject,
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )
    sig = manifest_bytes(
        empty, [sig_layer], config_type="application/vnd.dev.cosign.simplesigning.v1+json", subject=subject
    )
    sbom_resp = put_manifest(reg, repo, sha256(sbom), sbom)
    sig_resp = put_manifest(reg, repo, sha256(sig), sig)
    assert sbom_resp.status_code == sig_resp.status_code == 201
    assert sbom_resp.headers["OCI-Subject"] == image_digest
    assert sig_resp.headers["OCI-Subject"] == image_digest
    return image_digest, sha256(sbom), sha256(sig)


def test_referrers_lists_every_referrer_with_artifact_type_and_annotations(reg: OCIRegistry) -> None:
    image_digest, sbom_digest, sig_digest = push_referrers(reg, "app")
    resp = requests.get(f"{reg.url}/v2/app/referrers/{image_digest}", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in resp.headers
    index = resp.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert set(by_digest) == {sbom_digest, sig_digest}
    assert by_digest[sbom_digest]["artifactType"] == SBOM
    assert by_digest[sbom_digest]["annotations"] == {
        "org.opencontainers.image.created": "2024-01-01T00:00:00Z"
    }
    assert by_digest[sbom_digest]["size"] == len(reg.get_stored("app", sbom_digest) or b"")
    assert by_digest[sig_digest]["artifactType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert "annotations" not in by_digest[sig_digest]


def test_referrers_filter_by_artifact_type(reg: OCIRegistry) -> None:
    image_digest, sbom_digest, _ = push_referrers(reg, "app")
    resp = requests.get(
        f"{reg.url}/v2/app/referrers/{image_digest}", params={"artifactType": SBOM}, timeout=5
    )
    assert resp.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in resp.json()["manifests"]] == [sbom_digest]


def test_referrers_of_unknown_subject_is_empty_and_bad_digest_400(reg: OCIRegistry) -> None:
    resp = requests.get(f"{reg.url}/v2/app/referrers/{sha256(b'unknown')}", timeout=5)
    assert resp.status_code == 200
    assert resp.json()["manifests"] == []
    assert requests.get(f"{reg.url}/v2/app/referrers/sha256:nope", timeout=5).status_code == 400


def test_referrer_may_be_pushed_before_its_subject(reg: OCIRegistry) -> None:
    empty = b"{}"
    push_blob(reg, "app", empty)
    ghost = {"mediaType": OCI_MANIFEST, "digest": sha256(b"later"), "size": 5}
    body = manifest_bytes(empty, [], config_type=OCI_EMPTY, artifact_type=SBOM, subject=ghost)
    resp = put_manifest(reg, "app", sha256(body), body)
    assert resp.status_code == 201
    assert resp.headers["OCI-Subject"] == ghost["digest"]
    listed = requests.get(f"{reg.url}/v2/app/referrers/{ghost['digest']}", timeout=5).json()
    assert [d["digest"] for d in listed["manifests"]] == [sha256(body)]


def test_deleting_a_referrer_removes_it_from_the_listing(reg: OCIRegistry) -> None:
    image_digest, sbom_digest, sig_digest = push_referrers(reg, "app")
    assert requests.delete(f"{reg.url}/v2/app/manifests/{sbom_digest}", timeout=5).status_code == 202
    listed = requests.get(f"{reg.url}/v2/app/referrers/{image_digest}", timeout=5).json()
    assert [d["digest"] for d in listed["manifests"]] == [sig_digest]


def test_without_referrers_api_route_is_plain_404_and_no_oci_subject() -> None:
    with OCIRegistry(referrers_api=False) as old:
        image_digest, image = push_image(old, "app")
        empty = b"{}"
        push_blob(old, "app", empty)
        body = manifest_bytes(empty, [], config_type=OCI_EMPTY, subject=descriptor(OCI_MANIFEST, image))
        pushed = put_manifest(old, "app", sha256(body), body)
        assert pushed.status_code == 201
        assert "OCI-Subject" not in pushed.headers
        resp = requests.get(f"{old.url}/v2/app/referrers/{image_digest}", timeout=5)
        assert resp.status_code == 404
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert resp.content == b"404 page not found\n"  # not an OCI error body: clients must not need one


# -- tags ------------------------------------------------------------------------


def test_tags_are_sorted_and_paginated_with_link(reg: OCIRegistry) -> None:
    _, body = push_image(reg, "app", tag="v1")
    for tag in ("b", "a", "d", "c", "e"):
        reg.put_manifest_bytes("app", body, OCI_MANIFEST, tag=tag)
    assert requests.get(f"{reg.url}/v2/app/tags/list", timeout=5).json() == {
        "name": "app",
        "tags": ["a", "b", "c", "d", "e", "v1"],
    }

    pages: list[list[str]] = []
    url: str | None = f"{reg.url}/v2/app/tags/list?n=4"
    while url is not None:
        resp = requests.get(url, timeout=5)
        pages.append(resp.json()["tags"])
        nxt = resp.links.get("next")
        url = reg.url + nxt["url"] if nxt else None
    assert pages == [["a", "b", "c", "d"], ["e", "v1"]]

    after = requests.get(f"{reg.url}/v2/app/tags/list", params={"last": "c", "n": "2"}, timeout=5)
    assert after.json()["tags"] == ["d", "e"]
    assert 'rel="next"' in after.headers["Link"]
    zero = requests.get(f"{reg.url}/v2/app/tags/list", params={"n": "0"}, timeout=5)
    assert zero.json()["tags"] == []
    assert "Link" not in zero.headers
    unknown = requests.get(f"{reg.url}/v2/nothing/tags/list", timeout=5)
    assert unknown.status_code == 404
    assert error_codes(unknown) == ["NAME_UNKNOWN"]


# -- auth and recording ------------------------------------------------------------


def test_basic_auth_challenges_and_recording_redacts() -> None:
    with OCIRegistry(basic_auth=("alice", "s3cret")) as locked:
        anon = requests.get(f"{locked.url}/v2/", timeout=5)
        assert anon.status_code == 401
        assert anon.headers["WWW-Authenticate"] == 'Basic realm="chaingate-test"'
        assert error_codes(anon) == ["UNAUTHORIZED"]
        assert requests.get(f"{locked.url}/v2/", auth=("alice", "wrong"), timeout=5).status_code == 401
        ok = requests.get(f"{locked.url}/v2/app/tags/list", auth=("alice", "s3cret"), timeout=5)
        assert ok.status_code == 404  # authenticated, and the repository simply does not exist
        recorded = locked.requests[-1]
        assert recorded.method == "GET"
        assert recorded.path == "/v2/app/tags/list"
        assert recorded.headers["Authorization"] == "<redacted>"
        assert all("s3cret" not in json.dumps(r.headers) for r in locked.requests)


def test_requests_are_recorded_in_order_with_query(reg: OCIRegistry) -> None:
    reg.clear_requests()
    requests.get(f"{reg.url}/v2/", timeout=5)
    requests.get(f"{reg.url}/v2/app/tags/list", params={"n": "3", "last": "a"}, timeout=5)
    assert [(r.method, r.path) for r in reg.requests] == [("GET", "/v2/"), ("GET", "/v2/app/tags/list")]
    assert reg.requests[1].query == {"n": ["3"], "last": ["a"]}


# -- faults --------------------------------------------------------------------------


def test_status_fault_with_retry_after_runs_out_after_times(reg: OCIRegistry) -> None:
    fault = reg.add_fault(Fault(path=r"/v2/$", status=429, headers={"Retry-After": "1"}, times=2))
    codes = [requests.get(f"{reg.url}/v2/", timeout=5) for _ in range(3)]
    assert [r.status_code for r in codes] == [429, 429, 200]
    assert codes[0].headers["Retry-After"] == "1"
    assert error_codes(codes[0]) == ["TOOMANYREQUESTS"]
    assert fault.hits == 2
    assert len(reg.requests) == 3  # faulted requests are recorded too


def test_fault_matches_method_and_path_and_can_add_headers(reg: OCIRegistry) -> None:
    digest, _ = push_image(reg, "app")
    reg.add_fault(Fault(path=r"/manifests/", method="HEAD", status=404))
    tagged = reg.add_fault(Fault(path=r"/manifests/", headers={"X-Injected": "yes"}))
    assert requests.head(f"{reg.url}/v2/app/manifests/{digest}", timeout=5).status_code == 404
    get = requests.get(f"{reg.url}/v2/app/manifests/{digest}", timeout=5)
    assert get.status_code == 200
    assert get.headers["X-Injected"] == "yes"
    assert tagged.hits == 1  # the short-circuiting HEAD fault stopped consultation before it
    reg.clear_faults()
    assert requests.head(f"{reg.url}/v2/app/manifests/{digest}", timeout=5).status_code == 200


def test_corrupt_fault_flips_a_byte_but_keeps_the_digest_header(reg: OCIRegistry) -> None:
    data = b"trustworthy content"
    digest = push_blob(reg, "app", data)
    fault = reg.add_fault(Fault(path=r"/blobs/sha256:", method="GET", corrupt=True, times=1))
    resp = requests.get(f"{reg.url}/v2/app/blobs/{digest}", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Docker-Content-Digest"] == digest
    assert len(resp.content) == len(data)
    assert resp.content != data
    assert sha256(resp.content) != digest
    assert fault.hits == 1
    assert requests.get(f"{reg.url}/v2/app/blobs/{digest}", timeout=5).content == data


def test_oversize_fault_lengthens_body_and_content_length(reg: OCIRegistry) -> None:
    digest, body = push_image(reg, "app")
    reg.add_fault(Fault(path=r"/manifests/", oversize=1000))
    get = requests.get(f"{reg.url}/v2/app/manifests/v1", timeout=5)
    assert len(get.content) == len(body) + 1000
    assert get.content.startswith(body)
    assert get.headers["Content-Length"] == str(len(body) + 1000)
    head = requests.head(f"{reg.url}/v2/app/manifests/{digest}", timeout=5)
    assert head.headers["Content-Length"] == str(len(body) + 1000)


def test_delay_fault_provokes_client_timeout(reg: OCIRegistry) -> None:
    fault = reg.add_fault(Fault(path=r"/v2/$", delay=0.6, times=1))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{reg.url}/v2/", timeout=0.15)
    assert fault.hits == 1
    assert requests.get(f"{reg.url}/v2/", timeout=5).status_code == 200


def test_bad_fault_regex_is_refused_up_front(reg: OCIRegistry) -> None:
    with pytest.raises(Exception, match="unterminated"):
        reg.add_fault(Fault(path="("))


def test_concurrent_clients_are_served_consistently(reg: OCIRegistry) -> None:
    blobs = [f"blob {i}".encode() * 100 for i in range(40)]
    failures: list[str] = []

    def worker(chunk: list[bytes]) -> None:
        with requests.Session() as session:
            for data in chunk:
                location = session.post(f"{reg.url}/v2/app/blobs/uploads/", timeout=5).headers["Location"]
                session.patch(
                    reg.url + location, data=data[:50], headers={"Content-Range": "0-49"}, timeout=5
                )
                done = session.put(
                    reg.url + location, params={"digest": sha256(data)}, data=data[50:], timeout=5
                )
                if done.status_code != 201:
                    failures.append(done.text)

    threads = [threading.Thread(target=worker, args=(blobs[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert all(reg.get_stored("app", sha256(data)) == data for data in blobs)


# -- lifecycle -----------------------------------------------------------------------


def test_stop_is_idempotent_prompt_and_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    registry = OCIRegistry().start()
    url = registry.url
    session = requests.Session()  # holds a keep-alive connection open across stop()
    assert session.get(f"{url}/v2/", timeout=5).status_code == 200
    registry.add_fault(Fault(path=r"/v2/$", delay=30))

    def stall() -> None:
        # Whether it gets the late answer or a severed connection depends on timing; either is fine.
        with contextlib.suppress(requests.RequestException):
            requests.get(f"{url}/v2/", timeout=10)

    stalled = threading.Thread(target=stall, daemon=True)
    stalled.start()
    time.sleep(0.1)

    began = time.monotonic()
    registry.stop()
    registry.stop()
    assert time.monotonic() - began < 2
    stalled.join(timeout=5)
    session.close()
    leaked = [t for t in threading.enumerate() if t not in before and t is not stalled]
    assert leaked == []
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/v2/", timeout=1)


def test_start_twice_is_an_error_and_restart_after_stop_works() -> None:
    registry = OCIRegistry()
    with registry:
        with pytest.raises(RuntimeError):
            registry.start()
        digest = registry.put_blob_bytes("app", b"kept")
    with registry:
        assert requests.get(f"{registry.url}/v2/app/blobs/{digest}", timeout=5).content == b"kept"
