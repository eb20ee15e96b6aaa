"""The Code Engine v2 half of the IBM Cloud stand-in: projects, apps and revisions, jobs and runs, secrets.

Behaviour modelled, because the deploy depends on it: ETags and ``If-Match``
(HTTP 412), JSON merge-patch updates, one new revision per change that becomes
ready (or fails with a reason, or stays not ready with a reason) after a number
of polls, job runs that complete or fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ibm_code_engine_sdk import code_engine_v2 as ce

from chaingate_testing._ibm_http import ApiError, Call, CloudBase, Reply, Route, page
from chaingate_testing._ibm_models import TIME, ModelError, validated

__all__ = ["CodeEngineResources"]

#: Fields whose change makes a new app revision (everything but metadata).
_REVISION_FIELDS = re.compile(r"image_.*|run_.*|scale_.*|probe_.*")


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


class CodeEngineResources(CloudBase):
    """Seeding, scenario knobs and route handlers of Code Engine v2; state lives under ``_lock``."""

    def __init__(self, *, account_id: str, region: str) -> None:
        super().__init__(account_id=account_id, region=region)
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
        self._projects: dict[str, dict[str, Any]] = {}
        self._workloads: dict[tuple[str, str, str], _Workload] = {}
        self._runs: dict[tuple[str, str], _Run] = {}
        self._secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self._config_maps: dict[tuple[str, str], dict[str, Any]] = {}

    def _code_engine_routes(self) -> list[tuple[str, re.Pattern[str], Route]]:
        return [
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
        ]  # fmt: skip

    # -- seeding -----------------------------------------------------------------------------------

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
            "created_at": TIME,
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
            "name": name, "format": format, "data": dict(data), "entity_tag": "1", "created_at": TIME,
            "id": self._new_id(), "project_id": project_id, "region": self.region,
            "resource_type": f"secret_{format}_v2", "href": f"{self._ce_href(project_id)}/secrets/{name}",
        }  # fmt: skip
        with self._lock:
            self._secrets[(project_id, name)] = validated(ce.Secret, doc)

    def add_config_map(self, project_id: str, name: str, data: Mapping[str, str]) -> None:
        doc = {
            "name": name, "data": dict(data), "entity_tag": "1", "created_at": TIME, "id": self._new_id(),
            "project_id": project_id, "region": self.region, "resource_type": "config_map_v2",
            "href": f"{self._ce_href(project_id)}/config_maps/{name}",
        }  # fmt: skip
        with self._lock:
            self._config_maps[(project_id, name)] = validated(ce.ConfigMap, doc)

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
            "id": self._new_id(), "created_at": TIME, "href": f"{self._ce_href(project_id)}/apps/{name}",
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
            "id": self._new_id(), "created_at": TIME, "href": f"{self._ce_href(project_id)}/jobs/{name}",
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
            "resource_type": "app_revision_v2", "id": self._new_id(), "created_at": TIME,
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

    # -- Code Engine ---------------------------------------------------------------------------------

    def _project(self, call: Call) -> dict[str, Any]:
        if call.param("version") is None:
            raise ApiError(400, "missing_version", "the version query parameter is required by this fake")
        project = self._projects.get(call.match["p"])
        if project is None:
            raise ApiError(404, "resource_not_found", f"Project with ID '{call.match['p']}' does not exist")
        return project

    def _get_project(self, call: Call) -> Reply:
        return Reply(200, validated(ce.Project, self._project(call)))

    def _find(self, call: Call, kind: str, name: str) -> _Workload:
        self._project(call)
        work = self._workloads.get((call.match["p"], kind, name))
        if work is None:
            what = "Application" if kind == "apps" else "Job"
            raise ApiError(404, "resource_not_found", f"{what} '{name}' does not exist")
        return work

    def _render(self, work: _Workload) -> Reply:
        model = ce.App if work.kind == "app" else ce.Job
        return Reply(200, validated(model, work.doc), {"ETag": str(work.doc["entity_tag"])})

    def _get_workload(self, call: Call) -> Reply:
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
            raise ApiError(400, "invalid_body", "the request body must be a JSON object")
        fields = body if patch else {k: v for k, v in body.items() if k != "name"}
        try:
            validated(ce.AppPatch if kind == "apps" else ce.JobPatch, fields)
        except ModelError as e:
            raise ApiError(400, "invalid_request", str(e)) from None
        ref = body.get("image_reference")
        if ref is not None and (not isinstance(ref, str) or not ref):
            raise ApiError(400, "invalid_request", "image_reference must be a non-empty string")
        return body

    def _create_workload(self, call: Call) -> Reply:
        kind = call.match["k"]
        self._project(call)
        body = self._check_request(kind, call.body, patch=False)
        name = body.get("name")
        if not isinstance(name, str) or not body.get("image_reference"):
            raise ApiError(400, "invalid_request", "name and image_reference are required")
        key = (call.match["p"], kind, name)
        if key in self._workloads:
            raise ApiError(409, "resource_already_exists", f"'{name}' already exists")
        fields = {k: v for k, v in body.items() if k != "name"}
        if kind == "apps":
            work = _Workload("app", self._app_doc(call.match["p"], name, fields))
            self._workloads[key] = work
            self._new_revision(work, failure=self.revision_failure, stuck=self.revision_stuck)
        else:
            work = _Workload("job", self._job_doc(call.match["p"], name, fields))
            self._workloads[key] = work
        return Reply(201, validated(ce.App if kind == "apps" else ce.Job, work.doc),
                      {"ETag": str(work.doc["entity_tag"])})  # fmt: skip

    def _update_workload(self, call: Call) -> Reply:
        kind = call.match["k"]
        work = self._find(call, kind, call.match["n"])
        if "merge-patch+json" not in call.header("Content-Type"):
            raise ApiError(415, "unsupported_media_type", "updates are application/merge-patch+json")
        if_match = call.header("If-Match")
        if not if_match:
            raise ApiError(428, "precondition_required", "If-Match is required")
        if self.etag_mismatches > 0:
            self.etag_mismatches -= 1
            _merge_patch(work.doc, self.concurrent_change)
            work.doc["entity_tag"] = str(int(work.doc["entity_tag"]) + 1)
        if if_match not in ("*", work.doc["entity_tag"]):
            raise ApiError(412, "precondition_failed", "the entity tag does not match the current version")
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

    def _get_revision(self, call: Call) -> Reply:
        work = self._find(call, "apps", call.match["n"])
        revision = work.revisions.get(call.match["r"])
        if revision is None:
            raise ApiError(404, "resource_not_found", f"Revision '{call.match['r']}' does not exist")
        return Reply(200, validated(ce.AppRevision, revision))

    def _list_revisions(self, call: Call) -> Reply:
        work = self._find(call, "apps", call.match["n"])
        return Reply(
            200, validated(ce.AppRevisionList, {"limit": 50, "revisions": list(work.revisions.values())})
        )

    def _create_run(self, call: Call) -> Reply:
        self._project(call)
        body = call.body if isinstance(call.body, dict) else {}
        job_name = body.get("job_name")
        if not isinstance(job_name, str):
            raise ApiError(400, "invalid_request", "this fake only runs job templates: job_name is required")
        job = self._find(call, "jobs", job_name).doc
        name = f"{job_name}-run-{next(self._ids)}"
        doc = {k: v for k, v in job.items() if k.startswith(("image_", "run_", "scale_"))}
        doc.update({
            "name": name, "job_name": job_name, "project_id": call.match["p"], "region": self.region,
            "resource_type": "job_run_v2", "id": self._new_id(), "created_at": TIME,
            "href": f"{self._ce_href(call.match['p'])}/job_runs/{name}", "computed_env_variables": [],
            "status": "pending", "status_details": {"requested": 1, "pending": 1},
        })  # fmt: skip
        self._runs[(call.match["p"], name)] = _Run(doc, self.job_run_polls, self.job_run_failure)
        return Reply(201, validated(ce.JobRun, doc))

    def _get_run(self, call: Call) -> Reply:
        self._project(call)
        run = self._runs.get((call.match["p"], call.match["n"]))
        if run is None:
            raise ApiError(404, "resource_not_found", f"Job run '{call.match['n']}' does not exist")
        if run.doc["status"] in ("pending", "running"):
            if run.polls > 0:
                run.polls -= 1
                run.doc["status"] = "running"
                run.doc["status_details"] = {"requested": 1, "running": 1, "start_time": TIME}
            elif run.failure:
                run.doc["status"] = "failed"
                run.doc["status_details"] = {
                    "requested": 1, "failed": 1, "failed_indices": "0", "start_time": TIME, "completion_time": TIME,
                    "indices_details": {"0": {"status": "failed", "last_failure_reason": run.failure, "retries": 3,
                                              "started_at": TIME, "finished_at": TIME}},
                }  # fmt: skip
            else:
                run.doc["status"] = "completed"
                run.doc["status_details"] = {"requested": 1, "succeeded": 1, "succeeded_indices": "0",
                                             "start_time": TIME, "completion_time": TIME}  # fmt: skip
        return Reply(200, validated(ce.JobRun, run.doc))

    def _list_secrets(self, call: Call) -> Reply:
        self._project(call)
        items = [s for (p, _), s in sorted(self._secrets.items()) if p == call.match["p"]]
        return page(call, items, "secrets", ce.SecretList, f"{self._ce_href(call.match['p'])}/secrets")

    def _list_config_maps(self, call: Call) -> Reply:
        self._project(call)
        items = [c for (p, _), c in sorted(self._config_maps.items()) if p == call.match["p"]]
        return page(call, items, "config_maps", ce.ConfigMapList,
                          f"{self._ce_href(call.match['p'])}/config_maps")  # fmt: skip
