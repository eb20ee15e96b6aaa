"""Deploy one digest to a Code Engine app or job with the official ``ibm-code-engine-sdk``.

What is verified is what runs: the image is always given to Code Engine as
``REGISTRY/REPO@sha256:…``, and a deploy only counts once the revision Code
Engine reports as ready is a new one whose ``image_reference`` is that digest.

Updates are JSON merge patches with ``If-Match``: only the fields the user asked
to change are sent, so scaling, probes, literal env vars and everything else an
operator set stay as they are, and a concurrent edit is never overwritten — on
HTTP 412 the workload is re-read and the patch recomputed, a bounded number of
times. Waiting is bounded by one deadline for the whole deploy.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ibm_cloud_sdk_core import DetailedResponse
from ibm_code_engine_sdk.code_engine_v2 import (
    AppPatch,
    CodeEngineV2,
    EnvVarPrototype,
    JobPatch,
    VolumeMountPrototype,
)

from chaingate.deploy import bindings as bindings_mod
from chaingate.deploy.ibmcloud import (
    CODE_ENGINE_API_VERSION,
    CODE_ENGINE_SERVICE,
    ApiCaller,
    AuthOptions,
    Conflict,
    NotFoundError,
    PreconditionFailed,
    build_authenticator,
    code_engine_url,
    configure,
    external_url,
    pages_by_start,
    result,
)
from chaingate.deploy.interface import (
    DIGEST_REFERENCE_RE,
    BindingsManifest,
    DeployError,
    DeployFailed,
    DeployResult,
    JobRunOutcome,
    ProjectInfo,
    Target,
    dict_list,
)
from chaingate.errors import ChaingateError
from chaingate.text import one_line

log = logging.getLogger(__name__)

Clock = Callable[[], float]
#: Names, statuses and reasons Code Engine reports are shown to people and written into the record;
#: real ones are short identifiers, so anything longer is cut.
_MAX_FIELD = 200


@dataclass(frozen=True)
class DeployOptions:
    #: Seconds for the whole deploy: update, readiness, and the job run with ``submit``.
    timeout: float = 600.0
    image_secret: str | None = None
    bindings: BindingsManifest | None = None
    submit: bool = False
    poll_interval: float = 3.0
    #: How many lost ETag races (HTTP 412) are re-read and retried before giving up.
    max_conflicts: int = 5


@dataclass
class CodeEngine:
    """The Code Engine v2 API of one region, reached through the official SDK client.

    ``sleep`` and ``clock`` are injected so readiness waits are testable without
    wall time; every call goes through ``caller`` for retries and error mapping.
    """

    service: CodeEngineV2
    caller: ApiCaller = field(default_factory=ApiCaller)
    sleep: Callable[[float], None] = time.sleep
    clock: Clock = time.monotonic

    @classmethod
    def connect(
        cls,
        *,
        region: str | None = None,
        auth: AuthOptions | None = None,
        request_timeout: float = 30.0,
        caller: ApiCaller | None = None,
    ) -> CodeEngine:
        """A client for ``region``, or for ``CODE_ENGINE_URL`` when no region is given."""
        authenticator = build_authenticator(auth or AuthOptions(), CODE_ENGINE_SERVICE)
        service = CodeEngineV2(authenticator=authenticator, version=CODE_ENGINE_API_VERSION)
        url = code_engine_url(region) if region else None
        if url is None and external_url(CODE_ENGINE_SERVICE) is None:
            raise DeployError(
                "no Code Engine region", hint="pass --region (e.g. us-south) or set CODE_ENGINE_URL"
            )
        configure(service, CODE_ENGINE_SERVICE, url=url, timeout=request_timeout)
        return cls(service, caller or ApiCaller())

    @property
    def authenticator(self) -> Any:
        return self.service.authenticator

    # -- reads -------------------------------------------------------------------------------------

    def project(self, project_id: str) -> ProjectInfo:
        what = f"project {project_id}"
        try:
            body = result(
                self.caller.call(f"get {what}", lambda: self.service.get_project(id=project_id)), what
            )
        except NotFoundError:
            raise DeployError(
                f"{what}: not found in {self.service.service_url}",
                hint="check the project ID and --region (projects are regional)",
            ) from None
        status = body.get("status")
        if status not in (None, "active"):
            raise DeployError(f"{what}: status is {status!r}, not active")
        region = body.get("region")
        return ProjectInfo(
            id=str(body.get("id") or project_id),
            name=one_line(body.get("name") or "", _MAX_FIELD),
            region=one_line(region, _MAX_FIELD) if isinstance(region, str) else None,
            account_id=body.get("account_id"),
            resource_group_id=str(body.get("resource_group_id") or ""),
            crn=body.get("crn"),
        )

    def get_workload(self, target: Target) -> tuple[dict[str, Any], str] | None:
        """The app or job and its ETag, or None when it does not exist."""
        what = f"get {target}"
        if target.kind == "app":
            fetch = lambda: self.service.get_app(project_id=target.project_id, name=target.name)  # noqa: E731
        else:
            fetch = lambda: self.service.get_job(project_id=target.project_id, name=target.name)  # noqa: E731
        try:
            response = self.caller.call(what, fetch)
        except NotFoundError:
            return None
        body = result(response, what)
        etag = response.get_headers().get("ETag") or body.get("entity_tag")
        if not isinstance(etag, str) or not etag:
            raise DeployError(
                f"{what}: the response carries no ETag (entity_tag), so it cannot be updated safely"
            )
        return body, etag

    def app_revision(self, target: Target, revision: str) -> dict[str, Any]:
        what = f"get revision {revision} of {target}"
        return result(
            self.caller.call(
                what,
                lambda: self.service.get_app_revision(
                    project_id=target.project_id, app_name=target.name, name=revision
                ),
            ),
            what,
        )

    def job_run(self, project_id: str, name: str) -> dict[str, Any]:
        what = f"get job run {name}"
        return result(
            self.caller.call(what, lambda: self.service.get_job_run(project_id=project_id, name=name)), what
        )

    def secret_keys(self, project_id: str) -> dict[str, frozenset[str]]:
        """Secret names and their key names; values are dropped as soon as they are read."""
        return self._key_names("secrets", self.service.list_secrets, project_id, "secrets")

    def config_map_keys(self, project_id: str) -> dict[str, frozenset[str]]:
        return self._key_names("config maps", self.service.list_config_maps, project_id, "config_maps")

    def _key_names(
        self, kind: str, lister: Callable[..., DetailedResponse], project_id: str, key: str
    ) -> dict[str, frozenset[str]]:
        """Name → key names of each secret or config map: bindings are audited on names, never on values."""
        items = pages_by_start(
            self.caller,
            f"list {kind} of project {project_id}",
            lambda start: lister(project_id=project_id, limit=100, start=start),
            key,
        )
        return {str(item.get("name")): _keys(item.get("data")) for item in items}

    # -- writes ------------------------------------------------------------------------------------

    def create(self, target: Target, fields: Mapping[str, Any]) -> dict[str, Any]:
        what = f"create {target}"
        kwargs = _prototype_kwargs(fields)
        if target.kind == "app":
            fn = lambda: self.service.create_app(project_id=target.project_id, name=target.name, **kwargs)  # noqa: E731
        else:
            fn = lambda: self.service.create_job(project_id=target.project_id, name=target.name, **kwargs)  # noqa: E731
        return result(self.caller.call(what, fn), what)

    def update(self, target: Target, etag: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        what = f"update {target}"
        if target.kind == "app":
            model = AppPatch.from_dict(dict(patch))
            fn = lambda: self.service.update_app(  # noqa: E731
                project_id=target.project_id, name=target.name, if_match=etag, app=model
            )
        else:
            job_model = JobPatch.from_dict(dict(patch))
            fn = lambda: self.service.update_job(  # noqa: E731
                project_id=target.project_id, name=target.name, if_match=etag, job=job_model
            )
        return result(self.caller.call(what, fn), what)

    def submit_job_run(self, project_id: str, job: str) -> dict[str, Any]:
        what = f"submit a run of job {job!r}"
        return result(
            self.caller.call(what, lambda: self.service.create_job_run(project_id=project_id, job_name=job)),
            what,
        )


def _keys(data: Any) -> frozenset[str]:
    return frozenset(str(k) for k in data) if isinstance(data, Mapping) else frozenset()


def _prototype_kwargs(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Create arguments with env and mounts as the SDK's prototype models, so the SDK checks their shape."""
    kwargs = {k: v for k, v in fields.items() if k not in ("run_env_variables", "run_volume_mounts")}
    if "run_env_variables" in fields:
        kwargs["run_env_variables"] = [EnvVarPrototype.from_dict(e) for e in fields["run_env_variables"]]
    if "run_volume_mounts" in fields:
        kwargs["run_volume_mounts"] = [VolumeMountPrototype.from_dict(m) for m in fields["run_volume_mounts"]]
    return kwargs


def digest_reference(repository: str, digest: str) -> str:
    """``REGISTRY/REPO@sha256:…`` — the only form chaingate ever hands Code Engine.

    Parsed with the OCI reference grammar so a layout path, an archive or a
    tagged name can never be passed off as a repository.
    """
    from chaingate.oci.reference import Reference, parse_image_reference

    text = f"{repository}@{digest}"
    try:
        ref = parse_image_reference(text)
    except ChaingateError as e:
        raise DeployError(f"image {text!r}: not a registry reference ({e.message})") from None
    if not isinstance(ref, Reference):
        raise DeployError(
            f"image {text!r}: Code Engine pulls from a registry; a layout or archive cannot be deployed"
        )
    if ref.tag is not None or ref.digest != digest:
        raise DeployError(
            f"image {text!r}: Code Engine deploys a registry image pinned by digest, never a tag"
        )
    reference = str(ref)
    if not DIGEST_REFERENCE_RE.fullmatch(reference):
        raise DeployError(f"image {text!r}: must be REGISTRY/REPO@sha256:<64 hex>")
    return reference


def _changes(
    current: Mapping[str, Any] | None, image_reference: str, options: DeployOptions
) -> dict[str, Any]:
    """The fields to send: the image, and only what the user asked for besides (merge-patch semantics)."""
    fields: dict[str, Any] = {"image_reference": image_reference}
    if options.image_secret is not None:
        fields["image_secret"] = options.image_secret
    if options.bindings is not None:
        env = dict_list(current.get("run_env_variables")) if current else []
        mounts = dict_list(current.get("run_volume_mounts")) if current else []
        fields["run_env_variables"] = bindings_mod.merged_env(env, options.bindings)
        fields["run_volume_mounts"] = bindings_mod.merged_volumes(mounts, options.bindings)
    if current is None:
        return fields
    return {k: v for k, v in fields.items() if not _same(current.get(k), v)}


def _same(current: Any, wanted: Any) -> bool:
    if isinstance(wanted, list) and isinstance(current, list):
        return [bindings_mod.prototype(c) for c in current] == wanted
    return bool(current == wanted)


def deploy(ce: CodeEngine, target: Target, image_reference: str, options: DeployOptions) -> DeployResult:
    """Create or update the workload to run ``image_reference`` and wait until it provably does."""
    if not DIGEST_REFERENCE_RE.fullmatch(image_reference):
        raise DeployError(f"image reference {image_reference!r}: must be pinned by digest, never a tag")
    deadline = ce.clock() + options.timeout
    project = ce.project(target.project_id)
    if options.bindings is not None:
        missing = bindings_mod.dangling(
            ce, target.project_id, [*options.bindings.env, *options.bindings.volumes]
        )
        if missing:
            raise DeployError(
                f"{options.bindings.source}: {missing[0].actual}",
                hint="create the secret or config map (or fix the manifest) before deploying",
            )
    created = False
    previous_image: str | None = None
    before_revision: str | None = None
    conflicts = 0
    while True:
        current = ce.get_workload(target)
        if current is None:
            try:
                ce.create(target, _changes(None, image_reference, options))
            except Conflict:
                # Someone created it in between: update theirs like any existing one, never clobber it.
                conflicts = _conflict(conflicts, target, options)
                continue
            created = True
            break
        body, etag = current
        previous = body.get("image_reference")
        previous_image = one_line(previous, _MAX_FIELD * 2) if isinstance(previous, str) else None
        before_revision = (body.get("status_details") or {}).get("latest_created_revision")
        patch = _changes(body, image_reference, options)
        if not patch:
            # Already running this digest: no write, and whatever revision serves it is the answer.
            log.info(
                "%s already runs %s with the requested bindings; nothing to update", target, image_reference
            )
            before_revision = None
            break
        try:
            ce.update(target, etag, patch)
            break
        except PreconditionFailed:
            conflicts = _conflict(conflicts, target, options)
    if target.kind == "app":
        app, revision = _wait_app(ce, target, image_reference, before_revision, options, deadline)
        endpoint = app.get("endpoint")
        return DeployResult(
            target, project, image_reference, previous_image, created, one_line(revision, _MAX_FIELD), conflicts,
            endpoint=one_line(endpoint, _MAX_FIELD * 2) if isinstance(endpoint, str) else None,
            bindings_applied=options.bindings is not None,
        )  # fmt: skip
    _settled_job(ce, target, image_reference)
    run = _run_job(ce, target, image_reference, options, deadline) if options.submit else None
    return DeployResult(
        target, project, image_reference, previous_image, created, run.name if run else None, conflicts,
        job_run=run, bindings_applied=options.bindings is not None,
    )  # fmt: skip


def _conflict(conflicts: int, target: Target, options: DeployOptions) -> int:
    conflicts += 1
    if conflicts > options.max_conflicts:
        raise DeployError(
            f"{target}: changed concurrently {conflicts} times while updating (HTTP 412/409); gave up",
            hint="another deploy or an operator is editing it; retry when it settles",
        )
    log.info(
        "%s changed while updating (HTTP 412/409); re-reading (%d/%d)",
        target,
        conflicts,
        options.max_conflicts,
    )
    return conflicts


def _remaining(ce: CodeEngine, deadline: float) -> float:
    return deadline - ce.clock()


def _wait_app(
    ce: CodeEngine,
    target: Target,
    image_reference: str,
    before: str | None,
    options: DeployOptions,
    deadline: float,
) -> tuple[dict[str, Any], str]:
    """Poll until the latest created revision is new, runs the digest, and is the latest ready one.

    An old failed revision (the app was already broken) is not this deploy's
    failure; a new revision that failed is, and its reason is what is reported.
    A revision still not ready at the deadline is reported with the reason Code
    Engine gives for it (``image_pull_back_off``…) and that reason's hint: "not
    ready in time" alone sends a user to the console to find out why.
    """
    state, reason = "no revision yet", None
    while True:
        current = ce.get_workload(target)
        if current is None:
            raise DeployFailed(f"{target}: disappeared while waiting for it to become ready")
        app = current[0]
        details = app.get("status_details") or {}
        created, ready = details.get("latest_created_revision"), details.get("latest_ready_revision")
        reason = _reason(details)
        if created and created != before:
            revision = ce.app_revision(target, created)
            if revision.get("image_reference") != image_reference:
                raise DeployFailed(
                    f"{target}: revision {created} runs {revision.get('image_reference')!r}, not {image_reference}",
                    hint="another deploy superseded this one",
                )
            status = revision.get("status")
            reason = _reason(revision.get("status_details")) or reason
            if status == "failed":
                why = reason or one_line(app.get("status") or "unknown", _MAX_FIELD)
                raise DeployFailed(f"{target}: revision {created} failed: {why}", hint=reason_hint(why))
            if ready == created:
                return app, created
            state = f"revision {created} is {status or 'pending'}"
        left = _remaining(ce, deadline)
        if left <= 0:
            raise DeployFailed(
                f"{target}: not ready within {options.timeout:g}s ({state}"
                + (f", reason {reason})" if reason else ")"),
                hint=reason_hint(reason) if reason else None,
            )
        ce.sleep(min(options.poll_interval, left))


def _reason(details: object) -> str | None:
    """``status_details.reason`` of an app or revision, neutralised; "ready" explains nothing."""
    reason = details.get("reason") if isinstance(details, Mapping) else None
    if not isinstance(reason, str) or not reason.strip() or reason == "ready":
        return None
    return one_line(reason, _MAX_FIELD)


_LOGS = "read the app's logs and events (ibmcloud ce app logs / ibmcloud ce app events --app NAME)"
_PULL = "check the registry secret (--image-secret) and that the digest exists in that registry"
#: What to do about each reason Code Engine documents for an app or a revision (the SDK's
#: ``AppRevisionStatus.ReasonEnum`` and ``AppStatus.ReasonEnum``), plus the Kubernetes spellings
#: (``ImagePullBackOff``, ``CrashLoopBackOff``) that surface in instance details.
_REASON_HINTS = {
    # Still starting: the deadline may simply be too short.
    "waiting": "Code Engine had not started the revision yet: a larger --timeout may be all it needs",
    "deploying": "Code Engine was still starting the revision: a larger --timeout may be all it needs; "
    "otherwise " + _LOGS,
    "deploying_waiting_for_resources": "the project or region has no room for another instance: lower the "
    "app's CPU/memory (scale_cpu_limit, scale_memory_limit), free resources in the project, or retry later",
    "waiting_for_resources": "the project or region has no room for another instance: lower the app's "
    "CPU/memory, free resources in the project, or retry later",
    "initial_scale_never_achieved": "no instance ever became ready: the container did not start or failed "
    "its readiness probe; check that it listens on image_port and " + _LOGS,
    "no_revision_ready": "no revision of the app is ready: " + _LOGS,
    "ready_but_latest_revision_failed": "the previous revision still serves; the new one failed: " + _LOGS,
    # The image cannot be pulled.
    "image_pull_back_off": "Code Engine keeps failing to pull the image: " + _PULL,
    "err_image_pull": "Code Engine failed to pull the image: " + _PULL,
    "fetch_image_failed_unknown_manifest": "the digest does not exist in the registry Code Engine pulls "
    "from: push the verified digest there (chaingate deploys it as it is)",
    "fetch_image_failed_unknown_repository": "the repository does not exist in the registry, or the "
    "registry secret cannot see it: " + _PULL,
    "fetch_image_failed_registry_not_found": "Code Engine cannot reach the image's registry: check the "
    "registry host name and that it is reachable from Code Engine",
    "fetch_image_failed_missing_pull_secret": "the registry needs credentials: pass --image-secret NAME "
    "(a registry secret in the project)",
    "fetch_image_failed_missing_pull_credentials": "the registry needs credentials: pass --image-secret NAME "
    "(a registry secret in the project)",
    "fetch_image_failed_wrong_pull_credentials": "the registry refuses the credentials of the registry "
    "secret: update the secret named by --image-secret",
    "invalid_tar_header_image_pull_err": "a layer of the image cannot be unpacked: the registry holds a "
    "corrupt or non-tar layer; rebuild and push the image",
    # The container starts and stops.
    "container_failed_exit_code_0": "the container exited (code 0) instead of serving: an app must keep "
    "running and listen on its port; " + _LOGS,
    "container_failed_exit_code_1": "the container exited with code 1 at start: " + _LOGS,
    "container_failed_exit_code_139": "the container crashed (exit code 139, a segmentation fault): " + _LOGS,
    "crash_loop_back_off": "the container keeps exiting and is restarted in a loop: " + _LOGS,
}
_EXIT_CODE = re.compile(r"container_failed_exit_code_(\d{1,3})")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def reason_hint(reason: str) -> str | None:
    """What to do about a Code Engine reason; Kubernetes' CamelCase spellings are read as snake case."""
    key = _CAMEL.sub("_", reason.strip()).lower()
    hint = _REASON_HINTS.get(key)
    if hint is None and (match := _EXIT_CODE.fullmatch(key)):
        hint = f"the container exited with code {match.group(1)} at start: " + _LOGS
    return hint


def _settled_job(ce: CodeEngine, target: Target, image_reference: str) -> None:
    """A job has no revisions: re-reading it is how a concurrent update that won the race is noticed."""
    current = ce.get_workload(target)
    if current is None:
        raise DeployFailed(f"{target}: disappeared right after the update")
    job = current[0]
    if job.get("image_reference") != image_reference:
        raise DeployFailed(
            f"{target}: now runs {job.get('image_reference')!r}, not {image_reference}",
            hint="another deploy superseded this one",
        )


def _run_job(
    ce: CodeEngine, target: Target, image_reference: str, options: DeployOptions, deadline: float
) -> JobRunOutcome:
    run = ce.submit_job_run(target.project_id, target.name)
    name = str(run.get("name") or "")
    if not name:
        raise DeployError(f"submit a run of {target}: the response names no job run")
    while True:
        if run.get("image_reference") not in (None, image_reference):
            raise DeployFailed(
                f"{target}: job run {name} runs {run.get('image_reference')!r}, not {image_reference}"
            )
        status = run.get("status")
        details = run.get("status_details") or {}
        if status in ("completed", "failed"):
            outcome = JobRunOutcome(
                one_line(name, _MAX_FIELD), str(status), _count(details.get("succeeded")),
                _count(details.get("failed")), _failures(details),
            )  # fmt: skip
            if status == "failed":
                why = "; ".join(outcome.failures) or f"{outcome.failed} instance(s) failed"
                raise DeployFailed(f"{target}: job run {name} failed: {why}")
            return outcome
        left = _remaining(ce, deadline)
        if left <= 0:
            raise DeployFailed(
                f"{target}: job run {name} not finished within {options.timeout:g}s ({status})"
            )
        ce.sleep(min(options.poll_interval, left))
        run = ce.job_run(target.project_id, name)


def _failures(details: Mapping[str, Any]) -> tuple[str, ...]:
    indices = details.get("indices_details")
    if not isinstance(indices, Mapping):
        return ()
    out = []
    for index, info in sorted(indices.items(), key=lambda kv: str(kv[0])):
        if isinstance(info, Mapping) and info.get("status") == "failed":
            reason = one_line(info.get("last_failure_reason") or "failed", _MAX_FIELD)
            out.append(f"index {one_line(index, 20)}: {reason} after {_count(info.get('retries'))} retries")
    return tuple(out)


def _count(value: object) -> int:
    """A count from a response; anything but a non-negative integer reads as 0 rather than a traceback."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
