"""The IAM half of the IBM Cloud stand-in: the token endpoint and the policy, access group and identity APIs.

Tokens are issued for API keys, compute resource tokens and trusted-profile
assumption, as the core SDK's authenticators ask for them; every other route
needs one of those tokens.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from ibm_platform_services import iam_access_groups_v2 as ag
from ibm_platform_services import iam_identity_v1 as idm
from ibm_platform_services import iam_policy_management_v1 as pm

from chaingate_testing._ibm_http import ApiError, Call, CloudBase, Reply, Route, page
from chaingate_testing._ibm_models import TIME, validated, validated_policy

__all__ = ["CODE_ENGINE_ROLES", "IAMResources"]

_CRN = "crn:v1:bluemix:public:iam::::"
#: Code Engine's roles as the fake serves them from the roles API: the platform roles manage projects,
#: the service roles manage what runs in them — and the three write actions are what the audit looks for.
CODE_ENGINE_ROLES: dict[str, tuple[str, str, list[str]]] = {
    f"{_CRN}role:Viewer": ("system_roles", "Viewer", ["codeengine.tenant.read"]),
    f"{_CRN}role:Operator": ("system_roles", "Operator", ["codeengine.tenant.read"]),
    f"{_CRN}role:Editor": ("system_roles", "Editor", ["codeengine.tenant.read", "codeengine.tenant.create",
                                                        "codeengine.tenant.update", "codeengine.tenant.delete"]),
    f"{_CRN}role:Administrator": ("system_roles", "Administrator", [
        "codeengine.tenant.read", "codeengine.tenant.create", "codeengine.tenant.update",
        "codeengine.tenant.delete", "iam.policy.create", "iam.policy.update"]),
    f"{_CRN}serviceRole:Reader": ("service_roles", "Reader", ["codeengine.tenant.entities.read"]),
    f"{_CRN}serviceRole:Writer": ("service_roles", "Writer", [
        "codeengine.tenant.entities.read", "codeengine.tenant.entities.create",
        "codeengine.tenant.entities.update", "codeengine.tenant.entities.delete"]),
    f"{_CRN}serviceRole:Manager": ("service_roles", "Manager", [
        "codeengine.tenant.entities.read", "codeengine.tenant.entities.create",
        "codeengine.tenant.entities.update", "codeengine.tenant.entities.delete",
        "codeengine.tenant.secrets.read"]),
    f"{_CRN}serviceRole:ComputeResourceTokenCreator": ("service_roles", "Compute Resource Token Creator",
                                                       ["codeengine.tenant.entities.read", "codeengine.tenant.token.create"]),
}  # fmt: skip


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IAMResources(CloudBase):
    """Seeding and route handlers of the IAM token, policy, access group and identity APIs."""

    def __init__(self, *, account_id: str, region: str) -> None:
        super().__init__(account_id=account_id, region=region)
        self._apikeys: dict[str, dict[str, Any]] = {}
        self._cr_tokens: dict[str, str] = {}
        self._tokens: dict[str, dict[str, Any]] = {}
        self._service_ids: dict[str, dict[str, Any]] = {}
        self._policies: list[dict[str, Any]] = []
        self._custom_roles: list[dict[str, Any]] = []
        self._groups: dict[str, dict[str, Any]] = {}
        self._profiles: dict[str, dict[str, Any]] = {}

    def _iam_routes(self) -> list[tuple[str, re.Pattern[str], Route]]:
        return [
            ("GET", re.compile(r"/v2/policies"), self._list_policies),
            ("GET", re.compile(r"/v2/roles"), self._list_roles),
            ("GET", re.compile(r"/v2/groups/(?P<g>[^/]+)/members"), self._group_members),
            ("GET", re.compile(r"/v2/groups/(?P<g>[^/]+)/rules"), self._group_rules),
            ("GET", re.compile(r"/v1/serviceids/?"), self._list_service_ids),
            ("GET", re.compile(r"/v1/profiles/?"), self._list_profiles),
            ("GET", re.compile(r"/v1/profiles/(?P<t>[^/]+)/links"), self._profile_links),
            ("GET", re.compile(r"/v1/profiles/(?P<t>[^/]+)/identities"), self._profile_identities),
            ("GET", re.compile(r"/v1/profiles/(?P<t>[^/]+)/rules"), self._profile_rules),
        ]  # fmt: skip

    # -- seeding -----------------------------------------------------------------------------------

    def add_service_id(self, name: str, *, apikey: str | None = None) -> str:
        """A service ID (and optionally its API key for the token endpoint); returns its IAM ID."""
        sid = f"ServiceId-{self._new_id()}"
        iam_id = f"iam-{sid}"
        doc = {
            "id": sid, "iam_id": iam_id, "entity_tag": "1-1", "locked": False,
            "crn": f"crn:v1:bluemix:public:iam-identity::a/{self.account_id}::serviceid:{sid}",
            "created_at": TIME, "modified_at": TIME, "account_id": self.account_id, "name": name,
        }  # fmt: skip
        with self._lock:
            self._service_ids[iam_id] = validated(idm.ServiceId, doc)
            if apikey is not None:
                self._apikeys[apikey] = {
                    "iam_id": iam_id,
                    "sub": sid,
                    "sub_type": "ServiceId",
                    "name": name,
                }
        return iam_id

    def add_policy(self, *, roles: list[str], iam_id: str | None = None, access_group_id: str | None = None,
                   resource: Mapping[str, str] | None = None, policy_type: str = "access") -> str:  # fmt: skip
        """A v2 policy granting ``roles`` (CRNs) to an IAM ID or access group on ``resource`` attributes.

        ``resource`` defaults to the whole account (every IAM-enabled service).
        """
        key, value = ("iam_id", iam_id) if iam_id else ("access_group_id", access_group_id)
        attrs = [{"key": "accountId", "operator": "stringEquals", "value": self.account_id}]
        attrs += [{"key": k, "operator": "stringEquals", "value": v} for k, v in (resource or {}).items()]
        pid = self._new_id()
        doc = {
            "id": pid, "type": policy_type, "state": "active", "href": f"https://iam.cloud.ibm.com/v2/policies/{pid}",
            "subject": {"attributes": [{"key": key, "operator": "stringEquals", "value": value}]},
            "resource": {"attributes": attrs},
            "control": {"grant": {"roles": [{"role_id": r} for r in roles]}},
            "created_at": TIME, "created_by_id": "IBMid-admin", "last_modified_at": TIME,
            "last_modified_by_id": "IBMid-admin",
        }  # fmt: skip
        with self._lock:
            self._policies.append(validated_policy(doc))
        return pid

    def add_custom_role(self, name: str, actions: list[str]) -> str:
        crn = f"crn:v1:bluemix:public:iam-access-management::a/{self.account_id}::customRole:{name}"
        doc = {
            "id": self._new_id().replace("-", ""), "display_name": name, "name": name, "actions": actions,
            "crn": crn, "account_id": self.account_id, "service_name": "codeengine",
        }  # fmt: skip
        with self._lock:
            self._custom_roles.append(validated(pm.CustomRole, doc))
        return crn

    def add_access_group(self, name: str, members: list[tuple[str, str, str]],
                         rules: list[dict[str, Any]] | None = None) -> str:  # fmt: skip
        """An access group with (iam_id, type, name) members and optional dynamic rules; returns its id."""
        gid = f"AccessGroupId-{self._new_id()}"
        docs = [
            validated(ag.ListGroupMembersResponseMember, {
                "iam_id": iam_id, "type": kind, "membership_type": "static", "name": member_name,
                "href": f"https://iam.cloud.ibm.com/v2/groups/{gid}/members/{iam_id}", "created_at": TIME,
                "created_by_id": "IBMid-admin",
            }) for iam_id, kind, member_name in members
        ]  # fmt: skip
        rule_docs = [
            validated(ag.Rule, {"id": f"ClaimRule-{self._new_id()}", "access_group_id": gid,
                                "account_id": self.account_id, "created_at": TIME, **r})
            for r in rules or []
        ]  # fmt: skip
        with self._lock:
            self._groups[gid] = {"name": name, "members": docs, "rules": rule_docs}
        return gid

    def add_profile(self, name: str) -> dict[str, Any]:
        pid = f"Profile-{self._new_id()}"
        doc = {
            "id": pid, "iam_id": f"iam-{pid}", "name": name, "entity_tag": "1-1", "account_id": self.account_id,
            "crn": f"crn:v1:bluemix:public:iam-identity::a/{self.account_id}::profile:{pid}",
            "created_at": TIME, "modified_at": TIME,
        }  # fmt: skip
        with self._lock:
            self._profiles[pid] = {"doc": validated(idm.TrustedProfile, doc), "links": [], "identities": [],
                                   "rules": []}  # fmt: skip
        return dict(self._profiles[pid]["doc"])

    def link_profile(self, profile_id: str, *, crn: str, component_type: str, component_name: str,
                     cr_type: str = "CE", cr_token: str | None = None) -> None:  # fmt: skip
        """Link a compute resource to the profile; ``cr_token`` is what that resource may exchange for it."""
        doc = {
            "id": f"ProfileLink-{self._new_id()}", "entity_tag": "1-1", "created_at": TIME, "modified_at": TIME,
            "cr_type": cr_type,
            "link": {"crn": crn, "component_type": component_type, "component_name": component_name},
        }  # fmt: skip
        with self._lock:
            self._profiles[profile_id]["links"].append(validated(idm.ProfileLink, doc))
            if cr_token is not None:
                self._cr_tokens[cr_token] = profile_id

    def add_profile_identity(self, profile_id: str, iam_id: str, *, kind: str = "serviceid") -> None:
        doc = {"iam_id": iam_id, "identifier": iam_id.removeprefix("iam-"), "type": kind,
               "description": "may assume this profile"}  # fmt: skip
        with self._lock:
            self._profiles[profile_id]["identities"].append(validated(idm.ProfileIdentityResponse, doc))

    def add_profile_claim_rule(self, profile_id: str, conditions: list[dict[str, str]], *,
                               rule_type: str = "Profile-CR", cr_type: str | None = "CE") -> None:  # fmt: skip
        doc: dict[str, Any] = {
            "id": f"ClaimRule-{self._new_id()}", "entity_tag": "1-1", "created_at": TIME, "type": rule_type,
            "expiration": 3600, "conditions": conditions, "name": "ce-workloads",
        }  # fmt: skip
        if cr_type:
            doc["cr_type"] = cr_type
        with self._lock:
            self._profiles[profile_id]["rules"].append(validated(idm.ProfileClaimRule, doc))

    def _authenticate(self, headers: dict[str, str]) -> dict[str, Any]:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = auth.removeprefix("Bearer ").strip()
        with self._lock:
            identity = self._tokens.get(token)
        if not auth.startswith("Bearer ") or identity is None:
            raise ApiError(401, "unauthorized", "missing or unknown bearer token")
        return identity

    # -- IAM token -----------------------------------------------------------------------------------

    def _issue(self, identity: Mapping[str, Any]) -> Reply:
        now = int(time.time())
        claims = {
            "iam_id": identity["iam_id"], "id": identity["iam_id"], "realmid": "iam", "sub": identity["sub"],
            "sub_type": identity["sub_type"], "name": identity.get("name"), "iat": now, "exp": now + 3600,
            "account": {"valid": True, "bss": self.account_id}, "iss": f"{self.url}/identity",
            "grant_type": identity["grant_type"], "scope": "ibm openid", "client_id": "default",
        }  # fmt: skip
        token = ".".join([_b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "fake"}).encode()),
                          _b64(json.dumps(claims).encode()), _b64(b"fake-signature")])  # fmt: skip
        self._tokens[token] = dict(claims)
        return Reply(200, {"access_token": token, "refresh_token": "not_supported", "token_type": "Bearer",
                            "expires_in": 3600, "expiration": now + 3600, "scope": "ibm openid"})  # fmt: skip

    def _token(self, call: Call) -> Reply:
        form = call.body if isinstance(call.body, dict) else {}
        grant = form.get("grant_type", "")
        if grant == "urn:ibm:params:oauth:grant-type:apikey":
            who = self._apikeys.get(form.get("apikey", ""))
            if who is None:
                raise ApiError(400, "BXNIM0415E", "Provided API key could not be found.")
            return self._issue({**who, "grant_type": grant})
        if grant == "urn:ibm:params:oauth:grant-type:cr-token":
            pid = self._cr_tokens.get(form.get("cr_token", ""))
            if pid is None or form.get("profile_id") not in (None, pid):
                raise ApiError(400, "BXNIM0538E", "The compute resource token is not linked to the profile.")
            return self._issue(self._profile_identity(pid, grant))
        if grant == "urn:ibm:params:oauth:grant-type:assume":
            caller = self._tokens.get(form.get("access_token", ""))
            pid = form.get("profile_id", "")
            profile = self._profiles.get(pid)
            allowed = (
                profile is not None
                and caller is not None
                and any(i["iam_id"] == caller["iam_id"] for i in profile["identities"])
            )
            if not allowed:
                raise ApiError(403, "BXNIM0513E", "The identity may not assume this trusted profile.")
            return self._issue(self._profile_identity(pid, grant))
        raise ApiError(400, "BXNIM0109E", f"unsupported grant_type {grant!r}")

    def _profile_identity(self, profile_id: str, grant: str) -> dict[str, Any]:
        doc = self._profiles[profile_id]["doc"]
        return {"iam_id": doc["iam_id"], "sub": profile_id, "sub_type": "Profile", "name": doc["name"],
                "grant_type": grant}  # fmt: skip

    # -- IAM -------------------------------------------------------------------------------------------

    def _account(self, call: Call) -> None:
        if call.param("account_id") != self.account_id:
            raise ApiError(403, "forbidden", "account_id is missing or not this account")

    def _list_policies(self, call: Call) -> Reply:
        self._account(call)
        items = [p for p in self._policies if call.param("state") in (None, p["state"])]
        reply = page(call, items, "policies", pm.V2PolicyCollection, "https://iam.cloud.ibm.com/v2/policies")
        for policy in reply.body["policies"]:
            validated_policy(policy)
        return reply

    def _list_roles(self, call: Call) -> Reply:
        if call.param("service_name") != "codeengine":
            raise ApiError(400, "unsupported", "this fake only knows Code Engine's roles")
        doc: dict[str, Any] = {
            "system_roles": [],
            "service_roles": [],
            "custom_roles": list(self._custom_roles),
        }
        for crn, (group, name, actions) in CODE_ENGINE_ROLES.items():
            doc[group].append(
                {"display_name": name, "description": f"{name} role", "actions": actions, "crn": crn}
            )
        return Reply(200, validated(pm.RoleCollection, doc))

    def _group(self, call: Call) -> dict[str, Any]:
        group = self._groups.get(call.match["g"])
        if group is None:
            raise ApiError(404, "not_found", f"access group {call.match['g']} not found")
        return group

    def _group_members(self, call: Call) -> Reply:
        members = self._group(call)["members"]
        doc = {"limit": 100, "offset": 0, "total_count": len(members), "members": members,
               "first": {"href": f"https://iam.cloud.ibm.com/v2/groups/{call.match['g']}/members?limit=100"}}  # fmt: skip
        return Reply(200, validated(ag.GroupMembersList, doc))

    def _group_rules(self, call: Call) -> Reply:
        return Reply(200, validated(ag.RulesList, {"rules": self._group(call)["rules"]}))

    def _list_service_ids(self, call: Call) -> Reply:
        self._account(call)
        doc = {"offset": 0, "limit": 100, "serviceids": list(self._service_ids.values())}
        return Reply(200, validated(idm.ServiceIdList, doc))

    def _list_profiles(self, call: Call) -> Reply:
        self._account(call)
        doc = {"offset": 0, "limit": 100, "profiles": [p["doc"] for p in self._profiles.values()]}
        return Reply(200, validated(idm.TrustedProfilesList, doc))

    def _profile(self, call: Call) -> dict[str, Any]:
        profile = self._profiles.get(call.match["t"])
        if profile is None:
            raise ApiError(404, "not_found", f"trusted profile {call.match['t']} not found")
        return profile

    def _profile_links(self, call: Call) -> Reply:
        return Reply(200, validated(idm.ProfileLinkList, {"links": self._profile(call)["links"]}))

    def _profile_identities(self, call: Call) -> Reply:
        doc = {"entity_tag": "1", "identities": self._profile(call)["identities"]}
        return Reply(200, validated(idm.ProfileIdentitiesResponse, doc))

    def _profile_rules(self, call: Call) -> Reply:
        return Reply(200, validated(idm.ProfileClaimRuleList, {"rules": self._profile(call)["rules"]}))
