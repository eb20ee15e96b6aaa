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
``CHAINS_GIT_URL``             the source repository (Chains never sees a step's environment: the
                               Task also writes it as its ``CHAINS-GIT_URL`` result, which Chains reads)
``CHAINS_GIT_COMMIT``          its commit (likewise written as the ``CHAINS-GIT_COMMIT`` result)
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
(``$(results.DIGEST.path)``…) written whole, without a trailing newline.
Tekton's log interprets no commands, so there the step log is only neutralised.

Tekton Chains reads results by name (its "type hints"): ``IMAGES``, any
``*IMAGE_URL``/``*IMAGE_DIGEST`` or ``*ARTIFACT_URI``/``*ARTIFACT_DIGEST``
pair and any ``*ARTIFACT_OUTPUTS`` mean "this TaskRun built that artifact",
and Chains signs a provenance naming the TaskRun as its builder. chaingate's
Tasks build nothing, so they never write those names (see
:data:`CHAINS_OUTPUT_HINTS`): the image they worked on goes to the next Task as
``IMAGE_REF``/``DIGEST``, and to Chains as an input, ``IMAGE_ARTIFACT_INPUTS``
(an object ``{"uri": "oci://REGISTRY/REPO", "digest": "sha256:…"}``).
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
#: The result that passes the image on: ``REGISTRY/REPO@sha256:…``, a name Chains does not read.
IMAGE_REF_RESULT = "IMAGE_REF"
#: Chains' input type hint: a result (or param) whose name ends so is an object ``{uri, digest}`` it consumed.
CHAINS_INPUT_SUFFIX = "ARTIFACT_INPUTS"
#: Chains' output type hints, as (exact names, name suffixes): a result matching one claims a build.
CHAINS_OUTPUT_HINTS = (
    frozenset({"IMAGES"}),
    ("IMAGE_URL", "IMAGE_DIGEST", "ARTIFACT_URI", "ARTIFACT_DIGEST", "ARTIFACT_OUTPUTS"),
)


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


def is_chains_output_hint(name: str) -> bool:
    """Whether Tekton Chains reads a result of this name as "this run built an artifact"."""
    exact, suffixes = CHAINS_OUTPUT_HINTS
    return name in exact or name.endswith(suffixes)


def _image(report: StepReport) -> tuple[str, str] | None:
    name, digest = report.outputs.get("image-url", ""), report.outputs.get("digest", "")
    if not name or not digest.startswith("sha256:"):
        return None
    return name, digest


def tekton_value(report: StepReport, name: str) -> str:
    """The output a Tekton result carries.

    ``NAME:output`` names the output explicitly (two attestations in one Task
    both report ``referrer``); ``IMAGE_REF`` is ``REGISTRY/REPO@sha256:…`` and a
    ``*ARTIFACT_INPUTS`` result Chains' input object (both empty until the
    digest is known); ``IMAGE_DIGEST`` is ``digest``, and any other name is
    looked up in lower kebab case (``VSA_REFERRER`` → ``vsa-referrer``).
    """
    result, _, key = name.partition(":")
    if key:
        return report.outputs.get(key, "")
    if result == IMAGE_REF_RESULT or result.endswith(CHAINS_INPUT_SUFFIX):
        image = _image(report)
        if image is None:
            return ""
        if result == IMAGE_REF_RESULT:
            return "@".join(image)
        return json.dumps({"uri": f"oci://{image[0]}", "digest": image[1]}, separators=(",", ":"))
    return report.outputs.get(TEKTON_ALIASES.get(result, result.lower().replace("_", "-")), "")


def write_tekton_results(report: StepReport, results: Mapping[str, str]) -> None:
    """Each named result file holds its value exactly (no newline), as Tekton and Chains parse it.

    An object result (``*ARTIFACT_INPUTS``) with no value is not written at all:
    Tekton fails a TaskRun whose object result lacks its keys, an absent one it
    merely leaves out.
    """
    for name, path in results.items():
        value = tekton_value(report, name)
        if value or not name.partition(":")[0].endswith(CHAINS_INPUT_SUFFIX):
            Path(path).write_text(value, encoding="utf-8")
