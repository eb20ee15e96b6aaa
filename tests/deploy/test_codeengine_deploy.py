"""Deploy by digest through the official CodeEngineV2 client, against the model-validated fake."""

from __future__ import annotations

import pytest

from chaingate.deploy.codeengine import DeployOptions, deploy, digest_reference, reason_hint
from chaingate.deploy.interface import DeployError, DeployFailed, Target
from chaingate.errors import EXIT_DENIED, EXIT_USAGE
from chaingate_testing.codeengine import Fault
from support.cloud import IMAGE, OTHER_DIGEST, REPOSITORY, Cloud

OLD_IMAGE = f"{REPOSITORY}@{OTHER_DIGEST}"


def _app(cloud: Cloud, name: str = "web") -> Target:
    return Target(cloud.project_id, "app", name)


def test_creates_a_missing_app_by_digest_and_waits_until_it_is_ready(cloud: Cloud) -> None:
    cloud.fake.ready_after = 3
    result = deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions(poll_interval=2.0))

    assert result.created and result.previous_image is None
    assert result.revision == "web-00001" and result.image_reference == IMAGE
    assert result.endpoint and result.endpoint.startswith("https://web.")
    creates = [r for r in cloud.fake.writes]
    assert len(creates) == 1 and creates[0].method == "POST"
    assert creates[0].path == f"/v2/projects/{cloud.project_id}/apps"
    assert creates[0].body == {"image_reference": IMAGE, "name": "web"}
    # The pinned API version goes with every call, so a server default change cannot alter behaviour.
    assert all(
        r.query.get("version") == ["2025-03-29"] for r in cloud.fake.requests if r.path.startswith("/v2/p")
    )
    assert cloud.clock.sleeps == [2.0, 2.0, 2.0]  # three polls not ready yet, then ready
    assert cloud.fake.workload(cloud.project_id, "app", "web")["status"] == "ready"


def test_updates_with_if_match_and_sends_only_what_changes(cloud: Cloud) -> None:
    existing = cloud.fake.add_app(
        cloud.project_id,
        "web",
        OLD_IMAGE,
        scale_min_instances=2,
        scale_max_instances=7,
        run_env_variables=[{"type": "literal", "name": "MODE", "value": "production"}],
        probe_readiness={"type": "http", "path": "/healthz", "port": 8080},
    )
    result = deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions())

    assert not result.created and result.previous_image == OLD_IMAGE
    assert result.revision == "web-00002"
    (patch,) = cloud.fake.writes
    assert patch.method == "PATCH" and patch.body == {"image_reference": IMAGE}
    assert patch.headers["If-Match"] == existing["entity_tag"]
    assert "merge-patch+json" in patch.headers["content-type"]
    now = cloud.fake.workload(cloud.project_id, "app", "web")
    assert now["image_reference"] == IMAGE
    # Everything the user did not ask to change is exactly as it was.
    for key in ("scale_min_instances", "scale_max_instances", "run_env_variables", "probe_readiness"):
        assert now[key] == existing[key]


def test_a_lost_etag_race_is_reread_and_retried_keeping_the_other_writers_change(cloud: Cloud) -> None:
    cloud.fake.add_app(cloud.project_id, "web", OLD_IMAGE, scale_max_instances=5)
    cloud.fake.etag_mismatches = 2
    cloud.fake.concurrent_change = {"scale_max_instances": 9}

    result = deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions())

    assert result.conflicts == 2
    patches = [r for r in cloud.fake.writes if r.method == "PATCH"]
    assert [p.headers["If-Match"] for p in patches] == ["1", "2", "3"]  # each retry sends the re-read ETag
    now = cloud.fake.workload(cloud.project_id, "app", "web")
    assert now["image_reference"] == IMAGE and now["scale_max_instances"] == 9


def test_endless_conflicts_give_up_after_a_bounded_number(cloud: Cloud) -> None:
    cloud.fake.add_app(cloud.project_id, "web", OLD_IMAGE)
    cloud.fake.etag_mismatches = 100
    with pytest.raises(DeployError, match=r"changed concurrently 3 times"):
        deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions(max_conflicts=2))
    assert len(cloud.fake.writes) == 3


@pytest.mark.parametrize(
    ("reason", "hint"),
    [
        ("image_pull_back_off", "--image-secret"),
        ("container_failed_exit_code_1", "exited with code 1"),
        ("container_failed_exit_code_139", "segmentation fault"),
    ],
)
def test_a_failed_revision_is_reported_with_its_reason_and_exit_1(
    cloud: Cloud, reason: str, hint: str
) -> None:
    cloud.fake.add_app(cloud.project_id, "web", OLD_IMAGE)
    cloud.fake.revision_failure = reason
    cloud.fake.ready_after = 1
    with pytest.raises(DeployFailed) as exc:
        deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions())
    assert exc.value.exit_code == EXIT_DENIED
    assert (
        exc.value.message == f"app 'web' in project {cloud.project_id}: revision web-00002 failed: {reason}"
    )
    assert exc.value.hint and hint in exc.value.hint


def test_an_app_that_was_already_failing_is_fixed_by_a_good_revision(cloud: Cloud) -> None:
    cloud.fake.add_app(cloud.project_id, "web", OLD_IMAGE, failed="image_pull_back_off")
    before = cloud.fake.workload(cloud.project_id, "app", "web")
    assert before["status"] == "failed"
    cloud.fake.ready_after = 2
    result = deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions())
    assert result.revision == "web-00002"
    assert cloud.fake.workload(cloud.project_id, "app", "web")["status"] == "ready"


def test_readiness_is_bounded_by_the_timeout(cloud: Cloud) -> None:
    cloud.fake.add_app(cloud.project_id, "web", OLD_IMAGE)
    cloud.fake.ready_after = 1000
    with pytest.raises(DeployFailed) as exc:
        deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions(timeout=30, poll_interval=4))
    assert exc.value.message.endswith(
        "not ready within 30s (revision web-00002 is loading, reason deploying)"
    )
    assert exc.value.hint and "--timeout" in exc.value.hint
    assert cloud.clock.now == pytest.approx(30)


@pytest.mark.parametrize(
    ("reason", "status", "hint"),
    [
        ("image_pull_back_off", "warning", "that the digest exists"),
        ("fetch_image_failed_unknown_manifest", "warning", "push the verified digest"),
        ("fetch_image_failed_wrong_pull_credentials", "warning", "--image-secret"),
        ("container_failed_exit_code_1", "warning", "ibmcloud ce app logs"),
        ("container_failed_exit_code_24", "warning", "exited with code 24"),
        ("initial_scale_never_achieved", "warning", "readiness probe"),
        ("deploying_waiting_for_resources", "loading", "CPU/memory"),
    ],
)
def test_a_revision_that_never_gets_ready_is_reported_with_its_reason_and_hint(
    cloud: Cloud, reason: str, status: str, hint: str
) -> None:
    cloud.fake.add_app(cloud.project_id, "web", OLD_IMAGE)
    cloud.fake.revision_stuck = reason
    cloud.fake.ready_after = 1
    with pytest.raises(DeployFailed) as exc:
        deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions(timeout=20, poll_interval=5))
    assert exc.value.exit_code == EXIT_DENIED  # "failed to become ready in time"
    assert exc.value.message == (
        f"app 'web' in project {cloud.project_id}: not ready within 20s "
        f"(revision web-00002 is {status}, reason {reason})"
    )
    assert exc.value.hint and hint in exc.value.hint
    assert cloud.clock.now == pytest.approx(20)  # waited the whole timeout: Code Engine was still retrying
    assert cloud.fake.revisions(cloud.project_id, "web")["web-00002"]["status_details"]["reason"] == reason


def test_reason_hints_read_kubernetes_spellings_and_any_exit_code() -> None:
    assert reason_hint("ImagePullBackOff") == reason_hint("image_pull_back_off")
    assert "registry secret" in (reason_hint("ErrImagePull") or "")
    assert "in a loop" in (reason_hint("CrashLoopBackOff") or "")
    assert "code 137" in (reason_hint("container_failed_exit_code_137") or "")
    assert reason_hint("something_new") is None


def test_redeploying_the_running_digest_writes_nothing(cloud: Cloud) -> None:
    cloud.fake.add_app(cloud.project_id, "web", IMAGE)
    result = deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions())
    assert cloud.fake.writes == [] and result.revision == "web-00001"


def test_image_secret_is_set_for_private_registries(cloud: Cloud) -> None:
    cloud.fake.add_app(cloud.project_id, "web", OLD_IMAGE)
    deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions(image_secret="icr-pull"))
    (patch,) = cloud.fake.writes
    assert patch.body == {"image_reference": IMAGE, "image_secret": "icr-pull"}


def test_transient_5xx_is_retried_and_a_persistent_one_fails_with_the_status(cloud: Cloud) -> None:
    cloud.fake.add_app(cloud.project_id, "web", OLD_IMAGE)
    cloud.fake.faults.append(Fault(path=r"/apps/web$", method="PATCH", times=1, status=503))
    deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions())
    assert cloud.retry_sleeps == [0.5]

    cloud.fake.faults.append(Fault(path=r"/projects/", method="GET", times=None, status=500))
    with pytest.raises(DeployError, match=r"^get project .*: HTTP 500: injected HTTP 500$"):
        deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions())


def test_a_hanging_api_times_out_and_fails_as_unreachable(cloud: Cloud) -> None:
    cloud.fake.faults.append(Fault(path=r"/projects/", times=None, delay=2.0))
    with pytest.raises(DeployError, match=r"could not be reached after 2 attempts \(ReadTimeout\)"):
        deploy(cloud.code_engine(request_timeout=0.2, attempts=2), _app(cloud), IMAGE, DeployOptions())
    assert cloud.fake.writes == []


def test_a_missing_project_is_a_one_line_usage_error(cloud: Cloud) -> None:
    target = Target("0000dead-beef-0000-0000-000000000000", "app", "web")
    with pytest.raises(DeployError) as exc:
        deploy(cloud.code_engine(), target, IMAGE, DeployOptions())
    assert exc.value.exit_code == EXIT_USAGE
    assert exc.value.message.startswith("project 0000dead-beef-0000-0000-000000000000: not found in http://")
    assert "--region" in (exc.value.hint or "")
    assert cloud.fake.writes == []


def test_only_digest_references_reach_code_engine(cloud: Cloud) -> None:
    with pytest.raises(DeployError, match="pinned by digest"):
        deploy(cloud.code_engine(), _app(cloud), f"{REPOSITORY}:latest", DeployOptions())
    with pytest.raises(DeployError, match="never a tag"):
        digest_reference("us.icr.io/team/app:v1", OTHER_DIGEST)
    with pytest.raises(DeployError, match="layout or archive"):
        digest_reference("oci:/tmp/layout", OTHER_DIGEST)
    assert digest_reference(REPOSITORY, OTHER_DIGEST) == OLD_IMAGE
    assert cloud.fake.requests == []


def test_job_update_then_submitted_run_waits_for_completion(cloud: Cloud) -> None:
    cloud.fake.add_job(cloud.project_id, "nightly", OLD_IMAGE, scale_retry_limit=1)
    cloud.fake.job_run_polls = 2
    target = Target(cloud.project_id, "job", "nightly")

    result = deploy(cloud.code_engine(), target, IMAGE, DeployOptions(submit=True, poll_interval=5))

    patch, run = cloud.fake.writes
    assert (
        patch.method == "PATCH"
        and patch.body == {"image_reference": IMAGE}
        and patch.headers["If-Match"] == "1"
    )
    assert run.method == "POST" and run.path.endswith("/job_runs") and run.body == {"job_name": "nightly"}
    assert (
        result.job_run is not None and result.job_run.status == "completed" and result.job_run.succeeded == 1
    )
    assert result.revision == result.job_run.name and result.previous_image == OLD_IMAGE
    assert cloud.fake.workload(cloud.project_id, "job", "nightly")["scale_retry_limit"] == 1
    assert cloud.clock.sleeps == [5, 5, 5]


def test_a_failed_job_run_reports_each_failed_index(cloud: Cloud) -> None:
    cloud.fake.add_job(cloud.project_id, "nightly", OLD_IMAGE)
    cloud.fake.job_run_failure = "ContainerExitedCode1"
    target = Target(cloud.project_id, "job", "nightly")
    with pytest.raises(DeployFailed, match=r"failed: index 0: ContainerExitedCode1 after 3 retries"):
        deploy(cloud.code_engine(), target, IMAGE, DeployOptions(submit=True))


def test_a_missing_job_is_created(cloud: Cloud) -> None:
    result = deploy(cloud.code_engine(), Target(cloud.project_id, "job", "batch"), IMAGE, DeployOptions())
    assert result.created and result.job_run is None
    (create,) = cloud.fake.writes
    assert create.body == {"image_reference": IMAGE, "name": "batch"}
