"""Fixtures for the Code Engine deploy and the audits: the loopback IBM Cloud fake, configured the IBM way.

Clients are the official SDKs, configured only through the SDK's external
configuration (``CODE_ENGINE_URL``, ``CODE_ENGINE_APIKEY``…) exactly as a
pipeline would configure them; waits run on a fake clock so no test sleeps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chaingate_testing.codeengine import FakeIBMCloud
from support.cloud import APIKEY, Cloud, FakeClock

_PREFIXES = ("CODE_ENGINE_", "IAM_POLICY_MANAGEMENT_", "IAM_ACCESS_GROUPS_", "IAM_IDENTITY_", "IBMCLOUD_")


@pytest.fixture
def clean_ibm_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ambient IBM configuration leaks in: no env vars, no ibm-credentials.env file."""
    for key in list(os.environ):
        if key.startswith(_PREFIXES):
            monkeypatch.delenv(key)
    monkeypatch.setenv("IBM_CREDENTIALS_FILE", str(tmp_path / "no-ibm-credentials.env"))


@pytest.fixture
def fake_cloud(clean_ibm_env: None) -> Iterator[FakeIBMCloud]:
    with FakeIBMCloud() as fake:
        yield fake
        assert fake.model_errors == [], "the fake produced or accepted a body the SDK models reject"


@pytest.fixture
def cloud(fake_cloud: FakeIBMCloud, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    project = fake_cloud.add_project("shop")
    deployer = fake_cloud.add_service_id("pipeline-deployer", apikey=APIKEY)
    for key, value in fake_cloud.environment(APIKEY).items():
        monkeypatch.setenv(key, value)
    return Cloud(fake_cloud, project, deployer, FakeClock())


@pytest.fixture
def grant_writer(cloud: Cloud) -> Callable[..., str]:
    """Give an IAM ID (default: the deployer) Writer on exactly this project."""

    def grant(iam_id: str | None = None, role: str = "serviceRole:Writer") -> str:
        return cloud.fake.add_policy(
            roles=[f"crn:v1:bluemix:public:iam::::{role}"],
            iam_id=iam_id or cloud.deployer,
            resource={"serviceName": "codeengine", "serviceInstance": cloud.project_id},
        )

    return grant
