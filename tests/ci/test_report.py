"""``chaingate.ci.report``: reading a step's result into one report, and refusing what cannot be reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chaingate.ci import report as reports
from chaingate.ci.report import ReportError, build_report, clause_results
from chaingate.errors import EXIT_USAGE, ChaingateError
from chaingate.policy.interface import ClauseResult
from chaingate.policy.record import Decision

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


def test_markdown_cells_cannot_break_the_table_or_inject_html() -> None:
    assert reports.markdown_cell("a | b\n<script>&") == "a \\| b<br>&lt;script&gt;&amp;"
    assert reports.markdown_cell(None) == "-"
    assert reports.code_cell("x`y|z") == "`x'y\\|z`"


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
    assert report.details[1:] == (
        "  signers: fail — no attestation counted | see <ignored>\nsecond line",
        "  sbom: waived — waived",
    )


def test_warn_mode_reports_the_denial_as_warnings_not_errors(tmp_path: Path) -> None:
    report = build_report("verify", 0, result=write(tmp_path, "d.json", record(mode="warn")))
    assert report.ok and report.errors == ()
    assert report.warnings[0].startswith("denied by policy, allowed only because mode is warn: signers:")
    assert "⚠️ DENY (warn mode" in report.summary


def test_an_exit_code_that_contradicts_the_record_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="contradicts"):
        build_report("verify", 0, result=write(tmp_path, "d.json", record()))


def test_the_clauses_are_read_back_as_the_typed_results_the_gate_wrote() -> None:
    clauses = (
        ClauseResult("signers", "pass", "signed by the release workflow", ("sha256:" + "12" * 32,)),
        ClauseResult("vulnerabilities", "waived", "CVE-2024-1234 is critical", (), "EXC-12"),
        ClauseResult("sbom", "skipped", "not required"),
    )
    decision = Decision(
        "us.icr.io/team/app@" + DIGEST, DIGEST, "us.icr.io/team/app", "enforce", "allow", clauses, (), (),
        time=datetime(2024, 5, 1, tzinfo=UTC),
    )  # fmt: skip
    assert clause_results(json.loads(json.dumps(decision.record()))) == clauses
    assert clause_results({"verdict": "allow"}) == ()


@pytest.mark.parametrize(
    ("clauses", "problem"),
    [
        ("signers", "clauses are not a list"),
        (["signers"], r"clauses\[0\] is not an object"),
        ([{"result": "pass", "reason": ""}], r"clauses\[0\]: clause is not a name"),
        ([{"clause": "sbom", "result": "maybe", "reason": ""}], r"\(sbom\): result 'maybe' is not one of"),
        ([{"clause": "sbom", "result": "fail"}], r"\(sbom\): reason is not a string"),
        (
            [{"clause": "sbom", "result": "fail", "reason": "", "evidence": "sha256:1"}],
            "evidence is not a list",
        ),
        (
            [{"clause": "sbom", "result": "fail", "reason": "", "exceptionId": 12}],
            "exceptionId is not a string",
        ),
    ],
)
def test_a_record_whose_clauses_are_not_clause_results_is_refused(
    clauses: object, problem: str, tmp_path: Path
) -> None:
    with pytest.raises(ReportError, match=problem):
        build_report("verify", 1, result=write(tmp_path, "d.json", record(clauses=clauses)))


def test_report_error_is_a_one_line_chaingate_error_with_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ChaingateError) as caught:
        build_report("sbom", 0, result=tmp_path / "bad.json")
    assert isinstance(caught.value, ReportError) and caught.value.exit_code == EXIT_USAGE
    assert "\n" not in ReportError("two\nlines").message


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
    assert reports.error_text("just a crash\n") == "just a crash"
    assert reports.error_text("") == "no error message (see the step log)"


def test_summary_cells_and_failure_blocks_are_neutralised() -> None:
    assert reports.markdown_cell("red \x1b[31m\u2028::x | y") == "red \\x1b[31m<br>\\x3a:x \\| y"
    assert reports.code_cell("a\r\n\x07`b") == "`a \\x07'b`"
    stderr = "progress\nchaingate: error: said \x1b[31mno\n  - \x00::x\n\t  ::error::pwned\n  hint: h\x9b2J\nafter\n"
    report = build_report("resolve", 2, stderr=stderr)
    (message,) = report.errors
    assert message.splitlines() == [
        "said \\x1b[31mno",
        "  - \\x00::x",
        "   \\x3a:error::pwned",
        "  hint: h\\x9b2J",
    ]
    assert "\x1b" not in report.summary and "\\x1b[31m" in report.summary
