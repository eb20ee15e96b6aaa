"""Errors and results of deploys and audits: what the CLI renders and a library caller inspects.

The deploy core never prints; it returns these values or raises a
:class:`DeployError`, so the CLI, the CI adapters and tests all see the same
facts. Nothing here ever holds a credential.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from chaingate.errors import EXIT_DENIED, ChaingateError
from chaingate.oci.digest import SHA256_PATTERN
from chaingate.policy.interface import ClauseResult

#: Exactly what Code Engine is given: a repository pinned by digest, never a tag.
DIGEST_REFERENCE_RE = re.compile(r"[^\s@:/][^\s@]*/[^\s@]+@" + SHA256_PATTERN)

Kind = Literal["app", "job"]


class DeployError(ChaingateError):
    """A deploy or audit that could not run: bad configuration, refused credentials, an API that kept failing."""


class DeployFailed(DeployError):
    """The deploy ran and Code Engine did not end up running the image (failed revision, job run, timeout).

    Exit code 1 like a denial: the image is not running, and a pipeline must stop.
    """

    exit_code = EXIT_DENIED


class GateDenied(DeployError):
    """The gate (policy verification or the IAM audit) said no; nothing was written."""

    exit_code = EXIT_DENIED


class Decision(Protocol):
    """What the deploy needs from the gate's decision (``chaingate.verify.Decision`` satisfies it).

    A protocol rather than an import, so the deploy core is testable with a
    decision built by hand and does not depend on how verification is done.
    """

    @property
    def image(self) -> str: ...

    @property
    def digest(self) -> str: ...

    @property
    def index_digest(self) -> str | None:
        """The multi-arch index :attr:`digest` was selected from with ``--platform`` (recorded beside it)."""

    @property
    def repository(self) -> str: ...

    @property
    def mode(self) -> str: ...

    @property
    def verdict(self) -> str: ...

    @property
    def allowed(self) -> bool: ...

    @property
    def clauses(self) -> tuple[ClauseResult, ...]:
        """Each clause's outcome, typed: the deploy names the failing ones when it refuses."""

    def record(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Target:
    """One Code Engine workload: ``kind`` ``name`` in ``project_id``."""

    project_id: str
    kind: Kind
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r} in project {self.project_id}"


@dataclass(frozen=True)
class ProjectInfo:
    """The project as Code Engine describes it; the IAM audit scopes policies with these ids."""

    id: str
    name: str
    region: str | None
    account_id: str | None
    resource_group_id: str
    crn: str | None


@dataclass(frozen=True)
class JobRunOutcome:
    name: str
    status: str
    succeeded: int
    failed: int
    #: Per failed index, what Code Engine says about it (reason, exit code) — never log output.
    failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeployResult:
    target: Target
    project: ProjectInfo
    #: ``REGISTRY/REPO@sha256:…`` as given to Code Engine.
    image_reference: str
    #: What the workload ran before this deploy; None when it was created now.
    previous_image: str | None
    created: bool
    #: The app revision now serving the image; for a job, the submitted run's name (or None).
    revision: str | None
    #: How many times an update lost an ETag race (HTTP 412) and was re-read and retried.
    conflicts: int = 0
    endpoint: str | None = None
    job_run: JobRunOutcome | None = None
    bindings_applied: bool = False


# -- IAM audit --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IamFinding:
    """One way in besides the deployer, or one thing the audit could not rule out (it fails closed)."""

    #: ``write-access`` | ``trusted-profile`` (a link or claim rule) | ``profile-identity`` (who may assume it)
    #: | ``unresolved``
    kind: str
    subject: str
    message: str
    policy_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "subject": self.subject, "message": self.message}
        if self.policy_id:
            out["policyId"] = self.policy_id
        return out


@dataclass(frozen=True)
class IamGrant:
    """A policy that lets ``subject`` write to the project, with the roles and actions that do it."""

    policy_id: str
    subject: str
    scope: str
    roles: tuple[str, ...]
    actions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "policyId": self.policy_id,
            "subject": self.subject,
            "scope": self.scope,
            "roles": list(self.roles),
            "actions": list(self.actions),
        }


@dataclass(frozen=True)
class IamAuditReport:
    project: ProjectInfo
    deployer: str
    grants: tuple[IamGrant, ...]
    findings: tuple[IamFinding, ...]
    profiles_checked: tuple[str, ...] = ()
    #: Not a finding, but a deploy by this identity would be refused (HTTP 403): worth saying early.
    deployer_can_write: bool = True

    @property
    def passed(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project.id,
            "accountId": self.project.account_id,
            "resourceGroupId": self.project.resource_group_id,
            "deployer": self.deployer,
            "passed": self.passed,
            "deployerCanWrite": self.deployer_can_write,
            "grants": [g.to_dict() for g in self.grants],
            "findings": [f.to_dict() for f in self.findings],
            "trustedProfilesChecked": list(self.profiles_checked),
        }


# -- bindings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvBinding:
    """An environment variable fed from a secret or config map; ``key`` None means the whole object."""

    source: Literal["secret", "config_map"]
    reference: str
    key: str | None = None
    name: str | None = None
    prefix: str | None = None

    @property
    def identity(self) -> str:
        """What two bindings must share to be "the same binding" (then other fields may have changed)."""
        if self.key is not None:
            return f"env {self.name}"
        return f"env {self.source} {self.reference} prefix={self.prefix or ''}"

    @property
    def code_engine_type(self) -> str:
        return f"{self.source}_{'key' if self.key is not None else 'full'}_reference"

    def describe(self) -> str:
        what = f"{self.source.replace('_', '-')} {self.reference}"
        if self.key is not None:
            return f"{self.name} <- {what} key {self.key}"
        return f"all keys of {what}" + (f" (prefix {self.prefix})" if self.prefix else "")

    def to_code_engine(self) -> dict[str, str]:
        out = {"type": self.code_engine_type, "reference": self.reference}
        if self.key is not None:
            out["key"] = self.key
        if self.name is not None:
            out["name"] = self.name
        if self.prefix is not None:
            out["prefix"] = self.prefix
        return out


@dataclass(frozen=True)
class VolumeBinding:
    source: Literal["secret", "config_map"]
    reference: str
    mount_path: str
    sub_path: str | None = None

    @property
    def identity(self) -> str:
        return f"volume {self.mount_path}"

    def describe(self) -> str:
        sub = f" (sub path {self.sub_path})" if self.sub_path else ""
        return f"{self.mount_path} <- {self.source.replace('_', '-')} {self.reference}{sub}"

    def to_code_engine(self) -> dict[str, str]:
        out = {"type": self.source, "reference": self.reference, "mount_path": self.mount_path}
        if self.sub_path is not None:
            out["sub_path"] = self.sub_path
        return out


@dataclass(frozen=True)
class BindingsManifest:
    """The secret and config-map bindings a workload must run with: names and keys, never values."""

    env: tuple[EnvBinding, ...] = ()
    volumes: tuple[VolumeBinding, ...] = ()
    source: str = "<manifest>"


@dataclass(frozen=True)
class BindingDrift:
    """One difference, relative to the manifest: Code Engine runs a binding nobody declared (``added``), lacks
    a declared one (``removed``), runs it from another object or key (``changed``), or a binding names an
    object or key the project does not have (``dangling``)."""

    change: Literal["added", "removed", "changed", "dangling"]
    identity: str
    expected: str | None
    actual: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "binding": self.identity,
            "expected": self.expected,
            "actual": self.actual,
        }


@dataclass(frozen=True)
class BindingsReport:
    target: Target
    drift: tuple[BindingDrift, ...] = field(default_factory=tuple)

    @property
    def clean(self) -> bool:
        return not self.drift

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.target.project_id,
            "kind": self.target.kind,
            "name": self.target.name,
            "clean": self.clean,
            "drift": [d.to_dict() for d in self.drift],
        }


def dict_list(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a JSON list, or none: list fields the models mark optional are often absent."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [v for v in value if isinstance(v, Mapping)]
    return []
