"""``chaingate.ci.outputs``: the escaping, file formats and fail-closed rules every CI channel relies on."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from ci_emulation import ActionRun, parse_github_output, process_commands

from chaingate.ci import outputs
from chaingate.ci.outputs import ReportError, StepReport, build_report

DIGEST = "sha256:" + "ab" * 32


def record(verdict: str = "deny", mode: str = "enforce", **extra: Any) -> dict[str, Any]:
    allowed = verdict == "allow" or mode == "warn"
    return {
        "image": "us.icr.io/team/app@" + DIGEST,
        "digest": DIGEST,
        "repository": "us.icr.io/team/app",
        "policy": "policy.yaml",
        "policyDigest": "sha256:" + "cd" * 32,
        "mode": mode,
        "verdict": verdict,
        "allowed": allowed,
        "clauses": [
            {"clause": "signers", "result": "fail" if verdict == "deny" else "pass",
             "reason": "no attestation counted | see <ignored>\nsecond line", "evidence": [], "exceptionId": None},
            {"clause": "sbom", "result": "waived", "reason": "waived", "evidence": [], "exceptionId": "EXC-1"},
        ],
        "ignored": [{"digest": "sha256:" + "ef" * 32, "reason": "signed by someone else"}],
        "warnings": [],
        "vsaAttestation": {"signed": False, "reason": "no signing identity"},
        **extra,
    }  # fmt: skip


def write(tmp: Path, name: str, doc: object) -> Path:
    path = tmp / name
    path.write_text(json.dumps(doc))
    return path


def test_workflow_command_escaping_round_trips_through_the_runners_parser() -> None:
    message = "100% broken\r\nnext: line, with commas"
    line = outputs.workflow_command("error", message, title="chaingate: verify, step")
    run = ActionRun()
    process_commands(line + "\n", run, [])
    (annotation,) = run.annotations
    assert annotation.message == message and annotation.title == "chaingate: verify, step"
    assert "\n" not in line


def test_masks_are_one_per_line_and_escaped() -> None:
    assert outputs.mask_commands("line-one\r\nline%two\n\n") == [
        "::add-mask::line-one",
        "::add-mask::line%25two",
    ]
    assert outputs.mask_commands("") == []


def test_github_output_block_survives_values_that_look_like_the_format() -> None:
    values = {"a": "x=y", "b": "multi\nline\nghadelimiter_x", "c": ""}
    assert parse_github_output(outputs.github_output_block(values)) == values


def test_markdown_cells_cannot_break_the_table_or_inject_html() -> None:
    assert outputs.markdown_cell("a | b\n<script>&") == "a \\| b<br>&lt;script&gt;&amp;"
    assert outputs.markdown_cell(None) == "-"
    assert outputs.code_cell("x`y|z") == "`x'y\\|z`"


def test_a_denied_verify_reports_each_failing_clause_as_an_error(tmp_path: Path) -> None:
    report = build_report("verify", 1, result=write(tmp_path, "d.json", record()))
    assert report.outputs["verdict"] == "deny" and report.outputs["allowed"] == "false"
    assert report.outputs["image-url"] == "us.icr.io/team/app" and report.outputs["vsa-referrer"] == ""
    assert report.errors == ("signers: no attestation counted | see <ignored>\nsecond line",)
    table = report.summary
    assert "### chaingate verify: ❌ DENY" in table
    assert (
        "| `signers` | ❌ fail | - | no attestation counted \\| see &lt;ignored&gt;<br>second line |" in table
    )
    assert "| `sbom` | ⚠️ waived | EXC-1 | waived |" in table
    assert (
        "**Ignored attachments (1)**" in table and "Decision record not signed: no signing identity." in table
    )


def test_warn_mode_reports_the_denial_as_warnings_not_errors(tmp_path: Path) -> None:
    report = build_report("verify", 0, result=write(tmp_path, "d.json", record(mode="warn")))
    assert report.ok and report.errors == ()
    assert report.warnings[0].startswith("denied by policy, allowed only because mode is warn: signers:")
    assert "⚠️ DENY (warn mode" in report.summary


def test_an_exit_code_that_contradicts_the_record_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="contradicts"):
        build_report("verify", 0, result=write(tmp_path, "d.json", record()))


@pytest.mark.parametrize("step", ["resolve", "attest", "deploy", "sbom", "provenance", "verify"])
def test_success_without_a_result_is_an_error_not_an_empty_report(step: str, tmp_path: Path) -> None:
    with pytest.raises(ReportError):
        build_report(step, 0, result=tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ReportError, match="not JSON"):
        build_report(step, 0, result=tmp_path / "bad.json")


def test_a_failure_quotes_chaingates_error_block_and_drops_progress() -> None:
    stderr = (
        "layer 1/2: 25%\n"
        "chaingate: error: us.icr.io/team/app (sha256:…): denied by policy\n"
        "  - signers: no attestation counted\n"
        "  - provenance: missing\n"
        "Traceback-looking noise after\n"
    )
    report = build_report("deploy", 1, stderr=stderr)
    assert report.errors == (
        "us.icr.io/team/app (sha256:…): denied by policy\n  - signers: no attestation counted\n  - provenance: missing",
    )
    assert report.summary.startswith("### chaingate deploy: ❌ denied")
    assert outputs.error_text("just a crash\n") == "just a crash"
    assert outputs.error_text("") == "no error message (see the step log)"


def test_the_log_wraps_untrusted_text_in_stop_commands_on_github() -> None:
    report = StepReport(
        "verify", 1, {"verdict": "deny"}, "", errors=("::add-mask::x",), details=("::set-env x",)
    )
    out = io.StringIO()
    outputs.write_log(report, {"GITHUB_ACTIONS": "true"}, out)
    outputs.write_github(report, {"GITHUB_ACTIONS": "true"}, out)
    run = ActionRun()
    process_commands(out.getvalue(), run, [])
    assert run.masks == [] and "::set-env x" in run.log
    assert [a.message for a in run.annotations] == ["::add-mask::x"]


def test_tekton_results_are_exact_values_with_explicit_or_derived_names(tmp_path: Path) -> None:
    report = StepReport(
        "attest", 0, {"digest": DIGEST, "referrer": "sha256:" + "12" * 32, "vsa-referrer": ""}, ""
    )
    results = {
        "IMAGE_DIGEST": str(tmp_path / "d"),
        "PROVENANCE_REFERRER:referrer": str(tmp_path / "p"),
        "VSA_REFERRER": str(tmp_path / "v"),
    }
    outputs.write_tekton_results(report, results)
    assert (tmp_path / "d").read_text() == DIGEST
    assert (tmp_path / "p").read_text() == "sha256:" + "12" * 32
    assert (tmp_path / "v").read_text() == ""


def test_ibm_evidence_is_collected_only_where_pipelinectl_put_its_tools(tmp_path: Path) -> None:
    attachment = write(tmp_path, "decision.json", record())
    report = StepReport("verify", 1, {"verdict": "deny", "digest": DIGEST}, "", attachment=str(attachment))
    calls: list[list[str]] = []

    def run(argv: Any) -> int:
        calls.append(list(argv))
        return 0

    assert outputs.ibm_evidence(report, {}, which=lambda name: None, run=run) == []
    assert calls == []
    problems = outputs.ibm_evidence(
        report, {"CHAINGATE_IBM_ASSET_KEY": "web-image"}, which=lambda name: f"/usr/bin/{name}", run=run
    )
    assert problems == []
    assert ["set_env", "chaingate-verdict", "deny"] in calls
    evidence = calls[-1]
    assert evidence[:7] == ["collect-evidence", "--tool-type", "chaingate", "--status", "failure", "--evidence-type",
                            "com.ibm.cloud.image_signing"]  # fmt: skip
    assert evidence[-2:] == ["--attachment", str(attachment)]
    assert evidence[evidence.index("--asset-key") + 1] == "web-image"
    failing = outputs.ibm_evidence(report, {}, which=lambda name: name, run=lambda argv: 3)
    assert "collect-evidence exited 3" in failing


def test_main_reports_without_failing_the_gate_and_refuses_unreadable_results(tmp_path: Path) -> None:
    out_file, summary = tmp_path / "output", tmp_path / "summary"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out_file), "GITHUB_STEP_SUMMARY": str(summary)}
    result = write(tmp_path, "d.json", record())
    stdout = io.StringIO()
    code = outputs.main(
        ["report", "verify", "--exit-code", "1", "--result", str(result)], env=env, out=stdout
    )
    assert code == 1
    assert parse_github_output(out_file.read_text())["verdict"] == "deny"
    assert "### chaingate verify" in summary.read_text()
    assert "::error title=chaingate verify::signers" in stdout.getvalue()
    bad = io.StringIO()
    assert outputs.main(["report", "attest", "--exit-code", "0"], env=env, out=bad) == 2
    assert "cannot report the result" in bad.getvalue()


def test_main_mask_prints_only_inside_github_actions() -> None:
    out = io.StringIO()
    outputs.main(["mask", "A", "B", "MISSING"], env={"A": "s3cret", "B": "x\ny"}, out=out)
    assert out.getvalue() == ""
    outputs.main(
        ["mask", "A", "B", "MISSING"], env={"GITHUB_ACTIONS": "true", "A": "s3cret", "B": "x\ny"}, out=out
    )
    assert out.getvalue().splitlines() == ["::add-mask::s3cret", "::add-mask::x", "::add-mask::y"]
