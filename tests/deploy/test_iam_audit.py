"""``audit iam``: only the deployer may write to the project; the workload's profile is its own.

Every fixture is a setup seen in real accounts: an old account-wide Writer grant,
an access group someone was added to, a trusted profile a developer can assume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chaingate.deploy.iam import audit_iam, policy_scope
from chaingate.deploy.interface import DeployError, IamAuditReport, ProjectInfo, Target
from support.cloud import Cloud

WRITER = "crn:v1:bluemix:public:iam::::serviceRole:Writer"
READER = "crn:v1:bluemix:public:iam::::serviceRole:Reader"
ADMIN = "crn:v1:bluemix:public:iam::::role:Administrator"


def _audit(cloud: Cloud, *, workload: Target | None = None, **kwargs: Any) -> IamAuditReport:
    return audit_iam(
        cloud.code_engine(), cloud.iam(), cloud.project_id, cloud.deployer, workload=workload, **kwargs
    )


def _workload_profile(cloud: Cloud, app: str = "web") -> dict[str, Any]:
    profile = cloud.fake.add_profile("shop-web-workload")
    cloud.fake.link_profile(
        profile["id"], crn=cloud.project["crn"], component_type="application", component_name=app
    )
    return profile


@pytest.fixture
def clean(cloud: Cloud, grant_writer: Callable[..., str]) -> Cloud:
    """The setup docs/code-engine.md describes: deployer Writer on the project, others read-only, one linked profile."""
    grant_writer()
    developer = cloud.fake.add_service_id("dashboard")
    cloud.fake.add_policy(
        roles=[READER],
        iam_id=developer,
        resource={"serviceName": "codeengine", "serviceInstance": cloud.project_id},
    )
    # Administrator is a platform role: it manages projects, not what runs in them.
    cloud.fake.add_policy(roles=[ADMIN], iam_id="IBMid-0000000001", resource={"serviceName": "codeengine"})
    # A grant on another service entirely does not reach Code Engine.
    cloud.fake.add_policy(roles=[WRITER], iam_id=developer, resource={"serviceName": "cloud-object-storage"})
    _workload_profile(cloud)
    return cloud


def test_a_clean_setup_passes(clean: Cloud) -> None:
    report = _audit(clean, workload=Target(clean.project_id, "app", "web"))
    assert report.passed, report.findings
    assert [g.subject for g in report.grants] == [clean.deployer]
    assert report.grants[0].scope == "this project" and report.grants[0].roles == ("Writer",)
    assert report.deployer_can_write
    assert len(report.profiles_checked) == 1
    # Only reads: an audit never changes IAM.
    assert clean.fake.writes == []


def test_an_account_wide_writer_grant_fails(clean: Cloud) -> None:
    ops = clean.fake.add_service_id("legacy-ops-automation")
    policy = clean.fake.add_policy(roles=[WRITER], iam_id=ops)  # every IAM-enabled service in the account
    report = _audit(clean)
    assert not report.passed
    (finding,) = report.findings
    assert finding.kind == "write-access" and finding.policy_id == policy
    assert finding.subject == f"{ops} (legacy-ops-automation)"
    assert finding.message.startswith("holds Writer on all IAM-enabled services in the account: ")
    assert "codeengine.tenant.entities.update" in finding.message


def test_an_access_group_granting_a_non_deployer_fails(clean: Cloud) -> None:
    group = clean.fake.add_access_group(
        "shop-developers",
        [(clean.deployer, "service", "pipeline-deployer"), ("IBMid-270000ABCD", "user", "Dana Developer")],
    )
    clean.fake.add_policy(
        roles=[WRITER],
        access_group_id=group,
        resource={"serviceName": "codeengine", "resourceGroupId": clean.project["resource_group_id"]},
    )
    report = _audit(clean)
    (finding,) = report.findings  # the deployer's own membership is fine
    assert finding.subject == "IBMid-270000ABCD"
    assert f"via access group {group}" in finding.message
    assert "Code Engine in the resource group" in finding.message


def test_a_dynamic_rule_on_a_writing_group_fails(clean: Cloud) -> None:
    group = clean.fake.add_access_group(
        "sso-engineers",
        [],
        rules=[{"name": "all-engineers", "expiration": 12, "realm_name": "https://sso.example.com",
                "conditions": [{"claim": "groups", "operator": "CONTAINS", "value": '"engineering"'}]}],
    )  # fmt: skip
    clean.fake.add_policy(roles=[WRITER], access_group_id=group, resource={"serviceName": "codeengine"})
    (finding,) = _audit(clean).findings
    assert "dynamic rule all-engineers adds any federated user of https://sso.example.com" in finding.message


def test_custom_roles_are_judged_by_their_actions(clean: Cloud) -> None:
    sneaky = clean.fake.add_custom_role("ImageBumper", ["codeengine.tenant.entities.update"])
    harmless = clean.fake.add_custom_role("LogReader", ["codeengine.tenant.entities.read"])
    bot = clean.fake.add_service_id("renovate-bot")
    scope = {"serviceName": "codeengine", "serviceInstance": clean.project_id}
    clean.fake.add_policy(roles=[harmless], iam_id=bot, resource=scope)
    assert _audit(clean).passed
    clean.fake.add_policy(roles=[sneaky], iam_id=bot, resource=scope)
    (finding,) = _audit(clean).findings
    assert finding.message == "holds ImageBumper on this project: codeengine.tenant.entities.update"


def test_a_trusted_profile_with_an_extra_identity_fails(clean: Cloud) -> None:
    profile = next(p for p in clean.fake._profiles.values())["doc"]
    laptop = clean.fake.add_service_id("dana-laptop-key")
    clean.fake.add_profile_identity(profile["id"], laptop)
    report = _audit(clean, workload=Target(clean.project_id, "app", "web"))
    (finding,) = report.findings
    assert finding.kind == "profile-identity" and finding.subject == "trusted profile shop-web-workload"
    assert finding.message == "can be assumed by serviceid dana-laptop-key"


def test_a_workload_profile_linked_elsewhere_or_with_claim_rules_fails(clean: Cloud) -> None:
    profile = next(p for p in clean.fake._profiles.values())["doc"]
    clean.fake.link_profile(
        profile["id"], crn=clean.project["crn"], component_type="application", component_name="admin-console"
    )
    clean.fake.add_profile_claim_rule(
        profile["id"], [{"claim": "project_id", "operator": "EQUALS", "value": f'"{clean.project_id}"'}]
    )
    messages = [f.message for f in _audit(clean, workload=Target(clean.project_id, "app", "web")).findings]
    assert any(
        m.startswith("also linked to another component: CE ") and "admin-console" in m for m in messages
    )
    assert any(
        "claim rule ce-workloads (Profile-CR) admits anyone matching: project_id EQUALS" in m
        for m in messages
    )


def test_a_named_profile_must_exist(clean: Cloud) -> None:
    with pytest.raises(DeployError, match=r"^--trusted-profile: Profile-nope is not a trusted profile"):
        _audit(clean, profile_ids=["Profile-nope"])


def test_the_deployer_must_be_an_iam_id(cloud: Cloud) -> None:
    with pytest.raises(DeployError, match="is not an IAM ID"):
        audit_iam(cloud.code_engine(), cloud.iam(), cloud.project_id, "pipeline-deployer")


def _project(**kw: Any) -> ProjectInfo:
    base = {"id": "p-1", "name": "shop", "region": "us-south", "account_id": "acc", "resource_group_id": "rg-1",
            "crn": "crn:v1:bluemix:public:codeengine:us-south:a/acc:p-1::"}  # fmt: skip
    base.update(kw)
    return ProjectInfo(**base)


def _attrs(**attrs: str) -> dict[str, Any]:
    return {
        "resource": {
            "attributes": [{"key": k, "operator": "stringEquals", "value": v} for k, v in attrs.items()]
        }
    }


@pytest.mark.parametrize(
    ("attrs", "scope"),
    [
        ({"accountId": "acc", "serviceName": "codeengine", "serviceInstance": "p-1"}, "this project"),
        ({"accountId": "acc", "serviceName": "codeengine", "serviceInstance": "p-2"}, None),
        ({"accountId": "acc", "serviceName": "codeengine", "resourceGroupId": "rg-2"}, None),
        ({"accountId": "acc", "resourceGroupId": "rg-1"}, "all services in the resource group"),
        ({"accountId": "other"}, None),
        ({"accountId": "acc", "serviceType": "platform_service"}, None),
        ({"accountId": "acc", "serviceType": "service"}, "all IAM-enabled services in the account"),
        ({"accountId": "acc", "serviceName": "codeengine", "region": "eu-de"}, None),
    ],
)
def test_which_policies_reach_the_project(attrs: dict[str, str], scope: str | None) -> None:
    assert policy_scope(_attrs(**attrs), _project(), "acc") == scope


def test_wildcards_and_unknown_narrowing_still_count() -> None:
    wildcard = {"resource": {"attributes": [
        {"key": "accountId", "operator": "stringEquals", "value": "acc"},
        {"key": "serviceName", "operator": "stringMatch", "value": "code*"},
    ]}}  # fmt: skip
    assert policy_scope(wildcard, _project(), "acc") == "all Code Engine projects"
    narrowed = _attrs(accountId="acc", serviceName="codeengine", resourceType="secret")
    assert policy_scope(narrowed, _project(), "acc") == "all Code Engine projects (narrowed by resourceType)"


def test_a_deployer_profile_may_be_assumed_by_the_pipeline_but_not_linked(cloud: Cloud) -> None:
    profile = cloud.fake.add_profile("shop-deployer")
    cloud.fake.add_profile_identity(profile["id"], cloud.deployer)  # the pipeline's key assumes it: expected
    cloud.fake.add_policy(
        roles=[WRITER],
        iam_id=profile["iam_id"],
        resource={"serviceName": "codeengine", "serviceInstance": cloud.project_id},
    )
    audit = audit_iam(cloud.code_engine(), cloud.iam(), cloud.project_id, profile["iam_id"])
    assert audit.passed and audit.deployer_can_write and audit.profiles_checked == (profile["id"],)
    cloud.fake.link_profile(
        profile["id"], crn=cloud.project["crn"], component_type="application", component_name="web"
    )
    (finding,) = audit_iam(cloud.code_engine(), cloud.iam(), cloud.project_id, profile["iam_id"]).findings
    assert finding.message.startswith("the deployer's profile is linked to a compute resource: CE ")


def test_a_deployer_without_write_access_is_noted_not_failed(cloud: Cloud) -> None:
    report = _audit(cloud)
    assert report.passed and not report.deployer_can_write


def test_every_page_of_policies_is_read(cloud: Cloud, grant_writer: Callable[..., str]) -> None:
    grant_writer()
    reader = cloud.fake.add_service_id("dashboards")
    for _ in range(120):
        cloud.fake.add_policy(roles=[READER], iam_id=reader, resource={"serviceName": "codeengine"})
    late = cloud.fake.add_policy(roles=[WRITER], iam_id=reader, resource={"serviceName": "codeengine"})
    (finding,) = _audit(cloud).findings
    assert finding.policy_id == late
    pages = [r for r in cloud.fake.requests if r.path == "/v2/policies"]
    assert [r.query.get("start") for r in pages] == [None, ["100"]]
