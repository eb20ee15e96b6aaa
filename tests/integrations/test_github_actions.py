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
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaingate_testing.codeengine import FakeIBMCloud
from chaingate_testing.images import Dir, File, Layer, build_image
from chaingate_testing.registry import DockerRegistry
from chaingate_testing.sigstore import SigstoreStack
from support.ci import SAN, TokenService, push_sample, write_policy
from support.ci_emulation import REPO, ActionRun, CompositeAction, github_env, parse_github_output

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


@dataclass
class Chained:
    """The step actions run one after the other in one job, with actions/attest's input names where they exist."""

    sbom: ActionRun
    attest: ActionRun
    sign: ActionRun
    provenance: ActionRun
    token: str


@pytest.fixture(scope="module")
def chained(
    docker_registry: DockerRegistry, sigstore_stack: SigstoreStack, tmp_path_factory: pytest.TempPathFactory
) -> Chained:
    from chaingate_testing.sigstore import github_actions_claims

    tmp = tmp_path_factory.mktemp("chained")
    ref = push_sample(docker_registry, tmp, "steps")
    token = sigstore_stack.mint_token(
        "repo:org/app:ref:refs/heads/main", extra_claims=github_actions_claims(repository="org/app")
    )
    env = github_env(tmp)
    trust = str(sigstore_stack.trust_config_path)
    sbom = action("sbom").run({"image": ref}, env, tmp / "sbom")
    assert sbom.exit_code == 0, sbom.raw
    name, digest = sbom.outputs["image"].split("@")
    attest = action("attest").run(
        {"subject-name": name, "subject-digest": digest, "predicate-path": sbom.outputs["sbom"],
         "type": "cyclonedx", "trust-config": trust, "identity-token": token},
        env,
        tmp / "attest",
    )  # fmt: skip
    assert attest.exit_code == 0, attest.raw
    sign = action("sign").run(
        {
            "image": sbom.outputs["image"],
            "trust-config": trust,
            "identity-token": token,
            "show-summary": "false",
        },
        env,
        tmp / "sign",
    )
    assert sign.exit_code == 0, sign.raw
    provenance = action("provenance").run(
        {
            "image": sbom.outputs["image"],
            "builder-id": "https://github.com/org/builders/.github/workflows/build.yml@refs/tags/v1",
        },
        env,
        tmp / "provenance",
    )
    assert provenance.exit_code == 0, provenance.raw
    return Chained(sbom, attest, sign, provenance, token)


def test_step_actions_chain_sbom_attest_sign_and_provenance_with_a_given_token(chained: Chained) -> None:
    sbom, attest, sign = chained.sbom, chained.attest, chained.sign
    image = sbom.outputs["image"]
    assert image.endswith(sbom.outputs["digest"]) and int(sbom.outputs["components"]) > 0
    # subject-name + subject-digest + predicate-path, as a workflow written for actions/attest passes them.
    assert attest.outputs["image"] == image and attest.outputs["digest"] == sbom.outputs["digest"]
    assert attest.outputs["predicate-type"] == "https://cyclonedx.org/bom" and attest.outputs["signer"] == SAN
    assert attest.outputs["issuer"].startswith("http") and "### chaingate: attested" in attest.summary
    assert_secret_only_in_mask_commands(attest, chained.token)
    assert (
        sign.outputs["referrer"].startswith("sha256:")
        and sign.outputs["referrer"] != attest.outputs["referrer"]
    )
    assert sign.summary == ""  # show-summary: false
    provenance = chained.provenance
    assert provenance.outputs["builder-id"].startswith("https://github.com/org/builders/")
    assert provenance.outputs["digest"] == sbom.outputs["digest"]


def test_bundle_path_is_the_attached_bundle_read_back(chained: Chained) -> None:
    import hashlib

    for run in (chained.attest, chained.sign):
        path = Path(run.outputs["bundle-path"])
        data = path.read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == run.outputs["bundle-digest"]
        assert path.name == run.outputs["bundle-digest"].removeprefix("sha256:") + ".sigstore.json"
        assert path.parent.name == run.outputs["digest"].removeprefix("sha256:")
        assert json.loads(data)["mediaType"].startswith("application/vnd.dev.sigstore.bundle")
    assert chained.attest.outputs["bundle-path"] != chained.sign.outputs["bundle-path"]


#: Outputs that are legitimately empty in the runs below (a new app has no previous image the first time).
EMPTY_IN_THESE_RUNS: dict[str, set[str]] = {}
#: Outputs the main step writes that echo an input back and so need no declaration.
ECHOED_INPUTS = {"deploy": {"app", "job"}}
_STEP_OUTPUT = re.compile(r"\$\{\{ steps\.([a-z-]+)\.outputs\.([a-z-]+) \}\}")


def test_every_declared_output_of_every_action_is_set_and_none_is_dropped(
    released: Released,
    chained: Chained,
    cloud: tuple[FakeIBMCloud, str, str],
    github_token_service: TokenService,
    tmp_path: Path,
) -> None:
    fake, project, deployer = cloud
    out = released.run.outputs
    common = {"image": out["image"], "policy": str(released.policy), "trust-config": str(released.trust)}
    env = github_env(
        tmp_path,
        ACTIONS_ID_TOKEN_REQUEST_URL=github_token_service.url,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=github_token_service.request_token,
        **fake.environment(APIKEY),
    )
    verify = action("verify").run(common, env, tmp_path / "verify")
    assert verify.exit_code == 0, verify.raw
    deploy_inputs = {**common, "project": project, "app": "web", "deployer": deployer}
    first = action("deploy").run(deploy_inputs, env, tmp_path / "deploy-1")
    assert first.exit_code == 0 and first.outputs["previous-image"] == "", first.raw
    deploy = action("deploy").run(deploy_inputs, env, tmp_path / "deploy-2")  # updates: a previous image
    assert deploy.exit_code == 0, deploy.raw
    runs = {
        "all-in-one": released.run, "sbom": chained.sbom, "attest": chained.attest, "sign": chained.sign,
        "provenance": chained.provenance, "verify": verify, "deploy": deploy,
    }  # fmt: skip
    assert set(runs) == {"all-in-one", *(p.parent.name for p in (REPO / "actions").glob("*/action.yml"))}
    for name, run in runs.items():
        doc = action(name).doc
        declared = doc["outputs"]
        for output, spec in declared.items():
            match = _STEP_OUTPUT.fullmatch(spec["value"])
            assert match, f"{name}: output {output}"
            step_id, key = match.groups()
            assert key in run.step(step_id).outputs, f"{name}: output {output} is never set"
            assert run.outputs[output] or output in EMPTY_IN_THESE_RUNS.get(name, set()), (
                f"{name}: output {output} is empty"
            )
        if name != "all-in-one":  # its outputs are renamed per step (sbom-referrer, …)
            main_step = doc["runs"]["steps"][-1]["id"]
            written = set(run.step(main_step).outputs) - ECHOED_INPUTS.get(name, set())
            assert written <= set(declared), f"{name}: outputs dropped: {sorted(written - set(declared))}"
    assert deploy.outputs["previous-image"] == out["image"] and deploy.outputs["verdict"] == "allow"
    assert deploy.outputs["project"] == project and verify.outputs["mode"] == "enforce"


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


def test_two_images_in_one_job_keep_their_own_files(
    docker_registry: DockerRegistry, sigstore_stack: SigstoreStack, tmp_path: Path
) -> None:
    env = github_env(tmp_path)  # one job: one RUNNER_TEMP for every step
    policy = write_policy(tmp_path / "policy.yaml", docker_registry.host, sigstore_stack)
    trust = str(sigstore_stack.trust_config_path)
    files: dict[str, dict[str, str]] = {}
    other = build_image([Layer([Dir("etc"), File("etc/os-release", b"ID=other\n")])])
    for name, image in (("one", None), ("two", other)):
        ref = push_sample(docker_registry, tmp_path, name, image)
        sbom = action("sbom").run({"image": ref}, env, tmp_path / f"sbom-{name}")
        provenance = action("provenance").run({"image": ref}, env, tmp_path / f"provenance-{name}")
        verify = action("verify").run(
            {"image": sbom.outputs["image"], "policy": str(policy), "trust-config": trust, "no-sign": "true"},
            env,
            tmp_path / f"verify-{name}",
        )
        assert sbom.exit_code == 0 and provenance.exit_code == 0 and verify.exit_code == 1, verify.raw
        files[sbom.outputs["digest"]] = {
            "sbom": sbom.outputs["sbom"],
            "provenance": provenance.outputs["provenance"],
            "decision": verify.outputs["decision"],
        }
    assert len(files) == 2
    for digest, paths in files.items():
        for kind, path in paths.items():
            document = json.loads(Path(path).read_text())
            if kind == "provenance":
                assert document["subject"][0]["digest"]["sha256"] == digest.removeprefix("sha256:")
            elif kind == "decision":
                assert document["digest"] == digest
        assert Path(paths["sbom"]).parent.name == digest.removeprefix("sha256:")
    first, second = files.values()
    assert not set(first.values()) & set(second.values())


def test_input_aliases_that_disagree_stop_the_action_before_signing(
    released: Released, github_token_service: TokenService, tmp_path: Path
) -> None:
    env = github_env(
        tmp_path,
        ACTIONS_ID_TOKEN_REQUEST_URL=github_token_service.url,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=github_token_service.request_token,
    )
    out = released.run.outputs
    base = {"type": "cyclonedx", "trust-config": str(released.trust)}
    issued = len(github_token_service.issued)
    cases = [
        ({"image": out["image"], "predicate": out["sbom"], "predicate-path": out["provenance"]},
         "inputs predicate ("),
        ({"subject-name": out["image-url"], "subject-digest": "sha256:" + "0" * 64, "image": out["image"],
          "predicate": out["sbom"]}, "inputs image ("),
        ({"image": out["image"], "subject-digest": "sha256:" + "0" * 64, "predicate": out["sbom"]},
         "contradicts the digest in the image"),
        ({"image": out["image"]}, "give the input predicate or predicate-path"),
    ]  # fmt: skip
    for index, (inputs, message) in enumerate(cases):
        run = action("attest").run({**base, **inputs}, env, tmp_path / f"case-{index}")
        assert run.exit_code == 2, run.raw
        (error,) = run.errors()
        assert error.title == "chaingate inputs" and message in error.message, error.message
    refused = action("attest").run(
        {**base, "image": out["image"], "predicate": out["sbom"], "push-to-registry": "false"},
        env,
        tmp_path / "no-push",
    )
    assert refused.exit_code == 2 and "push-to-registry must be true" in refused.errors()[0].message
    assert len(github_token_service.issued) == issued  # nothing was signed
    # The same value under both names is one input, not a conflict.
    same = action("all-in-one").run(
        {"subject-name": out["image-url"], "digest": out["digest"], "subject-digest": out["digest"],
         "sbom": "false", "provenance": "false"},
        env,
        tmp_path / "same",
    )  # fmt: skip
    assert same.exit_code == 0 and same.outputs["image"] == out["image"], same.raw


def test_runner_debug_turns_on_chaingates_verbose_log(
    released: Released, github_token_service: TokenService, tmp_path: Path
) -> None:
    """A debug re-run (RUNNER_DEBUG=1) shows chaingate's INFO lines, here the signing's Rekor entry."""
    env = github_env(
        tmp_path,
        ACTIONS_ID_TOKEN_REQUEST_URL=github_token_service.url,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=github_token_service.request_token,
    )
    inputs = {"image": released.run.outputs["image"], "trust-config": str(released.trust)}
    quiet = action("sign").run(inputs, env, tmp_path / "quiet")
    debug = action("sign").run(inputs, {**env, "RUNNER_DEBUG": "1"}, tmp_path / "debug")
    assert quiet.exit_code == 0 and debug.exit_code == 0, debug.raw
    assert not [line for line in quiet.log if line.startswith("chaingate: INFO: ")]
    (signed,) = [line for line in debug.log if line.startswith("chaingate: INFO: signed ")]
    assert f"Rekor log index {debug.outputs['rekor-log-index']}" in signed


#: The real install (venv, pip --require-hashes) takes about 15 s on 2 cores with pip's cache warm.
INSTALL_TIMEOUT = 300


@pytest.mark.network
def test_the_hash_pinned_install_path_installs_a_working_chaingate(
    docker_registry: DockerRegistry, tmp_path: Path
) -> None:
    """What every workflow runs first: a venv from actions/requirements.txt (--require-hashes) and chaingate
    from the action's checkout, then a step through the installed chaingate-ci (not this checkout's src)."""
    import os
    import subprocess

    ref = push_sample(docker_registry, tmp_path, "installed")
    env = github_env(tmp_path)
    del env["CHAINGATE_SKIP_INSTALL"], env["PYTHONPATH"]
    # pip's own cache, so CI downloads each wheel once; the hashes are checked on every install all the same.
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    output = tmp_path / "install-output"
    proc = subprocess.run(
        ["bash", str(REPO / "actions" / "install.sh")],
        env={**env, "GITHUB_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = parse_github_output(output.read_text())
    venv = Path(env["RUNNER_TEMP"])
    assert Path(installed["ci"]).parent.parent.parent == venv and installed["chaingate"].startswith(str(venv))
    # The action itself now finds the venv (keyed by checkout and requirements) and runs through it.
    run = action("sbom").run({"image": ref}, env, tmp_path / "runner")
    assert run.exit_code == 0, run.raw
    assert run.step("install").outputs["ci"] == installed["ci"]
    assert json.loads(Path(run.outputs["sbom"]).read_text())["bomFormat"] == "CycloneDX"
