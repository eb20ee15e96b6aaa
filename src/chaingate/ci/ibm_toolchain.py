"""IBM Cloud Toolchain (Continuous Delivery Tekton pipelines): chaingate's own build type.

IBM publishes no SLSA build type for its pipelines, so chaingate defines one,
``https://chaingate.dev/buildtypes/ibm-toolchain/v1``, documented here.

Environment (IBM exposes run data as PipelineRun annotations; chaingate's
Toolchain step maps them with ``fieldRef`` as IBM's docs show):

=====================  ===============================================  =========================
variable               source                                           used for
=====================  ===============================================  =========================
``PIPELINE_ID``        ``devops.cloud.ibm.com/pipeline-id``              externalParameters
``PIPELINE_RUN_ID``    ``devops.cloud.ibm.com/tekton-pipeline``          detection, invocationId
``PIPELINE_RUN_URL``   ``devops.cloud.ibm.com/pipeline-run-url``         invocationId (preferred)
``BUILD_NUMBER``       ``devops.cloud.ibm.com/build-number``             internalParameters
``TRIGGER_NAME``       ``devops.cloud.ibm.com/trigger-name``             externalParameters
``TRIGGER_TYPE``       ``devops.cloud.ibm.com/trigger-type``             externalParameters
``TOOLCHAIN_ID``       the toolchain's id (pipeline property)            detection, externalParameters
``GIT_URL``            the app repository URL                           source
``GIT_BRANCH``         the branch or ref built                          source ref, externalParameters
``GIT_COMMIT``         the commit built                                 source digest
``IBM_BUILDER_ID``     override of ``builder.id``                       builder.id
=====================  ===============================================  =========================

Detected when ``PIPELINE_RUN_ID`` is set together with ``TOOLCHAIN_ID`` or a
``PIPELINE_RUN_URL`` on ``cloud.ibm.com``.

Build type ``https://chaingate.dev/buildtypes/ibm-toolchain/v1``:

- ``externalParameters`` (what the toolchain's user controls):
  ``{"pipeline": {"id", "toolchainId"}, "trigger": {"name", "type"},
  "source": {"repository", "ref"}}`` — members absent when unknown;
- ``internalParameters``: ``{"ibmToolchain": {"buildNumber", "pipelineRunId"}}``;
- ``resolvedDependencies``: the source as ``git+<GIT_URL>[@<GIT_BRANCH>]`` with
  ``{"gitCommit": <GIT_COMMIT>}``, plus base images;
- ``builder.id``: ``https://cloud.ibm.com/devops/pipelines/tekton/<PIPELINE_ID>``
  (one pipeline is one trusted build platform, as one workflow is on GitHub);
- ``invocationId``: ``PIPELINE_RUN_URL``, else ``PIPELINE_RUN_ID``.

The ``triggered-by`` annotation (an IBMid) is deliberately left out: it is a
personal identifier, and provenance is often public.

The writer half hands a step's result to IBM DevSecOps: ``collect-evidence``
and ``set_env`` are called only when the pipeline put them on ``PATH``; they
are never assumed, and their failure is a warning — evidence is bookkeeping,
the gate's exit code is the decision.

Evidence types are the ones IBM's DevSecOps documents (the ``collect-evidence``
page's type/tool table), so the evidence summary and Security and Compliance
Center find each where they look for it:

=============================================  ==========================================================
step                                           evidence type (attachment)
=============================================  ==========================================================
``sign``                                       ``com.ibm.cloud.image_signing`` (the Sigstore bundle)
``attest`` SLSA provenance                     ``com.ibm.cloud.slsa`` (the bundle)
``attest`` CycloneDX / SPDX                    ``com.ibm.code_bom_check`` (the bundle)
``attest`` vuln / OpenVEX                      ``com.ibm.cloud.image_vulnerability_scan`` (the bundle)
``attest`` any other predicate                 ``com.ibm.cloud.image_signing`` (the bundle)
``provenance``                                 ``com.ibm.cloud.slsa`` (the statement)
``sbom``                                       ``com.ibm.code_bom_check`` (the SBOM)
``verify``, ``deploy``                         ``com.ibm.cloud.verify_signature`` (decision / deployment
                                               record: the deploy's evidence is the gate it ran)
=============================================  ==========================================================

IBM names no SBOM type for images (``com.ibm.code_bom_check`` is its bill of
materials check, for which it lists ``sbom-utility``), so the SBOM goes there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chaingate.ci.interface import BuildContext, check_commit, check_uri, optional
from chaingate.ci.report import StepReport
from chaingate.predicate_types import CYCLONEDX_BOM, GATE_RECORD_PREFIXES, OPENVEX, SPDX_DOCUMENT

BUILD_TYPE = "https://chaingate.dev/buildtypes/ibm-toolchain/v1"
BUILDER_PREFIX = "https://cloud.ibm.com/devops/pipelines/tekton/"
FALLBACK_BUILDER_ID = "https://chaingate.dev/builders/ibm-toolchain/v1"
SYSTEM = "ibm-toolchain"
IMAGE_SIGNING = "com.ibm.cloud.image_signing"
SLSA = "com.ibm.cloud.slsa"
BOM_CHECK = "com.ibm.code_bom_check"
IMAGE_VULNERABILITY_SCAN = "com.ibm.cloud.image_vulnerability_scan"
VERIFY_SIGNATURE = "com.ibm.cloud.verify_signature"
#: What a step's evidence is in IBM DevSecOps terms (``collect-evidence --evidence-type``); ``attest`` is
#: filed by its predicate type (:data:`ATTESTATION_KINDS`).
IBM_EVIDENCE_TYPES = {
    "sbom": BOM_CHECK,
    "provenance": SLSA,
    "sign": IMAGE_SIGNING,
    "attest": IMAGE_SIGNING,
    "verify": VERIFY_SIGNATURE,
    "deploy": VERIFY_SIGNATURE,
}
#: Predicate type prefix -> (short name for ``set_env`` keys, evidence type).
ATTESTATION_KINDS = (
    ("https://slsa.dev/provenance/", "provenance", SLSA),
    (CYCLONEDX_BOM, "sbom", BOM_CHECK),
    (SPDX_DOCUMENT, "spdx", BOM_CHECK),
    ("https://cosign.sigstore.dev/attestation/vuln/", "vuln", IMAGE_VULNERABILITY_SCAN),
    (OPENVEX, "vex", IMAGE_VULNERABILITY_SCAN),
    ("https://sigstore.dev/cosign/sign/", "signature", IMAGE_SIGNING),
    (GATE_RECORD_PREFIXES[0], "vsa", VERIFY_SIGNATURE),
)
#: Outputs that are files in this pod: never published (a later stage runs in another pod), only attached.
FILE_OUTPUTS = frozenset({"sbom", "provenance", "decision", "record", "bundle-path"})
#: attest/sign outputs about the image rather than the one attachment: published once, unprefixed.
IMAGE_OUTPUTS = frozenset({"digest", "image", "image-url"})
IBM_ASSET_KEY_ENV = "CHAINGATE_IBM_ASSET_KEY"
IBM_EVIDENCE_TYPE_ENV = "CHAINGATE_IBM_EVIDENCE_TYPE"


def _is_ibm(env: Mapping[str, str]) -> bool:
    if not optional(env, "PIPELINE_RUN_ID"):
        return False
    if optional(env, "TOOLCHAIN_ID"):
        return True
    host = urlsplit(optional(env, "PIPELINE_RUN_URL") or "").hostname or ""
    return host == "cloud.ibm.com" or host.endswith(".cloud.ibm.com")


def from_env(env: Mapping[str, str]) -> BuildContext | None:
    """The context of a step in an IBM Continuous Delivery pipeline run, or None elsewhere."""
    if not _is_ibm(env):
        return None
    run_id = optional(env, "PIPELINE_RUN_ID")
    run_url = optional(env, "PIPELINE_RUN_URL")
    pipeline_id = optional(env, "PIPELINE_ID")
    git_url = optional(env, "GIT_URL")
    git_ref = optional(env, "GIT_BRANCH")
    git_commit = optional(env, "GIT_COMMIT")

    external: dict[str, Any] = {}
    pipeline = _present({"id": pipeline_id, "toolchainId": optional(env, "TOOLCHAIN_ID")})
    if pipeline:
        external["pipeline"] = pipeline
    trigger = _present({"name": optional(env, "TRIGGER_NAME"), "type": optional(env, "TRIGGER_TYPE")})
    if trigger:
        external["trigger"] = trigger
    source = _present({"repository": git_url, "ref": git_ref})
    if source:
        external["source"] = source
    internal = _present({"buildNumber": optional(env, "BUILD_NUMBER"), "pipelineRunId": run_id})

    builder = optional(env, "IBM_BUILDER_ID") or (
        f"{BUILDER_PREFIX}{pipeline_id}" if pipeline_id else FALLBACK_BUILDER_ID
    )
    return BuildContext(
        system=SYSTEM,
        build_type=BUILD_TYPE,
        builder_id=check_uri(builder, "builder id ($IBM_BUILDER_ID / $PIPELINE_ID)"),
        invocation_id=run_url or run_id,
        source_uri=check_uri(git_url, "$GIT_URL") if git_url else None,
        source_ref=git_ref,
        source_commit=check_commit(git_commit, "$GIT_COMMIT") if git_commit else None,
        external_parameters=external,
        internal_parameters={"ibmToolchain": internal} if internal else {},
    )


def _present(values: Mapping[str, str | None]) -> dict[str, str]:
    return {key: value for key, value in values.items() if value is not None}


# -- reporting a step ---------------------------------------------------------------------------------

Runner = Callable[[Sequence[str]], int]


def _run(argv: Sequence[str]) -> int:
    import subprocess
    import sys

    return subprocess.run(list(argv), check=False, stdout=sys.stderr, timeout=120).returncode


def attestation_kind(predicate_type: str) -> tuple[str, str]:
    """(key, evidence type) of an attestation: known kinds by name, others by their URI made a key."""
    for prefix, key, evidence_type in ATTESTATION_KINDS:
        if predicate_type.startswith(prefix):
            return key, evidence_type
    slug = "".join(c if c.isalnum() else "-" for c in predicate_type.split("://", 1)[-1].lower())
    return "-".join(part for part in slug.split("-") if part)[:60] or "attestation", IMAGE_SIGNING


def published_values(report: StepReport) -> list[tuple[str, str]]:
    """The ``set_env`` pairs of a step: no pod-local file paths, one key per attestation kind.

    Two attestations in one stage (provenance, then the SBOM) both report a
    ``referrer``: under one key the second would overwrite the first, so each
    attest/sign output is keyed by its predicate type
    (``chaingate-provenance-referrer``, ``chaingate-sbom-referrer``).
    """
    prefix = "chaingate-"
    if report.step in ("attest", "sign"):
        kind = (
            attestation_kind(report.outputs.get("predicate-type", ""))[0]
            if report.step == "attest"
            else "signature"
        )
        prefix = f"chaingate-{kind}-"
    pairs = []
    for name, value in report.outputs.items():
        if not value or name in FILE_OUTPUTS or value.startswith("/"):
            continue
        pairs.append((f"chaingate-{name}" if name in IMAGE_OUTPUTS else f"{prefix}{name}", value))
    return pairs


def evidence_type(report: StepReport, env: Mapping[str, str]) -> str | None:
    """``$CHAINGATE_IBM_EVIDENCE_TYPE``, else the type IBM documents for this step (attest: its predicate)."""
    if env.get(IBM_EVIDENCE_TYPE_ENV):
        return env[IBM_EVIDENCE_TYPE_ENV]
    if report.step == "attest" and report.outputs.get("predicate-type"):
        return attestation_kind(report.outputs["predicate-type"])[1]
    return IBM_EVIDENCE_TYPES.get(report.step)


def attachments(report: StepReport) -> list[str]:
    """The files that are this step's evidence: its document, and the Sigstore bundle that signed it."""
    found = []
    for path in (report.attachment, report.outputs.get("bundle-path")):
        if path and path not in found and Path(path).is_file():
            found.append(path)
    return found


def ibm_evidence(
    report: StepReport,
    env: Mapping[str, str],
    *,
    which: Callable[[str], str | None] | None = None,
    run: Runner = _run,
) -> list[str]:
    """Hand the result to IBM DevSecOps when its tools are on PATH; returns warnings, never raises.

    ``set_env`` publishes the step's values (:func:`published_values`) for later
    stages; ``collect-evidence`` files the step under the type IBM documents for
    it (:func:`evidence_type`) for the asset ``$CHAINGATE_IBM_ASSET_KEY``
    (default ``app-image``, the name IBM's templates save the built image under),
    with its files attached (:func:`attachments`) — the files go to the evidence
    locker, never their pod-local paths to other stages. ``which`` defaults to
    :func:`shutil.which`.
    """
    # Imported here: the context adapter above is imported by every ``chaingate provenance``, which runs no tool.
    import shutil
    import subprocess

    which = which or shutil.which
    problems: list[str] = []

    def call(argv: list[str]) -> None:
        what = " ".join(argv[:2]) if argv[0] == "set_env" else argv[0]
        try:
            code = run(argv)
        except (OSError, subprocess.SubprocessError) as e:
            problems.append(f"{what} could not run: {type(e).__name__}")
            return
        if code != 0:
            problems.append(f"{what} exited {code}")

    if which("set_env"):
        for key, value in published_values(report):
            call(["set_env", key, value])
    kind = evidence_type(report, env)
    if kind and which("collect-evidence"):
        argv = [
            "collect-evidence",
            "--tool-type",
            "chaingate",
            "--status",
            "success" if report.ok else "failure",
            "--evidence-type",
            kind,
            "--asset-type",
            "artifact",
            "--asset-key",
            env.get(IBM_ASSET_KEY_ENV) or "app-image",
        ]
        for path in attachments(report):
            argv += ["--attachment", path]
        call(argv)
    return problems
