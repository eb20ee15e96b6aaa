"""``chaingate audit iam``: prove that only the deployer can change what runs in a Code Engine project.

A gate in the pipeline means nothing if a person or another service ID can still
``ibmcloud ce app update --image whatever``. Code Engine authorises that with the
``codeengine.tenant.entities.create|update|delete`` actions, so the audit asks IAM
(through the official ``ibm-platform-services`` clients) who holds a role carrying
any of them on this project, from every scope that reaches it:

- policies naming the project (``serviceName=codeengine``, ``serviceInstance=<project id>``),
  Code Engine in the project's resource group, Code Engine account-wide, and
  all-services grants on the account or the resource group;
- roles resolved to actions through the policy management roles API, so custom
  roles and future role changes are judged by what they do, not by their names;
- access groups expanded to their members, and dynamic rules (which admit any
  federated user whose claims match) reported as the open door they are;
- trusted profiles: the workload's profile must be linked only to this app or
  job (``cr_type`` CE) with no identities or claim rules that let anyone else
  assume it.

Anything the audit cannot resolve is a finding: it fails closed like the gate.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ibm_cloud_sdk_core import DetailedResponse
from ibm_platform_services import IamAccessGroupsV2, IamIdentityV1, IamPolicyManagementV1

from chaingate.deploy.codeengine import CodeEngine
from chaingate.deploy.ibmcloud import (
    MAX_PAGES,
    ApiCaller,
    AuthOptions,
    build_authenticator,
    configure,
    next_param,
    pages_by_start,
    result,
    token_claims,
)
from chaingate.deploy.interface import (
    DeployError,
    IamAuditReport,
    IamFinding,
    IamGrant,
    ProjectInfo,
    Target,
    dict_list,
)

#: The Code Engine actions that change what runs: whoever holds one can bypass the gate.
WRITE_ACTIONS = frozenset(
    {
        "codeengine.tenant.entities.create",
        "codeengine.tenant.entities.update",
        "codeengine.tenant.entities.delete",
    }
)
SERVICE_NAME = "codeengine"
#: The access group every authenticated identity is in; its members cannot be listed because they are everyone.
PUBLIC_ACCESS_GROUP = "AccessGroupId-PublicAccess"
_SERVICES = ("iam_policy_management", "iam_access_groups", "iam_identity")


@dataclass
class IamClients:
    """The three IAM APIs the audit reads, through the official SDK clients."""

    policies: IamPolicyManagementV1
    groups: IamAccessGroupsV2
    identity: IamIdentityV1
    caller: ApiCaller = field(default_factory=ApiCaller)

    @classmethod
    def connect(
        cls,
        auth: AuthOptions | None = None,
        *,
        request_timeout: float = 30.0,
        caller: ApiCaller | None = None,
    ) -> IamClients:
        """Clients configured like any IBM tool: ``IAM_POLICY_MANAGEMENT_URL`` etc., default iam.cloud.ibm.com.

        Each service may have its own credentials (``IAM_IDENTITY_APIKEY``…); without
        them the Code Engine credentials are used, so one identity can run deploy
        and audit alike.
        """
        auth = auth or AuthOptions()
        shared = build_authenticator(auth) if auth.method else None
        clients: list[Any] = []
        for name, kind in zip(
            _SERVICES, (IamPolicyManagementV1, IamAccessGroupsV2, IamIdentityV1), strict=True
        ):
            authenticator = shared
            if authenticator is None:
                try:
                    authenticator = build_authenticator(AuthOptions(), name)
                except DeployError:
                    authenticator = build_authenticator(AuthOptions())
            service = kind(authenticator=authenticator)
            configure(service, name, url=None, timeout=request_timeout)
            clients.append(service)
        return cls(clients[0], clients[1], clients[2], caller or ApiCaller())

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return result(self.caller.call(what, functools.partial(fn, *args, **kwargs)), what)


# -- roles and policies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    crn: str
    name: str
    actions: frozenset[str]


def code_engine_roles(iam: IamClients, account_id: str) -> dict[str, Role]:
    """Every role usable on Code Engine (platform, service and custom), keyed by CRN, with its actions."""
    body = iam.call(
        "list Code Engine roles", iam.policies.list_roles, service_name=SERVICE_NAME, account_id=account_id
    )
    roles: dict[str, Role] = {}
    for group in ("system_roles", "service_roles", "custom_roles"):
        for role in dict_list(body.get(group)):
            crn = role.get("crn")
            if isinstance(crn, str) and crn:
                name = str(role.get("display_name") or role.get("name") or crn.rsplit(":", 1)[-1])
                roles[crn] = Role(
                    crn, name, frozenset(a for a in role.get("actions") or [] if isinstance(a, str))
                )
    if not roles:
        raise DeployError(
            f"list Code Engine roles of account {account_id}: IAM returned none",
            hint="the auditing identity needs Viewer on IAM (iam-identity, iam-access-management) to read roles",
        )
    return roles


def list_policies(iam: IamClients, account_id: str) -> Iterator[dict[str, Any]]:
    """Every active policy of the account (v2 API): access policies and service-to-service authorizations."""

    def fetch(start: str | None) -> DetailedResponse:
        return iam.policies.list_v2_policies(account_id=account_id, state="active", limit=100, start=start)

    return pages_by_start(iam.caller, f"list IAM policies of account {account_id}", fetch, "policies")


def _matches(attribute: Mapping[str, Any], actual: str | None) -> bool:
    """Whether a policy attribute admits ``actual``; operators the audit does not know admit everything."""
    op, value = attribute.get("operator"), attribute.get("value")
    if op == "stringExists":
        return (actual is not None) == (value is True or str(value).lower() == "true")
    if actual is None:
        # The policy constrains something the project does not state: assume it can match.
        return True
    values = value if isinstance(value, list) else [value]
    if op in ("stringEquals", "stringEqualsAnyOf"):
        return any(str(v) == actual for v in values)
    if op in ("stringMatch", "stringMatchAnyOf"):
        return any(fnmatch.fnmatchcase(actual, str(v)) for v in values)
    return True


def policy_scope(policy: Mapping[str, Any], project: ProjectInfo, account_id: str) -> str | None:
    """How the policy reaches the project (a label), or None when it does not.

    Only attributes that provably exclude the project exclude it; resource tags,
    attributes below the project level and conditions still count as reaching
    it, because the audit must not miss a grant.
    """
    resource = policy.get("resource") or {}
    attrs = {str(a.get("key")): a for a in dict_list(resource.get("attributes"))}
    known = {
        "accountId": account_id,
        "serviceName": SERVICE_NAME,
        "serviceInstance": project.id,
        "resourceGroupId": project.resource_group_id or None,
        "region": project.region,
    }
    for key, actual in known.items():
        if key in attrs and not _matches(attrs[key], actual):
            return None
    service_type = attrs.get("serviceType")
    if "serviceName" not in attrs and service_type is not None and not _matches(service_type, "service"):
        return None  # platform_service grants (IAM, billing…) do not include Code Engine
    if "serviceInstance" in attrs:
        label = "this project"
    elif "serviceName" in attrs:
        label = (
            "Code Engine in the resource group" if "resourceGroupId" in attrs else "all Code Engine projects"
        )
    elif "resourceGroupId" in attrs:
        label = "all services in the resource group"
    else:
        label = "all IAM-enabled services in the account"
    extra = sorted(set(attrs) - set(known) - {"serviceType"})
    if extra or resource.get("tags"):
        label += " (narrowed by " + ", ".join(extra + (["tags"] if resource.get("tags") else [])) + ")"
    if policy.get("rule"):
        label += " (conditional)"
    return label


@dataclass(frozen=True)
class _Subject:
    #: ``iam_id`` | ``access_group`` | ``service``
    kind: str
    id: str

    def __str__(self) -> str:
        return f"access group {self.id}" if self.kind == "access_group" else self.id


def _subject(policy: Mapping[str, Any]) -> _Subject | None:
    attrs = {
        str(a.get("key")): a.get("value") for a in dict_list((policy.get("subject") or {}).get("attributes"))
    }
    iam_id, group = attrs.get("iam_id"), attrs.get("access_group_id")
    if isinstance(iam_id, str):
        return _Subject("iam_id", iam_id)
    if isinstance(group, str):
        return _Subject("access_group", group)
    if isinstance(attrs.get("serviceName"), str):
        instance = attrs.get("serviceInstance")
        return _Subject("service", f"service {attrs['serviceName']}" + (f"/{instance}" if instance else ""))
    return None


def _role_ids(policy: Mapping[str, Any]) -> list[str]:
    grant = ((policy.get("control") or {}).get("grant")) or {}
    return [str(r.get("role_id")) for r in dict_list(grant.get("roles")) if r.get("role_id")]


# -- identities ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    iam_id: str
    type: str
    name: str


def group_members(iam: IamClients, group_id: str) -> list[Member]:
    """Static and dynamic members of an access group as IAM lists them, names included."""
    out: list[Member] = []
    offset = 0
    for _ in range(MAX_PAGES):
        page = iam.call(
            f"list members of access group {group_id}",
            iam.groups.list_access_group_members,
            access_group_id=group_id,
            verbose=True,
            limit=100,
            offset=offset,
        )
        members = dict_list(page.get("members"))
        out += [
            Member(
                str(m.get("iam_id")),
                str(m.get("type") or "unknown"),
                str(m.get("name") or m.get("email") or ""),
            )
            for m in members
            if m.get("iam_id")
        ]
        following = next_param(page, "offset")
        if not following or not members:
            return out
        offset = int(following)
    raise DeployError(f"list members of access group {group_id}: more than {MAX_PAGES} pages")


def group_rules(iam: IamClients, group_id: str) -> list[dict[str, Any]]:
    body = iam.call(
        f"list rules of access group {group_id}", iam.groups.list_access_group_rules, access_group_id=group_id
    )
    return [dict(r) for r in dict_list(body.get("rules"))]


def _identity_pages(
    iam: IamClients, what: str, lister: Any, account_id: str, key: str
) -> Iterator[Mapping[str, Any]]:
    """Items of an IAM identity listing of one account, paged with ``pagetoken`` (service IDs, profiles)."""
    token: str | None = None
    for _ in range(MAX_PAGES):
        page = iam.call(what, lister, account_id=account_id, pagesize=100, pagetoken=token)
        yield from dict_list(page.get(key))
        token = next_param(page, "pagetoken")
        if not token:
            return
    raise DeployError(f"{what} of account {account_id}: more than {MAX_PAGES} pages")


def service_id_names(iam: IamClients, account_id: str) -> dict[str, str]:
    """iam_id → name of every service ID, so findings say who, not just an opaque id."""
    ids = _identity_pages(iam, "list service IDs", iam.identity.list_service_ids, account_id, "serviceids")
    return {str(sid.get("iam_id")): str(sid.get("name") or "") for sid in ids}


def trusted_profiles(iam: IamClients, account_id: str) -> list[dict[str, Any]]:
    profiles = _identity_pages(
        iam, "list trusted profiles", iam.identity.list_profiles, account_id, "profiles"
    )
    return [dict(p) for p in profiles]


def profile_links(iam: IamClients, profile_id: str) -> list[Mapping[str, Any]]:
    """The compute resources linked to a trusted profile (each can obtain its token)."""
    body = iam.call(
        f"list links of trusted profile {profile_id}", iam.identity.list_links, profile_id=profile_id
    )
    return dict_list(body.get("links"))


def _links_here(link: Mapping[str, Any], project: ProjectInfo) -> bool:
    """Whether a compute-resource link points into this project (by CRN, else by the project id in it)."""
    target = link.get("link") or {}
    crn = str(target.get("crn") or "")
    return bool(crn) and (crn == project.crn or f":{project.id}:" in f"{crn}:" or crn.endswith(project.id))


_COMPONENT_TYPES = {"app": "application", "job": "job"}


def check_profile(
    iam: IamClients,
    profile: Mapping[str, Any],
    project: ProjectInfo,
    workload: Target | None,
    *,
    names: Mapping[str, str],
    links: Sequence[Mapping[str, Any]] | None = None,
    is_deployer: bool = False,
) -> list[IamFinding]:
    """A workload profile may be assumed by this app/job's compute resource and nothing else.

    For the deployer's own profile no link is acceptable: any linked compute
    resource (even an app in this project) could become the deployer.
    """
    pid, label = str(profile.get("id")), f"trusted profile {profile.get('name') or profile.get('id')}"
    findings: list[IamFinding] = []
    if links is None:
        links = profile_links(iam, pid)
    for link in links:
        target = link.get("link") or {}
        where = (
            f"{link.get('cr_type')} {target.get('crn') or ''} {target.get('component_type') or ''} "
            f"{target.get('component_name') or target.get('name') or ''}".strip()
        )
        if is_deployer:
            findings.append(
                IamFinding(
                    "trusted-profile",
                    label,
                    f"the deployer's profile is linked to a compute resource: {where}",
                )
            )
        elif link.get("cr_type") != "CE" or not _links_here(link, project):
            findings.append(
                IamFinding("trusted-profile", label, f"also linked to a compute resource elsewhere: {where}")
            )
        elif workload is not None and (
            target.get("component_type") != _COMPONENT_TYPES[workload.kind]
            or target.get("component_name") != workload.name
        ):
            findings.append(
                IamFinding("trusted-profile", label, f"also linked to another component: {where}")
            )
    identities = iam.call(f"list identities of {label}", iam.identity.get_profile_identities, profile_id=pid)
    for identity in dict_list(identities.get("identities")):
        who = str(identity.get("iam_id") or identity.get("identifier"))
        findings.append(
            IamFinding(
                "profile-identity",
                label,
                f"can be assumed by {identity.get('type')} {names.get(who) or identity.get('identifier') or who}",
            )
        )
    rules = iam.call(f"list claim rules of {label}", iam.identity.list_claim_rules, profile_id=pid)
    for rule in dict_list(rules.get("rules")):
        conditions = ", ".join(
            f"{c.get('claim')} {c.get('operator')} {c.get('value')}"
            for c in dict_list(rule.get("conditions"))
        )
        findings.append(
            IamFinding(
                "trusted-profile",
                label,
                f"claim rule {rule.get('name') or rule.get('id')} ({rule.get('type')}) admits anyone matching: "
                f"{conditions or 'no conditions'}",
            )
        )
    return findings


# -- the audit ------------------------------------------------------------------------------------


def _holders(
    iam: IamClients, subject: _Subject, cache: dict[str, tuple[list[Member], list[dict[str, Any]]]]
) -> tuple[list[tuple[str, str | None]], list[IamFinding]]:
    """(iam_id, via) for everyone a grant's subject stands for, plus findings for who cannot be enumerated."""
    if subject.kind != "access_group":
        return [(subject.id, None)], []
    if subject.id == PUBLIC_ACCESS_GROUP:
        return [], [
            IamFinding("write-access", "everyone (Public Access group)", "every authenticated user holds it")
        ]
    if subject.id not in cache:
        cache[subject.id] = (group_members(iam, subject.id), group_rules(iam, subject.id))
    members, rules = cache[subject.id]
    findings = [
        IamFinding(
            "write-access",
            f"access group {subject.id}",
            f"dynamic rule {r.get('name') or r.get('id')} adds any federated user of {r.get('realm_name')} whose "
            "claims match",
        )
        for r in rules
    ]
    return [(m.iam_id, subject.id) for m in members], findings


def audit_iam(
    ce: CodeEngine,
    iam: IamClients,
    project_id: str,
    deployer: str,
    *,
    workload: Target | None = None,
    profile_ids: Sequence[str] = (),
    account_id: str | None = None,
) -> IamAuditReport:
    """Who besides ``deployer`` can write to the project, and whether the workload's profile is exclusive."""
    if not deployer.startswith("iam-") and not deployer.startswith("IBMid-"):
        raise DeployError(f"--deployer: {deployer!r} is not an IAM ID (e.g. iam-ServiceId-…, iam-Profile-…)")
    project = ce.project(project_id)
    account = account_id or project.account_id or _token_account(ce)
    if not account:
        raise DeployError(f"project {project_id}: no account ID known", hint="pass --account-id")
    roles = code_engine_roles(iam, account)
    names = service_id_names(iam, account)
    grants: list[IamGrant] = []
    findings: list[IamFinding] = []
    cache: dict[str, tuple[list[Member], list[dict[str, Any]]]] = {}
    deployer_can_write = False
    for policy in list_policies(iam, account):
        scope = policy_scope(policy, project, account)
        if scope is None:
            continue
        pid = str(policy.get("id") or "?")
        role_ids = _role_ids(policy)
        unresolved = [r for r in role_ids if r not in roles]
        actions = sorted({a for r in role_ids if r in roles for a in roles[r].actions} & WRITE_ACTIONS)
        subject = _subject(policy)
        if unresolved and "serviceName" in {
            str(a.get("key")) for a in dict_list((policy.get("resource") or {}).get("attributes"))
        }:
            findings.append(
                IamFinding(
                    "unresolved",
                    str(subject or "?"),
                    f"role(s) {', '.join(unresolved)} not known to IAM "
                    "for Code Engine; cannot rule out write access",
                    pid,
                )
            )
        if not actions:
            continue
        if subject is None:
            findings.append(
                IamFinding(
                    "unresolved",
                    "?",
                    f"policy grants {', '.join(actions)} to a subject the audit cannot read",
                    pid,
                )
            )
            continue
        role_names = tuple(roles[r].name for r in role_ids if r in roles)
        grants.append(IamGrant(pid, str(subject), scope, role_names, tuple(actions)))
        holders, extra = _holders(iam, subject, cache)
        findings += [
            IamFinding(f.kind, f.subject, f"{f.message} ({', '.join(role_names)} on {scope})", pid)
            for f in extra
        ]
        for iam_id, via in holders:
            if iam_id == deployer:
                deployer_can_write = True
                continue
            who = f"{iam_id} ({names[iam_id]})" if iam_id in names else iam_id
            route = f" via access group {via}" if via else ""
            findings.append(
                IamFinding(
                    "write-access",
                    who,
                    f"holds {', '.join(role_names)} on {scope}{route}: {', '.join(actions)}",
                    pid,
                )
            )
    checked = _check_profiles(iam, project, account, deployer, workload, profile_ids, names, findings)
    return IamAuditReport(
        project, deployer, tuple(grants), tuple(_dedupe(findings)), tuple(checked), deployer_can_write
    )


def _check_profiles(
    iam: IamClients,
    project: ProjectInfo,
    account: str,
    deployer: str,
    workload: Target | None,
    profile_ids: Sequence[str],
    names: Mapping[str, str],
    findings: list[IamFinding],
) -> list[str]:
    """Workload profiles (named, or found by their links into this project) and a deployer that is a profile."""
    profiles = trusted_profiles(iam, account)
    by_id = {str(p.get("id")): p for p in profiles}
    for wanted in profile_ids:
        if wanted not in by_id:
            raise DeployError(f"--trusted-profile: {wanted} is not a trusted profile of account {account}")
    checked: list[str] = []
    for profile in profiles:
        pid = str(profile.get("id"))
        is_deployer = profile.get("iam_id") == deployer
        links = profile_links(iam, pid)
        if (
            pid not in profile_ids
            and not is_deployer
            and not any(_links_here(link, project) for link in links)
        ):
            continue
        checked.append(pid)
        found = check_profile(
            iam, profile, project, workload, names=names, links=links, is_deployer=is_deployer
        )
        if is_deployer:
            # The pipeline's own identities are meant to assume the deployer profile; links and rules are not.
            found = [f for f in found if f.kind != "profile-identity"]
        findings += found
    return checked


def _token_account(ce: CodeEngine) -> str | None:
    account = token_claims(ce.authenticator).get("account")
    bss = account.get("bss") if isinstance(account, dict) else None
    return bss if isinstance(bss, str) else None


def _dedupe(findings: Iterable[IamFinding]) -> list[IamFinding]:
    return list(dict.fromkeys(findings))
