"""Tekton: the build context of a PipelineRun, shaped like Tekton Chains' ``slsa/v1`` format.

Tekton exposes a run to its steps only through ``$(context.*)`` variables,
so chaingate's Task maps them into the step environment under these names
(all optional but at least one run identifier):

=============================  ==========================================================
``TEKTON_PIPELINE_RUN``        ``$(context.pipelineRun.name)``
``TEKTON_PIPELINE_RUN_UID``    ``$(context.pipelineRun.uid)`` — the ``invocationId``, as Chains
``TEKTON_NAMESPACE``           ``$(context.pipelineRun.namespace)``
``TEKTON_PIPELINE``            ``$(context.pipeline.name)``
``TEKTON_TASK_RUN``            ``$(context.taskRun.name)``
``TEKTON_PIPELINE_PARAMS``     JSON object of the PipelineRun's params (``runSpec.params``)
``TEKTON_PIPELINE_SOURCE_*``   ``URI``, ``DIGEST`` (``sha1:<hex>``) and ``PATH`` of the pipeline
                               definition (Tekton's ``refSource``)
``CHAINS_GIT_URL``             the source repository — Chains' ``CHAINS-GIT_URL`` type hint
``CHAINS_GIT_COMMIT``          its commit — Chains' ``CHAINS-GIT_COMMIT``
``TEKTON_BUILDER_ID``          the ``builder.id`` to claim (default :data:`DEFAULT_BUILDER_ID`)
=============================  ==========================================================

The predicate follows Chains' ``https://tekton.dev/chains/v2/slsa`` build type:
``externalParameters.runSpec`` holds the run's ``pipelineRef`` and ``params``,
``externalParameters.buildConfigSource`` the pipeline definition's
``{ref, repository, path}``, and ``resolvedDependencies`` names the
definition ``pipeline`` (as Chains does) and the source ``git+<url>`` with
``{"gitCommit": <sha>}``. The default builder id is chaingate's, not
Chains' ``https://tekton.dev/chains/v2``: the provenance is written by a step
inside the run, not by the Chains controller, and must not claim otherwise.

The writer half reports a step as Task results: each result file
(``$(results.IMAGE_DIGEST.path)``…) written whole, without a trailing newline,
so Tekton Chains reads the digest exactly. Tekton's log interprets no
commands, so there the step log is only neutralised.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaingate.ci.interface import BuildContext, BuildContextError, check_commit, check_uri, optional
from chaingate.ci.report import StepReport

BUILD_TYPE = "https://tekton.dev/chains/v2/slsa"
DEFAULT_BUILDER_ID = "https://chaingate.dev/builders/tekton/v1"
SYSTEM = "tekton"
#: Tekton result names whose output key is not just the name in lower kebab case.
TEKTON_ALIASES = {"IMAGE_DIGEST": "digest"}


def from_env(env: Mapping[str, str]) -> BuildContext | None:
    """The context of a step in a Tekton run, or None when no Tekton run variables are set."""
    run = optional(env, "TEKTON_PIPELINE_RUN")
    uid = optional(env, "TEKTON_PIPELINE_RUN_UID")
    task_run = optional(env, "TEKTON_TASK_RUN")
    if not (run or uid or task_run):
        return None
    namespace = optional(env, "TEKTON_NAMESPACE")
    run_spec: dict[str, Any] = {}
    pipeline = optional(env, "TEKTON_PIPELINE")
    if pipeline:
        run_spec["pipelineRef"] = {"name": pipeline}
    params = _params(env)
    if params:
        run_spec["params"] = params
    external: dict[str, Any] = {"runSpec": run_spec}
    dependencies: list[Mapping[str, Any]] = []
    source = pipeline_source(env)
    if source is not None:
        external["buildConfigSource"] = source["config"]
        dependencies.append(source["dependency"])
    internal = {
        key: value
        for key, value in (("namespace", namespace), ("pipelineRun", run), ("taskRun", task_run))
        if value
    }
    git_url = optional(env, "CHAINS_GIT_URL")
    git_commit = optional(env, "CHAINS_GIT_COMMIT")
    return BuildContext(
        system=SYSTEM,
        build_type=BUILD_TYPE,
        builder_id=check_uri(optional(env, "TEKTON_BUILDER_ID") or DEFAULT_BUILDER_ID, "$TEKTON_BUILDER_ID"),
        invocation_id=uid or "/".join(p for p in (namespace, run or task_run) if p),
        source_uri=check_uri(git_url, "$CHAINS_GIT_URL") if git_url else None,
        source_commit=check_commit(git_commit, "$CHAINS_GIT_COMMIT") if git_commit else None,
        external_parameters=external,
        internal_parameters={"tekton": internal} if internal else {},
        dependencies=tuple(dependencies),
    )


def _params(env: Mapping[str, str]) -> list[dict[str, Any]]:
    raw = optional(env, "TEKTON_PIPELINE_PARAMS")
    if raw is None:
        return []
    try:
        doc = json.loads(raw)
    except ValueError:
        raise BuildContextError("$TEKTON_PIPELINE_PARAMS: not valid JSON") from None
    if not isinstance(doc, dict):
        raise BuildContextError("$TEKTON_PIPELINE_PARAMS: must be a JSON object of param name to value")
    return [{"name": str(name), "value": value} for name, value in sorted(doc.items())]


def pipeline_source(env: Mapping[str, str]) -> dict[str, Any] | None:
    """The pipeline definition's ``buildConfigSource`` and its resolved dependency, from ``refSource`` values."""
    uri = optional(env, "TEKTON_PIPELINE_SOURCE_URI")
    if uri is None:
        return None
    check_uri(uri, "$TEKTON_PIPELINE_SOURCE_URI")
    digest_text = optional(env, "TEKTON_PIPELINE_SOURCE_DIGEST")
    path = optional(env, "TEKTON_PIPELINE_SOURCE_PATH") or ""
    digest: dict[str, str] = {}
    if digest_text:
        algorithm, sep, value = digest_text.partition(":")
        if not sep or not algorithm or not value or not all(c in "0123456789abcdef" for c in value):
            raise BuildContextError(
                f"$TEKTON_PIPELINE_SOURCE_DIGEST: {digest_text!r} is not ALGORITHM:HEX (e.g. sha1:28b123…)"
            )
        digest[algorithm] = value
    dependency: dict[str, Any] = {"name": "pipeline", "uri": uri}
    if digest:
        dependency["digest"] = digest
    return {
        "config": {"ref": digest_text or "", "repository": uri, "path": path},
        "dependency": dependency,
    }


# -- reporting a step ---------------------------------------------------------------------------------


def tekton_value(report: StepReport, name: str) -> str:
    """The output a Tekton result carries.

    ``NAME:output`` names the output explicitly (two attestations in one Task
    both report ``referrer``); otherwise ``IMAGE_DIGEST`` is ``digest`` and any
    other name is looked up in lower kebab case (``VSA_REFERRER`` →
    ``vsa-referrer``).
    """
    result, _, key = name.partition(":")
    return report.outputs.get(key or TEKTON_ALIASES.get(result, result.lower().replace("_", "-")), "")


def write_tekton_results(report: StepReport, results: Mapping[str, str]) -> None:
    """Each named result file holds its value exactly (no newline): Chains parses ``IMAGE_DIGEST`` verbatim."""
    for name, path in results.items():
        Path(path).write_text(tekton_value(report, name), encoding="utf-8")
