"""A loopback stand-in for IBM Cloud Code Engine v2 and the IAM APIs that deploy and audit use.

Code Engine and IAM cannot run here, so tests talk to this server with the real
clients — ``CodeEngineV2``, ``IamPolicyManagementV1``, ``IamAccessGroupsV2``,
``IamIdentityV1`` and the core SDK's ``IAMAuthenticator`` /
``ContainerAuthenticator`` / ``IAMAssumeAuthenticator``, configured the IBM way
(``CODE_ENGINE_URL``, ``CODE_ENGINE_APIKEY``, ``CODE_ENGINE_AUTH_URL``, ``IAM_*_URL``).

A fake is only as good as its shapes, so none is written by hand and trusted:
every response body is built through the SDK's own model
(``App.from_dict(doc).to_dict()`` and friends) and rejected when the model drops
a key (a misspelt or invented field), misses a required one, or holds a value
outside one of the model's enums. Request bodies are checked the same way against
the prototype/patch models, as the real API rejects unknown fields. A shape
mistake in the fake therefore surfaces as ``model_errors`` (and an HTTP 500),
never as a test that passes against a server that cannot exist.

Behaviour modelled, because the deploy depends on it: ETags and ``If-Match``
(HTTP 412), JSON merge-patch updates, one new revision per change that becomes
ready (or fails with a reason, or stays not ready with a reason) after a number
of polls, job runs that complete or fail, 404 for what does not exist, and
injected faults (5xx, delays).
"""

from __future__ import annotations

import base64
import enum
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlencode, urlsplit

from ibm_code_engine_sdk import code_engine_v2 as ce
from ibm_platform_services import iam_access_groups_v2 as ag
from ibm_platform_services import iam_identity_v1 as idm
from ibm_platform_services import iam_policy_management_v1 as pm

__all__ = [
    "CODE_ENGINE_ROLES",
    "FakeIBMCloud",
    "Fault",
    "ModelError",
    "RecordedRequest",
    "validated",
    "validated_policy",
]

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
_TIME = "2026-01-01T00:00:00Z"
#: Fields whose change makes a new app revision (everything but metadata).
_REVISION_FIELDS = re.compile(r"image_.*|run_.*|scale_.*|probe_.*")


class ModelError(AssertionError):
    """The fake was about to send (or accept) a body the SDK's model says cannot exist."""


# -- validation through the SDK models ---------------------------------------------------------------


def _enum_name(attr: str) -> str:
    return "".join(part.capitalize() for part in attr.split("_")) + "Enum"


def _check_enums(obj: Any, where: str) -> None:
    """Every field that has an ``<Field>Enum`` in its model must hold one of its values."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            _check_enums(item, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_enums(v, f"{where}.{k}")
        return
    if not hasattr(obj, "to_dict") or not hasattr(obj, "__dict__"):
        return
    for attr, value in vars(obj).items():
        kind = getattr(type(obj), _enum_name(attr), None)
        if isinstance(kind, type) and issubclass(kind, enum.Enum) and value is not None:
            allowed = {str(m.value) for m in kind}
            if str(value) not in allowed:
                raise ModelError(f"{where}.{attr}: {value!r} is not one of {sorted(allowed)}")
        _check_enums(value, f"{where}.{attr}")


def _check_kept(sent: Any, kept: Any, where: str) -> None:
    """Every key of ``sent`` survived the model round trip (a dropped key is one the model does not know)."""
    if isinstance(sent, dict):
        if not isinstance(kept, dict):
            raise ModelError(f"{where}: the model does not take an object here")
        for k, v in sent.items():
            if k not in kept:
                raise ModelError(f"{where}.{k}: not a field of the model")
            _check_kept(v, kept[k], f"{where}.{k}")
    elif isinstance(sent, list):
        if not isinstance(kept, list) or len(kept) != len(sent):
            raise ModelError(f"{where}: the model does not keep this list")
        for i, (a, b) in enumerate(zip(sent, kept, strict=True)):
            _check_kept(a, b, f"{where}[{i}]")


def validated(model: Any, doc: Mapping[str, Any], *, where: str | None = None) -> dict[str, Any]:
    """``doc`` as the SDK model serialises it, after checking the model accepts all of it."""
    name = where or model.__name__
    try:
        obj = model.from_dict(dict(doc))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ModelError(f"{name}: {e}") from None
    out: dict[str, Any] = obj.to_dict()
    _check_kept(dict(doc), out, name)
    _check_enums(obj, name)
    return out


def validated_policy(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A v2 policy; its polymorphic ``control`` is checked against the concrete subclass the API sends."""
    out = validated(pm.V2PolicyTemplateMetaData, doc)
    validated(pm.ControlResponseControl, doc["control"], where="V2Policy.control")
    for part in ("subject", "resource"):
        if part in doc:
            validated(pm.V2PolicySubject if part == "subject" else pm.V2PolicyResource, doc[part],
                      where=f"V2Policy.{part}")  # fmt: skip
    return out


# -- HTTP plumbing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the fake saw it; ``Authorization`` is dropped and form secrets are redacted."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    @property
    def is_write(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE") and self.path != "/identity/token"


@dataclass
class Fault:
    """When ``method`` (None = any) and the regex ``path`` match and ``times`` (None = forever) remain:
    wait ``delay`` seconds, then answer ``status`` (None = handle normally after the delay)."""

    path: str
    method: str | None = None
    times: int | None = 1
    status: int | None = None
    delay: float = 0.0
    hits: int = 0


class _HTTPError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


_Route = Callable[["_Call"], _Reply]


@dataclass
class _Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    match: re.Match[str]
    identity: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str:
        """Header lookup by any spelling: clients differ (the SDK sends ``content-type``, requests ``If-Match``)."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), "")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeIBMCloud) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) is expected; it is not worth a traceback."""


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-ibmcloud/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: test output is for failures."""

    def _serve(self) -> None:
        fake = cast(_Server, self.server).fake
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        reply = fake._dispatch(
            self.command, split.path, parse_qs(split.query), dict(self.headers.items()), raw
        )
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if data:
            self.send_header("Content-Type", "application/json")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _merge_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7396: objects merge, null removes, everything else (arrays included) replaces."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge_patch(target[k], v)
        else:
            target[k] = v


@dataclass
class _Workload:
    kind: str  # "app" | "job"
    doc: dict[str, Any]
    revisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Polls left before the latest created revision settles (apps only).
    pending: int | None = None
    failure: str | None = None
    #: Why the newest revision never becomes ready (it settles into not-ready with this reason).
    stuck: str | None = None
    counter: int = 0


@dataclass
class _Run:
    doc: dict[str, Any]
    polls: int
    failure: str | None


class FakeIBMCloud:
    """Code Engine v2, the IAM token endpoint and the IAM policy / access group / identity APIs, on loopback.

    Seed state with ``add_*``; steer behaviour with the scenario attributes;
    assert on ``requests`` (and ``writes``) and on ``model_errors`` staying empty.
    """

    def __init__(
        self, *, account_id: str = "a1b2c3d4e5f60718293a4b5c6d7e8f90", region: str = "us-south"
    ) -> None:
        self.account_id = account_id
        self.region = region
        self.requests: list[RecordedRequest] = []
        self.model_errors: list[str] = []
        self.faults: list[Fault] = []
        # -- scenario knobs
        #: The next N conditional updates answer 412, as if someone else updated first.
        self.etag_mismatches = 0
        #: What that someone else changed (applied to the workload with each 412).
        self.concurrent_change: dict[str, Any] = {}
        #: GETs of an app before its newest revision settles.
        self.ready_after = 0
        #: When set, new revisions fail with this reason (e.g. ``image_pull_back_off``).
        self.revision_failure: str | None = None
        #: When set, new revisions never become ready: once settled they stay ``warning`` (``loading`` for
        #: the still-starting reasons) with this ``status_details.reason``, as a revision whose image
        #: cannot be pulled or whose container keeps exiting does while Code Engine retries it.
        self.revision_stuck: str | None = None
        #: GETs of a job run before it finishes; and why it fails, when it should.
        self.job_run_polls = 0
        self.job_run_failure: str | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._projects: dict[str, dict[str, Any]] = {}
        self._workloads: dict[tuple[str, str, str], _Workload] = {}
        self._runs: dict[tuple[str, str], _Run] = {}
        self._secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self._config_maps: dict[tuple[str, str], dict[str, Any]] = {}
        self._apikeys: dict[str, dict[str, Any]] = {}
        self._cr_tokens: dict[str, str] = {}
        self._tokens: dict[str, dict[str, Any]] = {}
        self._service_ids: dict[str, dict[str, Any]] = {}
        self._policies: list[dict[str, Any]] = []
        self._custom_roles: list[dict[str, Any]] = []
        self._groups: dict[str, dict[str, Any]] = {}
        self._profiles: dict[str, dict[str, Any]] = {}
        self._routes: list[tuple[str, re.Pattern[str], _Route]] = [
            ("POST", re.compile(r"/identity/token"), self._token),
            ("GET", re.compile(r"/v2/projects/(?P<p>[^/]+)"), self._get_project),
            ("GET", re.compile(r"/v2/projects/(?P<p>[^/]+)/(?P<k>apps|jobs)/(?P<n>[^/]+)"), self._get_workload),
            ("POST", re.compile(r"/v2/projects/(?P<p>[^/]+)/(?P<k>apps|jobs)"), self._create_workload),
            ("PATCH", re.compile(r"/v2/projects/(?P<p>[^/]+)/(?P<k>apps|jobs)/(?P<n>[^/]+)"), self._update_workload),
            ("GET", re.compile(r"/v2/projects/(?P<p>[^/]+)/apps/(?P<n>[^/]+)/revisions/(?P<r>[^/]+)"), self._get_revision),
            ("GET", re.compile(r"/v2/projects/(?P<p>[^/]+)/apps/(?P<n>[^/]+)/revisions"), self._list_revisions),
            ("POST", re.compile(r"/v2/projects/(?P<p>[^/]+)/job_runs"), self._create_run),
            ("GET", re.compile(r"/v2/projects/(?P<p>[^/]+)/job_runs/(?P<n>[^/]+)"), self._get_run),
            ("GET", re.compile(r"/v2/projects/(?P<p>[^/]+)/secrets"), self._list_secrets),
            ("GET", re.compile(r"/v2/projects/(?P<p>[^/]+)/config_maps"), self._list_config_maps),
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

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Self:
        server = _Server(self)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-ibmcloud", daemon=True
        )
        self._server = server
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeIBMCloud is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def code_engine_url(self) -> str:
        return f"{self.url}/v2"

    def environment(self, apikey: str) -> dict[str, str]:
        """The IBM SDK external configuration that points every client at this fake with ``apikey``."""
        return {
            "CODE_ENGINE_URL": self.code_engine_url,
            "CODE_ENGINE_AUTH_TYPE": "iam",
            "CODE_ENGINE_APIKEY": apikey,
            "CODE_ENGINE_AUTH_URL": self.url,
            "IAM_POLICY_MANAGEMENT_URL": self.url,
            "IAM_ACCESS_GROUPS_URL": self.url,
            "IAM_IDENTITY_URL": self.url,
        }

    @property
    def writes(self) -> list[RecordedRequest]:
        """Requests that change state (token requests excluded): a denied deploy must leave this empty."""
        with self._lock:
            return [r for r in self.requests if r.is_write]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- seeding -----------------------------------------------------------------------------------

    def _new_id(self) -> str:
        return str(uuid.UUID(int=next(self._ids)))

    def add_project(self, name: str = "demo", *, project_id: str | None = None,
                    resource_group_id: str = "rg0000000000000000000000000default") -> dict[str, Any]:  # fmt: skip
        pid = project_id or self._new_id()
        doc = {
            "id": pid,
            "name": name,
            "account_id": self.account_id,
            "region": self.region,
            "resource_group_id": resource_group_id,
            "crn": f"crn:v1:bluemix:public:codeengine:{self.region}:a/{self.account_id}:{pid}::",
            "created_at": _TIME,
            "href": f"https://api.{self.region}.codeengine.cloud.ibm.com/v2/projects/{pid}",
            "resource_type": "project_v2",
            "status": "active",
        }
        with self._lock:
            self._projects[pid] = validated(ce.Project, doc)
        return dict(self._projects[pid])

    def add_app(self, project_id: str, name: str, image_reference: str, *, failed: str | None = None,
                **fields: Any) -> dict[str, Any]:  # fmt: skip
        """An existing app with one revision, ready — or failed with ``failed`` as its reason."""
        doc = self._app_doc(project_id, name, {"image_reference": image_reference, **fields})
        validated(ce.App, doc)  # a seeding mistake fails here, at the line that made it
        work = _Workload("app", doc)
        with self._lock:
            self._workloads[(project_id, "apps", name)] = work
            self._new_revision(work, failure=failed, settle=True)
            return dict(work.doc)

    def add_job(self, project_id: str, name: str, image_reference: str, **fields: Any) -> dict[str, Any]:
        doc = self._job_doc(project_id, name, {"image_reference": image_reference, **fields})
        validated(ce.Job, doc)
        with self._lock:
            self._workloads[(project_id, "jobs", name)] = _Workload("job", doc)
            return dict(doc)

    def add_secret(
        self, project_id: str, name: str, data: Mapping[str, str], *, format: str = "generic"
    ) -> None:
        doc = {
            "name": name, "format": format, "data": dict(data), "entity_tag": "1", "created_at": _TIME,
            "id": self._new_id(), "project_id": project_id, "region": self.region,
            "resource_type": f"secret_{format}_v2", "href": f"{self._ce_href(project_id)}/secrets/{name}",
        }  # fmt: skip
        with self._lock:
            self._secrets[(project_id, name)] = validated(ce.Secret, doc)

    def add_config_map(self, project_id: str, name: str, data: Mapping[str, str]) -> None:
        doc = {
            "name": name, "data": dict(data), "entity_tag": "1", "created_at": _TIME, "id": self._new_id(),
            "project_id": project_id, "region": self.region, "resource_type": "config_map_v2",
            "href": f"{self._ce_href(project_id)}/config_maps/{name}",
        }  # fmt: skip
        with self._lock:
            self._config_maps[(project_id, name)] = validated(ce.ConfigMap, doc)

    def add_service_id(self, name: str, *, apikey: str | None = None) -> str:
        """A service ID (and optionally its API key for the token endpoint); returns its IAM ID."""
        sid = f"ServiceId-{self._new_id()}"
        iam_id = f"iam-{sid}"
        doc = {
            "id": sid, "iam_id": iam_id, "entity_tag": "1-1", "locked": False,
            "crn": f"crn:v1:bluemix:public:iam-identity::a/{self.account_id}::serviceid:{sid}",
            "created_at": _TIME, "modified_at": _TIME, "account_id": self.account_id, "name": name,
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
            "created_at": _TIME, "created_by_id": "IBMid-admin", "last_modified_at": _TIME,
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
                "href": f"https://iam.cloud.ibm.com/v2/groups/{gid}/members/{iam_id}", "created_at": _TIME,
                "created_by_id": "IBMid-admin",
            }) for iam_id, kind, member_name in members
        ]  # fmt: skip
        rule_docs = [
            validated(ag.Rule, {"id": f"ClaimRule-{self._new_id()}", "access_group_id": gid,
                                "account_id": self.account_id, "created_at": _TIME, **r})
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
            "created_at": _TIME, "modified_at": _TIME,
        }  # fmt: skip
        with self._lock:
            self._profiles[pid] = {"doc": validated(idm.TrustedProfile, doc), "links": [], "identities": [],
                                   "rules": []}  # fmt: skip
        return dict(self._profiles[pid]["doc"])

    def link_profile(self, profile_id: str, *, crn: str, component_type: str, component_name: str,
                     cr_type: str = "CE", cr_token: str | None = None) -> None:  # fmt: skip
        """Link a compute resource to the profile; ``cr_token`` is what that resource may exchange for it."""
        doc = {
            "id": f"ProfileLink-{self._new_id()}", "entity_tag": "1-1", "created_at": _TIME, "modified_at": _TIME,
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
            "id": f"ClaimRule-{self._new_id()}", "entity_tag": "1-1", "created_at": _TIME, "type": rule_type,
            "expiration": 3600, "conditions": conditions, "name": "ce-workloads",
        }  # fmt: skip
        if cr_type:
            doc["cr_type"] = cr_type
        with self._lock:
            self._profiles[profile_id]["rules"].append(validated(idm.ProfileClaimRule, doc))

    def workload(self, project_id: str, kind: str, name: str) -> dict[str, Any]:
        """The app or job as it is stored now (for assertions)."""
        with self._lock:
            copy: dict[str, Any] = json.loads(json.dumps(self._workloads[(project_id, f"{kind}s", name)].doc))
        return copy

    def revisions(self, project_id: str, name: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            copy: dict[str, dict[str, Any]] = json.loads(
                json.dumps(self._workloads[(project_id, "apps", name)].revisions)
            )
        return copy

    # -- documents ---------------------------------------------------------------------------------

    def _ce_href(self, project_id: str) -> str:
        return f"https://api.{self.region}.codeengine.cloud.ibm.com/v2/projects/{project_id}"

    def _app_doc(self, project_id: str, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": name, "project_id": project_id, "region": self.region, "resource_type": "app_v2",
            "id": self._new_id(), "created_at": _TIME, "href": f"{self._ce_href(project_id)}/apps/{name}",
            "endpoint": f"https://{name}.{project_id[:12]}.{self.region}.codeengine.appdomain.cloud",
            "endpoint_internal": f"http://{name}.{project_id[:12]}.svc.cluster.local",
            "entity_tag": "1", "managed_domain_mappings": "local_public", "computed_env_variables": [],
            "run_arguments": [], "run_commands": [], "run_env_variables": [], "run_service_account": "default",
            "run_volume_mounts": [], "image_port": 8080, "scale_concurrency": 100, "scale_cpu_limit": "1",
            "scale_ephemeral_storage_limit": "400M", "scale_initial_instances": 1, "scale_max_instances": 10,
            "scale_memory_limit": "4G", "scale_min_instances": 0, "scale_request_timeout": 300,
            "scale_down_delay": 0, "status": "deploying", "status_details": {},
        }  # fmt: skip
        doc.update(fields)
        return doc

    def _job_doc(self, project_id: str, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": name, "project_id": project_id, "region": self.region, "resource_type": "job_v2",
            "id": self._new_id(), "created_at": _TIME, "href": f"{self._ce_href(project_id)}/jobs/{name}",
            "entity_tag": "1", "computed_env_variables": [], "run_arguments": [], "run_commands": [],
            "run_env_variables": [], "run_mode": "task", "run_service_account": "default", "run_volume_mounts": [],
            "scale_array_spec": "0", "scale_cpu_limit": "1", "scale_ephemeral_storage_limit": "400M",
            "scale_max_execution_time": 7200, "scale_memory_limit": "4G", "scale_retry_limit": 3,
        }  # fmt: skip
        doc.update(fields)
        return doc

    def _new_revision(
        self, work: _Workload, *, failure: str | None, settle: bool = False, stuck: str | None = None
    ) -> None:
        work.counter += 1
        name = f"{work.doc['name']}-{work.counter:05d}"
        revision = {k: v for k, v in work.doc.items() if _REVISION_FIELDS.fullmatch(k)}
        revision.update({
            "name": name, "app_name": work.doc["name"], "project_id": work.doc["project_id"], "region": self.region,
            "resource_type": "app_revision_v2", "id": self._new_id(), "created_at": _TIME,
            "href": f"{work.doc['href']}/revisions/{name}", "computed_env_variables": [],
            "status": "loading", "status_details": {"actual_instances": 0, "reason": "deploying"},
        })  # fmt: skip
        work.revisions[name] = revision
        details = dict(work.doc.get("status_details") or {})
        details["latest_created_revision"] = name
        details["reason"] = "deploying"
        work.doc["status_details"] = details
        work.doc["status"] = "deploying"
        work.pending, work.failure, work.stuck = self.ready_after, failure, stuck
        if settle:
            work.pending = 0
            self._settle(work)

    def _settle(self, work: _Workload) -> None:
        """Advance the newest revision one poll; when its polls run out it becomes ready or fails."""
        if work.pending is None:
            return
        if work.pending > 0:
            work.pending -= 1
            return
        details = work.doc["status_details"]
        name = details["latest_created_revision"]
        revision = work.revisions[name]
        if work.stuck:
            # Not ready, and not failed either: Code Engine keeps retrying, the app keeps deploying.
            still_starting = work.stuck in ("waiting", "deploying", "deploying_waiting_for_resources")
            revision["status"] = "loading" if still_starting else "warning"
            revision["status_details"] = {"actual_instances": 0, "reason": work.stuck}
            work.doc["status"] = "deploying"
            details["reason"] = "deploying"
        elif work.failure:
            revision["status"] = "failed"
            revision["status_details"] = {"actual_instances": 0, "reason": work.failure}
            ready = details.get("latest_ready_revision")
            work.doc["status"] = "warning" if ready else "failed"
            details["reason"] = "ready_but_latest_revision_failed" if ready else "no_revision_ready"
        else:
            revision["status"] = "ready"
            revision["status_details"] = {"actual_instances": 1, "reason": "ready"}
            details["latest_ready_revision"] = name
            details["reason"] = "ready"
            work.doc["status"] = "ready"
        work.pending = None

    # -- dispatch ----------------------------------------------------------------------------------

    def _dispatch(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                  raw: bytes) -> _Reply:  # fmt: skip
        body: Any = None
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if raw and "json" in content_type:
            try:
                body = json.loads(raw)
            except ValueError:
                body = "<invalid json>"
        elif raw:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        recorded = body
        if path == "/identity/token" and isinstance(body, dict):
            recorded = {
                k: "<redacted>" if k in ("apikey", "cr_token", "access_token") else v for k, v in body.items()
            }
        with self._lock:
            self.requests.append(RecordedRequest(
                method, path, query, {k: v for k, v in headers.items() if k.lower() != "authorization"}, recorded,
            ))  # fmt: skip
            fault = self._fault(method, path)
        if fault is not None:
            self._stopping.wait(fault.delay)
            if fault.status is not None:
                return self._error(_HTTPError(fault.status, "injected", f"injected HTTP {fault.status}"))
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None or route_method != method:
                continue
            call = _Call(method, path, query, headers, body, match)
            try:
                if handler != self._token:
                    call.identity = self._authenticate(headers)
                with self._lock:
                    return handler(call)
            except _HTTPError as e:
                return self._error(e)
            except ModelError as e:
                with self._lock:
                    self.model_errors.append(str(e))
                return self._error(_HTTPError(500, "fake_model_error", str(e)))
        return self._error(_HTTPError(404, "not_found", f"no route for {method} {path}"))

    def _fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if (fault.method in (None, method) and re.search(fault.path, path)
                    and (fault.times is None or fault.hits < fault.times)):  # fmt: skip
                fault.hits += 1
                return fault
        return None

    @staticmethod
    def _error(e: _HTTPError) -> _Reply:
        return _Reply(e.status, {"errors": [{"code": e.code, "message": e.message}], "status_code": e.status,
                                 "trace": uuid.uuid4().hex})  # fmt: skip

    def _authenticate(self, headers: dict[str, str]) -> dict[str, Any]:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = auth.removeprefix("Bearer ").strip()
        with self._lock:
            identity = self._tokens.get(token)
        if not auth.startswith("Bearer ") or identity is None:
            raise _HTTPError(401, "unauthorized", "missing or unknown bearer token")
        return identity

    # -- IAM token -----------------------------------------------------------------------------------

    def _issue(self, identity: Mapping[str, Any]) -> _Reply:
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
        return _Reply(200, {"access_token": token, "refresh_token": "not_supported", "token_type": "Bearer",
                            "expires_in": 3600, "expiration": now + 3600, "scope": "ibm openid"})  # fmt: skip

    def _token(self, call: _Call) -> _Reply:
        form = call.body if isinstance(call.body, dict) else {}
        grant = form.get("grant_type", "")
        if grant == "urn:ibm:params:oauth:grant-type:apikey":
            who = self._apikeys.get(form.get("apikey", ""))
            if who is None:
                raise _HTTPError(400, "BXNIM0415E", "Provided API key could not be found.")
            return self._issue({**who, "grant_type": grant})
        if grant == "urn:ibm:params:oauth:grant-type:cr-token":
            pid = self._cr_tokens.get(form.get("cr_token", ""))
            if pid is None or form.get("profile_id") not in (None, pid):
                raise _HTTPError(
                    400, "BXNIM0538E", "The compute resource token is not linked to the profile."
                )
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
                raise _HTTPError(403, "BXNIM0513E", "The identity may not assume this trusted profile.")
            return self._issue(self._profile_identity(pid, grant))
        raise _HTTPError(400, "BXNIM0109E", f"unsupported grant_type {grant!r}")

    def _profile_identity(self, profile_id: str, grant: str) -> dict[str, Any]:
        doc = self._profiles[profile_id]["doc"]
        return {"iam_id": doc["iam_id"], "sub": profile_id, "sub_type": "Profile", "name": doc["name"],
                "grant_type": grant}  # fmt: skip

    # -- Code Engine ---------------------------------------------------------------------------------

    def _project(self, call: _Call) -> dict[str, Any]:
        if call.param("version") is None:
            raise _HTTPError(400, "missing_version", "the version query parameter is required by this fake")
        project = self._projects.get(call.match["p"])
        if project is None:
            raise _HTTPError(404, "resource_not_found", f"Project with ID '{call.match['p']}' does not exist")
        return project

    def _get_project(self, call: _Call) -> _Reply:
        return _Reply(200, validated(ce.Project, self._project(call)))

    def _find(self, call: _Call, kind: str, name: str) -> _Workload:
        self._project(call)
        work = self._workloads.get((call.match["p"], kind, name))
        if work is None:
            what = "Application" if kind == "apps" else "Job"
            raise _HTTPError(404, "resource_not_found", f"{what} '{name}' does not exist")
        return work

    def _render(self, work: _Workload) -> _Reply:
        model = ce.App if work.kind == "app" else ce.Job
        return _Reply(200, validated(model, work.doc), {"ETag": str(work.doc["entity_tag"])})

    def _get_workload(self, call: _Call) -> _Reply:
        work = self._find(call, call.match["k"], call.match["n"])
        if work.kind == "app":
            self._settle(work)
        return self._render(work)

    def _check_request(self, kind: str, body: Any, *, patch: bool) -> dict[str, Any]:
        """Refuse what the real API refuses: unknown fields, bad enums, nested shapes the models reject.

        A create body has no model of its own in the SDK (``create_app`` takes
        keyword arguments): it is the patch model's fields plus ``name``.
        """
        if not isinstance(body, dict):
            raise _HTTPError(400, "invalid_body", "the request body must be a JSON object")
        fields = body if patch else {k: v for k, v in body.items() if k != "name"}
        try:
            validated(ce.AppPatch if kind == "apps" else ce.JobPatch, fields)
        except ModelError as e:
            raise _HTTPError(400, "invalid_request", str(e)) from None
        ref = body.get("image_reference")
        if ref is not None and (not isinstance(ref, str) or not ref):
            raise _HTTPError(400, "invalid_request", "image_reference must be a non-empty string")
        return body

    def _create_workload(self, call: _Call) -> _Reply:
        kind = call.match["k"]
        self._project(call)
        body = self._check_request(kind, call.body, patch=False)
        name = body.get("name")
        if not isinstance(name, str) or not body.get("image_reference"):
            raise _HTTPError(400, "invalid_request", "name and image_reference are required")
        key = (call.match["p"], kind, name)
        if key in self._workloads:
            raise _HTTPError(409, "resource_already_exists", f"'{name}' already exists")
        fields = {k: v for k, v in body.items() if k != "name"}
        if kind == "apps":
            work = _Workload("app", self._app_doc(call.match["p"], name, fields))
            self._workloads[key] = work
            self._new_revision(work, failure=self.revision_failure, stuck=self.revision_stuck)
        else:
            work = _Workload("job", self._job_doc(call.match["p"], name, fields))
            self._workloads[key] = work
        return _Reply(201, validated(ce.App if kind == "apps" else ce.Job, work.doc),
                      {"ETag": str(work.doc["entity_tag"])})  # fmt: skip

    def _update_workload(self, call: _Call) -> _Reply:
        kind = call.match["k"]
        work = self._find(call, kind, call.match["n"])
        if "merge-patch+json" not in call.header("Content-Type"):
            raise _HTTPError(415, "unsupported_media_type", "updates are application/merge-patch+json")
        if_match = call.header("If-Match")
        if not if_match:
            raise _HTTPError(428, "precondition_required", "If-Match is required")
        if self.etag_mismatches > 0:
            self.etag_mismatches -= 1
            _merge_patch(work.doc, self.concurrent_change)
            work.doc["entity_tag"] = str(int(work.doc["entity_tag"]) + 1)
        if if_match not in ("*", work.doc["entity_tag"]):
            raise _HTTPError(412, "precondition_failed", "the entity tag does not match the current version")
        patch = self._check_request(kind, call.body, patch=True)
        before = json.dumps(
            {k: v for k, v in work.doc.items() if _REVISION_FIELDS.fullmatch(k)}, sort_keys=True
        )
        _merge_patch(work.doc, patch)
        work.doc["entity_tag"] = str(int(work.doc["entity_tag"]) + 1)
        after = json.dumps(
            {k: v for k, v in work.doc.items() if _REVISION_FIELDS.fullmatch(k)}, sort_keys=True
        )
        if work.kind == "app" and before != after:
            self._new_revision(work, failure=self.revision_failure, stuck=self.revision_stuck)
        return self._render(work)

    def _get_revision(self, call: _Call) -> _Reply:
        work = self._find(call, "apps", call.match["n"])
        revision = work.revisions.get(call.match["r"])
        if revision is None:
            raise _HTTPError(404, "resource_not_found", f"Revision '{call.match['r']}' does not exist")
        return _Reply(200, validated(ce.AppRevision, revision))

    def _list_revisions(self, call: _Call) -> _Reply:
        work = self._find(call, "apps", call.match["n"])
        return _Reply(
            200, validated(ce.AppRevisionList, {"limit": 50, "revisions": list(work.revisions.values())})
        )

    def _create_run(self, call: _Call) -> _Reply:
        self._project(call)
        body = call.body if isinstance(call.body, dict) else {}
        job_name = body.get("job_name")
        if not isinstance(job_name, str):
            raise _HTTPError(
                400, "invalid_request", "this fake only runs job templates: job_name is required"
            )
        job = self._find(call, "jobs", job_name).doc
        name = f"{job_name}-run-{next(self._ids)}"
        doc = {k: v for k, v in job.items() if k.startswith(("image_", "run_", "scale_"))}
        doc.update({
            "name": name, "job_name": job_name, "project_id": call.match["p"], "region": self.region,
            "resource_type": "job_run_v2", "id": self._new_id(), "created_at": _TIME,
            "href": f"{self._ce_href(call.match['p'])}/job_runs/{name}", "computed_env_variables": [],
            "status": "pending", "status_details": {"requested": 1, "pending": 1},
        })  # fmt: skip
        self._runs[(call.match["p"], name)] = _Run(doc, self.job_run_polls, self.job_run_failure)
        return _Reply(201, validated(ce.JobRun, doc))

    def _get_run(self, call: _Call) -> _Reply:
        self._project(call)
        run = self._runs.get((call.match["p"], call.match["n"]))
        if run is None:
            raise _HTTPError(404, "resource_not_found", f"Job run '{call.match['n']}' does not exist")
        if run.doc["status"] in ("pending", "running"):
            if run.polls > 0:
                run.polls -= 1
                run.doc["status"] = "running"
                run.doc["status_details"] = {"requested": 1, "running": 1, "start_time": _TIME}
            elif run.failure:
                run.doc["status"] = "failed"
                run.doc["status_details"] = {
                    "requested": 1, "failed": 1, "failed_indices": "0", "start_time": _TIME, "completion_time": _TIME,
                    "indices_details": {"0": {"status": "failed", "last_failure_reason": run.failure, "retries": 3,
                                              "started_at": _TIME, "finished_at": _TIME}},
                }  # fmt: skip
            else:
                run.doc["status"] = "completed"
                run.doc["status_details"] = {"requested": 1, "succeeded": 1, "succeeded_indices": "0",
                                             "start_time": _TIME, "completion_time": _TIME}  # fmt: skip
        return _Reply(200, validated(ce.JobRun, run.doc))

    def _page(self, call: _Call, items: list[dict[str, Any]], key: str, model: Any, href: str) -> _Reply:
        """A Code Engine / IAM v2 page: ``limit`` items from the ``start`` token on, ``next.start`` if more."""
        limit = int(call.param("limit") or 50)
        start = int(call.param("start") or 0)
        doc: dict[str, Any] = {"limit": limit, key: items[start : start + limit],
                               "first": {"href": f"{href}?limit={limit}"}}  # fmt: skip
        if start + limit < len(items):
            token = str(start + limit)
            doc["next"] = {"href": f"{href}?{urlencode({'limit': limit, 'start': token})}", "start": token}
        return _Reply(200, validated(model, doc))

    def _list_secrets(self, call: _Call) -> _Reply:
        self._project(call)
        items = [s for (p, _), s in sorted(self._secrets.items()) if p == call.match["p"]]
        return self._page(call, items, "secrets", ce.SecretList, f"{self._ce_href(call.match['p'])}/secrets")

    def _list_config_maps(self, call: _Call) -> _Reply:
        self._project(call)
        items = [c for (p, _), c in sorted(self._config_maps.items()) if p == call.match["p"]]
        return self._page(call, items, "config_maps", ce.ConfigMapList,
                          f"{self._ce_href(call.match['p'])}/config_maps")  # fmt: skip

    # -- IAM -------------------------------------------------------------------------------------------

    def _account(self, call: _Call) -> None:
        if call.param("account_id") != self.account_id:
            raise _HTTPError(403, "forbidden", "account_id is missing or not this account")

    def _list_policies(self, call: _Call) -> _Reply:
        self._account(call)
        items = [p for p in self._policies if call.param("state") in (None, p["state"])]
        reply = self._page(
            call, items, "policies", pm.V2PolicyCollection, "https://iam.cloud.ibm.com/v2/policies"
        )
        for policy in reply.body["policies"]:
            validated_policy(policy)
        return reply

    def _list_roles(self, call: _Call) -> _Reply:
        if call.param("service_name") != "codeengine":
            raise _HTTPError(400, "unsupported", "this fake only knows Code Engine's roles")
        doc: dict[str, Any] = {
            "system_roles": [],
            "service_roles": [],
            "custom_roles": list(self._custom_roles),
        }
        for crn, (group, name, actions) in CODE_ENGINE_ROLES.items():
            doc[group].append(
                {"display_name": name, "description": f"{name} role", "actions": actions, "crn": crn}
            )
        return _Reply(200, validated(pm.RoleCollection, doc))

    def _group(self, call: _Call) -> dict[str, Any]:
        group = self._groups.get(call.match["g"])
        if group is None:
            raise _HTTPError(404, "not_found", f"access group {call.match['g']} not found")
        return group

    def _group_members(self, call: _Call) -> _Reply:
        members = self._group(call)["members"]
        doc = {"limit": 100, "offset": 0, "total_count": len(members), "members": members,
               "first": {"href": f"https://iam.cloud.ibm.com/v2/groups/{call.match['g']}/members?limit=100"}}  # fmt: skip
        return _Reply(200, validated(ag.GroupMembersList, doc))

    def _group_rules(self, call: _Call) -> _Reply:
        return _Reply(200, validated(ag.RulesList, {"rules": self._group(call)["rules"]}))

    def _list_service_ids(self, call: _Call) -> _Reply:
        self._account(call)
        doc = {"offset": 0, "limit": 100, "serviceids": list(self._service_ids.values())}
        return _Reply(200, validated(idm.ServiceIdList, doc))

    def _list_profiles(self, call: _Call) -> _Reply:
        self._account(call)
        doc = {"offset": 0, "limit": 100, "profiles": [p["doc"] for p in self._profiles.values()]}
        return _Reply(200, validated(idm.TrustedProfilesList, doc))

    def _profile(self, call: _Call) -> dict[str, Any]:
        profile = self._profiles.get(call.match["t"])
        if profile is None:
            raise _HTTPError(404, "not_found", f"trusted profile {call.match['t']} not found")
        return profile

    def _profile_links(self, call: _Call) -> _Reply:
        return _Reply(200, validated(idm.ProfileLinkList, {"links": self._profile(call)["links"]}))

    def _profile_identities(self, call: _Call) -> _Reply:
        doc = {"entity_tag": "1", "identities": self._profile(call)["identities"]}
        return _Reply(200, validated(idm.ProfileIdentitiesResponse, doc))

    def _profile_rules(self, call: _Call) -> _Reply:
        return _Reply(200, validated(idm.ProfileClaimRuleList, {"rules": self._profile(call)["rules"]}))
