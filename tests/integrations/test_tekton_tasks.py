"""The Tekton Tasks' steps, run with the environment each Task maps from its params, against real services.

``ci_emulation.TektonTask`` substitutes params, results, workspaces and the run
context into the step ``env`` exactly as declared, runs each script through its
shebang, and reads the result files back. Signing uses a token shaped like a
projected service-account token (a Kubernetes SAN, audience ``sigstore``),
which the loopback Fulcio certifies as a private Fulcio configured with the
cluster's issuer would.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaingate_testing.codeengine import FakeIBMCloud
from chaingate_testing.registry import DockerRegistry
from chaingate_testing.sigstore import SigstoreStack
from support.ci import K8S_SAN, push_sample, write_policy
from support.ci_emulation import REPO, TaskRun, TektonTask

pytestmark = [pytest.mark.registry, pytest.mark.sigstore]

APIKEY = "ibm-apikey-of-the-tekton-deployer-0123"
TEKTON_BUILDER = "https://chaingate.dev/builders/tekton/v1"
SOURCE = {"SOURCE_URL": "https://github.com/org/app", "SOURCE_COMMIT": "b" * 40}
IBM_RUN = {
    "devops.cloud.ibm.com/tekton-pipeline": "5a7e1c3e-run",
    "devops.cloud.ibm.com/pipeline-run-url": "https://cloud.ibm.com/devops/pipelines/tekton/p-123/runs/5a7e1c3e-run",
    "devops.cloud.ibm.com/pipeline-id": "p-123",
    "devops.cloud.ibm.com/build-number": "42",
    "devops.cloud.ibm.com/trigger-name": "git-push",
    "devops.cloud.ibm.com/trigger-type": "scm",
}


def task(name: str) -> TektonTask:
    return TektonTask(REPO / "tekton" / "task" / f"chaingate-{name}" / "0.1" / f"chaingate-{name}.yaml")


def ok(run: TaskRun) -> TaskRun:
    assert run.exit_code == 0, run.stdout + run.stderr
    return run


@pytest.fixture(scope="module")
def signing(sigstore_stack: SigstoreStack, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(token file, sigstore workspace): a pod's projected token and the ConfigMap with the trust config."""
    base = tmp_path_factory.mktemp("signing")
    token = base / "oidc" / "token"
    token.parent.mkdir()
    token.write_text(sigstore_stack.mint_token(K8S_SAN, expires_in=3600))
    workspace = base / "sigstore"
    workspace.mkdir()
    (workspace / "trust_config.json").write_text(sigstore_stack.trust_config_path.read_text())
    return token, workspace


@pytest.fixture
def cloud() -> Iterator[tuple[FakeIBMCloud, str]]:
    with FakeIBMCloud() as fake:
        project = fake.add_project("shop")
        fake.add_service_id("tekton-deployer", apikey=APIKEY)
        yield fake, str(project["id"])
        assert fake.model_errors == []


def test_attest_then_verify_then_deploy_pass_the_digest_along(
    docker_registry: DockerRegistry,
    sigstore_stack: SigstoreStack,
    signing: tuple[Path, Path],
    cloud: tuple[FakeIBMCloud, str],
    tmp_path: Path,
) -> None:
    token, sigstore = signing
    ref = push_sample(docker_registry, tmp_path, "tekton")
    output = tmp_path / "output"
    attest = ok(
        task("attest").run(
            {"IMAGE_REF": ref, "IDENTITY_TOKEN_FILE": str(token), "PIPELINE_RUN": "release-x7k2",
             "PIPELINE_RUN_UID": "9d3f0c1e-uid", "PIPELINE": "chaingate-release", **SOURCE},
            tmp=tmp_path / "attest",
            workspaces={"sigstore": sigstore, "output": output},
        )
    )  # fmt: skip
    results = attest.results
    assert results["DIGEST"].startswith("sha256:")
    assert results["IMAGE_REF"] == f"{ref.rsplit(':', 1)[0]}@{results['DIGEST']}"
    # What Tekton Chains reads: the image as an input (an object result), the source as its git type hints.
    assert json.loads(results["IMAGE_ARTIFACT_INPUTS"]) == {
        "uri": f"oci://{ref.rsplit(':', 1)[0]}",
        "digest": results["DIGEST"],
    }
    assert (results["CHAINS-GIT_URL"], results["CHAINS-GIT_COMMIT"]) == (SOURCE["SOURCE_URL"], "b" * 40)
    assert results["PROVENANCE_REFERRER"].startswith("sha256:") and results["SBOM_REFERRER"].startswith(
        "sha256:"
    )
    assert results["PREDICATE_REFERRER"] == ""
    statement = json.loads((output / "provenance.intoto.json").read_text())
    predicate = statement["predicate"]
    assert statement["subject"][0]["digest"]["sha256"] == results["DIGEST"].removeprefix("sha256:")
    assert predicate["buildDefinition"]["buildType"] == "https://tekton.dev/chains/v2/slsa"
    assert predicate["runDetails"]["metadata"]["invocationId"] == "9d3f0c1e-uid"
    assert predicate["buildDefinition"]["externalParameters"]["runSpec"]["pipelineRef"] == {
        "name": "chaingate-release"
    }
    assert json.loads((output / "attest-sbom.json").read_text())["signer"]["san"] == K8S_SAN

    policy = tmp_path / "policy"
    policy.mkdir()
    write_policy(
        policy / "policy.yaml", docker_registry.host, sigstore_stack, signer=K8S_SAN, builder=TEKTON_BUILDER
    )
    image = {"IMAGE_REF": results["IMAGE_REF"]}
    verify = ok(
        task("verify").run(
            image, tmp=tmp_path / "verify", workspaces={"policy": policy, "sigstore": sigstore}
        )
    )
    passed_on = {key: results[key] for key in ("IMAGE_REF", "DIGEST", "IMAGE_ARTIFACT_INPUTS")}
    assert verify.results == {**passed_on, "VERDICT": "allow", "VSA_REFERRER": ""}

    fake, project = cloud
    deploy = ok(
        task("deploy").run(
            {**image, "PROJECT_ID": project, "APP": "web", "CODE_ENGINE_URL": fake.code_engine_url,
             "IAM_URL": fake.url},
            tmp=tmp_path / "deploy",
            workspaces={"policy": policy, "sigstore": sigstore},
            secrets={("chaingate-ibmcloud", "apikey"): APIKEY},
            base_env={"IBM_CREDENTIALS_FILE": str(tmp_path / "none.env")},
        )
    )  # fmt: skip
    assert {key: deploy.results[key] for key in passed_on} == passed_on
    assert deploy.results["REVISION"] == "web-00001" and deploy.results["RECORD_REFERRER"].startswith(
        "sha256:"
    )
    (create,) = fake.writes
    assert create.body["image_reference"] == image["IMAGE_REF"]
    assert APIKEY not in deploy.stdout + deploy.stderr


def test_sbom_provenance_and_sign_tasks_with_ibm_run_data_and_a_dockerconfigjson_secret(
    htpasswd_registry: DockerRegistry,
    signing: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token, sigstore = signing
    credentials = htpasswd_registry.docker_config(tmp_path / "pusher")
    monkeypatch.setenv("DOCKER_CONFIG", str(credentials))
    ref = push_sample(htpasswd_registry, tmp_path, "ibm")
    # A kubernetes.io/dockerconfigjson Secret mounts its content as .dockerconfigjson, not config.json.
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / ".dockerconfigjson").write_text((credentials / "config.json").read_text())
    output = tmp_path / "output"
    workspaces = {"dockerconfig": secret, "output": output}

    sbom = ok(task("sbom").run({"IMAGE_REF": ref}, tmp=tmp_path / "sbom", workspaces=workspaces))
    assert int(sbom.results["COMPONENTS"]) > 0 and (output / "sbom.cdx.json").is_file()

    provenance = ok(
        task("provenance").run(
            {"IMAGE_REF": ref.rsplit(":", 1)[0], "DIGEST": sbom.results["DIGEST"],
             "TOOLCHAIN_ID": "tc-1", "SOURCE_REF": "main", **SOURCE},
            tmp=tmp_path / "provenance",
            workspaces=workspaces,
            annotations=IBM_RUN,
        )
    )  # fmt: skip
    assert provenance.results["BUILDER_ID"] == "https://cloud.ibm.com/devops/pipelines/tekton/p-123"
    assert provenance.results["IMAGE_REF"] == sbom.results["IMAGE_REF"]
    assert provenance.results["CHAINS-GIT_COMMIT"] == SOURCE["SOURCE_COMMIT"]
    statement = json.loads((output / "provenance.intoto.json").read_text())
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == "https://chaingate.dev/buildtypes/ibm-toolchain/v1"
    assert definition["externalParameters"]["trigger"] == {"name": "git-push", "type": "scm"}
    assert definition["externalParameters"]["pipeline"] == {"id": "p-123", "toolchainId": "tc-1"}

    sign = ok(
        task("sign").run(
            {"IMAGE_REF": sbom.results["IMAGE_REF"], "IDENTITY_TOKEN_FILE": str(token)},
            tmp=tmp_path / "sign",
            workspaces={"dockerconfig": secret, "sigstore": sigstore},
        )
    )  # fmt: skip
    assert sign.results["DIGEST"] == sbom.results["DIGEST"]
    assert sign.results["SIGNATURE_REFERRER"].startswith("sha256:")


@pytest.mark.parametrize("trust_config", [True, False], ids=["trust-config", "property-left-unset"])
def test_verify_fails_the_taskrun_on_a_denial_and_still_reports_the_verdict(
    docker_registry: DockerRegistry,
    sigstore_stack: SigstoreStack,
    signing: tuple[Path, Path],
    tmp_path: Path,
    trust_config: bool,
) -> None:
    ref = push_sample(docker_registry, tmp_path, "denied")
    policy = tmp_path / "policy"
    policy.mkdir()
    write_policy(policy / "policy.yaml", docker_registry.host, sigstore_stack, signer=K8S_SAN)
    # An IBM toolchain whose optional sigstore-trust-config property is unset binds an empty workspace:
    # that is public-good Sigstore, not a configuration error that stops the run.
    sigstore = signing[1] if trust_config else tmp_path / "empty-configmap"
    sigstore.mkdir(exist_ok=True)
    run = task("verify").run(
        {"IMAGE_REF": ref}, tmp=tmp_path / "verify", workspaces={"policy": policy, "sigstore": sigstore}
    )
    assert run.exit_code == 1, run.stderr
    assert run.results["VERDICT"] == "deny" and run.results["DIGEST"].startswith("sha256:")
    assert "error: signers: " in run.stdout and "error: requireDigest: " in run.stdout
    assert ("using public-good Sigstore" in run.stderr) is not trust_config


def test_deploy_without_the_optional_api_key_secret_fails_as_a_configuration_error(
    docker_registry: DockerRegistry, sigstore_stack: SigstoreStack, tmp_path: Path
) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    write_policy(policy / "policy.yaml", docker_registry.host, sigstore_stack)
    run = task("deploy").run(
        {"IMAGE_REF": f"{docker_registry.host}/team/app", "DIGEST": "sha256:" + "0" * 64,
         "PROJECT_ID": "p-1", "APP": "web", "REGION": "us-south"},
        tmp=tmp_path / "deploy",
        workspaces={"policy": policy},
        base_env={"IBM_CREDENTIALS_FILE": str(tmp_path / "none.env")},
    )  # fmt: skip
    assert run.exit_code == 2, run.stderr
    assert "no IBM Cloud credentials for code_engine" in run.stderr
    assert run.results["DIGEST"] == "" and run.results["REVISION"] == ""
    assert "IMAGE_ARTIFACT_INPUTS" not in run.results  # an object result is written whole or not at all


def pipelinectl(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """``set_env`` and ``collect-evidence`` on PATH, as a DevSecOps stage has them, recording each call."""
    tools, calls = tmp_path / "pipelinectl", tmp_path / "calls"
    tools.mkdir()
    for tool in ("set_env", "collect-evidence"):
        script = tools / tool
        script.write_text(
            "#!/bin/bash\n{ printf '%s' \"${0##*/}\"; printf '\\x1f%s' \"$@\"; printf '\\n'; } >>\"$CALLS\"\n"
        )
        script.chmod(0o755)
    env = {"PATH": f"{tools}:{Path(sys.executable).parent}:/usr/bin:/bin", "CALLS": str(calls)}
    return env, calls


def recorded(calls: Path) -> list[list[str]]:
    return [line.split("\x1f") for line in calls.read_text().splitlines()]


def test_attest_files_each_attestation_under_ibms_type_with_its_files_and_no_pod_paths(
    docker_registry: DockerRegistry, signing: tuple[Path, Path], tmp_path: Path
) -> None:
    token, sigstore = signing
    ref = push_sample(docker_registry, tmp_path, "evidence")
    env, calls = pipelinectl(tmp_path)
    ok(
        task("attest").run(
            {"IMAGE_REF": ref, "IDENTITY_TOKEN_FILE": str(token), "TOOLCHAIN_ID": "tc-1", **SOURCE},
            tmp=tmp_path / "attest",
            workspaces={"sigstore": sigstore, "output": tmp_path / "output"},
            annotations=IBM_RUN,
            base_env=env,
        )
    )  # fmt: skip
    commands = recorded(calls)
    evidence = [argv for argv in commands if argv[0] == "collect-evidence"]
    filed = [(argv[argv.index("--evidence-type") + 1], argv[argv.index("--status") + 1]) for argv in evidence]
    assert filed == [
        ("com.ibm.cloud.slsa", "success"),  # the provenance statement
        ("com.ibm.cloud.slsa", "success"),  # its signed attestation
        ("com.ibm.code_bom_check", "success"),  # the SBOM
        ("com.ibm.code_bom_check", "success"),  # its signed attestation
    ]
    attached = [[argv[i + 1] for i, a in enumerate(argv) if a == "--attachment"] for argv in evidence]
    assert [Path(attached[0][0]).name, Path(attached[2][0]).name] == [
        "provenance.intoto.json",
        "sbom.cdx.json",
    ]
    bundles = [attached[1][0], attached[3][0]]  # the signatures: each attestation's Sigstore bundle
    assert (
        all(b.endswith(".sigstore.json") and Path(b).is_file() for b in bundles) and bundles[0] != bundles[1]
    )
    values: dict[str, set[str]] = {}
    for argv in commands:
        if argv[0] == "set_env":
            values.setdefault(argv[1], set()).add(argv[2])
    assert all(len(v) == 1 for v in values.values()), values  # no attestation overwrites another's value
    assert values["chaingate-provenance-referrer"] != values["chaingate-sbom-referrer"]
    assert values["chaingate-sbom-predicate-type"] == {"https://cyclonedx.org/bom"}
    assert not [v for vs in values.values() for v in vs if v.startswith("/")], values  # no pod-local path
