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

The writer half reports a step back to the runner through its own channels:
step outputs appended to ``$GITHUB_OUTPUT`` in the heredoc form with a random
delimiter (a value can hold newlines or look like ``name=value``), a Markdown
section appended to ``$GITHUB_STEP_SUMMARY``, ``::error::``/``::warning::``
annotations escaped as the runner unescapes them, and ``::add-mask::`` for
secrets. What chaingate prints goes to the log between stop-commands
(:mod:`chaingate.ci.runner`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TextIO

from chaingate.ci.interface import BuildContext, check_commit, optional, require
from chaingate.ci.report import StepReport, annotation_text

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


# -- reporting a step ---------------------------------------------------------------------------------


def escape_data(text: str) -> str:
    """A workflow command's message, escaped exactly as ``@actions/core``'s ``escapeData`` (the runner unescapes it)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value (``title=…``) as ``escapeProperty`` escapes it: also ``:`` and ``,``, which delimit properties."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, message: str, **properties: str) -> str:
    props = ",".join(f"{k}={escape_property(v)}" for k, v in properties.items() if v)
    return f"::{command}{' ' + props if props else ''}::{escape_data(message)}"


def mask_commands(value: str) -> list[str]:
    """``::add-mask::`` lines for a secret: one per line, since the runner masks line by line."""
    lines = [line.strip() for line in value.replace("\r\n", "\n").split("\n")]
    return [f"::add-mask::{escape_data(line)}" for line in lines if line]


def github_output_block(outputs: Mapping[str, str]) -> str:
    """``$GITHUB_OUTPUT`` entries in the ``name<<DELIMITER`` form, with a delimiter no value contains."""
    import secrets  # here: the context adapter above is imported by every ``chaingate provenance``

    chunks = []
    for name, value in outputs.items():
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        while delimiter in value:
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(chunks)


def on_github(env: Mapping[str, str]) -> bool:
    """Whether this step runs on a GitHub runner, which obeys workflow commands in the log."""
    return env.get("GITHUB_ACTIONS") == "true"


def _append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def write_github(report: StepReport, env: Mapping[str, str], out: TextIO, *, summary: bool = True) -> None:
    """Outputs, the summary section and annotations, each only where the runner asked for it (the summary
    also only when the workflow wants it: ``show-summary``, as actions/attest names it)."""
    if env.get("GITHUB_OUTPUT"):
        _append(env["GITHUB_OUTPUT"], github_output_block(report.outputs))
    if summary and env.get("GITHUB_STEP_SUMMARY"):
        _append(env["GITHUB_STEP_SUMMARY"], report.summary.rstrip("\n") + "\n\n")
    if on_github(env):
        title = f"chaingate {report.step}"
        for message in report.warnings:
            out.write(workflow_command("warning", annotation_text(message), title=title) + "\n")
        for message in report.errors:
            out.write(workflow_command("error", annotation_text(message), title=title) + "\n")
        out.flush()


def write_masks(names: Sequence[str], env: Mapping[str, str], out: TextIO) -> None:
    """``::add-mask::`` for the values of these environment variables, on GitHub only (elsewhere nothing
    reads the command, and printing it would show the secret)."""
    if on_github(env):
        for name in names:
            out.writelines(f"{line}\n" for line in mask_commands(env.get(name, "")))
        out.flush()
