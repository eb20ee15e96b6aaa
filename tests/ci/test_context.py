"""CI adapters: each CI's environment reduced to one build context, and flags that override it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chaingate.ci import github, ibm_toolchain, tekton
from chaingate.ci.flags import BuildOverrides, apply
from chaingate.ci.interface import BuildContext, BuildContextError, detect, format_time, parse_time

SHA = "0123456789abcdef0123456789abcdef01234567"

GITHUB_ENV = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "octo-org/octo-app",
    "GITHUB_WORKFLOW_REF": "octo-org/octo-app/.github/workflows/release.yml@refs/tags/v1.2@rc",
    "GITHUB_REF": "refs/tags/v1.2@rc",
    "GITHUB_SHA": SHA,
    "GITHUB_RUN_ID": "4242",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_EVENT_NAME": "push",
    "GITHUB_REPOSITORY_ID": "123",
    "GITHUB_REPOSITORY_OWNER_ID": "456",
    "RUNNER_ENVIRONMENT": "github-hosted",
}
TEKTON_ENV = {
    "TEKTON_PIPELINE_RUN": "build-x7k2",
    "TEKTON_PIPELINE_RUN_UID": "4a1b-uid",
    "TEKTON_NAMESPACE": "ci",
    "TEKTON_PIPELINE": "build-and-push",
    "TEKTON_TASK_RUN": "build-x7k2-provenance",
    "TEKTON_PIPELINE_PARAMS": '{"git-url": "https://git.test/app", "image": "registry.test/app"}',
    "TEKTON_PIPELINE_SOURCE_URI": "git+https://git.test/pipelines",
    "TEKTON_PIPELINE_SOURCE_DIGEST": "sha1:28b1230000000000000000000000000000000000",
    "TEKTON_PIPELINE_SOURCE_PATH": "pipeline.yaml",
    "CHAINS_GIT_URL": "https://git.test/app",
    "CHAINS_GIT_COMMIT": SHA,
}
IBM_ENV = {
    "PIPELINE_ID": "9f1c-pipeline",
    "PIPELINE_RUN_ID": "77aa-run",
    "PIPELINE_RUN_URL": "https://cloud.ibm.com/devops/pipelines/tekton/9f1c-pipeline/runs/77aa-run",
    "BUILD_NUMBER": "17",
    "TRIGGER_NAME": "git-push",
    "TRIGGER_TYPE": "scm",
    "TOOLCHAIN_ID": "tc-1",
    "GIT_URL": "https://github.ibm.com/team/app",
    "GIT_BRANCH": "main",
    "GIT_COMMIT": SHA.upper(),
    "TEKTON_PIPELINE_RUN": "ibm-run",
}


def test_github_like_actions_attest_build_provenance() -> None:
    ctx = detect(GITHUB_ENV)
    assert ctx.system == "github-actions"
    assert ctx.build_type == "https://actions.github.io/buildtypes/workflow/v1"
    # A ref may contain '@' itself: only the first one separates path from ref.
    assert ctx.external_parameters == {
        "workflow": {
            "ref": "refs/tags/v1.2@rc",
            "repository": "https://github.com/octo-org/octo-app",
            "path": ".github/workflows/release.yml",
        }
    }
    assert ctx.internal_parameters == {
        "github": {
            "event_name": "push",
            "repository_id": "123",
            "repository_owner_id": "456",
            "runner_environment": "github-hosted",
        }
    }
    assert (
        ctx.builder_id
        == "https://github.com/octo-org/octo-app/.github/workflows/release.yml@refs/tags/v1.2@rc"
    )
    assert ctx.invocation_id == "https://github.com/octo-org/octo-app/actions/runs/4242/attempts/2"
    assert (ctx.source_uri, ctx.source_ref, ctx.source_commit) == (
        "https://github.com/octo-org/octo-app",
        "refs/tags/v1.2@rc",
        SHA,
    )


def test_github_missing_variable_is_named() -> None:
    env = {k: v for k, v in GITHUB_ENV.items() if k != "GITHUB_WORKFLOW_REF"}
    with pytest.raises(
        BuildContextError, match=r"github-actions detected but \$GITHUB_WORKFLOW_REF is not set"
    ):
        detect(env)
    with pytest.raises(BuildContextError, match=r"\$GITHUB_SHA: 'abc' is not a full git commit"):
        detect({**GITHUB_ENV, "GITHUB_SHA": "abc"})


def test_tekton_like_chains_slsa() -> None:
    ctx = detect(TEKTON_ENV)
    assert ctx.system == "tekton"
    assert ctx.build_type == tekton.BUILD_TYPE == "https://tekton.dev/chains/v2/slsa"
    assert ctx.builder_id == tekton.DEFAULT_BUILDER_ID
    assert ctx.invocation_id == "4a1b-uid"
    assert ctx.external_parameters == {
        "runSpec": {
            "pipelineRef": {"name": "build-and-push"},
            "params": [
                {"name": "git-url", "value": "https://git.test/app"},
                {"name": "image", "value": "registry.test/app"},
            ],
        },
        "buildConfigSource": {
            "ref": "sha1:28b1230000000000000000000000000000000000",
            "repository": "git+https://git.test/pipelines",
            "path": "pipeline.yaml",
        },
    }
    assert ctx.dependencies == (
        {
            "name": "pipeline",
            "uri": "git+https://git.test/pipelines",
            "digest": {"sha1": "28b1230000000000000000000000000000000000"},
        },
    )
    assert (ctx.source_uri, ctx.source_commit) == ("https://git.test/app", SHA)
    assert ctx.internal_parameters == {
        "tekton": {"namespace": "ci", "pipelineRun": "build-x7k2", "taskRun": "build-x7k2-provenance"}
    }


def test_tekton_minimal_and_bad_values() -> None:
    ctx = detect({"TEKTON_PIPELINE_RUN": "r1", "TEKTON_NAMESPACE": "ns"})
    assert ctx.invocation_id == "ns/r1"
    assert ctx.external_parameters == {"runSpec": {}}
    assert ctx.source_uri is None
    with pytest.raises(BuildContextError, match=r"\$TEKTON_PIPELINE_PARAMS: must be a JSON object"):
        detect({"TEKTON_PIPELINE_RUN": "r1", "TEKTON_PIPELINE_PARAMS": "[1]"})
    with pytest.raises(
        BuildContextError, match=r"\$TEKTON_PIPELINE_SOURCE_DIGEST: 'abc' is not ALGORITHM:HEX"
    ):
        detect({**TEKTON_ENV, "TEKTON_PIPELINE_SOURCE_DIGEST": "abc"})
    with pytest.raises(BuildContextError, match=r"\$CHAINS_GIT_URL: 'not a uri' is not a URI"):
        detect({**TEKTON_ENV, "CHAINS_GIT_URL": "not a uri"})


def test_ibm_toolchain_is_detected_before_tekton() -> None:
    ctx = detect(IBM_ENV)
    assert ctx.system == "ibm-toolchain"
    assert ctx.build_type == ibm_toolchain.BUILD_TYPE == "https://chaingate.dev/buildtypes/ibm-toolchain/v1"
    assert ctx.builder_id == "https://cloud.ibm.com/devops/pipelines/tekton/9f1c-pipeline"
    assert ctx.invocation_id == IBM_ENV["PIPELINE_RUN_URL"]
    assert ctx.external_parameters == {
        "pipeline": {"id": "9f1c-pipeline", "toolchainId": "tc-1"},
        "trigger": {"name": "git-push", "type": "scm"},
        "source": {"repository": "https://github.ibm.com/team/app", "ref": "main"},
    }
    assert ctx.internal_parameters == {"ibmToolchain": {"buildNumber": "17", "pipelineRunId": "77aa-run"}}
    assert ctx.source_commit == SHA  # normalised to lowercase
    # Without a toolchain id, the run URL's host decides; a foreign host is not IBM.
    env = {k: v for k, v in IBM_ENV.items() if k != "TOOLCHAIN_ID"}
    assert detect(env).system == "ibm-toolchain"
    env["PIPELINE_RUN_URL"] = "https://cloud.ibm.com.evil.test/run"
    assert detect(env).system == "tekton"


def test_detection_order_and_forcing() -> None:
    assert detect({}).system == "none"
    assert detect({**GITHUB_ENV, **TEKTON_ENV}).system == "github-actions"
    assert detect({**GITHUB_ENV, **TEKTON_ENV}, "tekton").system == "tekton"
    assert detect(GITHUB_ENV, "none") == BuildContext(system="none")
    with pytest.raises(BuildContextError, match="--ci tekton: the environment is not a tekton run"):
        detect(GITHUB_ENV, "tekton")
    with pytest.raises(BuildContextError, match="--ci: unknown CI system 'jenkins'"):
        detect({}, "jenkins")
    assert github.from_env({"GITHUB_ACTIONS": "false"}) is None


def test_exported_build_times() -> None:
    ctx = detect(
        {
            **TEKTON_ENV,
            "CHAINGATE_BUILD_STARTED_ON": "1714564800",
            "CHAINGATE_BUILD_FINISHED_ON": "2024-05-01T14:00:00+02:00",
        }
    )
    assert ctx.started_on == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert ctx.finished_on == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(
        BuildContextError, match=r"\$CHAINGATE_BUILD_STARTED_ON: 'yesterday' is not an RFC 3339 time"
    ):
        detect({"CHAINGATE_BUILD_STARTED_ON": "yesterday"})


def test_times() -> None:
    assert parse_time("2024-05-01T12:00:00Z", "t") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parse_time("2024-05-01T12:00:00.250z", "t").microsecond == 250_000
    assert parse_time("@0", "t") == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(BuildContextError, match="--started-on: '2024-05-01T12:00:00' has no time zone"):
        parse_time("2024-05-01T12:00:00", "--started-on")
    assert format_time(datetime(2024, 5, 1, 12, tzinfo=UTC)) == "2024-05-01T12:00:00Z"
    assert format_time(datetime(2024, 5, 1, 12, 0, 0, 500_000, tzinfo=UTC)) == "2024-05-01T12:00:00.500000Z"


def test_flags_override_the_ci() -> None:
    ctx = apply(
        detect(GITHUB_ENV),
        BuildOverrides(
            builder_id="https://github.com/octo-org/reusable/.github/workflows/build.yml@refs/heads/main",
            started_on="2024-05-01T12:00:00Z",
            external_parameters=["inputs=prod", "workflow=replaced"],
            internal_parameters=["note=x=y"],
        ),
    )
    assert ctx.builder_id.startswith("https://github.com/octo-org/reusable/")
    assert ctx.started_on == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert ctx.external_parameters["inputs"] == "prod"
    assert ctx.external_parameters["workflow"] == "replaced"
    assert ctx.internal_parameters["note"] == "x=y"
    assert ctx.internal_parameters["github"]["event_name"] == "push"
    assert ctx.source_commit == SHA  # untouched when not given
    for overrides, message in (
        (BuildOverrides(build_type="not a uri"), "--build-type: 'not a uri' is not a URI"),
        (BuildOverrides(builder_id="relative/path"), "--builder-id: 'relative/path' is not a URI"),
        (BuildOverrides(source_commit="main"), "--source-commit: 'main' is not a full git commit"),
        (BuildOverrides(external_parameters=["novalue"]), "--external-parameter: 'novalue' is not KEY=VALUE"),
        (BuildOverrides(finished_on="soon"), "--finished-on: 'soon' is not an RFC 3339 time"),
    ):
        with pytest.raises(BuildContextError) as exc:
            apply(BuildContext(system="none"), overrides)
        assert exc.value.message.startswith(message)
        assert exc.value.exit_code == 2
