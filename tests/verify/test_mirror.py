"""``chaingate mirror``: only what the gate allows reaches DST, by digest, with its attachments and decision.

Two real registries play upstream and the internal mirror: the in-repo OCI 1.1
registry (referrers API, and a request log to prove a deny writes nothing) and
Debian's docker-registry (no referrers API, so the fallback index is written).
Upstream images are signed by a distroless-style release workflow identity.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from chaingate.cli import run
from chaingate.deploy.record import DECISION_MEDIA_TYPE as DEPLOY_DECISION_MEDIA_TYPE
from chaingate.errors import EXIT_DENIED, EXIT_USAGE
from chaingate.oci.interface import Platform
from chaingate.oci.registry import RegistryStore
from chaingate.policy import load_policy
from chaingate.predicate_types import CYCLONEDX_BOM
from chaingate.verify.mirror import DECISION_MEDIA_TYPE, MirrorResult, mirror_image
from chaingate_testing.images import BuiltIndex
from chaingate_testing.ociregistry import OCIRegistry
from chaingate_testing.registry import DockerRegistry
from chaingate_testing.sigstore import SigstoreStack
from support.gate import SIGN_V1, Gate, Identity, Pushed, attach, github_identity, push_image, sbom, statement

pytestmark = [pytest.mark.sigstore, pytest.mark.registry]

UPSTREAM_REPO = "GoogleContainerTools/distroless"
UPSTREAM_SAN = f"https://github.com/{UPSTREAM_REPO}/.github/workflows/release.yaml@refs/heads/main"
UPSTREAM_POLICY = """\
version: 1
mode: enforce
signers:
  - issuer: {issuer}
    subject: {subject}
"""
WRITES = frozenset({"PUT", "POST", "PATCH", "DELETE"})
extras = {"ok": "", "unknown-key": "colour: blue\n"}


@pytest.fixture(scope="module")
def upstream(sigstore_stack: SigstoreStack) -> Iterator[Identity]:
    """The identity an upstream project's release workflow signs with (distroless-style claims)."""
    with ExitStack() as exits:
        yield github_identity(
            sigstore_stack, exits, repository=UPSTREAM_REPO, workflow=".github/workflows/release.yaml"
        )


@pytest.fixture(autouse=True)
def _clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty-docker-config"))
    for name in ("SIGSTORE_ID_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def policy_file(gate: Gate, extra: str = "", *, subject: str = UPSTREAM_SAN) -> Path:
    path = gate.tmp / "upstream.yaml"
    path.write_text(UPSTREAM_POLICY.format(issuer=gate.stack.issuer_url, subject=subject) + extra)
    return path


def signed_upstream(
    gate: Gate, host: str, signer: Identity, *, multiarch: bool = False
) -> tuple[Pushed, list[str]]:
    """An upstream image with a signature and an SBOM by ``signer``; returns it and its referrer digests."""
    pushed = push_image(
        gate.registries, host, f"distroless/static-{uuid.uuid4().hex[:8]}", multiarch=multiarch
    )
    subject = pushed.descriptor
    if multiarch:
        assert isinstance(pushed.built, BuiltIndex)
        subject = pushed.built.images[1].manifest.descriptor  # linux/arm64
    referrers = [
        attach(pushed.store, subject, signer.sign(statement(subject.digest, ptype, predicate)), ptype)
        for ptype, predicate in ((SIGN_V1, {}), (CYCLONEDX_BOM, sbom()))
    ]
    return pushed, referrers


def mirror_cli(gate: Gate, src: str, dst: str, policy: Path, *extra: str) -> int:
    return run(["mirror", src, dst, "--policy", str(policy), "--trust-config", str(gate.trust), *extra])


def mirror(gate: Gate, src: str, dst: str, policy: Path, platform: Platform | None = None) -> MirrorResult:
    return mirror_image(
        src, dst, load_policy(policy), registries=gate.registries, trust_config=gate.trust, platform=platform
    )


def decision_referrers(store: RegistryStore, digest: str) -> list[str]:
    return [r.descriptor.digest for r in store.referrers(digest, DECISION_MEDIA_TYPE).referrers]


def writes(registry: OCIRegistry) -> list[str]:
    return [f"{r.method} {r.path}" for r in registry.requests if r.method in WRITES]


def test_decision_media_type_is_the_one_deployment_records_carry() -> None:
    assert DECISION_MEDIA_TYPE == DEPLOY_DECISION_MEDIA_TYPE


def test_upstream_signed_image_mirrors_with_every_attachment_and_the_copy_verifies(
    gate: Gate,
    upstream: Identity,
    oci_registry: OCIRegistry,
    docker_registry: DockerRegistry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pushed, referrers = signed_upstream(gate, oci_registry.host, upstream)
    policy = policy_file(gate)
    dst_repo = f"mirror/static-{uuid.uuid4().hex[:8]}"
    dst = f"{docker_registry.host}/{dst_repo}:nonroot"
    capsys.readouterr()
    assert mirror_cli(gate, pushed.ref, dst, policy, "--format", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["digest"] == pushed.digest and doc["verdict"] == "allow" and doc["mirrored"] is True
    assert set(referrers) <= set(doc["copied"]["referrers"])
    assert doc["decisionAttached"] is True and doc["decision"]["digest"] == pushed.digest

    store = RegistryStore(gate.registries.client(docker_registry.host), dst_repo)
    assert store.resolve("nonroot").digest == pushed.digest
    listed = store.referrers(pushed.digest)
    by_digest = {r.descriptor.digest: r for r in listed.referrers}
    assert set(referrers) <= set(by_digest), "an upstream attachment did not arrive"
    decision = by_digest[doc["decisionReferrer"]]
    assert (
        decision.source == "fallback-tag" and decision.manifest.content["artifactType"] == DECISION_MEDIA_TYPE
    )
    layer = decision.manifest.content["layers"][0]
    from chaingate.oci.interface import Descriptor

    with store.open_blob(Descriptor.from_dict(layer, "decision layer")) as blob:
        record = json.loads(blob.read())
    assert (
        record["verdict"] == "allow" and record["digest"] == pushed.digest and record["image"] == pushed.ref
    )

    # The copy stands on its own: verify allows it, and the decision record is listed, never counted.
    copy = f"{docker_registry.host}/{dst_repo}@{pushed.digest}"
    assert (
        run(["verify", copy, "--policy", str(policy), "--trust-config", str(gate.trust), "--format", "json"])
        == 0
    )
    verified = json.loads(capsys.readouterr().out)
    assert verified["verdict"] == "allow"
    assert doc["decisionReferrer"] in {i["digest"] for i in verified["ignored"]}

    # Again: nothing new, and the fallback index gains no second decision.
    again = mirror(gate, pushed.ref, dst, policy)
    assert again.copy is not None and again.copy.blobs_copied == 0 and again.copy.blobs_mounted == 0
    assert not again.decision_attached and again.decision_referrer == doc["decisionReferrer"]
    assert decision_referrers(store, pushed.digest) == [doc["decisionReferrer"]]


def test_another_identity_is_refused_and_nothing_reaches_the_destination(
    gate: Gate,
    upstream: Identity,
    oci_registry: OCIRegistry,
    fresh_oci_registry: OCIRegistry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pushed, _ = signed_upstream(gate, oci_registry.host, gate.ids.good)  # org/app's workflow, not upstream's
    fresh_oci_registry.clear_requests()
    layout = gate.tmp / "mirror-layout"
    for dst in (f"{fresh_oci_registry.host}/mirror/static:nonroot", f"oci:{layout}"):
        capsys.readouterr()
        assert mirror_cli(gate, pushed.ref, dst, policy_file(gate)) == EXIT_DENIED
        out = capsys.readouterr().out
        assert out.startswith(f"DENY  {pushed.ref}") and "signers" in out
        assert f"not mirrored: {pushed.ref} was denied; nothing was written to {dst}" in out
    assert fresh_oci_registry.requests == [], "a denied mirror contacted the destination"
    assert not layout.exists()


def test_remirroring_copies_nothing_and_a_changed_decision_adds_one_record(
    gate: Gate, upstream: Identity, oci_registry: OCIRegistry, fresh_oci_registry: OCIRegistry
) -> None:
    pushed, _ = signed_upstream(gate, oci_registry.host, upstream)
    policy = policy_file(gate)
    dst = f"{fresh_oci_registry.host}/mirror/static"
    first = mirror(gate, pushed.ref, dst, policy)
    assert first.copy is not None and first.copy.blobs_copied > 0 and first.decision_attached

    fresh_oci_registry.clear_requests()
    second = mirror(gate, pushed.ref, dst, policy)
    assert second.copy is not None
    assert (second.copy.blobs_copied, second.copy.blobs_mounted) == (0, 0)
    assert second.copy.blobs_present == first.copy.blobs_copied + first.copy.blobs_present
    assert not [w for w in writes(fresh_oci_registry) if "/blobs/" in w], "a blob was uploaded again"
    assert not second.decision_attached and second.decision_referrer == first.decision_referrer
    store = RegistryStore(gate.registries.client(fresh_oci_registry.host), "mirror/static")
    assert decision_referrers(store, pushed.digest) == [first.decision_referrer]

    # Upstream publishes a new attestation: the decision changes in substance, so its record is added.
    attach(
        pushed.store,
        pushed.descriptor,
        upstream.sign(statement(pushed.digest, CYCLONEDX_BOM, sbom())),
        CYCLONEDX_BOM,
    )
    third = mirror(gate, pushed.ref, dst, policy)
    assert third.decision_attached and third.decision_referrer != first.decision_referrer
    assert sorted(decision_referrers(store, pushed.digest)) == sorted(
        [first.decision_referrer, third.decision_referrer]
    )


def test_a_tag_is_resolved_once_and_the_destination_keeps_its_own_tag(
    gate: Gate, upstream: Identity, fresh_oci_registry: OCIRegistry, oci_registry: OCIRegistry
) -> None:
    pushed, _ = signed_upstream(gate, fresh_oci_registry.host, upstream)
    fresh_oci_registry.clear_requests()
    result = mirror(gate, pushed.tag_ref, f"{oci_registry.host}/mirror/by-tag:stable", policy_file(gate))
    assert result.mirrored and result.decision.digest == pushed.digest
    by_tag = [r for r in fresh_oci_registry.requests if r.path.endswith("/manifests/v1")]
    assert len(by_tag) == 1, [f"{r.method} {r.path}" for r in fresh_oci_registry.requests]
    store = RegistryStore(gate.registries.client(oci_registry.host), "mirror/by-tag")
    assert store.resolve("stable").digest == pushed.digest
    assert "v1" not in store.tags()

    # The gate judges the reference as given: a policy that requires digests refuses the tag.
    strict = policy_file(gate, "requireDigest: true\n")
    denied = mirror(gate, pushed.tag_ref, f"{oci_registry.host}/mirror/strict", strict)
    assert not denied.mirrored and denied.decision.verdict == "deny"


def test_platform_mirrors_the_platform_manifest_that_was_verified(
    gate: Gate, upstream: Identity, oci_registry: OCIRegistry, fresh_oci_registry: OCIRegistry
) -> None:
    pushed, referrers = signed_upstream(gate, oci_registry.host, upstream, multiarch=True)
    assert isinstance(pushed.built, BuiltIndex)
    arm = pushed.built.images[1].manifest.descriptor.digest
    dst = f"{fresh_oci_registry.host}/mirror/multi:stable"
    result = mirror(gate, pushed.ref, dst, policy_file(gate), platform=Platform("linux", "arm64"))
    assert result.copy is not None and result.copy.digest == arm
    assert result.decision.digest == arm and result.decision.index_digest == pushed.digest
    assert set(referrers) <= set(result.copy.referrers)
    store = RegistryStore(gate.registries.client(fresh_oci_registry.host), "mirror/multi")
    assert store.resolve("stable").digest == arm
    assert decision_referrers(store, arm) == [result.decision_referrer]
    # Without --platform only the index's own attachments count, and upstream signed the platform manifest.
    assert not mirror(gate, pushed.ref, f"{fresh_oci_registry.host}/mirror/idx", policy_file(gate)).mirrored


@pytest.mark.parametrize(
    ("dst", "src", "policy", "expected"),
    [
        ("docker-archive:{tmp}/out.tar", "{ref}", "ok", "a docker archive cannot carry attachments"),
        ("{host}/mirror/pinned@sha256:" + "0" * 64, "{ref}", "ok", "destination pins sha256:000"),
        ("{host}/mirror/x", "{host}/Bad Name:v1", "ok", "Bad Name"),
        ("{host}/mirror/x", "{ref}", "missing", "missing.yaml"),
        ("{host}/mirror/x", "{ref}", "unknown-key", "colour"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    gate: Gate,
    upstream: Identity,
    oci_registry: OCIRegistry,
    fresh_oci_registry: OCIRegistry,
    capsys: pytest.CaptureFixture[str],
    dst: str,
    src: str,
    policy: str,
    expected: str,
) -> None:
    pushed, _ = signed_upstream(gate, oci_registry.host, upstream)
    path = gate.tmp / "missing.yaml" if policy == "missing" else policy_file(gate, extras[policy])
    fresh_oci_registry.clear_requests()
    with pytest.raises(SystemExit) as exited:
        mirror_cli(
            gate,
            src.format(ref=pushed.ref, host=oci_registry.host),
            dst.format(tmp=gate.tmp, host=fresh_oci_registry.host),
            path,
        )
    assert exited.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("chaingate: error: ") and expected in err and "Traceback" not in err
    assert writes(fresh_oci_registry) == []


# -- found by review ------------------------------------------------------------------------------------------


def test_warn_mode_does_not_mirror_a_denied_image(
    gate: Gate, upstream: Identity, oci_registry: OCIRegistry, fresh_oci_registry: OCIRegistry
) -> None:
    """A mirror holds only what the gate allows: warn mode lets a deploy through, never a copy."""
    pushed, _ = signed_upstream(gate, oci_registry.host, gate.ids.good)
    fresh_oci_registry.clear_requests()
    warn = policy_file(gate).read_text().replace("mode: enforce", "mode: warn")
    (gate.tmp / "warn.yaml").write_text(warn)
    result = mirror(gate, pushed.ref, f"{fresh_oci_registry.host}/mirror/warn", gate.tmp / "warn.yaml")
    assert result.decision.verdict == "deny" and result.decision.allowed  # warn mode: allowed for a deploy
    assert not result.mirrored and fresh_oci_registry.requests == []


def test_platform_refuses_when_the_allowing_evidence_is_attached_to_the_index(
    gate: Gate, upstream: Identity, oci_registry: OCIRegistry, fresh_oci_registry: OCIRegistry
) -> None:
    """Copying only the platform manifest would leave the index's attestations behind: DST could not verify."""
    pushed = push_image(
        gate.registries, oci_registry.host, f"distroless/idx-{uuid.uuid4().hex[:8]}", multiarch=True
    )
    attach(pushed.store, pushed.descriptor, upstream.sign(statement(pushed.digest, SIGN_V1, {})), SIGN_V1)
    fresh_oci_registry.clear_requests()
    result = mirror(
        gate,
        pushed.ref,
        f"{fresh_oci_registry.host}/mirror/idx",
        policy_file(gate),
        platform=Platform("linux", "arm64"),
    )
    assert result.decision.verdict == "allow" and not result.mirrored
    assert result.refused is not None and "attached to the index" in result.refused
    assert fresh_oci_registry.requests == []
    whole = mirror(gate, pushed.ref, f"{fresh_oci_registry.host}/mirror/idx", policy_file(gate))
    assert whole.mirrored and whole.copy is not None and whole.copy.digest == pushed.digest


def test_upstream_gate_records_are_left_behind(
    gate: Gate, upstream: Identity, oci_registry: OCIRegistry, fresh_oci_registry: OCIRegistry
) -> None:
    """An upstream decision record is someone else's decision: only this mirror's own is attached in DST."""
    pushed, _ = signed_upstream(gate, oci_registry.host, upstream)
    upstream_record = mirror(gate, pushed.ref, f"{oci_registry.host}/{pushed.repository}", policy_file(gate))
    assert upstream_record.decision_attached  # the source now carries a decision record of its own
    result = mirror(gate, pushed.ref, f"{fresh_oci_registry.host}/mirror/clean", policy_file(gate))
    assert result.copy is not None and upstream_record.decision_referrer not in result.copy.referrers
    store = RegistryStore(gate.registries.client(fresh_oci_registry.host), "mirror/clean")
    assert decision_referrers(store, pushed.digest) == [result.decision_referrer]


def test_platform_refuses_when_the_allowing_evidence_is_a_legacy_tag_of_the_index(
    gate: Gate, upstream: Identity, oci_registry: OCIRegistry, fresh_oci_registry: OCIRegistry
) -> None:
    """Second review: cosign's sha256-<hex>.att tag of the index counts in the gate and stays behind too."""
    from chaingate.oci import media
    from chaingate.oci.artifact import bytes_opener
    from chaingate.oci.digest import sha256_digest
    from chaingate.oci.interface import Descriptor, Manifest

    pushed = push_image(
        gate.registries, oci_registry.host, f"distroless/att-{uuid.uuid4().hex[:8]}", multiarch=True
    )
    bundle = upstream.sign(statement(pushed.digest, SIGN_V1, {}))
    config = b"{}"
    for data, media_type in ((bundle, media.SIGSTORE_BUNDLE_V03), (config, media.OCI_EMPTY)):
        pushed.store.put_blob(Descriptor(media_type, sha256_digest(data), len(data)), bytes_opener(data))
    doc = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "config": {"mediaType": media.OCI_EMPTY, "digest": sha256_digest(config), "size": len(config)},
        "layers": [
            {"mediaType": media.SIGSTORE_BUNDLE_V03, "digest": sha256_digest(bundle), "size": len(bundle)}
        ],
    }
    raw = json.dumps(doc).encode()
    manifest = Manifest.parse(raw, Descriptor(media.OCI_MANIFEST, sha256_digest(raw), len(raw)))
    pushed.store.put_manifest(manifest, tag="sha256-" + pushed.digest.split(":")[1] + ".att")
    fresh_oci_registry.clear_requests()
    result = mirror(
        gate,
        pushed.ref,
        f"{fresh_oci_registry.host}/mirror/att",
        policy_file(gate),
        platform=Platform("linux", "arm64"),
    )
    assert result.decision.verdict == "allow" and not result.mirrored
    assert result.refused is not None and "attached to the index" in result.refused
    assert fresh_oci_registry.requests == []
