"""The composite actions, run step by step as a GitHub runner would, against a real registry and Sigstore stack.

``ci_emulation.CompositeAction`` evaluates each step's ``env:`` from the
inputs, runs its bash, collects ``$GITHUB_OUTPUT``/``$GITHUB_STEP_SUMMARY``
and processes workflow commands. chaingate is not reinstalled
(``CHAINGATE_SKIP_INSTALL=1``: the install step takes the one on PATH). The
job's OIDC token comes from a loopback stand-in for GitHub's token service,
so signing is keyless exactly as in a workflow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaingate_testing.codeengine import FakeIBMCloud
from chaingate_testing.registry import DockerRegistry
from chaingate_testing.sigstore import SigstoreStack
from support.ci import SAN, TokenService, push_sample, write_policy
from support.ci_emulation import REPO, ActionRun, CompositeAction, github_env

pytestmark = [pytest.mark.registry, pytest.mark.sigstore]

APIKEY = "ibm-apikey-for-the-deployer-0123456789"


def action(name: str) -> CompositeAction:
    return CompositeAction(REPO / ("action.yml" if name == "all-in-one" else f"actions/{name}/action.yml"))


def assert_secret_only_in_mask_commands(run: ActionRun, secret: str) -> None:
    """A secret may appear in the raw streams only as the ``::add-mask::`` that registers it, and nowhere after."""
    assert secret in run.masks
    for line in run.raw.splitlines():
        assert secret not in line or line == f"::add-mask::{secret}", line
    shown = "\n".join(run.log) + run.summary + json.dumps(run.outputs)
    shown += "".join(json.dumps(s.outputs) for s in run.steps) + "".join(a.message for a in run.annotations)
    assert secret not in shown


@dataclass
class Released:
    """The all-in-one action's run on a freshly pushed image, with a policy it must pass."""

    run: ActionRun
    tag_ref: str
    policy: Path
    trust: Path


@pytest.fixture(scope="module")
def released(
    docker_registry: DockerRegistry,
    sigstore_stack: SigstoreStack,
    github_token_service: TokenService,
    tmp_path_factory: pytest.TempPathFactory,
) -> Released:
    tmp = tmp_path_factory.mktemp("released")
    ref = push_sample(docker_registry, tmp, "app")
    policy = write_policy(tmp / "policy.yaml", docker_registry.host, sigstore_stack)
    env = github_env(
        tmp,
        ACTIONS_ID_TOKEN_REQUEST_URL=github_token_service.url,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=github_token_service.request_token,
    )
    inputs = {"image": ref, "policy": str(policy), "trust-config": str(sigstore_stack.trust_config_path)}
    run = action("all-in-one").run(inputs, env, tmp / "runner")
    assert run.exit_code == 0, run.raw
    return Released(run, ref, policy, sigstore_stack.trust_config_path)


def test_all_in_one_resolves_once_and_attests_sbom_and_provenance_by_digest(released: Released) -> None:
    out = released.run.outputs
    repository = released.tag_ref.rsplit(":", 1)[0]
    assert out["digest"].startswith("sha256:") and out["image"] == f"{repository}@{out['digest']}"
    assert out["image-url"] == repository
    assert out["sbom-referrer"].startswith("sha256:") and out["provenance-referrer"].startswith("sha256:")
    assert out["sbom-referrer"] != out["provenance-referrer"]
    assert out["verdict"] == "allow"
    # Every step after the resolve saw only the digest reference.
    for step in released.run.steps[2:]:
        assert released.tag_ref not in step.stdout + step.stderr, step.id
    statement = json.loads(Path(out["provenance"]).read_text())
    assert statement["subject"][0]["digest"]["sha256"] == out["digest"].removeprefix("sha256:")
    predicate = statement["predicate"]
    assert predicate["buildDefinition"]["buildType"] == "https://actions.github.io/buildtypes/workflow/v1"
    assert predicate["runDetails"]["builder"]["id"] == SAN
    assert json.loads(Path(out["sbom"]).read_text())["bomFormat"] == "CycloneDX"
    record = json.loads(Path(out["decision"]).read_text())
    assert record["verdict"] == "allow" and record["digest"] == out["digest"]


def test_all_in_one_writes_a_summary_with_the_decision_table(released: Released) -> None:
    summary = released.run.summary
    for heading in (
        "### chaingate: SBOM",
        "### chaingate: SLSA provenance",
        "### chaingate verify: ✅ ALLOW",
    ):
        assert heading in summary
    assert "| clause | result | exception | reason |" in summary
    assert "| `signers` | ✅ pass |" in summary and "| `provenance` | ✅ pass |" in summary
    assert "Decision signed and attached as VSA referrer" in summary
    assert released.run.errors() == []


def test_the_ambient_oidc_tokens_are_masked_before_anything_could_print_them(
    released: Released, github_token_service: TokenService
) -> None:
    used = [t for t in github_token_service.issued if t in released.run.raw]
    assert len(used) == 3  # two attestations and the signed decision, one fresh token each
    for token in used:
        assert_secret_only_in_mask_commands(released.run, token)
    assert github_token_service.request_token not in released.run.raw


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[FakeIBMCloud, str, str]]:
    """The loopback Code Engine and IAM, with a project and the deploying service ID (holding ``APIKEY``)."""
    with FakeIBMCloud() as fake:
        project = fake.add_project("shop")
        deployer = fake.add_service_id("pipeline-deployer", apikey=APIKEY)
        fake.add_policy(
            roles=["crn:v1:bluemix:public:iam::::serviceRole:Writer"],
            iam_id=deployer,
            resource={"serviceName": "codeengine", "serviceInstance": str(project["id"])},
        )
        yield fake, str(project["id"]), deployer
        assert fake.model_errors == []


@pytest.mark.parametrize("key_from", ["input", "step-env"])
def test_deploy_verifies_and_deploys_the_digest_with_the_api_key_masked(
    released: Released, cloud: tuple[FakeIBMCloud, str, str], tmp_path: Path, key_from: str
) -> None:
    fake, project, deployer = cloud
    # "step-env" is the example workflow's way: CODE_ENGINE_APIKEY set on the step from the environment secret.
    ibm = {
        k: v
        for k, v in fake.environment(APIKEY).items()
        if k != "CODE_ENGINE_APIKEY" or key_from == "step-env"
    }
    out = released.run.outputs
    inputs = {
        "image": out["image"],
        "policy": str(released.policy),
        "trust-config": str(released.trust),
        "project": project,
        "app": "web",
        "deployer": deployer,
        **({"api-key": APIKEY} if key_from == "input" else {}),
    }
    run = action("deploy").run(inputs, github_env(tmp_path, **ibm), tmp_path / "runner")
    assert run.exit_code == 0, run.raw
    assert run.outputs["digest"] == out["digest"] and run.outputs["image"] == out["image"]
    assert run.outputs["revision"] and run.outputs["record-referrer"].startswith("sha256:")
    (create,) = fake.writes
    assert create.body["image_reference"] == out["image"]
    assert "### chaingate deploy: 🚀" in run.summary and f"`{deployer}`" in run.summary
    assert_secret_only_in_mask_commands(run, APIKEY)


def test_verify_denies_an_unsigned_image_with_annotations_and_a_table(
    docker_registry: DockerRegistry, sigstore_stack: SigstoreStack, tmp_path: Path
) -> None:
    ref = push_sample(docker_registry, tmp_path, "unsigned")
    policy = write_policy(tmp_path / "policy.yaml", docker_registry.host, sigstore_stack)
    inputs = {"image": ref, "policy": str(policy), "trust-config": str(sigstore_stack.trust_config_path)}
    run = action("verify").run(inputs, github_env(tmp_path), tmp_path / "runner")
    assert run.exit_code == 1
    assert run.outputs["verdict"] == "deny" and run.outputs["allowed"] == "false"
    titles = {a.title for a in run.errors()}
    assert titles == {"chaingate verify"}
    messages = [a.message for a in run.errors()]
    assert any(m.startswith("requireDigest: ") for m in messages)
    assert any(m.startswith("signers: ") for m in messages) and any(
        m.startswith("provenance: ") for m in messages
    )
    assert "### chaingate verify: ❌ DENY" in run.summary and "| `signers` | ❌ fail |" in run.summary
    assert json.loads(Path(run.outputs["decision"]).read_text())["verdict"] == "deny"


def test_step_actions_chain_sbom_attest_sign_and_provenance_with_a_given_token(
    docker_registry: DockerRegistry, sigstore_stack: SigstoreStack, tmp_path: Path
) -> None:
    from chaingate_testing.sigstore import github_actions_claims

    ref = push_sample(docker_registry, tmp_path, "steps")
    token = sigstore_stack.mint_token(
        "repo:org/app:ref:refs/heads/main", extra_claims=github_actions_claims(repository="org/app")
    )
    env = github_env(tmp_path)
    trust = str(sigstore_stack.trust_config_path)
    sbom = action("sbom").run({"image": ref}, env, tmp_path / "sbom")
    assert sbom.exit_code == 0, sbom.raw
    image = sbom.outputs["image"]
    assert image.endswith(sbom.outputs["digest"]) and int(sbom.outputs["components"]) > 0
    attest = action("attest").run(
        {"image": image, "predicate": sbom.outputs["sbom"], "type": "cyclonedx", "trust-config": trust,
         "identity-token": token},
        env,
        tmp_path / "attest",
    )  # fmt: skip
    assert attest.exit_code == 0, attest.raw
    assert attest.outputs["predicate-type"] == "https://cyclonedx.org/bom" and attest.outputs["signer"] == SAN
    assert_secret_only_in_mask_commands(attest, token)
    sign = action("sign").run(
        {"image": image, "trust-config": trust, "identity-token": token}, env, tmp_path / "sign"
    )
    assert sign.exit_code == 0, sign.raw
    assert (
        sign.outputs["referrer"].startswith("sha256:")
        and sign.outputs["referrer"] != attest.outputs["referrer"]
    )
    provenance = action("provenance").run(
        {
            "image": image,
            "builder-id": "https://github.com/org/builders/.github/workflows/build.yml@refs/tags/v1",
        },
        env,
        tmp_path / "provenance",
    )
    assert provenance.exit_code == 0, provenance.raw
    assert provenance.outputs["builder-id"].startswith("https://github.com/org/builders/")
    assert provenance.outputs["digest"] == sbom.outputs["digest"]


def test_an_expired_token_fails_the_step_with_an_error_annotation_and_stays_masked(
    docker_registry: DockerRegistry, sigstore_stack: SigstoreStack, tmp_path: Path
) -> None:
    ref = push_sample(docker_registry, tmp_path, "expired")
    token = sigstore_stack.mint_token("https://example.test/ci", issued_at=1_000_000_000, expires_in=600)
    inputs = {"image": ref, "trust-config": str(sigstore_stack.trust_config_path), "identity-token": token}
    run = action("sign").run(inputs, github_env(tmp_path), tmp_path / "runner")
    assert run.exit_code == 2
    (error,) = run.errors()
    assert (
        error.title == "chaingate sign" and "identity token from $SIGSTORE_ID_TOKEN expired" in error.message
    )
    assert "### chaingate sign: ❌ failed (exit 2)" in run.summary
    assert_secret_only_in_mask_commands(run, token)
