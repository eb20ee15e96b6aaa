"""``chaingate sign`` / ``attest`` end to end: real registries, the loopback Sigstore stack, sigstore's verifier.

Each bundle written here is read back twice: by ``inspect`` (what a human
sees) and from the store by digest, then verified offline by sigstore-python's
own ``Verifier`` against the stack's trust config with an ``Identity`` policy,
and its statement's subject is checked against the image digest.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sigstore.errors import VerificationError
from sigstore.models import Bundle

from chaingate.cli import run
from chaingate.oci import media
from chaingate.oci.client import Registries
from chaingate.oci.interface import ImageStore
from chaingate.oci.layout import LayoutStore
from chaingate.oci.registry import fallback_tag
from chaingate.provenance.statement import names_digest
from chaingate.signing.bundle import summarize
from chaingate.signing.predicates import CYCLONEDX_MEDIA_TYPE, MAX_INLINE_SBOM_BYTES
from chaingate_testing.images import File, Layer, build_image, write_layout
from chaingate_testing.ociregistry import Fault, ImmutableTags, OCIRegistry
from chaingate_testing.sigstore import SigstoreStack

pytestmark = [pytest.mark.sigstore, pytest.mark.registry]

SLSA = "https://slsa.dev/provenance/v1"
SIGN = "https://sigstore.dev/cosign/sign/v1"
PREDICATE = {
    "buildDefinition": {
        "buildType": "https://chaingate.dev/buildtypes/test/v1",
        "externalParameters": {"ref": "refs/heads/main"},
    },
    "runDetails": {
        "builder": {"id": "https://chaingate.dev/builders/test"},
        "metadata": {"startedOn": "2024-01-01T00:00:00Z", "finishedOn": "2024-01-01T00:05:00Z"},
    },
}


@dataclass(frozen=True)
class Target:
    kind: str
    ref: str
    digest: str
    open: Callable[[], ImageStore]


def _json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run a command that must exit 2 with one line on stderr; returns that line."""
    with pytest.raises(SystemExit) as exc:
        run(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("chaingate: error: ")
    assert "Traceback" not in err
    return err


@pytest.fixture(params=["docker-registry", "referrers-api", "htpasswd", "token", "oci-layout"])
def target(
    request: pytest.FixtureRequest,
    seed: Any,
    make_registries: Callable[..., Registries],
    sample_layout: Path,
    tmp_path: Path,
    docker_config_env: Callable[[Path], Path],
) -> Target:
    kind: str = request.param
    if kind == "oci-layout":
        digest = LayoutStore.open_directory(sample_layout).resolve("latest").digest
        return Target(
            kind, f"oci:{sample_layout}:latest", digest, lambda: LayoutStore.open_directory(sample_layout)
        )
    fixture = {"docker-registry": "docker_registry", "referrers-api": "oci_registry"}.get(
        kind, f"{kind}_registry"
    )
    registry = request.getfixturevalue(fixture)
    config = None
    if kind in ("htpasswd", "token"):
        config = docker_config_env(registry.docker_config(tmp_path / "docker-config"))
    registries = make_registries(config)
    repo = f"sign/{kind}-{uuid.uuid4().hex[:8]}"
    store, digest = seed(registries, registry.host, repo, sample_layout)
    return Target(kind, f"{registry.host}/{repo}:v1", digest, lambda: store)


def test_sign_and_attest_read_back_and_verify(
    target: Target, signing: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps(PREDICATE))
    assert run(["sign", target.ref, *signing.flags(), "--format", "json"]) == 0
    signed = _json(capsys)
    argv = ["attest", target.ref, "--predicate", str(predicate), "--type", "slsaprovenance1"]
    assert run([*argv, *signing.flags(), "--format", "json"]) == 0
    attested = _json(capsys)
    for result, predicate_type in ((signed, SIGN), (attested, SLSA)):
        assert result["digest"] == target.digest
        assert result["predicateType"] == predicate_type
        assert result["signer"]["san"] == signing.san
        assert result["signer"]["issuer"] == signing.stack.issuer_url
        assert result["signer"]["claims"]["githubWorkflowRepository"] == "octo-org/octo-app"
        assert isinstance(result["rekor"]["logIndex"], int)
    assert signed["rekor"]["logIndex"] != attested["rekor"]["logIndex"]

    # What inspect shows: the signed statement's type, the signer, the log index, marked unverified.
    assert run(["inspect", target.ref, "--format", "json"]) == 0
    nodes = {node["digest"]: node for node in _json(capsys)["attachments"]}
    for result in (signed, attested):
        bundle = nodes[result["referrer"]]["bundle"]
        assert bundle["verified"] is False
        assert bundle["predicateType"] == result["predicateType"]
        assert bundle["signer"]["san"] == signing.san
        assert bundle["rekor"]["logIndex"] == result["rekor"]["logIndex"]
        assert bundle["subjectDigests"] == [target.digest]
    # Debian's docker-registry (anonymous, htpasswd, token) has no referrers API: the tag fallback is used.
    expected_source = {"referrers-api": "referrers-api", "oci-layout": "layout"}.get(
        target.kind, "fallback-tag"
    )
    assert {nodes[r["referrer"]]["source"] for r in (signed, attested)} == {expected_source}
    assert run(["inspect", target.ref]) == 0
    text = capsys.readouterr().out
    assert f"signer:    {signing.san}" in text and "not verified" in text

    # The stored bundles verify with sigstore's own verifier and name this image's digest.
    store = target.open()
    bundles = signing.bundles(store, target.digest)
    assert set(bundles) == {signed["referrer"], attested["referrer"]}
    statements = {digest: signing.verify(raw, target.digest) for digest, raw in bundles.items()}
    assert statements[signed["referrer"]]["predicateType"] == SIGN
    assert statements[signed["referrer"]]["predicate"] == {}
    assert statements[attested["referrer"]]["predicate"] == PREDICATE

    # The attachment contract: artifact manifest, empty config, one bundle layer, subject, annotations.
    manifest = store.get_manifest(attested["referrer"])
    assert manifest.content["artifactType"] == media.SIGSTORE_BUNDLE_V03
    assert manifest.config.media_type == media.OCI_EMPTY and manifest.config.digest == media.EMPTY_DIGEST
    assert [layer.media_type for layer in manifest.layers] == [media.SIGSTORE_BUNDLE_V03]
    assert manifest.layers[0].digest == attested["bundleDigest"]
    assert manifest.subject is not None and manifest.subject.digest == target.digest
    annotations = manifest.annotations
    assert annotations[media.ANNOTATION_BUNDLE_CONTENT] == "dsse-envelope"
    assert annotations[media.ANNOTATION_PREDICATE_TYPE] == SLSA
    assert annotations[media.ANNOTATION_CREATED].endswith("Z")
    if expected_source == "fallback-tag":
        assert fallback_tag(target.digest) in store.tags()


def _attest_json(
    ref: str, signing: Any, predicate: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> Any:
    argv = [
        "attest",
        ref,
        "--predicate",
        str(predicate),
        "--type",
        kind,
        *signing.flags(),
        "--format",
        "json",
    ]
    assert run(argv) == 0
    return _json(capsys)


@pytest.fixture
def api_image(
    oci_registry: OCIRegistry, registries: Registries, seed: Any, sample_layout: Path, docker_config_env: Any
) -> Target:
    repo = f"attest/{uuid.uuid4().hex[:8]}"
    store, digest = seed(registries, oci_registry.host, repo, sample_layout)
    return Target("referrers-api", f"{oci_registry.host}/{repo}:v1", digest, lambda: store)


def test_a_second_images_bundle_does_not_name_the_first(
    api_image: Target,
    oci_registry: OCIRegistry,
    registries: Registries,
    seed: Any,
    signing: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other_layout = write_layout(tmp_path / "other", build_image([Layer([File("other", b"2\n")])]))
    repo = f"attest/other-{uuid.uuid4().hex[:8]}"
    other_store, other_digest = seed(registries, oci_registry.host, repo, other_layout)
    predicate = tmp_path / "p.json"
    predicate.write_text(json.dumps(PREDICATE))
    first = _attest_json(api_image.ref, signing, predicate, "slsaprovenance1", capsys)
    second = _attest_json(f"{oci_registry.host}/{repo}:v1", signing, predicate, "slsaprovenance1", capsys)
    assert second["digest"] == other_digest != api_image.digest
    (bundle,) = signing.bundles(other_store, other_digest).values()
    # The signature itself is sound, but what it is about is the other image: it is not evidence for the first.
    statement = signing.verify(bundle, other_digest)
    assert not names_digest(statement, api_image.digest)
    with pytest.raises(AssertionError):
        signing.verify(bundle, api_image.digest)
    assert set(signing.bundles(api_image.open(), api_image.digest)) == {first["referrer"]}


@pytest.fixture(scope="module")
def other_stack() -> Iterator[SigstoreStack]:
    with SigstoreStack() as stack:
        yield stack


def test_a_bundle_does_not_verify_against_another_stacks_trust_config(
    api_image: Target, signing: Any, other_stack: SigstoreStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["sign", api_image.ref, *signing.flags(), "--format", "json"]) == 0
    referrer = _json(capsys)["referrer"]
    bundle = Bundle.from_json(signing.bundles(api_image.open(), api_image.digest)[referrer])
    signing.stack.verifier().verify_dsse(bundle, signing.policy())
    with pytest.raises(VerificationError):
        other_stack.verifier().verify_dsse(bundle, signing.policy())


def _writes(registry: OCIRegistry) -> list[str]:
    return [f"{r.method} {r.path}" for r in registry.requests if r.method not in ("GET", "HEAD")]


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"issued_at": 1_600_000_000, "expires_in": 60}, "expired at 2020-09-13T12:27:40Z"),
        ({"audience": "not-sigstore"}, "for audience 'not-sigstore', not 'sigstore'"),
        (None, "is malformed"),
    ],
    ids=["expired", "wrong-audience", "malformed"],
)
def test_bad_identity_tokens_exit_2_before_any_request(
    api_image: Target,
    oci_registry: OCIRegistry,
    signing: Any,
    claims: dict[str, Any] | None,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = "not.a-jwt" if claims is None else signing.stack.mint_token("repo:octo-org/octo-app", **claims)
    predicate = tmp_path / "p.json"
    predicate.write_text(json.dumps(PREDICATE))
    log_size = signing.stack.rekor.tree_size
    oci_registry.clear_requests()
    for command in (["sign"], ["attest", "--predicate", str(predicate), "--type", "slsaprovenance1"]):
        argv = [*command, api_image.ref, "--trust-config", signing.trust, "--identity-token", token]
        err = _fails(argv, capsys)
        assert expected in err
        assert token not in err
    # Not one request reached the registry, Fulcio or Rekor, and nothing is attached.
    assert oci_registry.requests == []
    assert signing.stack.rekor.tree_size == log_size
    assert signing.bundles(api_image.open(), api_image.digest) == {}


def test_token_file_and_environment_sources(
    api_image: Target,
    signing: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(signing.token + "\n")
    trust = ["--trust-config", signing.trust, "--format", "json"]
    assert run(["sign", api_image.ref, "--identity-token-file", str(token_file), *trust]) == 0
    assert _json(capsys)["signer"]["san"] == signing.san
    monkeypatch.setenv("SIGSTORE_ID_TOKEN", signing.token)
    assert run(["sign", api_image.ref, *trust]) == 0
    assert _json(capsys)["signer"]["san"] == signing.san
    missing = tmp_path / "missing-token"
    err = _fails(["sign", api_image.ref, "--identity-token-file", str(missing), *trust], capsys)
    assert str(missing) in err


@pytest.mark.parametrize("service", ["fulcio", "rekor"])
def test_fulcio_or_rekor_down_pushes_nothing(
    api_image: Target,
    oci_registry: OCIRegistry,
    signing: Any,
    service: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    oci_registry.clear_requests()
    with getattr(signing.stack, service).outage():
        err = _fails(["sign", api_image.ref, *signing.flags()], capsys)
    name = {"fulcio": "Fulcio", "rekor": "Rekor"}[service]
    assert f"{name} {getattr(signing.stack, service).url}" in err
    assert "503" in err and "nothing was pushed" in err
    assert _writes(oci_registry) == []
    assert signing.bundles(api_image.open(), api_image.digest) == {}


def test_fallback_registry_gets_no_tag_when_rekor_is_down(
    docker_registry: Any,
    registries: Registries,
    seed: Any,
    sample_layout: Path,
    signing: Any,
    docker_config_env: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = f"attest/down-{uuid.uuid4().hex[:8]}"
    store, digest = seed(registries, docker_registry.host, repo, sample_layout)
    with signing.stack.rekor.outage():
        _fails(["sign", f"{docker_registry.host}/{repo}:v1", *signing.flags()], capsys)
    assert fallback_tag(digest) not in store.tags()


def test_a_failed_push_says_what_exists_where(
    fresh_oci_registry: OCIRegistry,
    registries: Registries,
    seed: Any,
    sample_layout: Path,
    signing: Any,
    docker_config_env: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, digest = seed(registries, fresh_oci_registry.host, "app", sample_layout)
    fresh_oci_registry.add_fault(Fault(path=r"/manifests/sha256:", method="PUT", status=400))
    err = _fails(["sign", f"{fresh_oci_registry.host}/app:v1", *signing.flags()], capsys)
    assert "signed (Rekor log index" in err
    assert "attached to " in err and ": nothing; the bundle blob sha256:" in err
    assert fresh_oci_registry.host in err
    assert store.referrers(digest).referrers == ()


def test_predicate_that_is_not_json(
    api_image: Target,
    oci_registry: OCIRegistry,
    signing: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "predicate.txt"
    bad.write_text("this is not json\n")
    oci_registry.clear_requests()
    err = _fails(
        ["attest", api_image.ref, "--predicate", str(bad), "--type", "vuln", *signing.flags()], capsys
    )
    assert f"--predicate {bad}: not valid JSON" in err
    assert oci_registry.requests == []


def test_statement_about_another_digest_is_refused(
    api_image: Target,
    oci_registry: OCIRegistry,
    signing: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "x", "digest": {"sha256": "0" * 64}}],
        "predicateType": SLSA,
        "predicate": PREDICATE,
    }
    path = tmp_path / "statement.json"
    path.write_text(json.dumps(statement))
    oci_registry.clear_requests()
    err = _fails(
        ["attest", api_image.ref, "--predicate", str(path), "--type", "slsaprovenance1", *signing.flags()],
        capsys,
    )
    assert (
        f"--predicate {path}: the statement's subject (sha256:{'0' * 64}) does not name the image digest"
        in err
    )
    assert _writes(oci_registry) == []
    # The same statement about the right digest is accepted, and only its predicate is signed.
    statement["subject"] = [{"name": "x", "digest": {"sha256": api_image.digest.removeprefix("sha256:")}}]
    path.write_text(json.dumps(statement))
    result = _attest_json(api_image.ref, signing, path, "slsaprovenance1", capsys)
    signed = signing.verify(
        signing.bundles(api_image.open(), api_image.digest)[result["referrer"]], api_image.digest
    )
    assert signed["predicate"] == PREDICATE
    assert signed["subject"] == [
        {"name": api_image.ref.rsplit(":", 1)[0], "digest": {"sha256": api_image.digest[7:]}}
    ]


def test_predicate_type_names_and_uris(
    api_image: Target, signing: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"scanner": {"uri": "pkg:github/aquasecurity/trivy"}}')
    assert _attest_json(api_image.ref, signing, path, "vuln", capsys)["predicateType"] == (
        "https://cosign.sigstore.dev/attestation/vuln/v1"
    )
    assert _attest_json(api_image.ref, signing, path, "https://example.com/custom/v1", capsys)[
        "predicateType"
    ] == ("https://example.com/custom/v1")
    err = _fails(
        ["attest", api_image.ref, "--predicate", str(path), "--type", "no such type", *signing.flags()],
        capsys,
    )
    assert "--type: 'no such type' is neither a known type" in err


def _cyclonedx(components: int, version: str = "1.6") -> dict[str, Any]:
    return {
        "bomFormat": "CycloneDX",
        "specVersion": version,
        "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
        "version": 1,
        "metadata": {"timestamp": "2024-05-01T12:00:00Z"},
        "components": [
            {
                "type": "library",
                "name": f"component-{i}",
                "version": "1.0.0",
                "purl": f"pkg:pypi/component-{i}@1.0.0",
            }
            for i in range(components)
        ],
    }


def test_cyclonedx_inline_and_by_reference(
    api_image: Target,
    oci_registry: OCIRegistry,
    signing: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    small = tmp_path / "small.cdx.json"
    small.write_text(json.dumps(_cyclonedx(3, "1.4")))
    inline = _attest_json(api_image.ref, signing, small, "cyclonedx", capsys)
    assert "sbomReferrer" not in inline
    store = api_image.open()
    statement = signing.verify(signing.bundles(store, api_image.digest)[inline["referrer"]], api_image.digest)
    assert statement["predicateType"] == "https://cyclonedx.org/bom"
    assert statement["predicate"]["components"][0]["name"] == "component-0"

    large = tmp_path / "large.cdx.json"
    large.write_text(json.dumps(_cyclonedx(12_000)))
    raw = large.read_bytes()
    assert len(raw) > MAX_INLINE_SBOM_BYTES
    result = _attest_json(api_image.ref, signing, large, "cyclonedx", capsys)
    sbom = result["sbomReferrer"]
    assert sbom["size"] == len(raw)
    statement = signing.verify(signing.bundles(store, api_image.digest)[result["referrer"]], api_image.digest)
    reference = statement["predicate"]["sbomReference"]
    assert reference == {
        "digest": sbom["blobDigest"],
        "size": len(raw),
        "mediaType": CYCLONEDX_MEDIA_TYPE,
        "uri": f"oci://{api_image.ref.rsplit(':', 1)[0]}@{sbom['digest']}",
    }
    assert "bomFormat" not in statement["predicate"]
    assert statement["predicate"]["metadata"] == {"timestamp": "2024-05-01T12:00:00Z"}
    # The SBOM itself is its own referrer of the image, byte for byte what was given.
    (sbom_ref,) = store.referrers(api_image.digest, CYCLONEDX_MEDIA_TYPE).referrers
    assert sbom_ref.descriptor.digest == sbom["digest"]
    with store.open_blob(sbom_ref.manifest.layers[0]) as stream:
        assert stream.read() == raw

    old = tmp_path / "old.cdx.json"
    old.write_text(json.dumps(_cyclonedx(1, "1.2")))
    err = _fails(
        ["attest", api_image.ref, "--predicate", str(old), "--type", "cyclonedx", *signing.flags()], capsys
    )
    assert "CycloneDX specVersion '1.2' is not supported" in err


def test_platform_of_an_index_is_attested_by_its_own_digest(
    multiarch_layout: Path, signing: Any, capsys: pytest.CaptureFixture[str], docker_config_env: Any
) -> None:
    store = LayoutStore.open_directory(multiarch_layout)
    index = store.get_manifest(store.resolve("latest").digest)
    arm = next(d for d in index.manifests if d.platform is not None and d.platform.architecture == "arm64")
    ref = f"oci:{multiarch_layout}:latest"
    assert run(["sign", ref, "--platform", "linux/arm64", *signing.flags(), "--format", "json"]) == 0
    assert _json(capsys)["digest"] == arm.digest
    assert run(["sign", ref, *signing.flags(), "--format", "json"]) == 0
    assert _json(capsys)["digest"] == index.digest
    fresh = LayoutStore.open_directory(multiarch_layout)
    signing.verify(next(iter(signing.bundles(fresh, arm.digest).values())), arm.digest)
    signing.verify(next(iter(signing.bundles(fresh, index.digest).values())), index.digest)


def test_summary_of_a_bundle_matches_the_bundle(
    api_image: Target, signing: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["sign", api_image.ref, *signing.flags(), "--format", "json"]) == 0
    result = _json(capsys)
    raw = signing.bundles(api_image.open(), api_image.digest)[result["referrer"]]
    summary = summarize(raw)
    assert summary.tlog is not None and summary.tlog.log_index == result["rekor"]["logIndex"]
    assert summary.identity is not None and summary.identity.issuer == signing.stack.issuer_url
    assert summary.identity.claims["sourceRepositoryURI"] == "https://github.com/octo-org/octo-app"
    assert json.loads(raw)["mediaType"] == media.SIGSTORE_BUNDLE_V03


def test_provenance_from_github_actions_then_attested_whole(
    api_image: Target,
    signing: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    github = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "octo-org/octo-app",
        "GITHUB_WORKFLOW_REF": "octo-org/octo-app/.github/workflows/release.yml@refs/heads/main",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_SHA": "a" * 40,
        "GITHUB_RUN_ID": "4242424242",
        "GITHUB_RUN_ATTEMPT": "1",
    }
    for key, value in github.items():
        monkeypatch.setenv(key, value)
    provenance = tmp_path / "provenance.json"
    assert run(["provenance", api_image.ref, "-o", str(provenance)]) == 0
    capsys.readouterr()
    for key in github:
        monkeypatch.delenv(key)
    result = _attest_json(api_image.ref, signing, provenance, "slsaprovenance1", capsys)
    signed = signing.verify(
        signing.bundles(api_image.open(), api_image.digest)[result["referrer"]], api_image.digest
    )
    written = json.loads(provenance.read_text())
    assert signed == written  # the same subject (name and digest), type and predicate
    # The workflow in the provenance is the one Fulcio put in the certificate.
    assert signed["predicate"]["runDetails"]["builder"]["id"] == result["signer"]["san"]


def test_inspect_reports_an_unloadable_bundle_without_failing(
    api_image: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    from chaingate.oci.artifact import Blob, build_artifact, push_artifact

    store = api_image.open()
    subject = store.resolve(api_image.digest)
    bogus = build_artifact(
        subject,
        media.SIGSTORE_BUNDLE_V03,
        [Blob(media.SIGSTORE_BUNDLE_V03, b'{"mediaType": "nonsense"}')],
        annotations={media.ANNOTATION_PREDICATE_TYPE: SLSA},
    )
    push_artifact(store, bogus)
    assert run(["inspect", api_image.ref, "--format", "json"]) == 0
    (node,) = _json(capsys)["attachments"]
    assert node["bundle"]["verified"] is False
    assert node["bundle"]["error"].startswith("not a loadable Sigstore bundle")
    assert node["predicateTypeAnnotation"] == SLSA
    assert run(["inspect", api_image.ref]) == 0
    assert "bundle unreadable: not a loadable Sigstore bundle" in capsys.readouterr().out


def test_a_docker_archive_is_refused_before_signing(
    sample_layout: Path,
    signing: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    docker_config_env: Any,
) -> None:
    archive = tmp_path / "image.tar"
    assert run(["copy", f"oci:{sample_layout}:latest", f"docker-archive:{archive}"]) == 0
    capsys.readouterr()
    log_size = signing.stack.rekor.tree_size
    err = _fails(["sign", f"docker-archive:{archive}", *signing.flags()], capsys)
    assert "a docker archive cannot hold attachments" in err
    assert signing.stack.rekor.tree_size == log_size


def test_a_stalled_rekor_times_out_instead_of_hanging(signing: Any, tmp_path: Path) -> None:
    import socket
    import time

    from chaingate.signing.attest import prepare_signer, sign_statement
    from chaingate.signing.interface import SigningError
    from chaingate.signing.tokens import check_token
    from chaingate.signing.trust import load_trust_config

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = signing.stack.trust_config()
        config["signingConfig"]["rekorTlogUrls"][0]["url"] = f"http://127.0.0.1:{silent.getsockname()[1]}"
        path = tmp_path / "stalled-rekor.json"
        path.write_text(json.dumps(config))
        signer = prepare_signer(
            check_token(signing.token, "test"), load_trust_config(path), timeout=(1.0, 0.5)
        )
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "_", "digest": {"sha256": "a" * 64}}],
        }
        start = time.monotonic()
        with pytest.raises(
            SigningError, match=r"Rekor http://127\.0\.0\.1:\d+/api/v1 unreachable \(ReadTimeout\)"
        ):
            sign_statement(signer, {**statement, "predicateType": SIGN, "predicate": {}})
        assert time.monotonic() - start < 10


def test_an_sbom_of_another_image_is_refused_before_signing(
    api_image: Target,
    oci_registry: OCIRegistry,
    signing: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = "sha256:" + "0" * 64
    bom = _cyclonedx(1)
    bom["metadata"]["component"] = {"type": "container", "name": "app", "version": other}
    path = tmp_path / "sbom.cdx.json"
    path.write_text(json.dumps(bom))
    log_size = signing.stack.rekor.tree_size
    oci_registry.clear_requests()
    argv = ["attest", api_image.ref, "--predicate", str(path), "--type", "cyclonedx", *signing.flags()]
    err = _fails(argv, capsys)
    assert (
        f"--predicate {path}: the SBOM describes {other} (metadata.component), "
        f"not the image being attested ({api_image.digest})" in err
    )
    assert _writes(oci_registry) == [] and signing.stack.rekor.tree_size == log_size
    # The same SBOM naming this image is attested.
    bom["metadata"]["component"]["version"] = api_image.digest
    path.write_text(json.dumps(bom))
    assert _attest_json(api_image.ref, signing, path, "cyclonedx", capsys)["digest"] == api_image.digest


def test_an_sbom_of_one_platform_attests_its_index_but_not_another_platform(
    multiarch_layout: Path,
    signing: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    docker_config_env: Any,
) -> None:
    ref = f"oci:{multiarch_layout}:latest"
    sbom = tmp_path / "arm64.cdx.json"
    assert run(["sbom", ref, "--platform", "linux/arm64", "-o", str(sbom)]) == 0
    capsys.readouterr()
    store = LayoutStore.open_directory(multiarch_layout)
    index = store.get_manifest(store.resolve("latest").digest)
    arm = next(d for d in index.manifests if d.platform is not None and d.platform.architecture == "arm64")
    assert json.loads(sbom.read_text())["metadata"]["component"]["version"] == arm.digest
    # The index holds the platform the SBOM describes (verify --platform linux/arm64 counts it).
    assert _attest_json(ref, signing, sbom, "cyclonedx", capsys)["digest"] == index.digest
    argv = ["attest", ref, "--platform", "linux/amd64", "--predicate", str(sbom), "--type", "cyclonedx"]
    err = _fails([*argv, *signing.flags()], capsys)
    assert f"the SBOM describes {arm.digest} (metadata.component), not the image being attested" in err


def test_an_immutable_fallback_tag_says_what_to_configure(
    fresh_oci_registry: OCIRegistry,
    registries: Registries,
    seed: Any,
    sample_layout: Path,
    signing: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fresh_oci_registry.referrers_api = False
    fresh_oci_registry.immutable_tags = ImmutableTags()
    repo = f"attest/immutable-{uuid.uuid4().hex[:8]}"
    _, digest = seed(registries, fresh_oci_registry.host, repo, sample_layout)
    ref = f"{fresh_oci_registry.host}/{repo}@{digest}"
    assert run(["sign", ref, *signing.flags(), "--format", "json"]) == 0  # creates sha256-<hex>
    capsys.readouterr()
    err = _fails(["sign", ref, *signing.flags()], capsys)
    first, hint = err.splitlines()
    assert f"the registry refused to overwrite the referrers fallback tag {fallback_tag(digest)} " in first
    assert "(HTTP 400: TAG_INVALID: The image tag 'sha256-" in first
    assert "enable tag mutability for sha256-* tags, or use a registry with the OCI referrers API" in first
    # Not "re-run the command": the next run would meet the same immutable tag.
    assert hint.startswith("  hint: the referrer itself was pushed as ") and "re-run" not in hint
