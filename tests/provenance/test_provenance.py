"""``chaingate provenance``: emulated CI runs produce statements that pass the in-toto and SLSA schemas.

The schemas in tests/assets were written from the spec text (see its README);
each CI's statement is also checked field by field against what that CI's
own tooling writes (actions/attest-build-provenance, Tekton Chains).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chaingate.cli import run
from chaingate.oci.interface import Platform
from chaingate.oci.layout import LayoutStore
from chaingate_testing.images import File, Layer, build_image, build_index, write_layout

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SHA = "0123456789abcdef0123456789abcdef01234567"
BASE_DIGEST = "sha256:" + "b" * 64
CI_VARIABLES = (
    "GITHUB_ACTIONS",
    "TEKTON_PIPELINE_RUN",
    "TEKTON_PIPELINE_RUN_UID",
    "TEKTON_TASK_RUN",
    "PIPELINE_RUN_ID",
    "PIPELINE_RUN_URL",
    "TOOLCHAIN_ID",
    "CHAINGATE_BUILD_STARTED_ON",
    "CHAINGATE_BUILD_FINISHED_ON",
)
ENVIRONMENTS: dict[str, dict[str, str]] = {
    "github-actions": {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "octo-org/octo-app",
        "GITHUB_WORKFLOW_REF": "octo-org/octo-app/.github/workflows/release.yml@refs/heads/main",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_SHA": SHA,
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REPOSITORY_ID": "123",
        "GITHUB_REPOSITORY_OWNER_ID": "456",
        "RUNNER_ENVIRONMENT": "github-hosted",
    },
    "tekton": {
        "TEKTON_PIPELINE_RUN": "build-x7k2",
        "TEKTON_PIPELINE_RUN_UID": "0b5c9d2e-uid",
        "TEKTON_NAMESPACE": "ci",
        "TEKTON_PIPELINE": "build-and-push",
        "TEKTON_PIPELINE_PARAMS": '{"git-url": "https://git.test/app"}',
        "CHAINS_GIT_URL": "https://git.test/app",
        "CHAINS_GIT_COMMIT": SHA,
        "CHAINGATE_BUILD_STARTED_ON": "2024-05-01T12:00:00Z",
        "CHAINGATE_BUILD_FINISHED_ON": "2024-05-01T12:07:30Z",
    },
    "ibm-toolchain": {
        "PIPELINE_ID": "9f1c-pipeline",
        "PIPELINE_RUN_ID": "77aa-run",
        "PIPELINE_RUN_URL": "https://cloud.ibm.com/devops/pipelines/tekton/9f1c-pipeline/runs/77aa-run",
        "TOOLCHAIN_ID": "tc-1",
        "BUILD_NUMBER": "17",
        "TRIGGER_NAME": "git-push",
        "TRIGGER_TYPE": "scm",
        "GIT_URL": "https://github.ibm.com/team/app",
        "GIT_BRANCH": "main",
        "GIT_COMMIT": SHA,
    },
}


def _schema(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((ASSETS / name).read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator: jsonschema.protocols.Validator = validator_class(schema)
    return validator


STATEMENT_SCHEMA = _schema("in-toto-statement-v1.schema.json")
SLSA_SCHEMA = _schema("slsa-provenance-v1.schema.json")


def check(statement: Mapping[str, Any]) -> dict[str, Any]:
    """Validate against both schemas, and the contract's extra promise (both build times present)."""
    STATEMENT_SCHEMA.validate(statement)
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    SLSA_SCHEMA.validate(statement["predicate"])
    metadata = statement["predicate"]["runDetails"]["metadata"]
    assert {"startedOn", "finishedOn"} <= set(metadata)
    return dict(statement["predicate"])


@pytest.fixture
def ci_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[Mapping[str, str]], None]:
    """Start from no CI at all (the suite may itself run in one), then emulate the given environment."""
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def use(env: Mapping[str, str]) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)

    return use


@pytest.fixture
def labelled_layout(tmp_path: Path) -> tuple[Path, str]:
    labels = {
        "org.opencontainers.image.base.digest": BASE_DIGEST,
        "org.opencontainers.image.base.name": "docker.io/library/debian:12",
    }
    image = build_image([Layer([File("app/main.py", b"print(1)\n")])], labels=labels)
    return write_layout(tmp_path / "labelled", image), image.digest


def _provenance(argv: list[str], tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "provenance.json"
    assert run(["provenance", *argv, "-o", str(out)]) == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


@pytest.mark.parametrize("system", list(ENVIRONMENTS))
def test_each_ci_gives_schema_valid_provenance(
    system: str,
    ci_env: Callable[[Mapping[str, str]], None],
    labelled_layout: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    layout, digest = labelled_layout
    ci_env(ENVIRONMENTS[system])
    before = datetime.now(UTC).replace(microsecond=0)
    statement = _provenance([f"oci:{layout}:latest"], tmp_path)
    assert system in capsys.readouterr().out
    predicate = check(statement)
    assert statement["subject"] == [{"name": "_", "digest": {"sha256": digest.removeprefix("sha256:")}}]
    definition, details = predicate["buildDefinition"], predicate["runDetails"]
    dependencies = definition["resolvedDependencies"]
    assert dependencies[-1] == {
        "name": "docker.io/library/debian:12",
        "uri": "oci://docker.io/library/debian",
        "digest": {"sha256": "b" * 64},
        "annotations": {"chaingate.dev/role": "base-image"},
    }
    source = dependencies[0]
    assert source["digest"] == {"gitCommit": SHA}
    metadata = details["metadata"]
    if system == "github-actions":
        assert definition["buildType"] == "https://actions.github.io/buildtypes/workflow/v1"
        assert definition["externalParameters"] == {
            "workflow": {
                "ref": "refs/heads/main",
                "repository": "https://github.com/octo-org/octo-app",
                "path": ".github/workflows/release.yml",
            }
        }
        assert definition["internalParameters"]["github"]["repository_id"] == "123"
        assert source["uri"] == "git+https://github.com/octo-org/octo-app@refs/heads/main"
        assert details["builder"]["id"] == (
            "https://github.com/octo-org/octo-app/.github/workflows/release.yml@refs/heads/main"
        )
        assert metadata["invocationId"] == "https://github.com/octo-org/octo-app/actions/runs/4242/attempts/1"
    elif system == "tekton":
        assert definition["buildType"] == "https://tekton.dev/chains/v2/slsa"
        assert definition["externalParameters"]["runSpec"]["pipelineRef"] == {"name": "build-and-push"}
        assert source["uri"] == "git+https://git.test/app"
        assert metadata == {
            "invocationId": "0b5c9d2e-uid",
            "startedOn": "2024-05-01T12:00:00Z",
            "finishedOn": "2024-05-01T12:07:30Z",
        }
    else:
        assert definition["buildType"] == "https://chaingate.dev/buildtypes/ibm-toolchain/v1"
        assert definition["externalParameters"]["pipeline"] == {"id": "9f1c-pipeline", "toolchainId": "tc-1"}
        assert source["uri"] == "git+https://github.ibm.com/team/app@main"
        assert details["builder"]["id"] == "https://cloud.ibm.com/devops/pipelines/tekton/9f1c-pipeline"
        assert metadata["invocationId"] == ENVIRONMENTS[system]["PIPELINE_RUN_URL"]
    if system != "tekton":
        # No CI exposes build times to a step: both are the generation time, an upper bound.
        started = datetime.fromisoformat(metadata["startedOn"].replace("Z", "+00:00"))
        assert before <= started <= datetime.now(UTC) + timedelta(seconds=1)
        assert metadata["startedOn"] == metadata["finishedOn"]


def test_flags_only_to_stdout(
    ci_env: Callable[[Mapping[str, str]], None], sample_layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ci_env({})
    argv = [
        "provenance",
        f"oci:{sample_layout}:latest",
        "--build-type",
        "https://example.com/buildtypes/make/v1",
        "--builder-id",
        "https://example.com/builders/laptop",
        "--invocation-id",
        "run-1",
        "--source-uri",
        "https://git.test/app",
        "--source-ref",
        "refs/heads/main",
        "--source-commit",
        SHA,
        "--started-on",
        "2024-05-01T12:00:00Z",
        "--finished-on",
        "2024-05-01T13:30:00+01:00",
        "--base-image",
        f"registry.test/base:1@{BASE_DIGEST}",
        "--external-parameter",
        "target=release",
    ]
    assert run(argv) == 0
    predicate = check(json.loads(capsys.readouterr().out))
    assert predicate["buildDefinition"]["externalParameters"] == {"target": "release"}
    assert predicate["buildDefinition"]["resolvedDependencies"] == [
        {"uri": "git+https://git.test/app@refs/heads/main", "digest": {"gitCommit": SHA}},
        {
            "name": f"registry.test/base:1@{BASE_DIGEST}",
            "uri": "oci://registry.test/base",
            "digest": {"sha256": "b" * 64},
            "annotations": {"chaingate.dev/role": "base-image"},
        },
    ]
    assert predicate["runDetails"]["metadata"] == {
        "invocationId": "run-1",
        "startedOn": "2024-05-01T12:00:00Z",
        "finishedOn": "2024-05-01T12:30:00Z",
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "no build type: no CI detected and --build-type not given"),
        (["--build-type", "https://b.test/t"], "no builder id"),
        (["--build-type", "https://b.test/t", "--builder-id", "nope"], "--builder-id: 'nope' is not a URI"),
        (
            [
                "--build-type",
                "https://b.test/t",
                "--builder-id",
                "https://b.test/b",
                "--base-image",
                "debian:12",
            ],
            "--base-image: 'debian:12' is not pinned by digest",
        ),
        (
            [
                "--build-type",
                "https://b.test/t",
                "--builder-id",
                "https://b.test/b",
                "--source-uri",
                "https://g/a",
            ],
            "source https://g/a has no commit",
        ),
        (
            [
                "--build-type",
                "https://b.test/t",
                "--builder-id",
                "https://b.test/b",
                "--started-on",
                "2024-05-02T00:00:00Z",
                "--finished-on",
                "2024-05-01T00:00:00Z",
            ],
            "startedOn 2024-05-02T00:00:00Z is after finishedOn 2024-05-01T00:00:00Z",
        ),
    ],
)
def test_unusable_contexts_exit_2(
    extra: list[str],
    message: str,
    ci_env: Callable[[Mapping[str, str]], None],
    sample_layout: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ci_env({})
    with pytest.raises(SystemExit) as exc:
        run(["provenance", f"oci:{sample_layout}:latest", *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_base_image_label_is_named(
    ci_env: Callable[[Mapping[str, str]], None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ci_env(ENVIRONMENTS["github-actions"])
    image = build_image(
        [Layer([File("a", b"a")])], labels={"org.opencontainers.image.base.digest": "sha256:short"}
    )
    layout = write_layout(tmp_path / "bad-label", image)
    with pytest.raises(SystemExit):
        run(["provenance", f"oci:{layout}:latest"])
    err = capsys.readouterr().err
    assert f"config {image.config.digest} org.opencontainers.image.base.digest" in err


def test_index_subject_is_the_index_and_bases_come_from_each_platform(
    ci_env: Callable[[Mapping[str, str]], None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ci_env(ENVIRONMENTS["github-actions"])
    images = [
        build_image(
            [Layer([File("arch", arch.encode())])],
            platform=Platform("linux", arch),
            labels={"org.opencontainers.image.base.digest": f"sha256:{char * 64}"},
        )
        for arch, char in (("amd64", "c"), ("arm64", "d"))
    ]
    index = build_index(images)
    layout = write_layout(tmp_path / "multi", index)
    statement = _provenance([f"oci:{layout}:latest"], tmp_path)
    predicate = check(statement)
    assert statement["subject"][0]["digest"] == {"sha256": index.digest.removeprefix("sha256:")}
    bases = [d for d in predicate["buildDefinition"]["resolvedDependencies"] if "annotations" in d]
    assert [b["digest"]["sha256"][0] for b in bases] == ["c", "d"]
    assert all("uri" not in b for b in bases)
    assert LayoutStore.open_directory(layout).resolve("latest").digest == index.digest


@pytest.mark.registry
def test_registry_image_subject_is_named_and_tag_resolved_once(
    ci_env: Callable[[Mapping[str, str]], None],
    docker_registry: Any,
    sample_layout: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ci_env(ENVIRONMENTS["github-actions"])
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    ref = f"{docker_registry.host}/provenance/app:1.0"
    assert run(["copy", f"oci:{sample_layout}:latest", ref, "--format", "json"]) == 0
    digest = json.loads(capsys.readouterr().out)["digest"]
    statement = _provenance([ref], tmp_path)
    check(statement)
    assert statement["subject"] == [
        {
            "name": f"{docker_registry.host}/provenance/app",
            "digest": {"sha256": digest.removeprefix("sha256:")},
        }
    ]
