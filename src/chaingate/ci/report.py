"""A chaingate step's result, reduced to what every CI channel needs: the report and its readers.

The GitHub Action, the Tekton Tasks and the IBM Toolchain steps all run the
same CLI with ``--format json`` (or ``-o FILE``) and hand the result here, so
the rules that are easy to get subtly wrong in shell live in one tested
place. This module reads the step's result (the decision record, the
statement, the SBOM, chaingate's stderr) into one :class:`StepReport`; each
channel's writer sits beside its context adapter (:mod:`chaingate.ci.github`,
:mod:`chaingate.ci.tekton`, :mod:`chaingate.ci.ibm_toolchain`), and
:mod:`chaingate.ci.runner` runs chaingate and writes the step log.

Text that came from outside (reasons quoting an attachment, a registry's
error) is neutralised line by line (``chaingate.text``: no control
characters, no line that starts with ``::``, no ``##[``) before any channel
gets it. Reporting never changes a verdict: the calling step exits with
chaingate's own exit code, and reporting fails only when it could not report
at all (:class:`ReportError`, exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, get_args

from chaingate.errors import EXIT_DENIED, EXIT_USAGE, ChaingateError
from chaingate.text import lines as text_lines
from chaingate.text import one_line

if TYPE_CHECKING:
    from chaingate.policy.interface import ClauseResult

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
RESULT_ICONS = {"pass": "✅ pass", "fail": "❌ fail", "waived": "⚠️ waived", "skipped": "⏭️ skipped"}

#: A JSON object as read from a result file: its values are whatever the file holds.
Document = Mapping[str, Any]


class ReportError(ChaingateError):
    """The step's result cannot be read, so nothing trustworthy can be reported (exit 2)."""

    exit_code = EXIT_USAGE


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


# -- neutralised text ---------------------------------------------------------------------------------


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


def annotation_text(message: str) -> str:
    """An annotation's message: neutralised line by line, bounded like the error block it usually quotes."""
    return text_lines(message, limit=MAX_ERROR_CHARS, max_lines=MAX_ERROR_LINES) or "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"| … and {len(rows) - MAX_ROWS} more |" + " |" * (len(header) - 1))
    return lines


def _facts(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return _table(("", ""), [(f"**{k}**", v) for k, v in pairs if v])


# -- reading results --------------------------------------------------------------------------------


def _load_json(path: Path | None, what: str) -> object:
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
        return cast(object, json.loads(data))
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


def clause_results(record: Mapping[str, object]) -> tuple[ClauseResult, ...]:
    """The ``clauses`` of a decision record read from a file, as the typed results the gate wrote.

    Every reader of a record's clauses goes through here, so a record that
    does not hold what :meth:`ClauseResult.to_dict` writes is refused once,
    naming the entry, instead of being rendered half-empty.
    """
    from chaingate.policy.interface import ClauseResult, Result

    entries = record.get("clauses")
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ReportError("verify: the decision record's clauses are not a list")
    results = []
    for index, entry in enumerate(entries):
        where = f"verify: the decision record's clauses[{index}]"
        if not isinstance(entry, Mapping):
            raise ReportError(f"{where} is not an object")
        clause, result, reason = entry.get("clause"), entry.get("result"), entry.get("reason")
        evidence, exception_id = entry.get("evidence", []), entry.get("exceptionId")
        if not isinstance(clause, str) or not clause:
            raise ReportError(f"{where}: clause is not a name")
        if result not in get_args(Result):
            raise ReportError(
                f"{where} ({clause}): result {result!r} is not one of {', '.join(get_args(Result))}"
            )
        if not isinstance(reason, str):
            raise ReportError(f"{where} ({clause}): reason is not a string")
        if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
            raise ReportError(f"{where} ({clause}): evidence is not a list of digests")
        if exception_id is not None and not isinstance(exception_id, str):
            raise ReportError(f"{where} ({clause}): exceptionId is not a string")
        results.append(ClauseResult(clause, cast(Result, result), reason, tuple(evidence), exception_id))
    return tuple(results)


def _str(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _statement_digest(statement: Document) -> str:
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


# -- per step -----------------------------------------------------------------------------------------


def _resolve(result: Document, extra: Mapping[str, str]) -> StepReport:
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


def _file_step(
    step: str, title: str, facts: Sequence[tuple[str, str]], outputs: dict[str, str], detail: str, path: Path
) -> StepReport:
    """A step whose evidence is the one file it wrote (SBOM, provenance): the file closes the facts and the log line."""
    summary = [f"### chaingate: {title}", "", *_facts([*facts, ("file", code_cell(path))])]
    return StepReport(
        step, 0, outputs, "\n".join(summary), details=(f"{detail}, {path}",), attachment=str(path)
    )


def _sbom(document: Document, path: Path, extra: Mapping[str, str]) -> StepReport:
    if document.get("bomFormat") != "CycloneDX":
        raise ReportError(f"sbom: {path} is not a CycloneDX document")
    components = document.get("components")
    count = len(components) if isinstance(components, list) else 0
    outputs = {"sbom": str(path), "components": str(count), **extra}
    facts = [
        ("image", code_cell(extra.get("image", ""))),
        ("format", f"CycloneDX {markdown_cell(document.get('specVersion'))}"),
        ("components", str(count)),
    ]
    return _file_step("sbom", "SBOM", facts, outputs, f"SBOM: {count} components", path)


def _provenance(statement: Document, path: Path, extra: Mapping[str, str]) -> StepReport:
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
    facts = [
        ("subject", code_cell(digest)),
        ("builder", code_cell(builder)),
        ("build type", code_cell(build_type)),
    ]
    return _file_step("provenance", "SLSA provenance", facts, outputs, f"provenance: builder {builder}", path)


def _attest(step: str, result: Document, extra: Mapping[str, str]) -> StepReport:
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


def decision_table(clauses: Sequence[ClauseResult]) -> list[str]:
    """The decision's clauses as a Markdown table: clause, result, exception, reason."""
    rows = [
        (
            f"`{markdown_cell(c.clause)}`",
            RESULT_ICONS[c.result],
            markdown_cell(c.exception_id),
            markdown_cell(c.reason),
        )
        for c in clauses
    ]
    return _table(("clause", "result", "exception", "reason"), rows)


def _headline(verdict: str, mode: str) -> str:
    if verdict == "allow":
        return "✅ ALLOW"
    if mode == "warn":
        return "⚠️ DENY (warn mode: reported, not enforced)"
    return "❌ DENY"


def _verify(exit_code: int, record: Document, path: Path | None, extra: Mapping[str, str]) -> StepReport:
    verdict = _str(record.get("verdict"))
    mode = _str(record.get("mode"))
    if verdict not in ("allow", "deny"):
        raise ReportError("verify: the decision record has no verdict")
    allowed = record.get("allowed") is True
    if allowed != (exit_code == 0):
        raise ReportError(f"verify: exit code {exit_code} contradicts the record (allowed: {allowed})")
    clauses = clause_results(record)
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
    failing = [f"{c.clause}: {c.reason or 'failed'}" for c in clauses if c.result == "fail"]
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
    summary += ["", *decision_table(clauses)]
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
    details += [f"  {c.clause}: {c.result} — {c.reason}" for c in clauses]
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


def _deploy(result: Document, path: Path | None, extra: Mapping[str, str]) -> StepReport:
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
    message = annotation_text(error_text(stderr))
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
