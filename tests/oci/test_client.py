"""The distribution client against a real HTTP registry that misbehaves on purpose."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from chaingate.oci.artifact import bytes_opener
from chaingate.oci.client import Registries, parse_challenge
from chaingate.oci.digest import sha256_digest
from chaingate.oci.errors import (
    AuthError,
    DigestMismatch,
    NotFound,
    OCIError,
    RegistryUnavailable,
    SizeLimitExceeded,
)
from chaingate.oci.interface import Descriptor
from chaingate.oci.registry import RegistryStore
from chaingate_testing.ociregistry import Fault, OCIRegistry
from chaingate_testing.registry import TokenServer

pytestmark = pytest.mark.registry

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def seed(reg: OCIRegistry, repo: str = "app") -> tuple[str, bytes, str, bytes]:
    """A blob and a manifest that references it; returns (blob digest, blob, manifest digest, manifest)."""
    blob = b"layer-bytes" * 100
    blob_digest = reg.put_blob_bytes(repo, blob)
    cfg_digest = reg.put_blob_bytes(repo, b"{}")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cfg_digest,
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": blob_digest,
                    "size": len(blob),
                }
            ],
        },
        separators=(",", ":"),
    ).encode()
    manifest_digest = reg.put_manifest_bytes(repo, manifest, MANIFEST_TYPE, tag="v1")
    return blob_digest, blob, manifest_digest, manifest


def store(registries: Registries, reg: OCIRegistry, repo: str = "app") -> RegistryStore:
    return RegistryStore(registries.client(reg.host), repo)


def test_parse_challenge() -> None:
    c = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'
    )
    assert c is not None and c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
    }
    assert parse_challenge('Basic realm="x"') == parse_challenge("basic realm=x")
    assert parse_challenge("") is None


def test_resolve_get_and_blob_round_trip(fresh_oci_registry: OCIRegistry, registries: Registries) -> None:
    blob_digest, blob, manifest_digest, _ = seed(fresh_oci_registry)
    s = store(registries, fresh_oci_registry)
    desc = s.resolve("v1")
    assert desc.digest == manifest_digest
    manifest = s.get_manifest(manifest_digest)
    assert [d.digest for d in manifest.layers] == [blob_digest]
    with s.open_blob(manifest.layers[0]) as f:
        assert f.read() == blob
    with pytest.raises(NotFound, match="manifest nope not found"):
        s.resolve("nope")


@pytest.mark.parametrize("chunked", [False, True])
def test_upload_monolithic_and_chunked(
    fresh_oci_registry: OCIRegistry, make_registries: Callable[..., Registries], chunked: bool
) -> None:
    registries = make_registries(monolithic_limit=10 if chunked else 1 << 20, chunk_size=1000)
    data = bytes(range(256)) * 40  # 10 KiB -> 11 chunks when chunked
    desc = Descriptor("application/octet-stream", sha256_digest(data), len(data))
    s = store(registries, fresh_oci_registry)
    assert not s.has_blob(desc)
    s.put_blob(desc, bytes_opener(data))
    assert s.has_blob(desc)
    assert fresh_oci_registry.get_stored("app", desc.digest) == data
    patches = [r for r in fresh_oci_registry.requests if r.method == "PATCH"]
    assert len(patches) == (11 if chunked else 0)


def test_upload_of_wrong_bytes_is_refused(fresh_oci_registry: OCIRegistry, registries: Registries) -> None:
    desc = Descriptor("application/octet-stream", sha256_digest(b"right"), 5)
    with pytest.raises(OCIError, match=r"answered 400: DIGEST_INVALID"):
        store(registries, fresh_oci_registry).put_blob(desc, bytes_opener(b"wrong"))
    assert fresh_oci_registry.get_stored("app", desc.digest) is None


def test_retry_after_storm_is_honoured(
    fresh_oci_registry: OCIRegistry, registries: Registries, sleeps: list[float]
) -> None:
    _, _, digest, _ = seed(fresh_oci_registry)
    fault = fresh_oci_registry.add_fault(
        Fault(path="/manifests/", status=429, headers={"Retry-After": "3"}, times=3)
    )
    assert store(registries, fresh_oci_registry).get_manifest(digest).digest == digest
    assert fault.hits == 3
    assert len(sleeps) == 3 and all(s >= 3 for s in sleeps)


def test_retry_after_beyond_the_budget_gives_up(
    fresh_oci_registry: OCIRegistry, registries: Registries, sleeps: list[float]
) -> None:
    _, _, digest, _ = seed(fresh_oci_registry)
    fresh_oci_registry.add_fault(Fault(path="/manifests/", status=503, headers={"Retry-After": "3600"}))
    with pytest.raises(RegistryUnavailable, match=r"retry budget.*asked to wait 3600s"):
        store(registries, fresh_oci_registry).get_manifest(digest)
    assert sleeps == []


def test_5xx_forever_is_bounded(
    fresh_oci_registry: OCIRegistry, registries: Registries, sleeps: list[float]
) -> None:
    _, _, digest, _ = seed(fresh_oci_registry)
    fault = fresh_oci_registry.add_fault(Fault(path="/manifests/", status=502))
    with pytest.raises(RegistryUnavailable, match="answered 502 4 times"):
        store(registries, fresh_oci_registry).get_manifest(digest)
    assert fault.hits == 4
    assert len(sleeps) == 3
    # Exponential backoff with full jitter: each wait is within its doubling bound.
    assert all(0 <= s <= 0.5 * 2**i for i, s in enumerate(sleeps))


def test_corrupted_manifest_is_rejected(fresh_oci_registry: OCIRegistry, registries: Registries) -> None:
    _, _, digest, _ = seed(fresh_oci_registry)
    fresh_oci_registry.add_fault(Fault(path="/manifests/", method="GET", corrupt=True))
    with pytest.raises(DigestMismatch, match=digest):
        store(registries, fresh_oci_registry).get_manifest(digest)


def test_corrupted_tag_resolution_is_rejected(
    fresh_oci_registry: OCIRegistry, registries: Registries
) -> None:
    seed(fresh_oci_registry)
    fresh_oci_registry.add_fault(Fault(path="/manifests/", method="GET", corrupt=True))
    with pytest.raises(DigestMismatch):
        store(registries, fresh_oci_registry).resolve("v1")


def test_corrupted_blob_is_rejected_at_the_end(
    fresh_oci_registry: OCIRegistry, registries: Registries
) -> None:
    blob_digest, blob, _, _ = seed(fresh_oci_registry)
    fresh_oci_registry.add_fault(Fault(path="/blobs/", method="GET", corrupt=True))
    desc = Descriptor("application/octet-stream", blob_digest, len(blob))
    reader = store(registries, fresh_oci_registry).open_blob(desc)
    with pytest.raises(DigestMismatch):
        drain(reader)


def drain(stream: IO[bytes]) -> None:
    """Read a stream to its end in small pieces, as a consumer of a layer does."""
    with stream:
        while stream.read(100):
            pass


def test_oversized_responses_are_refused(fresh_oci_registry: OCIRegistry, registries: Registries) -> None:
    blob_digest, blob, digest, _ = seed(fresh_oci_registry)
    fresh_oci_registry.add_fault(Fault(path="/manifests/", method="GET", oversize=5 * 1024 * 1024))
    fresh_oci_registry.add_fault(Fault(path="/blobs/", method="GET", oversize=10))
    s = store(registries, fresh_oci_registry)
    with pytest.raises(SizeLimitExceeded, match="limit of 4194304"):
        s.get_manifest(digest)
    with pytest.raises(SizeLimitExceeded, match="server sends"):
        s.open_blob(Descriptor("application/octet-stream", blob_digest, len(blob)))


def test_endless_401_is_bounded(fresh_oci_registry: OCIRegistry, registries: Registries) -> None:
    _, _, digest, _ = seed(fresh_oci_registry)
    tokens = TokenServer(service="svc", issuer="iss", users={}, acl={}, anonymous_pull=("*",)).start()
    try:
        challenge = f'Bearer realm="{tokens.url}",service="svc",scope="repository:app:pull"'
        fault = fresh_oci_registry.add_fault(
            Fault(path="/v2/app/", status=401, headers={"WWW-Authenticate": challenge})
        )
        with pytest.raises(AuthError, match="still unauthorized"):
            store(registries, fresh_oci_registry).get_manifest(digest)
        assert fault.hits == 4  # the first try and 3 rounds with fresh tokens, then a clear error
        assert len(tokens.issued) == 3
    finally:
        tokens.stop()


def test_basic_auth(make_registries: Callable[..., Registries], tmp_path: Path) -> None:
    import base64
    import json

    with OCIRegistry(basic_auth=("ci", "s3cret:with:colons")) as reg:
        seed(reg)
        with pytest.raises(AuthError, match="requires credentials and none were found"):
            store(make_registries(), reg).resolve("v1")
        config = tmp_path / "docker"
        config.mkdir()
        for password, ok in (("wrong", False), ("s3cret:with:colons", True)):
            auth = base64.b64encode(f"ci:{password}".encode()).decode()
            (config / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
            s = store(make_registries(config), reg)
            if ok:
                assert s.resolve("v1").digest.startswith("sha256:")
            else:
                with pytest.raises(AuthError, match="refused the credentials") as exc:
                    s.resolve("v1")
                assert "wrong" not in exc.value.diagnostics()


def test_registry_down(make_registries: Callable[..., Registries], sleeps: list[float]) -> None:
    reg = OCIRegistry().start()
    host = reg.host
    reg.stop()
    registries = make_registries()
    with pytest.raises(RegistryUnavailable, match="failed after 4 attempts"):
        RegistryStore(registries.client(host), "app").resolve("v1")
    assert len(sleeps) == 3


def test_read_timeout(fresh_oci_registry: OCIRegistry, make_registries: Callable[..., Registries]) -> None:
    _, _, digest, _ = seed(fresh_oci_registry)
    fresh_oci_registry.add_fault(Fault(path="/manifests/", delay=2.0))
    registries = make_registries(read_timeout=0.2, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="ReadTimeout"):
        store(registries, fresh_oci_registry).get_manifest(digest)
    assert time.monotonic() - started < 2.0


def test_tags_pagination(fresh_oci_registry: OCIRegistry, registries: Registries) -> None:
    _, _, _, manifest = seed(fresh_oci_registry)
    for i in range(1500):
        fresh_oci_registry.put_manifest_bytes("app", manifest, MANIFEST_TYPE, tag=f"t{i:04d}")
    tags = store(registries, fresh_oci_registry).tags()
    assert len(tags) == 1501 and tags[0] == "t0000" and "v1" in tags


def test_a_failed_streamed_upload_restarts_from_the_source(
    fresh_oci_registry: OCIRegistry, registries: Registries
) -> None:
    """A streamed body cannot be replayed: the whole upload restarts from a fresh stream."""
    data = b"streamed" * 1000
    desc = Descriptor("application/octet-stream", sha256_digest(data), len(data))
    opened: list[int] = []

    def opener() -> IO[bytes]:
        opened.append(1)
        return bytes_opener(data)()

    fault = fresh_oci_registry.add_fault(Fault(path="/blobs/uploads/", method="PUT", status=503, times=1))
    store(registries, fresh_oci_registry).put_blob(desc, opener)
    assert fault.hits == 1
    assert len(opened) == 2
    assert fresh_oci_registry.get_stored("app", desc.digest) == data
    assert len([r for r in fresh_oci_registry.requests if r.method == "POST"]) == 2
