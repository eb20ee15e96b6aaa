"""A chaingate step's result, told through each CI system's own channel.

The GitHub Action, the Tekton Tasks and the IBM Toolchain steps all run the
same CLI with ``--format json`` (or ``-o FILE``) and hand the result here, so
the rules that are easy to get subtly wrong in shell live in one tested place:

- GitHub: step outputs appended to ``$GITHUB_OUTPUT`` in the heredoc form with
  a random delimiter (a value can hold newlines or look like ``name=value``),
  a Markdown section (the decision table) appended to
  ``$GITHUB_STEP_SUMMARY``, ``::error::``/``::warning::`` annotations escaped
  as the runner unescapes them, and ``::add-mask::`` for secrets;
- Tekton: result files (``$(results.IMAGE_DIGEST.path)``…) written whole,
  without a trailing newline, so Tekton Chains reads the digest exactly;
- IBM DevSecOps: ``collect-evidence`` and ``set_env`` are called only when the
  pipeline put them on ``PATH``; they are never assumed, and their failure is a
  warning — evidence is bookkeeping, the gate's exit code is the decision.

Text that came from outside (reasons quoting an attachment, a registry's error)
is neutralised line by line (``chaingate.text``: no control characters, no
line that starts with ``::``, no ``##[``) before any channel gets it, and on
GitHub everything chaingate itself prints, and the report's log lines, go to
the log between ``::stop-commands::TOKEN`` and ``::TOKEN::`` with a fresh
random TOKEN, so a crafted reason cannot smuggle a workflow command
(``::add-mask::``, ``::set-env``…) into a GitHub run even where a line slipped
through unneutralised. Tekton and IBM Toolchain logs interpret no commands;
there the text is only neutralised. Reporting never changes a verdict: the
calling step exits with chaingate's own exit code, and this module exits
non-zero only when it could not report at all.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from chaingate.errors import EXIT_DENIED, EXIT_USAGE, ChaingateError
from chaingate.text import lines as text_lines
from chaingate.text import one_line

STEPS = ("resolve", "sbom", "provenance", "attest", "sign", "verify", "deploy")
#: Result files are read whole; a CycloneDX SBOM of a large image is the biggest and stays well under this.
MAX_RESULT_BYTES = 64 * 1024 * 1024
#: Error text taken from stderr for an annotation: enough for the error and its hint, not a whole log.
MAX_ERROR_LINES = 20
MAX_ERROR_CHARS = 4000
#: Rows listed per table before "… and N more": a summary is read by people, and GitHub caps it at 1 MiB.
MAX_ROWS = 50
#: One value in a table cell or one line of the step log.
MAX_CELL_CHARS = 2000
#: Tekton result names whose output key is not just the name in lower kebab case.
TEKTON_ALIASES = {"IMAGE_DIGEST": "digest"}
#: What a step's evidence is in IBM DevSecOps terms (``collect-evidence --evidence-type``).
IBM_EVIDENCE_TYPES = {
    "sign": "com.ibm.cloud.image_signing",
    "attest": "com.ibm.cloud.image_signing",
    "verify": "com.ibm.cloud.image_signing",
    "deploy": "com.ibm.cloud.image_signing",
}
IBM_ASSET_KEY_ENV = "CHAINGATE_IBM_ASSET_KEY"
IBM_EVIDENCE_TYPE_ENV = "CHAINGATE_IBM_EVIDENCE_TYPE"
RESULT_ICONS = {"pass": "✅ pass", "fail": "❌ fail", "waived": "⚠️ waived", "skipped": "⏭️ skipped"}


class ReportError(Exception):
    """The step's result cannot be read, so nothing trustworthy can be reported (exit 2)."""


@dataclass(frozen=True)
class StepReport:
    """What one chaingate step produced, in the terms every CI channel needs.

    ``outputs`` are step outputs / result values by kebab-case name; ``errors``
    become ``::error::`` annotations (one per failing clause or error);
    ``summary`` is a Markdown section; ``attachment`` is the file worth keeping
    as evidence (SBOM, provenance, decision record).
    """

    step: str
    exit_code: int
    outputs: dict[str, str]
    summary: str
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: Plain lines for the step log (what a person scanning the log wants to see).
    details: tuple[str, ...] = ()
    attachment: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


# -- escaping ---------------------------------------------------------------------------------------


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


def markdown_cell(text: object) -> str:
    """A value safe inside a Markdown table cell: no pipe ends the cell, no HTML is interpreted.

    Line breaks become ``<br>``; each line is neutralised (control characters shown as escapes).
    """
    value = "" if text is None else text_lines(text, limit=MAX_CELL_CHARS, max_lines=MAX_ERROR_LINES)
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value.replace("|", "\\|").replace("\n", "<br>") or "-"


def code_cell(text: object) -> str:
    """A value shown as code in a table cell, on one neutralised line; backticks would end the span, so
    they become quotes."""
    value = "" if text is None else one_line(text, MAX_CELL_CHARS).replace("`", "'").replace("|", "\\|")
    return f"`{value}`" if value else "-"


def _annotation_text(message: str) -> str:
    """An annotation's message: neutralised line by line, bounded like the error block it usually quotes."""
    return text_lines(message, limit=MAX_ERROR_CHARS, max_lines=MAX_ERROR_LINES) or "-"


def github_output_block(outputs: Mapping[str, str]) -> str:
    """``$GITHUB_OUTPUT`` entries in the ``name<<DELIMITER`` form, with a delimiter no value contains."""
    chunks = []
    for name, value in outputs.items():
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        while delimiter in value:
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(chunks)


# -- reading results --------------------------------------------------------------------------------


def _load_json(path: Path | None, what: str) -> Any:
    if path is None:
        return None
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_RESULT_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ReportError(f"{what} {path}: {e.strerror or e}") from None
    if len(data) > MAX_RESULT_BYTES:
        raise ReportError(f"{what} {path}: larger than {MAX_RESULT_BYTES} bytes")
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ReportError(f"{what} {path}: not JSON") from None


def error_text(stderr: str) -> str:
    """chaingate's own error block (``chaingate: error: …`` and its indented lines), else stderr's tail."""
    rows = stderr.splitlines()
    start = next((i for i, line in enumerate(rows) if line.startswith("chaingate: error:")), None)
    if start is not None:
        block = [rows[start].removeprefix("chaingate: error:").strip()]
        for line in rows[start + 1 :]:
            if line and not line[0].isspace():
                break
            block.append(line.rstrip())
        chosen = block
    else:
        chosen = [line for line in rows if line.strip()][-MAX_ERROR_LINES:]
    text = "\n".join(chosen[:MAX_ERROR_LINES]).strip()
    return text[:MAX_ERROR_CHARS] or "no error message (see the step log)"


def _str(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _statement_digest(statement: Mapping[str, Any]) -> str:
    subjects = statement.get("subject")
    if isinstance(subjects, list) and subjects and isinstance(subjects[0], Mapping):
        digest = subjects[0].get("digest")
        if isinstance(digest, Mapping) and isinstance(digest.get("sha256"), str):
            return f"sha256:{digest['sha256']}"
    return ""


def _repository(reference: str) -> str:
    """``REGISTRY/REPO`` of a reference (what ``IMAGE_URL`` names); ``oci:DIR`` for a layout."""
    from chaingate.oci.reference import LayoutReference, Reference, parse_image_reference

    try:
        parsed = parse_image_reference(reference)
    except ChaingateError:
        return reference.split("@", 1)[0]
    if isinstance(parsed, Reference):
        return parsed.name
    if isinstance(parsed, LayoutReference):
        return f"oci:{parsed.path}"
    return str(parsed)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"| … and {len(rows) - MAX_ROWS} more |" + " |" * (len(header) - 1))
    return lines


def _facts(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return _table(("", ""), [(f"**{k}**", v) for k, v in pairs if v])


# -- per step -----------------------------------------------------------------------------------------


def _resolve(result: Mapping[str, Any], extra: Mapping[str, str]) -> StepReport:
    reference = _str(result.get("reference"))
    digest = _str(result.get("digest"))
    if not digest.startswith("sha256:"):
        raise ReportError("resolve: the inspection names no sha256 digest")
    name = _repository(reference)
    outputs = {"digest": digest, "image-url": name, "image": f"{name}@{digest}", **extra}
    summary = [f"### chaingate: resolved {code_cell(reference)}", ""]
    summary += _facts(
        [("image", code_cell(outputs["image"])), ("media type", code_cell(result.get("mediaType")))]
    )
    return StepReport(
        "resolve", 0, outputs, "\n".join(summary), details=(f"resolved {reference} to {digest}",)
    )


def _sbom(document: Mapping[str, Any], path: Path, extra: Mapping[str, str]) -> StepReport:
    if document.get("bomFormat") != "CycloneDX":
        raise ReportError(f"sbom: {path} is not a CycloneDX document")
    components = document.get("components")
    count = len(components) if isinstance(components, list) else 0
    outputs = {"sbom": str(path), "components": str(count), **extra}
    summary = ["### chaingate: SBOM", ""]
    summary += _facts(
        [
            ("image", code_cell(extra.get("image", ""))),
            ("format", f"CycloneDX {markdown_cell(document.get('specVersion'))}"),
            ("components", str(count)),
            ("file", code_cell(path)),
        ]
    )
    return StepReport(
        "sbom",
        0,
        outputs,
        "\n".join(summary),
        details=(f"SBOM: {count} components, {path}",),
        attachment=str(path),
    )


def _provenance(statement: Mapping[str, Any], path: Path, extra: Mapping[str, str]) -> StepReport:
    predicate = statement.get("predicate")
    if not isinstance(predicate, Mapping):
        raise ReportError(f"provenance: {path} is not an in-toto statement with a predicate")
    definition = predicate.get("buildDefinition") or {}
    run = predicate.get("runDetails") or {}
    builder = _str((run.get("builder") or {}).get("id"))
    build_type = _str(definition.get("buildType"))
    outputs = {"provenance": str(path), "builder-id": builder, "build-type": build_type, **extra}
    digest = _statement_digest(statement)
    if digest:
        outputs.setdefault("digest", digest)
    summary = ["### chaingate: SLSA provenance", ""]
    summary += _facts(
        [
            ("subject", code_cell(digest)),
            ("builder", code_cell(builder)),
            ("build type", code_cell(build_type)),
            ("file", code_cell(path)),
        ]
    )
    return StepReport(
        "provenance",
        0,
        outputs,
        "\n".join(summary),
        details=(f"provenance: builder {builder}, {path}",),
        attachment=str(path),
    )


def _attest(step: str, result: Mapping[str, Any], extra: Mapping[str, str]) -> StepReport:
    signer = result.get("signer") or {}
    rekor = result.get("rekor") or {}
    outputs = {
        "digest": _str(result.get("digest")),
        "referrer": _str(result.get("referrer")),
        "predicate-type": _str(result.get("predicateType")),
        "bundle-digest": _str(result.get("bundleDigest")),
        "rekor-log-index": _str(rekor.get("logIndex")),
        "signer": _str(signer.get("san")),
        "issuer": _str(signer.get("issuer")),
        **extra,
    }
    if not outputs["referrer"].startswith("sha256:"):
        raise ReportError(f"{step}: the result names no attached referrer")
    summary = [
        f"### chaingate: {'signed' if step == 'sign' else 'attested'} {markdown_cell(outputs['predicate-type'])}",
        "",
    ]
    summary += _facts(
        [
            ("image", code_cell(result.get("image"))),
            ("referrer", code_cell(outputs["referrer"])),
            ("signer", code_cell(outputs["signer"])),
            ("issuer", code_cell(outputs["issuer"])),
            (
                "Rekor",
                f"log index {markdown_cell(outputs['rekor-log-index'])} at {markdown_cell(rekor.get('integratedTimeUTC'))}",
            ),
        ]
    )
    details = (f"attached {outputs['predicate-type']} as {outputs['referrer']} (signer {outputs['signer']})",)
    return StepReport(step, 0, outputs, "\n".join(summary), details=details)


def decision_table(record: Mapping[str, Any]) -> list[str]:
    """The decision record's clauses as a Markdown table: clause, result, exception, reason."""
    rows = []
    for clause in record.get("clauses") or []:
        if not isinstance(clause, Mapping):
            continue
        result = _str(clause.get("result"))
        rows.append(
            (
                f"`{markdown_cell(clause.get('clause'))}`",
                RESULT_ICONS.get(result, markdown_cell(result)),
                markdown_cell(clause.get("exceptionId")),
                markdown_cell(clause.get("reason")),
            )
        )
    return _table(("clause", "result", "exception", "reason"), rows)


def _headline(verdict: str, mode: str) -> str:
    if verdict == "allow":
        return "✅ ALLOW"
    if mode == "warn":
        return "⚠️ DENY (warn mode: reported, not enforced)"
    return "❌ DENY"


def _failing(record: Mapping[str, Any]) -> list[str]:
    return [
        f"{c.get('clause')}: {c.get('reason') or 'failed'}"
        for c in record.get("clauses") or []
        if isinstance(c, Mapping) and c.get("result") == "fail"
    ]


def _verify(
    exit_code: int, record: Mapping[str, Any], path: Path | None, extra: Mapping[str, str]
) -> StepReport:
    verdict = _str(record.get("verdict"))
    mode = _str(record.get("mode"))
    if verdict not in ("allow", "deny"):
        raise ReportError("verify: the decision record has no verdict")
    allowed = record.get("allowed") is True
    if allowed != (exit_code == 0):
        raise ReportError(f"verify: exit code {exit_code} contradicts the record (allowed: {allowed})")
    attachment = record.get("vsaAttestation") or {}
    outputs = {
        "verdict": verdict,
        "allowed": _str(allowed),
        "mode": mode,
        "digest": _str(record.get("digest")),
        "image": _str(record.get("image")),
        "vsa-referrer": _str(attachment.get("referrer")) if attachment.get("signed") else "",
        **({"decision": str(path)} if path else {}),
        **extra,
    }
    if outputs["digest"] and record.get("repository"):
        outputs.setdefault("image-url", _str(record.get("repository")))
    failing = _failing(record)
    errors = tuple(failing) if not allowed else ()
    warnings = [_str(w) for w in record.get("warnings") or []]
    if allowed and verdict == "deny":
        warnings = [f"denied by policy, allowed only because mode is warn: {f}" for f in failing] + warnings
    summary = [f"### chaingate verify: {_headline(verdict, mode)}", ""]
    summary += _facts(
        [
            ("image", code_cell(record.get("image"))),
            ("digest", code_cell(record.get("digest") or "(not resolved)")),
            (
                "policy",
                f"{code_cell(record.get('policy'))} ({code_cell(record.get('policyDigest'))}), mode {markdown_cell(mode)}",
            ),
            ("project", code_cell(record.get("project")) if record.get("project") else ""),
        ]
    )
    summary += ["", *decision_table(record)]
    ignored = [i for i in record.get("ignored") or [] if isinstance(i, Mapping)]
    if ignored:
        summary += ["", f"**Ignored attachments ({len(ignored)})** — found, but they did not count:", ""]
        summary += _table(
            ("attachment", "reason"),
            [(code_cell(i.get("digest")), markdown_cell(i.get("reason"))) for i in ignored],
        )
    if warnings:
        summary += ["", "**Warnings**", ""] + [f"- {markdown_cell(w)}" for w in warnings[:MAX_ROWS]]
    if attachment.get("signed"):
        summary += [
            "",
            f"Decision signed and attached as VSA referrer {code_cell(attachment.get('referrer'))}.",
        ]
    elif attachment:
        summary += ["", f"Decision record not signed: {markdown_cell(attachment.get('reason'))}."]
    details = [f"{_headline(verdict, mode)} {record.get('image')} ({record.get('digest')})"]
    details += [
        f"  {c.get('clause')}: {c.get('result')} — {c.get('reason')}"
        for c in record.get("clauses") or []
        if isinstance(c, Mapping)
    ]
    return StepReport(
        "verify",
        exit_code,
        outputs,
        "\n".join(summary),
        errors=errors,
        warnings=tuple(warnings),
        details=tuple(details),
        attachment=str(path) if path else None,
    )


def _deploy(result: Mapping[str, Any], path: Path | None, extra: Mapping[str, str]) -> StepReport:
    decision = result.get("decision") or {}
    project = result.get("project") or {}
    deployer = result.get("deployer") or {}
    kind = "app" if "app" in result else "job"
    outputs = {
        "image": _str(result.get("image")),
        "digest": _str(result.get("digest")),
        "verdict": _str(decision.get("verdict")),
        "project": _str(project.get("id")),
        kind: _str(result.get(kind)),
        "revision": _str(result.get("revision")),
        "endpoint": _str(result.get("endpoint")),
        "previous-image": _str(result.get("previousImage")),
        "record-referrer": _str(result.get("attachedAs")),
        **({"record": str(path)} if path else {}),
        **extra,
    }
    if not outputs["digest"].startswith("sha256:"):
        raise ReportError("deploy: the deployment record names no digest")
    if outputs["image"]:
        outputs.setdefault("image-url", outputs["image"].split("@", 1)[0])
    warnings = [_str(w) for w in result.get("warnings") or []]
    if decision.get("verdict") != "allow":
        warnings.insert(0, "deployed in warn mode although the policy denies this image")
    job_run = result.get("jobRun")
    summary = [f"### chaingate deploy: 🚀 {markdown_cell(outputs['image'])}", ""]
    summary += _facts(
        [
            (
                "target",
                f"{kind} {code_cell(outputs[kind])} in project {code_cell(project.get('name') or outputs['project'])} ({markdown_cell(project.get('region'))})",
            ),
            ("revision", code_cell(outputs["revision"])),
            (
                "job run",
                markdown_cell(f"{job_run.get('name')}: {job_run.get('status')}")
                if isinstance(job_run, Mapping)
                else "",
            ),
            ("endpoint", markdown_cell(outputs["endpoint"])),
            (
                "previous image",
                code_cell(outputs["previous-image"]) if outputs["previous-image"] else "(created now)",
            ),
            (
                "decision",
                f"{markdown_cell(decision.get('verdict'))} ({markdown_cell(decision.get('mode'))}), record {code_cell(decision.get('digest'))}",
            ),
            ("deployer", code_cell(deployer.get("iamId"))),
            ("deployment record", code_cell(outputs["record-referrer"] or "not attached")),
        ]
    )
    if warnings:
        summary += ["", "**Warnings**", ""] + [f"- {markdown_cell(w)}" for w in warnings[:MAX_ROWS]]
    details = (
        f"deployed {outputs['image']} to {kind} {outputs[kind]} (revision {outputs['revision'] or '-'})",
    )
    return StepReport(
        "deploy",
        0,
        outputs,
        "\n".join(summary),
        warnings=tuple(warnings),
        details=details,
        attachment=str(path) if path else None,
    )


def _failure(step: str, exit_code: int, stderr: str, extra: Mapping[str, str]) -> StepReport:
    message = _annotation_text(error_text(stderr))
    what = "denied" if exit_code == EXIT_DENIED else f"failed (exit {exit_code})"
    summary = [f"### chaingate {step}: ❌ {what}", "", "```text", message.replace("```", "'''"), "```"]
    return StepReport(step, exit_code, dict(extra), "\n".join(summary), errors=(message,), details=(message,))


def build_report(
    step: str,
    exit_code: int,
    *,
    result: Path | None = None,
    stderr: str = "",
    extra: Mapping[str, str] | None = None,
) -> StepReport:
    """The report of ``chaingate <step>`` from its exit code, its result file and its stderr.

    A successful step whose result is missing or unreadable raises
    :class:`ReportError`: reporting "done" with no digest or verdict would be
    worse than failing the step.
    """
    if step not in STEPS:
        raise ReportError(f"unknown step {step!r}; expected one of {', '.join(STEPS)}")
    extra = dict(extra or {})
    document = _load_json(result, f"{step} result")
    if step == "verify" and isinstance(document, Mapping) and exit_code in (0, EXIT_DENIED):
        return _verify(exit_code, document, result, extra)
    if exit_code != 0:
        return _failure(step, exit_code, stderr, extra)
    if not isinstance(document, Mapping):
        raise ReportError(
            f"{step}: chaingate succeeded but left no result{f' in {result}' if result else ''}"
        )
    if step == "resolve":
        return _resolve(document, extra)
    if step == "sbom":
        assert result is not None
        return _sbom(document, result, extra)
    if step == "provenance":
        assert result is not None
        return _provenance(document, result, extra)
    if step in ("attest", "sign"):
        return _attest(step, document, extra)
    if step == "deploy":
        return _deploy(document, result, extra)
    return _verify(exit_code, document, result, extra)


# -- channels ---------------------------------------------------------------------------------------


def _append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def _log_lines(text: str) -> str:
    return text_lines(text, limit=MAX_CELL_CHARS, max_lines=MAX_ERROR_LINES, continuation=2)


def write_log(report: StepReport, env: Mapping[str, str], out: TextIO) -> None:
    """The human lines for the step log, neutralised; on GitHub, inside stop-commands as well."""
    shown = [*report.details, *(f"{k}: {v}" for k, v in report.outputs.items() if v)]
    on_github = env.get("GITHUB_ACTIONS") == "true"
    if not on_github:
        # Annotations carry these on GitHub; elsewhere the log is the only place they show.
        shown += [f"warning: {w}" for w in report.warnings] + [f"error: {e}" for e in report.errors]
    log = _StoppedLog(out, on_github)
    log.open()
    for line in shown:
        log.write(f"{_log_lines(line)}\n")
    log.close()


def write_github(report: StepReport, env: Mapping[str, str], out: TextIO) -> None:
    """Outputs, the summary section and annotations, each only where the runner asked for it."""
    if env.get("GITHUB_OUTPUT"):
        _append(env["GITHUB_OUTPUT"], github_output_block(report.outputs))
    if env.get("GITHUB_STEP_SUMMARY"):
        _append(env["GITHUB_STEP_SUMMARY"], report.summary.rstrip("\n") + "\n\n")
    if env.get("GITHUB_ACTIONS") == "true":
        title = f"chaingate {report.step}"
        for message in report.warnings:
            out.write(workflow_command("warning", _annotation_text(message), title=title) + "\n")
        for message in report.errors:
            out.write(workflow_command("error", _annotation_text(message), title=title) + "\n")
        out.flush()


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


Runner = Callable[[Sequence[str]], int]


def _run(argv: Sequence[str]) -> int:
    return subprocess.run(list(argv), check=False, stdout=sys.stderr, timeout=120).returncode


def ibm_evidence(
    report: StepReport,
    env: Mapping[str, str],
    *,
    which: Callable[[str], str | None] = shutil.which,
    run: Runner = _run,
) -> list[str]:
    """Hand the result to IBM DevSecOps when its tools are on PATH; returns warnings, never raises.

    ``set_env chaingate-<output>`` lets later stages read the digest or the
    verdict; ``collect-evidence`` records sign/attest/verify/deploy as image-signing
    evidence for the asset ``$CHAINGATE_IBM_ASSET_KEY`` (default ``app-image``,
    the name IBM's templates save the built image under).
    """
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
        for name, value in report.outputs.items():
            if value:
                call(["set_env", f"chaingate-{name}", value])
    evidence_type = env.get(IBM_EVIDENCE_TYPE_ENV) or IBM_EVIDENCE_TYPES.get(report.step)
    if evidence_type and which("collect-evidence"):
        argv = [
            "collect-evidence",
            "--tool-type",
            "chaingate",
            "--status",
            "success" if report.ok else "failure",
            "--evidence-type",
            evidence_type,
            "--asset-type",
            "artifact",
            "--asset-key",
            env.get(IBM_ASSET_KEY_ENV) or "app-image",
        ]
        if report.attachment and Path(report.attachment).is_file():
            argv += ["--attachment", report.attachment]
        call(argv)
    return problems


# -- running a step ---------------------------------------------------------------------------------


#: The one workflow command relayed from chaingate's output: its mask for a token it fetched itself.
MASK_COMMAND = "::add-mask::"


class _StoppedLog:
    """The step log between ``::stop-commands::TOKEN`` and ``::TOKEN::``, with a fresh random TOKEN.

    The runner executes no workflow command between the markers, and only the
    exact resume line ends the block, so the TOKEN must be one nothing in the
    output can know: 128 random bits, new for every block.
    """

    def __init__(self, out: TextIO, enabled: bool) -> None:
        self.out, self.enabled = out, enabled
        self.token: str | None = None
        self._at_line_start = True

    def open(self) -> None:
        if self.enabled and self.token is None:
            self.token = secrets.token_hex(16)
            self._raw(f"::stop-commands::{self.token}\n")

    def close(self) -> None:
        if self.token is not None:
            if not self._at_line_start:
                self._raw("\n")
            self._raw(f"::{self.token}::\n")
            self.token = None
        self.out.flush()

    def write(self, text: str) -> None:
        self._raw(text)
        self.out.flush()

    def command(self, line: str) -> None:
        """A line for the runner itself: written between two blocks, so it is obeyed."""
        reopen = self.token is not None
        self.close()
        self.write(line if line.endswith("\n") else line + "\n")
        if reopen:
            self.open()

    def _raw(self, text: str) -> None:
        if text:
            self.out.write(text)
            self._at_line_start = text.endswith("\n")


def run_chaingate(
    argv: Sequence[str], *, stdout_path: Path | None, err: TextIO, github: bool = False
) -> tuple[int, str]:
    """Run ``chaingate ARGV`` with this interpreter; its output is streamed to ``err`` live, stderr kept
    (bounded) for the report.

    On GitHub (``github``) the whole run is printed inside stop-commands, so a
    line that quotes a server cannot issue a workflow command even if it
    escaped neutralising. The exception is chaingate's own ``::add-mask::`` for
    a token it fetched (it must reach the runner before the token could be
    printed): the block is closed for that line and reopened with a new token.
    Forging one could only hide text from the log, never run a command or show
    a secret. Mask lines are left out of the kept text, so no report ever
    quotes one. stdout, unless written to ``stdout_path``, joins stderr: one
    stream, so nothing of it can land outside the block.
    """
    command = [sys.executable, "-m", "chaingate", *argv]
    kept: list[str] = []
    size = 0
    log = _StoppedLog(err, github)
    stdout_handle = stdout_path.open("wb") if stdout_path is not None else None
    try:
        log.open()
        # stdout goes to its file, or joins stderr in the one pipe read here.
        streams = (stdout_handle, subprocess.PIPE) if stdout_handle else (subprocess.PIPE, subprocess.STDOUT)
        with subprocess.Popen(command, stdout=streams[0], stderr=streams[1]) as proc:
            output = proc.stderr if stdout_handle else proc.stdout
            assert output is not None
            for raw in output:
                line = raw.decode("utf-8", errors="replace")
                if line.startswith(MASK_COMMAND):
                    log.command(line)
                    continue
                log.write(line)
                if line.startswith("::") or size > 256 * 1024:
                    continue
                kept.append(line)
                size += len(line)
            code = proc.wait()
    finally:
        log.close()
        if stdout_handle is not None:
            stdout_handle.close()
    return code, "".join(kept)


# -- command line -----------------------------------------------------------------------------------


def _pairs(items: Sequence[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ReportError(f"{flag}: {item!r} is not NAME=VALUE")
        out[key] = value
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chaingate.ci.outputs",
        description="Report a chaingate step to the CI it runs in (GitHub outputs/summary/annotations, "
        "Tekton results, IBM DevSecOps evidence).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("report", help="report one step's result")
    p.add_argument("step", choices=STEPS)
    p.add_argument("--exit-code", type=int, required=True, help="chaingate's exit code")
    p.add_argument("--result", type=Path, help="the JSON the step wrote (record, statement, SBOM…)")
    p.add_argument("--stderr", type=Path, help="chaingate's stderr, for the error of a failed step")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="an extra output (repeatable)")
    p.add_argument(
        "--tekton-result",
        action="append",
        metavar="NAME[:OUTPUT]=PATH",
        help="write this Tekton result; NAME:OUTPUT picks the output (repeatable)",
    )
    r = sub.add_parser(
        "run",
        help="run chaingate, then report its result (chaingate's exit code is kept)",
        usage="%(prog)s STEP [options] -- CHAINGATE-ARGS…",
    )
    r.add_argument("step", choices=STEPS)
    r.add_argument("--result", type=Path, help="the JSON the step writes (-o FILE), or where its stdout goes")
    r.add_argument(
        "--capture-stdout",
        action="store_true",
        help="write chaingate's stdout to --result instead of the log",
    )
    r.add_argument("--set", action="append", metavar="NAME=VALUE", help="an extra output (repeatable)")
    r.add_argument(
        "--tekton-result",
        action="append",
        metavar="NAME[:OUTPUT]=PATH",
        help="write this Tekton result; NAME:OUTPUT picks the output (repeatable)",
    )
    m = sub.add_parser("mask", help="print ::add-mask:: for the values of these environment variables")
    m.add_argument("names", nargs="+", metavar="VAR")
    return parser


def _deliver(report: StepReport, tekton: Mapping[str, str], env: Mapping[str, str], out: TextIO) -> None:
    write_log(report, env, out)
    write_github(report, env, out)
    write_tekton_results(report, tekton)
    for problem in ibm_evidence(report, env):
        print(f"chaingate: warning: IBM DevSecOps evidence: {problem}", file=sys.stderr)


def main(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None, out: TextIO | None = None
) -> int:
    """``mask``, ``report`` or ``run``; the exit code is chaingate's, or 2 when the result cannot be reported."""
    env = os.environ if env is None else env
    out = out or sys.stdout
    given = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first "--" is chaingate's own command line, never this module's options.
    split = given.index("--") if "--" in given else len(given)
    args = _parser().parse_args(given[:split])
    chaingate_argv = given[split + 1 :]
    if args.command == "mask":
        if env.get("GITHUB_ACTIONS") == "true":
            for name in args.names:
                out.writelines(f"{line}\n" for line in mask_commands(env.get(name, "")))
            out.flush()
        return 0
    code = args.exit_code if args.command == "report" else 0
    try:
        extra = _pairs(args.set, "--set")
        tekton = _pairs(args.tekton_result, "--tekton-result")
        if args.command == "run":
            command = chaingate_argv
            if not command:
                raise ReportError("run: name the chaingate command after --")
            if args.capture_stdout and args.result is None:
                raise ReportError("run: --capture-stdout needs --result FILE")
            code, stderr = run_chaingate(
                command,
                stdout_path=args.result if args.capture_stdout else None,
                err=sys.stderr,
                github=env.get("GITHUB_ACTIONS") == "true",
            )
        else:
            stderr = ""
            if args.stderr is not None and args.stderr.is_file():
                stderr = args.stderr.read_text(encoding="utf-8", errors="replace")[-256 * 1024 :]
        report = build_report(args.step, code, result=args.result, stderr=stderr, extra=extra)
        _deliver(report, tekton, env, out)
    except (ReportError, OSError) as e:
        detail = (
            str(e) if isinstance(e, ReportError) else f"{getattr(e, 'filename', '') or ''} {e.strerror or e}"
        )
        message = f"chaingate {args.step}: cannot report the result: {detail.strip()}"
        if env.get("GITHUB_ACTIONS") == "true":
            out.write(workflow_command("error", message, title=f"chaingate {args.step}") + "\n")
            out.flush()
        print(f"chaingate: error: {message}", file=sys.stderr)
        return code if code != 0 else EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
