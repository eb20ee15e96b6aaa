"""Credentials the IBM way: the core SDK's authenticators, from flags or its external configuration; never logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from chaingate.deploy.bindings import parse_bindings
from chaingate.deploy.codeengine import CodeEngine, DeployOptions, deploy
from chaingate.deploy.ibmcloud import AuthOptions, token_claims
from chaingate.deploy.interface import DeployError, Target
from chaingate.errors import EXIT_USAGE
from chaingate_testing.codeengine import FakeIBMCloud
from support.cloud import APIKEY, IMAGE, Cloud


def test_the_sdk_environment_configures_url_and_api_key(cloud: Cloud) -> None:
    ce = CodeEngine.connect()
    assert ce.service.service_url == cloud.fake.code_engine_url
    assert type(ce.authenticator).__name__ == "IAMAuthenticator"
    ce.project(cloud.project_id)
    token_request = next(r for r in cloud.fake.requests if r.path == "/identity/token")
    assert token_request.body["grant_type"] == "urn:ibm:params:oauth:grant-type:apikey"
    assert token_claims(ce.authenticator)["iam_id"] == cloud.deployer


def test_region_flag_builds_the_regional_endpoint_and_wins_over_the_env(cloud: Cloud) -> None:
    ce = CodeEngine.connect(region="eu-de")
    assert ce.service.service_url == "https://api.eu-de.codeengine.cloud.ibm.com/v2"
    with pytest.raises(DeployError, match=r"^--region: 'eu-de.evil.com/x' is not an IBM Cloud region"):
        CodeEngine.connect(region="eu-de.evil.com/x")


def test_no_region_and_no_url_is_a_usage_error(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODE_ENGINE_URL")
    with pytest.raises(DeployError, match="no Code Engine region") as exc:
        CodeEngine.connect()
    assert exc.value.exit_code == EXIT_USAGE and "--region" in (exc.value.hint or "")


def test_no_credentials_at_all_says_what_to_set(fake_cloud: FakeIBMCloud) -> None:
    with pytest.raises(DeployError, match=r"^no IBM Cloud credentials for code_engine$") as exc:
        CodeEngine.connect(region="us-south")
    assert "CODE_ENGINE_APIKEY" in (exc.value.hint or "")


def test_a_refused_api_key_is_reported_without_the_key(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODE_ENGINE_APIKEY", "wrong-key-that-must-not-appear")
    with pytest.raises(DeployError) as exc:
        CodeEngine.connect().project(cloud.project_id)
    assert "HTTP 400: Provided API key could not be found." in exc.value.message
    assert "wrong-key" not in exc.value.diagnostics()


def test_apikey_flag_reads_the_key_from_a_file(
    cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODE_ENGINE_APIKEY")
    key = tmp_path / "apikey"
    key.write_text(APIKEY + "\n")
    ce = CodeEngine.connect(auth=AuthOptions(method="apikey", apikey_file=key, iam_url=cloud.fake.url))
    assert ce.project(cloud.project_id).id == cloud.project_id
    with pytest.raises(DeployError, match=r"^--auth apikey: no API key$"):
        CodeEngine.connect(auth=AuthOptions(method="apikey", iam_url=cloud.fake.url))


def test_container_authenticator_uses_the_compute_resource_token_and_trusted_profile(
    cloud: Cloud, tmp_path: Path
) -> None:
    profile = cloud.fake.add_profile("pipeline-runner")
    cloud.fake.link_profile(
        profile["id"], crn="crn:v1:bluemix:public:containers-kubernetes:us-south:a/x:cluster::",
        component_type="pod", component_name="tekton", cr_type="IKS_SA", cr_token="cr-token-xyz",
    )  # fmt: skip
    token = tmp_path / "cr-token"
    token.write_text("cr-token-xyz")
    ce = CodeEngine.connect(
        auth=AuthOptions(
            method="container", cr_token_file=token, profile_id=profile["id"], iam_url=cloud.fake.url
        )
    )
    ce.project(cloud.project_id)
    assert token_claims(ce.authenticator)["iam_id"] == profile["iam_id"]
    grant = next(r for r in cloud.fake.requests if r.path == "/identity/token")
    assert grant.body["grant_type"] == "urn:ibm:params:oauth:grant-type:cr-token"
    assert grant.body["cr_token"] == "<redacted>"  # the fake's log never holds it either


def test_assume_authenticator_from_the_environment(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = cloud.fake.add_profile("deployer-profile")
    cloud.fake.add_profile_identity(profile["id"], cloud.deployer)
    monkeypatch.setenv("CODE_ENGINE_AUTH_TYPE", "iamAssume")
    monkeypatch.setenv("CODE_ENGINE_IAM_PROFILE_ID", profile["id"])
    ce = CodeEngine.connect()
    ce.project(cloud.project_id)
    assert token_claims(ce.authenticator)["iam_id"] == profile["iam_id"]


def test_a_deploy_logs_no_secret_even_at_debug(cloud: Cloud, caplog: pytest.LogCaptureFixture) -> None:
    cloud.fake.add_secret(cloud.project_id, "db", {"password": "hunter2-value"})
    literal = {"type": "literal", "name": "LEGACY_TOKEN", "value": "literal-value-hunter2"}
    cloud.fake.add_app(cloud.project_id, "web", IMAGE.replace("ab", "cd"), run_env_variables=[literal])
    caplog.set_level(logging.DEBUG)
    ce = cloud.code_engine()
    bindings = parse_bindings({"version": 1, "env": [{"name": "PW", "secret": "db", "key": "password"}]}, "m")
    deploy(ce, Target(cloud.project_id, "app", "web"), IMAGE, DeployOptions(bindings=bindings))
    # Secret values came over the wire, and the literal went back in the PATCH: neither may reach a log.
    assert any(r.path.endswith("/secrets") for r in cloud.fake.requests)
    assert cloud.fake.writes[0].body["run_env_variables"][0] == literal
    access_token = ce.authenticator.token_manager.access_token
    assert caplog.records, "debug logging was on"
    assert APIKEY not in caplog.text and access_token not in caplog.text and "hunter2" not in caplog.text
