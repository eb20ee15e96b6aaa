"""The writers beside each CI adapter: GitHub's workflow commands and files, Tekton results, IBM evidence.

Each is checked against what its consumer parses: the emulated runner
(``ci_emulation``) reads the GitHub output back as GitHub's runner does.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from chaingate.ci import github, ibm_toolchain, tekton
from chaingate.ci.report import StepReport
from support.ci_emulation import ActionRun, parse_github_output, process_commands

DIGEST = "sha256:" + "ab" * 32


def test_workflow_command_escaping_round_trips_through_the_runners_parser() -> None:
    message = "100% broken\r\nnext: line, with commas"
    line = github.workflow_command("error", message, title="chaingate: verify, step")
    run = ActionRun()
    process_commands(line + "\n", run, [])
    (annotation,) = run.annotations
    assert annotation.message == message and annotation.title == "chaingate: verify, step"
    assert "\n" not in line
    # The escaping itself is @actions/core's, unchanged: the runner reads back exactly the message sent.
    assert (
        github.workflow_command("error", "a%\r\nb", title="t:1,2") == "::error title=t%3A1%2C2::a%25%0D%0Ab"
    )


def test_masks_are_one_per_line_and_escaped() -> None:
    assert github.mask_commands("line-one\r\nline%two\n\n") == [
        "::add-mask::line-one",
        "::add-mask::line%25two",
    ]
    assert github.mask_commands("") == []


def test_github_output_block_survives_values_that_look_like_the_format() -> None:
    values = {"a": "x=y", "b": "multi\nline\nghadelimiter_x", "c": ""}
    assert parse_github_output(github.github_output_block(values)) == values


def test_github_files_and_annotations_are_written_only_where_the_runner_asked(tmp_path: Path) -> None:
    report = StepReport("verify", 1, {"verdict": "deny"}, "### summary\n", errors=("signers: x",))
    out = io.StringIO()
    github.write_github(report, {}, out)
    assert out.getvalue() == "" and list(tmp_path.iterdir()) == []
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
    }
    github.write_github(report, env, out)
    assert parse_github_output((tmp_path / "output").read_text()) == {"verdict": "deny"}
    assert (tmp_path / "summary").read_text() == "### summary\n\n"
    assert out.getvalue() == "::error title=chaingate verify::signers: x\n"


def test_tekton_results_are_exact_values_with_explicit_or_derived_names(tmp_path: Path) -> None:
    report = StepReport(
        "attest", 0, {"digest": DIGEST, "referrer": "sha256:" + "12" * 32, "vsa-referrer": ""}, ""
    )
    results = {
        "IMAGE_DIGEST": str(tmp_path / "d"),
        "PROVENANCE_REFERRER:referrer": str(tmp_path / "p"),
        "VSA_REFERRER": str(tmp_path / "v"),
    }
    tekton.write_tekton_results(report, results)
    assert (tmp_path / "d").read_text() == DIGEST
    assert (tmp_path / "p").read_text() == "sha256:" + "12" * 32
    assert (tmp_path / "v").read_text() == ""


def test_ibm_evidence_is_collected_only_where_pipelinectl_put_its_tools(tmp_path: Path) -> None:
    attachment = tmp_path / "decision.json"
    attachment.write_text('{"verdict": "deny"}')
    report = StepReport("verify", 1, {"verdict": "deny", "digest": DIGEST}, "", attachment=str(attachment))
    calls: list[list[str]] = []

    def run(argv: Any) -> int:
        calls.append(list(argv))
        return 0

    assert ibm_toolchain.ibm_evidence(report, {}, which=lambda name: None, run=run) == []
    assert calls == []
    problems = ibm_toolchain.ibm_evidence(
        report, {"CHAINGATE_IBM_ASSET_KEY": "web-image"}, which=lambda name: f"/usr/bin/{name}", run=run
    )
    assert problems == []
    assert ["set_env", "chaingate-verdict", "deny"] in calls
    evidence = calls[-1]
    assert evidence[:7] == ["collect-evidence", "--tool-type", "chaingate", "--status", "failure", "--evidence-type",
                            "com.ibm.cloud.verify_signature"]  # fmt: skip
    assert evidence[-2:] == ["--attachment", str(attachment)]
    assert evidence[evidence.index("--asset-key") + 1] == "web-image"
    failing = ibm_toolchain.ibm_evidence(report, {}, which=lambda name: name, run=lambda argv: 3)
    assert "collect-evidence exited 3" in failing


def test_ibm_tools_that_cannot_run_are_a_warning_not_a_failure() -> None:
    report = StepReport("sign", 0, {"digest": DIGEST}, "")

    def missing(argv: Any) -> int:
        raise FileNotFoundError(argv[0])

    problems = ibm_toolchain.ibm_evidence(report, {}, which=lambda name: name, run=missing)
    assert problems == [
        "set_env chaingate-digest could not run: FileNotFoundError",
        "collect-evidence could not run: FileNotFoundError",
    ]
