"""``chaingate.ci.outputs``: the escaping, file formats and fail-closed rules every CI channel relies on."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


HOSTILE = "denied\n::add-mask::x\r::error::pwned \x1b[31mred\u2028::warning::u2028 ##[error]legacy"
#: HOSTILE as every channel shows it: split where it broke lines, each line neutralised and indented.
SHOWN = [
    "denied",
    "  \\x3a:add-mask::x",
    "  \\x3a:error::pwned \\x1b[31mred",
    "  \\x3a:warning::u2028 #\\x23[error]legacy",
]


def test_the_log_wraps_untrusted_text_in_stop_commands_on_github() -> None:
    report = StepReport(
        "verify",
        1,
        {"verdict": "deny"},
        "",
        errors=(HOSTILE,),
        warnings=(HOSTILE,),
        details=("::set-env x", HOSTILE),
    )
    out = io.StringIO()
    outputs.write_log(report, {"GITHUB_ACTIONS": "true"}, out)
    outputs.write_github(report, {"GITHUB_ACTIONS": "true"}, out)
    outputs.write_log(report, {"GITHUB_ACTIONS": "true"}, out)
    text = out.getvalue()
    run = ActionRun()
    stopped: list[str] = []
    process_commands(text, run, stopped)
    assert run.masks == [] and stopped == []  # nothing masked, every block closed again
    assert run.log[:6] == ["\\x3a:set-env x", *SHOWN, "verdict: deny"]
    assert [(a.level, a.message) for a in run.annotations] == [
        (level, "\n".join(line.strip() for line in SHOWN)) for level in ("warning", "error")
    ]
    tokens = re.findall(r"^::stop-commands::([0-9a-f]{32})$", text, re.M)
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    assert "\x1b" not in text and "\u2028" not in text


def test_the_log_outside_github_is_neutralised_and_unmarked() -> None:
    report = StepReport(
        "deploy", 1, {"revision": "web\n::error::x"}, "", errors=(HOSTILE,), details=(HOSTILE,)
    )
    out = io.StringIO()
    outputs.write_log(report, {}, out)
    assert "::stop-commands::" not in out.getvalue()
    assert out.getvalue().splitlines() == [
        *SHOWN,
        "revision: web",
        "  \\x3a:error::x",
        f"error: {SHOWN[0]}",
        *SHOWN[1:],
    ]


def test_summary_cells_annotations_and_failure_blocks_are_neutralised() -> None:
    assert outputs.markdown_cell("red \x1b[31m\u2028::x | y") == "red \\x1b[31m<br>\\x3a:x \\| y"
    assert outputs.code_cell("a\r\n\x07`b") == "`a \\x07'b`"
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
    # The escaping itself is @actions/core's, unchanged: the runner reads back exactly the message sent.
    assert (
        outputs.workflow_command("error", "a%\r\nb", title="t:1,2") == "::error title=t%3A1%2C2::a%25%0D%0Ab"
    )


@pytest.fixture
def token_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """GitHub's OIDC token service on loopback, answering with a JWT-shaped value chaingate masks, then refuses."""
    token = "eyJhbGciOiJub25lIn0.eyJ4IjoxfQ.c2lnbmF0dXJl"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"value": token}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", f"http://127.0.0.1:{server.server_address[1]}/token")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-request-token")
    monkeypatch.delenv("SIGSTORE_ID_TOKEN", raising=False)
    try:
        yield token
    finally:
        server.shutdown()
        server.server_close()


def test_run_prints_chaingate_between_stop_commands_and_relays_only_its_own_masks(
    token_service: str, tmp_path: Path
) -> None:
    err = io.StringIO()
    code, kept = outputs.run_chaingate(
        ["sign", f"oci:{tmp_path / 'layout'}"], stdout_path=None, err=err, github=True
    )
    assert code == 2 and kept.startswith(
        "chaingate: error: identity token from the GitHub Actions token service"
    )
    rows = err.getvalue().splitlines()
    # Block, closed for the mask (which the runner must obey before the token can be printed), then a new block.
    first, second = (
        row.removeprefix("::stop-commands::") for row in rows if row.startswith("::stop-commands::")
    )
    assert re.fullmatch("[0-9a-f]{32}", first) and re.fullmatch("[0-9a-f]{32}", second) and first != second
    assert rows == [
        f"::stop-commands::{first}", f"::{first}::", f"::add-mask::{token_service}",
        f"::stop-commands::{second}", kept.strip(), f"::{second}::",
    ]  # fmt: skip
    run = ActionRun()
    process_commands(err.getvalue(), run, [])
    assert run.masks == [token_service] and run.log == [kept.strip()]
    assert "add-mask" not in kept  # no report quotes a workflow command


def test_run_outside_github_adds_nothing_and_stdout_joins_the_log(tmp_path: Path) -> None:
    err = io.StringIO()
    code, kept = outputs.run_chaingate(["--version"], stdout_path=None, err=err)
    assert code == 0 and err.getvalue() == kept and kept.startswith("chaingate ")
    err = io.StringIO()
    code, _ = outputs.run_chaingate(["--version"], stdout_path=tmp_path / "out", err=err, github=True)
    token = err.getvalue().splitlines()[0].removeprefix("::stop-commands::")
    assert code == 0 and err.getvalue() == f"::stop-commands::{token}\n::{token}::\n"
    assert (tmp_path / "out").read_text().startswith("chaingate ")


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
