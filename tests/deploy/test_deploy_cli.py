"""``chaingate deploy`` and ``chaingate audit`` end to end: the real gate (``verify_image``), a real registry,
the loopback Sigstore stack for signing, and the official IBM SDKs against the fake."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from chaingate.cli import run
from chaingate.deploy.record import DEPLOYMENT_ARTIFACT_TYPE
from chaingate.oci.artifact import bytes_opener
from chaingate.oci.client import Registries
from chaingate.oci.interface import Manifest, Platform
from chaingate.oci.registry import RegistryStore
from chaingate_testing.images import File, Layer, build_image, build_index
from chaingate_testing.ociregistry import OCIRegistry
from chaingate_testing.sigstore import SigstoreStack, github_actions_claims
from support.cloud import Cloud

SAN = "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main"


@pytest.fixture
def image(oci_registry: OCIRegistry, registries: Registries) -> tuple[str, str]:
    """A fresh image tagged v1: (tag reference, digest)."""
    repo = f"team/shop-{uuid.uuid4().hex[:8]}"
    store = RegistryStore(registries.client(oci_registry.host), repo)
    built = build_image([Layer([File("app/main.py", uuid.uuid4().bytes)])])
    for blob in built.blobs():
        store.put_blob(blob.descriptor, bytes_opener(blob.data))
    manifest = Manifest.parse(built.manifest.data, built.manifest.descriptor)
    store.put_manifest(manifest, tag="v1")
    return f"{oci_registry.host}/{repo}:v1", manifest.digest


@pytest.fixture
def policy(tmp_path: Path, oci_registry: OCIRegistry, sigstore_stack: SigstoreStack) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f'version: 1\nmode: enforce\nregistries: ["{oci_registry.host}/team/**"]\n'
        f"signers:\n  - issuer: {sigstore_stack.issuer_url}\n    subject: {SAN}\n"
    )
    return path


@pytest.fixture
def deploy_argv(cloud: Cloud, policy: Path, sigstore_stack: SigstoreStack, monkeypatch: pytest.MonkeyPatch,
                tmp_path: Path) -> Callable[..., list[str]]:  # fmt: skip
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))

    def argv(ref: str, *extra: str) -> list[str]:
        return ["deploy", ref, "--policy", str(policy), "--trust-config", str(sigstore_stack.trust_config_path),
                "--project", cloud.project_id, "--app", "web", *extra]  # fmt: skip

    return argv


def sign(stack: SigstoreStack, ref: str, *extra: str) -> None:
    """Sign ``ref`` as org/app's release workflow, the identity the test policy names."""
    token = stack.mint_token(
        "repo:org/app:ref:refs/heads/main", extra_claims=github_actions_claims(repository="org/app")
    )
    argv = ["sign", ref, *extra, "--trust-config", str(stack.trust_config_path), "--identity-token", token]
    assert run(argv) == 0


def test_an_unsigned_image_is_denied_with_reasons_and_code_engine_is_not_touched(
    cloud: Cloud,
    image: tuple[str, str],
    deploy_argv: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cloud.fake.add_app(cloud.project_id, "web", "us.icr.io/team/old@sha256:" + "0" * 64)
    with pytest.raises(SystemExit) as exc:
        run(deploy_argv(image[0]))
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"chaingate: error: {image[0]} ({image[1]}): denied by policy\n")
    assert "\n  - signers: " in err and "Traceback" not in err
    assert cloud.fake.requests == []  # the gate said no before any Code Engine call, let alone a write


def test_a_signed_image_is_deployed_by_the_digest_the_gate_resolved(
    cloud: Cloud,
    image: tuple[str, str],
    deploy_argv: Callable[..., list[str]],
    sigstore_stack: SigstoreStack,
    grant_writer: Callable[..., str],
    registries: Registries,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tag_ref, digest = image
    sign(sigstore_stack, tag_ref)
    grant_writer()
    capsys.readouterr()

    code = run(deploy_argv(tag_ref, "--deployer", cloud.deployer, "--format", "json"))

    assert code == 0
    out = json.loads(capsys.readouterr().out)
    repository = tag_ref.rsplit(":", 1)[0]
    assert out["image"] == f"{repository}@{digest}" and out["digest"] == digest
    assert out["decision"]["verdict"] == "allow" and out["warnings"] == []
    (create,) = cloud.fake.writes
    assert create.body == {"image_reference": f"{repository}@{digest}", "name": "web"}
    host, repo = repository.split("/", 1)
    listing = RegistryStore(registries.client(host), repo).referrers(digest, DEPLOYMENT_ARTIFACT_TYPE)
    assert [r.descriptor.digest for r in listing.referrers] == [out["attachedAs"]]

    # Deploying the same image again writes nothing to Code Engine and says what runs.
    assert run(deploy_argv(tag_ref)) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"deployed {repository}@{digest}\n  to:       app 'web' in project ")
    assert "  revision: web-00001\n" in text and f"  deployer: {cloud.deployer}\n" in text
    assert len(cloud.fake.writes) == 1


def test_a_platform_deploy_runs_the_platform_manifest_and_records_the_index(
    cloud: Cloud,
    oci_registry: OCIRegistry,
    deploy_argv: Callable[..., list[str]],
    sigstore_stack: SigstoreStack,
    grant_writer: Callable[..., str],
    registries: Registries,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Attack 2: ``--platform`` verified a child and deployed the index; now the child is what runs."""
    repo = f"team/multi-{uuid.uuid4().hex[:8]}"
    store = RegistryStore(registries.client(oci_registry.host), repo)
    seed = uuid.uuid4().bytes
    images = [
        build_image([Layer([File("seed", seed + arch.encode())])], platform=Platform("linux", arch))
        for arch in ("amd64", "arm64")
    ]
    for built in images:
        for blob in built.blobs():
            store.put_blob(blob.descriptor, bytes_opener(blob.data))
        store.put_manifest(Manifest.parse(built.manifest.data, built.manifest.descriptor))
    index = build_index(images)
    store.put_manifest(Manifest.parse(index.index.data, index.index.descriptor), tag="v1")
    arm = images[1].manifest.descriptor.digest
    repository = f"{oci_registry.host}/{repo}"
    sign(sigstore_stack, f"{repository}:v1", "--platform", "linux/arm64")
    grant_writer()
    capsys.readouterr()
    code = run(deploy_argv(f"{repository}:v1", "--platform", "linux/arm64", "--format", "json"))
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    (create,) = cloud.fake.writes
    assert create.body == {"image_reference": f"{repository}@{arm}", "name": "web"}
    assert out["image"] == f"{repository}@{arm}" and out["digest"] == arm
    assert out["indexDigest"] == index.digest
    listing = store.referrers(arm, DEPLOYMENT_ARTIFACT_TYPE)
    assert [r.descriptor.digest for r in listing.referrers] == [out["attachedAs"]]


def test_deploy_needs_a_workload_and_submit_needs_a_job(
    cloud: Cloud, deploy_argv: Callable[..., list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        run(deploy_argv("example.com/team/x:v1", "--submit"))
    assert exc.value.code == 2
    assert "--submit: only a job is run" in capsys.readouterr().err
    argv = [a for a in deploy_argv("example.com/team/x:v1") if a not in ("--app", "web")]
    with pytest.raises(SystemExit) as exc:
        run(argv)
    assert exc.value.code == 2
    assert "name the workload with --app NAME or --job NAME" in capsys.readouterr().err
    assert cloud.fake.requests == []


def test_audit_iam_exit_codes(
    cloud: Cloud, grant_writer: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    grant_writer()
    argv = ["audit", "iam", "--project", cloud.project_id, "--deployer", cloud.deployer]
    assert run(argv) == 0
    assert "passed" in capsys.readouterr().out
    grant_writer(cloud.fake.add_service_id("ops-bot"))
    assert run([*argv, "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False and [f["kind"] for f in report["findings"]] == ["write-access"]


def test_audit_bindings_exit_codes(cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cloud.fake.add_config_map(cloud.project_id, "app-config", {"level": "info"})
    cloud.fake.add_app(
        cloud.project_id,
        "web",
        "us.icr.io/team/shop@sha256:" + "0" * 64,
        run_env_variables=[{"type": "config_map_full_reference", "reference": "app-config"}],
    )
    manifest = tmp_path / "bindings.json"
    manifest.write_text(json.dumps({"version": 1, "env": [{"configMap": "app-config"}]}))
    argv = ["audit", "bindings", "--project", cloud.project_id, "--app", "web", "--manifest", str(manifest)]
    assert run(argv) == 0
    assert "no drift" in capsys.readouterr().out
    manifest.write_text(
        json.dumps({"version": 1, "volumes": [{"mountPath": "/etc/app", "configMap": "app-config"}]})
    )
    assert run(argv) == 1
    out = capsys.readouterr().out
    assert "removed: volume /etc/app" in out and "added: env config_map app-config" in out


def test_a_revision_that_never_gets_ready_exits_1_naming_its_reason_and_hint(
    cloud: Cloud,
    image: tuple[str, str],
    deploy_argv: Callable[..., list[str]],
    sigstore_stack: SigstoreStack,
    grant_writer: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    tag_ref, _ = image
    sign(sigstore_stack, tag_ref)
    grant_writer()
    cloud.fake.revision_stuck = "image_pull_back_off"
    capsys.readouterr()

    with pytest.raises(SystemExit) as exc:
        run(deploy_argv(tag_ref, "--timeout", "5"))

    assert exc.value.code == 1  # docs/design.md: 1 when it failed to become ready in time
    first, hint = capsys.readouterr().err.splitlines()[-2:]
    assert first.startswith("chaingate: error: app 'web' in project ")
    assert first.endswith("not ready within 5s (revision web-00001 is warning, reason image_pull_back_off)")
    assert hint.startswith("  hint: Code Engine keeps failing to pull the image: check the registry secret")
