"""The gated deploy: nothing is written unless every check passes; then exactly ``decision.digest`` runs.

Decisions are the gate's own ``Decision`` records built by hand here (the
end-to-end tests through ``verify_image`` live in ``test_deploy_cli.py``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest

from chaingate.deploy.codeengine import DeployOptions
from chaingate.deploy.interface import DeployError, GateDenied, Target
from chaingate.deploy.record import DECISION_MEDIA_TYPE, DEPLOYMENT_ARTIFACT_TYPE
from chaingate.deploy.run import Denied, gated_deploy
from chaingate.errors import EXIT_DENIED
from chaingate.oci.artifact import bytes_opener
from chaingate.oci.client import Registries
from chaingate.oci.digest import sha256_digest
from chaingate.oci.interface import Manifest
from chaingate.oci.registry import RegistryStore
from chaingate.policy.interface import ClauseResult
from chaingate.policy.record import Decision
from chaingate_testing.codeengine import FakeIBMCloud
from chaingate_testing.images import File, Layer, build_image
from chaingate_testing.ociregistry import OCIRegistry
from support.cloud import Cloud

REPO = "team/shop"


def decision(repository: str, digest: str, *, verdict: str = "allow", mode: str = "enforce") -> Decision:
    failing = verdict == "deny"
    return Decision(
        image=f"{repository}:v1",
        digest=digest,
        repository=repository,
        mode=mode,  # type: ignore[arg-type]
        verdict=verdict,  # type: ignore[arg-type]
        clauses=(
            ClauseResult(
                "signers", "fail" if failing else "pass", "no attestation counts" if failing else "ok"
            ),
            ClauseResult("vulnerabilities", "fail" if failing else "pass", "CVE-2024-3094 (critical)"),
        ),
        ignored=(),
        warnings=(),
        policy_digest="sha256:" + "0" * 64,
    )


@pytest.fixture
def pushed(oci_registry: OCIRegistry, registries: Registries) -> tuple[str, str]:
    """A fresh image in the referrers-API registry: (repository, digest)."""
    store = RegistryStore(registries.client(oci_registry.host), REPO)
    image = build_image([Layer([File("seed", uuid.uuid4().bytes)])])
    for blob in image.blobs():
        store.put_blob(blob.descriptor, bytes_opener(blob.data))
    manifest = Manifest.parse(image.manifest.data, image.manifest.descriptor)
    store.put_manifest(manifest, tag="v1")
    return f"{oci_registry.host}/{REPO}", manifest.digest


def _app(cloud: Cloud) -> Target:
    return Target(cloud.project_id, "app", "web")


def test_a_denied_image_makes_no_write_call_at_all(cloud: Cloud, grant_writer: Callable[..., str]) -> None:
    cloud.fake.add_app(cloud.project_id, "web", "us.icr.io/team/shop@sha256:" + "1" * 64)
    denied = decision("us.icr.io/team/shop", "sha256:" + "2" * 64, verdict="deny")
    with pytest.raises(Denied) as exc:
        gated_deploy(denied, cloud.code_engine(), _app(cloud), DeployOptions(), registries=None)
    assert exc.value.exit_code == EXIT_DENIED
    assert exc.value.reasons == [
        "signers: no attestation counts",
        "vulnerabilities: CVE-2024-3094 (critical)",
    ]
    assert cloud.fake.requests == []  # not even a read: the gate said no before Code Engine was contacted


def test_a_failed_iam_audit_denies_before_any_write(cloud: Cloud, grant_writer: Callable[..., str]) -> None:
    from chaingate.deploy.iam import audit_iam

    grant_writer()
    grant_writer(cloud.fake.add_service_id("someone-else"))
    ce, iam = cloud.code_engine(), cloud.iam()
    allowed = decision("us.icr.io/team/shop", "sha256:" + "2" * 64)
    with pytest.raises(GateDenied, match="identities besides") as exc:
        gated_deploy(
            allowed,
            ce,
            _app(cloud),
            DeployOptions(),
            registries=None,
            audit=lambda: audit_iam(ce, iam, cloud.project_id, cloud.deployer),
            deployer=cloud.deployer,
        )
    assert "someone-else" in exc.value.diagnostics()
    assert cloud.fake.writes == [] and cloud.fake.requests  # it did read IAM


def test_a_deployer_flag_that_is_not_the_credentials_stops_before_writing(cloud: Cloud) -> None:
    allowed = decision("us.icr.io/team/shop", "sha256:" + "2" * 64)
    with pytest.raises(
        DeployError, match=r"^--deployer: is iam-ServiceId-other but the Code Engine credentials are"
    ):
        gated_deploy(
            allowed,
            cloud.code_engine(),
            _app(cloud),
            DeployOptions(),
            registries=None,
            deployer="iam-ServiceId-other",
        )
    assert cloud.fake.writes == []


def test_allowed_deploys_exactly_the_digest_and_attaches_the_record(
    cloud: Cloud, pushed: tuple[str, str], registries: Registries, grant_writer: Callable[..., str]
) -> None:
    repository, digest = pushed
    cloud.fake.add_app(cloud.project_id, "web", f"{repository}@sha256:{'e' * 64}")
    allowed = decision(repository, digest)

    outcome = gated_deploy(
        allowed,
        cloud.code_engine(),
        _app(cloud),
        DeployOptions(),
        registries=registries,
        deployer=cloud.deployer,
    )

    (patch,) = cloud.fake.writes
    assert patch.body == {"image_reference": f"{repository}@{digest}"}
    record = outcome.record
    assert record["image"] == f"{repository}@{digest}" and record["digest"] == digest
    assert record["app"] == "web" and record["revision"] == "web-00002"
    assert record["previousImage"] == f"{repository}@sha256:{'e' * 64}"
    assert record["project"]["id"] == cloud.project_id and record["project"]["region"] == "us-south"
    assert record["deployer"] == {
        "iamId": cloud.deployer,
        "subject": cloud.deployer.removeprefix("iam-"),
        "subjectType": "ServiceId",
        "accountId": cloud.fake.account_id,
        "source": "iam-token",
    }
    assert record["decision"]["verdict"] == "allow"
    assert outcome.warnings == [] and outcome.attached is not None

    # The referrer is there, holds the record and the decision it cites, and the digests agree.
    host, repo = repository.split("/", 1)
    store = RegistryStore(registries.client(host), repo)
    listing = store.referrers(digest, DEPLOYMENT_ARTIFACT_TYPE)
    (referrer,) = listing.referrers
    assert referrer.descriptor.digest == outcome.attached.digest
    layers = referrer.manifest.layers
    assert [layer.media_type for layer in layers] == [DEPLOYMENT_ARTIFACT_TYPE, DECISION_MEDIA_TYPE]
    with store.open_blob(layers[0]) as f:
        assert json.loads(f.read()) == record
    assert layers[1].digest == record["decision"]["digest"]
    with store.open_blob(layers[1]) as f:
        assert sha256_digest(f.read()) == record["decision"]["digest"]


def test_an_attach_failure_after_a_successful_deploy_is_a_warning(
    fake_cloud: FakeIBMCloud, cloud: Cloud, registries: Registries, fresh_oci_registry: OCIRegistry
) -> None:
    repository = f"{fresh_oci_registry.host}/{REPO}"
    digest = "sha256:" + "3" * 64  # never pushed: the registry cannot take a referrer about it
    cloud.fake.add_app(cloud.project_id, "web", f"{repository}@sha256:{'e' * 64}")
    outcome = gated_deploy(
        decision(repository, digest), cloud.code_engine(), _app(cloud), DeployOptions(), registries=registries
    )
    assert outcome.result.revision == "web-00002" and outcome.attached is None
    (warning,) = outcome.warnings
    assert warning.startswith(
        f"deployed, but the deployment record was not attached to {repository}@{digest}: "
    )


def test_warn_mode_deploys_a_denied_image_and_says_so(cloud: Cloud) -> None:
    cloud.fake.add_app(cloud.project_id, "web", "us.icr.io/team/shop@sha256:" + "1" * 64)
    warned = decision("us.icr.io/team/shop", "sha256:" + "2" * 64, verdict="deny", mode="warn")
    outcome = gated_deploy(warned, cloud.code_engine(), _app(cloud), DeployOptions(), registries=None)
    assert outcome.record["decision"] == {
        "digest": outcome.record["decision"]["digest"],
        "mediaType": DECISION_MEDIA_TYPE,
        "verdict": "deny",
        "mode": "warn",
    }
    assert len(cloud.fake.writes) == 1
