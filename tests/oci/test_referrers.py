"""Attaching and listing referrers, through the referrers API and through the tag fallback, for real."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from chaingate.oci import media
from chaingate.oci.artifact import Blob, build_artifact, push_artifact, push_blobs
from chaingate.oci.client import Refused, Registries
from chaingate.oci.copy import copy_image
from chaingate.oci.interface import Descriptor, ImageStore, Manifest
from chaingate.oci.layout import LayoutStore
from chaingate.oci.registry import RegistryStore, TagNotRewritable, encode_index, fallback_tag
from chaingate_testing.ociregistry import Fault, ImmutableTags, OCIRegistry
from chaingate_testing.registry import DockerRegistry

pytestmark = pytest.mark.registry

BUNDLE = media.SIGSTORE_BUNDLE_V03


def seeded_store(
    registries: Registries, host: str, repo: str, layout: Path
) -> tuple[RegistryStore, Descriptor]:
    src = LayoutStore.open_directory(layout)
    dst = RegistryStore(registries.client(host), repo)
    result = copy_image(src, "latest", dst, tag="v1")
    return dst, dst.resolve(result.digest)


def attach(
    store: ImageStore, subject: Descriptor, payload: bytes, predicate: str = "https://slsa.dev/provenance/v1"
) -> Manifest:
    artifact = build_artifact(
        subject,
        BUNDLE,
        [Blob(BUNDLE, payload)],
        annotations={
            media.ANNOTATION_PREDICATE_TYPE: predicate,
            media.ANNOTATION_BUNDLE_CONTENT: "dsse-envelope",
        },
    )
    push_artifact(store, artifact)
    return artifact.manifest


def test_referrers_api_path(oci_registry: OCIRegistry, registries: Registries, sample_layout: Path) -> None:
    store, subject = seeded_store(registries, oci_registry.host, "api/app", sample_layout)
    first = attach(store, subject, b'{"bundle": 1}')
    assert store.referrers_api is True
    second = attach(store, subject, b'{"bundle": 2}', predicate="https://cyclonedx.org/bom")
    sbom = build_artifact(
        subject, "application/vnd.cyclonedx+json", [Blob("application/vnd.cyclonedx+json", b"{}")]
    )
    push_artifact(store, sbom)
    listing = store.referrers(subject.digest)
    assert {r.descriptor.digest for r in listing.referrers} == {
        first.digest,
        second.digest,
        sbom.manifest.digest,
    }
    assert {r.source for r in listing.referrers} == {"referrers-api"}
    assert listing.rejected == ()
    # No fallback tag was written: the API was detected from OCI-Subject.
    assert fallback_tag(subject.digest) not in oci_registry.tags("api/app")
    filtered = store.referrers(subject.digest, "application/vnd.cyclonedx+json")
    assert [r.descriptor.digest for r in filtered.referrers] == [sbom.manifest.digest]


def test_fallback_path(docker_registry: DockerRegistry, registries: Registries, sample_layout: Path) -> None:
    store, subject = seeded_store(registries, docker_registry.host, "fallback/app", sample_layout)
    first = attach(store, subject, b'{"bundle": "a"}')
    assert store.referrers_api is False
    assert fallback_tag(subject.digest) in store.tags()
    again = attach(store, subject, b'{"bundle": "a"}')  # idempotent
    assert again.digest == first.digest
    listing = store.referrers(subject.digest)
    assert [(r.descriptor.digest, r.source) for r in listing.referrers] == [(first.digest, "fallback-tag")]
    assert listing.referrers[0].artifact_type == BUNDLE


def test_readers_check_every_listed_manifest(
    docker_registry: DockerRegistry, registries: Registries, sample_layout: Path, tmp_path: Path
) -> None:
    """A fallback index naming a missing manifest, or one about another image, is ignored with a reason."""
    store, subject = seeded_store(registries, docker_registry.host, "fallback/lies", sample_layout)
    good = attach(store, subject, b'{"good": true}')
    # A real referrer of a *different* image, listed in this image's index.
    other = build_artifact(
        Descriptor(media.OCI_MANIFEST, "sha256:" + "1" * 64, 10), BUNDLE, [Blob(BUNDLE, b'{"other": 1}')]
    )
    push_blobs(store, other)
    store.client.put_manifest(store.repository, other.manifest.digest, other.manifest.raw, media.OCI_MANIFEST)
    entries = [
        {
            "mediaType": media.OCI_MANIFEST,
            "digest": good.digest,
            "size": good.descriptor.size,
            "artifactType": BUNDLE,
        },
        {
            "mediaType": media.OCI_MANIFEST,
            "digest": other.manifest.digest,
            "size": other.manifest.descriptor.size,
            "artifactType": BUNDLE,
        },
    ]
    missing = "sha256:" + "2" * 64
    # docker-registry refuses an index naming a missing manifest, so that lie is served by our own registry below.
    store.client.put_manifest(
        store.repository, fallback_tag(subject.digest), encode_index(entries), media.OCI_INDEX
    )
    listing = store.referrers(subject.digest)
    assert [r.descriptor.digest for r in listing.referrers] == [good.digest]
    assert [(r.digest, "names subject" in r.reason) for r in listing.rejected] == [
        (other.manifest.digest, True)
    ]

    with OCIRegistry(referrers_api=False) as lying:
        lstore, lsubject = seeded_store(registries, lying.host, "lies", sample_layout)
        index = encode_index([{"mediaType": media.OCI_MANIFEST, "digest": missing, "size": 100}])
        lying.put_manifest_bytes("lies", index, media.OCI_INDEX, tag=fallback_tag(lsubject.digest))
        listing = lstore.referrers(lsubject.digest)
        assert listing.referrers == ()
        assert len(listing.rejected) == 1 and listing.rejected[0].digest == missing
        assert "not found" in listing.rejected[0].reason


def test_eight_concurrent_attaches_lose_none(
    docker_registry: DockerRegistry, make_registries: Callable[..., Registries], sample_layout: Path
) -> None:
    setup = make_registries()
    _, subject = seeded_store(setup, docker_registry.host, "fallback/race", sample_layout)
    errors: list[BaseException] = []
    digests: list[str] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            # Each step of a pipeline is its own process with its own client: no shared state.
            store = RegistryStore(make_registries().client(docker_registry.host), "fallback/race")
            artifact = build_artifact(subject, BUNDLE, [Blob(BUNDLE, json.dumps({"step": i}).encode())])
            push_blobs(store, artifact)
            barrier.wait(timeout=30)
            store.attach(artifact.manifest)
            digests.append(artifact.manifest.digest)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    listing = RegistryStore(setup.client(docker_registry.host), "fallback/race").referrers(subject.digest)
    assert sorted(r.descriptor.digest for r in listing.referrers) == sorted(digests)
    assert len(digests) == 8


def test_cosign_legacy_tags_are_listed(
    docker_registry: DockerRegistry, registries: Registries, sample_layout: Path
) -> None:
    store, subject = seeded_store(registries, docker_registry.host, "legacy/app", sample_layout)
    sig = build_artifact(
        subject,
        "application/vnd.dev.cosign.simplesigning.v1+json",
        [Blob("application/vnd.dev.cosign.simplesigning.v1+json", b'{"critical": {}}')],
    )
    push_blobs(store, sig)
    store.put_manifest(sig.manifest, tag=fallback_tag(subject.digest) + ".sig")
    legacy = list(store.legacy_attachments(subject.digest))
    assert [(suffix, m.digest) for suffix, m in legacy] == [("sig", sig.manifest.digest)]


@pytest.mark.parametrize(
    ("refusal", "answer"),
    [
        (ImmutableTags(), "HTTP 400: TAG_INVALID: The image tag 'sha256-"),  # ECR
        (
            ImmutableTags(status=412, code="PRECONDITION", message="configured as immutable"),
            "HTTP 412",
        ),  # Harbor
        (ImmutableTags(status=403, code="DENIED", message="Not enough permissions to override"), "HTTP 403"),
        (
            ImmutableTags(
                status=400, code="UNKNOWN", message="ImageTagAlreadyExistsException: {tag}\n##[error]\x1b[2Jx"
            ),
            "HTTP 400: UNKNOWN: ImageTagAlreadyExistsException: sha256-",
        ),
    ],
)
def test_an_immutable_fallback_tag_is_named_with_what_to_configure(
    refusal: ImmutableTags,
    answer: str,
    fresh_oci_registry: OCIRegistry,
    registries: Registries,
    sample_layout: Path,
) -> None:
    fresh_oci_registry.referrers_api = False
    fresh_oci_registry.immutable_tags = refusal
    store, subject = seeded_store(registries, fresh_oci_registry.host, "immutable/app", sample_layout)
    first = attach(store, subject, b'{"bundle": 1}')  # creating the tag is allowed
    with pytest.raises(TagNotRewritable) as caught:
        attach(store, subject, b'{"bundle": 2}')
    message = caught.value.message
    tag = fallback_tag(subject.digest)
    assert f"the registry refused to overwrite the referrers fallback tag {tag} ({answer}" in message
    assert message.endswith(
        "enable tag mutability for sha256-* tags, or use a registry with the OCI referrers API"
    )
    # The registry's words, neutralised: no line break, no legacy workflow command, no terminal escape.
    assert "\n" not in message and "##[" not in message and "\x1b" not in message
    assert caught.value.hint is not None and "@sha256:" in caught.value.hint
    # The tag still lists what it listed; the first referrer stays findable.
    assert [r.descriptor.digest for r in store.referrers(subject.digest).referrers] == [first.digest]


def test_a_refused_first_write_of_the_fallback_tag_is_not_blamed_on_immutability(
    fresh_oci_registry: OCIRegistry, registries: Registries, sample_layout: Path
) -> None:
    fresh_oci_registry.referrers_api = False
    store, subject = seeded_store(registries, fresh_oci_registry.host, "immutable/new", sample_layout)
    fresh_oci_registry.add_fault(Fault(path=r"/manifests/sha256-", method="PUT", status=409))
    with pytest.raises(Refused) as caught:
        attach(store, subject, b'{"bundle": 1}')
    assert not isinstance(caught.value, TagNotRewritable)
    assert caught.value.status == 409


def test_a_listing_past_the_bound_is_refused_before_any_manifest_is_fetched() -> None:
    """Second review: 50,000 junk entries in a fallback index must not cost 50,000 manifest GETs."""
    from chaingate.errors import ChaingateError
    from chaingate.oci.registry import MAX_LISTED_REFERRERS, check_referrers

    fetched: list[str] = []

    class Counting:
        display = "registry.example/app"

        def get_manifest(self, digest: str) -> Manifest:
            fetched.append(digest)
            raise AssertionError("no manifest may be fetched")

    listed = [({"digest": f"sha256:{i:064x}"}, "fallback-tag") for i in range(MAX_LISTED_REFERRERS + 1)]
    with pytest.raises(ChaingateError, match=f"more than the {MAX_LISTED_REFERRERS} chaingate reads"):
        check_referrers(Counting(), "sha256:" + "a" * 64, listed, None)  # type: ignore[arg-type]
    assert fetched == []
