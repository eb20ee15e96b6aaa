"""GitHub Actions: the build context of a workflow run, shaped like actions/attest-build-provenance.

The predicate uses GitHub's own build type,
``https://actions.github.io/buildtypes/workflow/v1``, filled the way
``@actions/attest``'s ``buildSLSAProvenancePredicate`` fills it, so a policy
written for ``gh attestation verify`` reads chaingate's provenance unchanged:

- ``externalParameters.workflow``: ``{ref, repository, path}`` of the top-level
  workflow (split from ``GITHUB_WORKFLOW_REF``);
- ``internalParameters.github``: ``event_name``, ``repository_id``,
  ``repository_owner_id``, ``runner_environment``;
- the source as ``git+<server>/<repo>@<ref>`` with ``{"gitCommit": <sha>}``;
- ``builder.id``: ``<server>/<workflow_ref>``;
- ``invocationId``: ``<server>/<repo>/actions/runs/<id>/attempts/<attempt>``.

``@actions/attest`` reads these from the OIDC token's claims; the step
environment carries the same values, except that ``job_workflow_ref`` (which
differs from ``workflow_ref`` only inside a reusable workflow) has no
variable — pass ``--builder-id`` there.
"""

from __future__ import annotations

from collections.abc import Mapping

from chaingate.ci.interface import BuildContext, check_commit, optional, require

BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"
SYSTEM = "github-actions"


def from_env(env: Mapping[str, str]) -> BuildContext | None:
    """The context of a GitHub Actions step, or None outside GitHub Actions."""
    if env.get("GITHUB_ACTIONS") != "true":
        return None
    server = (optional(env, "GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    repository = require(env, "GITHUB_REPOSITORY", SYSTEM)
    workflow_ref = require(env, "GITHUB_WORKFLOW_REF", SYSTEM)
    ref = require(env, "GITHUB_REF", SYSTEM)
    sha = check_commit(require(env, "GITHUB_SHA", SYSTEM), "$GITHUB_SHA")
    run_id = require(env, "GITHUB_RUN_ID", SYSTEM)
    attempt = optional(env, "GITHUB_RUN_ATTEMPT") or "1"

    # owner/repo/.github/workflows/release.yml@refs/heads/main -> path, ref (a ref may itself hold '@').
    path, _, workflow_at = workflow_ref.removeprefix(f"{repository}/").partition("@")
    internal = {
        key: value
        for key, value in (
            ("event_name", optional(env, "GITHUB_EVENT_NAME")),
            ("repository_id", optional(env, "GITHUB_REPOSITORY_ID")),
            ("repository_owner_id", optional(env, "GITHUB_REPOSITORY_OWNER_ID")),
            ("runner_environment", optional(env, "RUNNER_ENVIRONMENT")),
        )
        if value is not None
    }
    return BuildContext(
        system=SYSTEM,
        build_type=BUILD_TYPE,
        builder_id=f"{server}/{workflow_ref}",
        invocation_id=f"{server}/{repository}/actions/runs/{run_id}/attempts/{attempt}",
        source_uri=f"{server}/{repository}",
        source_ref=ref,
        source_commit=sha,
        external_parameters={
            "workflow": {"ref": workflow_at, "repository": f"{server}/{repository}", "path": path}
        },
        internal_parameters={"github": internal} if internal else {},
    )
