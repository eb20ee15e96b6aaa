"""``chaingate-ci``, the declared entry point the actions and Tasks call: it reports, it never changes a verdict."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from chaingate.ci.__main__ import main
from support.ci_emulation import REPO, parse_github_output

DIGEST = "sha256:" + "ab" * 32
DENIED = {
    "image": f"us.icr.io/team/app@{DIGEST}", "digest": DIGEST, "repository": "us.icr.io/team/app",
    "mode": "enforce", "verdict": "deny", "allowed": False,
    "clauses": [{"clause": "signers", "result": "fail", "reason": "unsigned", "evidence": [], "exceptionId": None}],
}  # fmt: skip


def test_main_reports_without_failing_the_gate_and_refuses_unreadable_results(tmp_path: Path) -> None:
    out_file, summary = tmp_path / "output", tmp_path / "summary"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out_file), "GITHUB_STEP_SUMMARY": str(summary)}
    result = tmp_path / "d.json"
    result.write_text(json.dumps(DENIED))
    stdout = io.StringIO()
    code = main(["report", "verify", "--exit-code", "1", "--result", str(result)], env=env, out=stdout)
    assert code == 1
    assert parse_github_output(out_file.read_text())["verdict"] == "deny"
    assert "### chaingate verify" in summary.read_text()
    assert "::error title=chaingate verify::signers: unsigned" in stdout.getvalue()
    bad = io.StringIO()
    assert main(["report", "attest", "--exit-code", "0"], env=env, out=bad) == 2
    assert "cannot report the result" in bad.getvalue()


def test_a_report_that_cannot_be_made_keeps_chaingates_own_exit_code(tmp_path: Path) -> None:
    result = tmp_path / "d.json"
    result.write_text(json.dumps({**DENIED, "allowed": True}))  # contradicts the exit code
    out = io.StringIO()
    assert main(["report", "verify", "--exit-code", "1", "--result", str(result)], env={}, out=out) == 1
    assert main(["report", "sbom", "--exit-code", "0", "--set", "novalue"], env={}, out=out) == 2
    assert out.getvalue() == ""  # the error goes to stderr; annotations only on GitHub


def test_main_mask_prints_only_inside_github_actions() -> None:
    out = io.StringIO()
    main(["mask", "A", "B", "MISSING"], env={"A": "s3cret", "B": "x\ny"}, out=out)
    assert out.getvalue() == ""
    main(["mask", "A", "B", "MISSING"], env={"GITHUB_ACTIONS": "true", "A": "s3cret", "B": "x\ny"}, out=out)
    assert out.getvalue().splitlines() == ["::add-mask::s3cret", "::add-mask::x", "::add-mask::y"]


def test_chaingate_ci_is_a_declared_script_that_the_actions_and_tasks_call() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["chaingate-ci"] == "chaingate.ci.__main__:main"
    installed = Path(sys.executable).parent / "chaingate-ci"
    proc = subprocess.run([str(installed), "--help"], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: chaingate-ci ")
    # pathlib's * also matches dot files, so this finds the DevSecOps .pipeline-config.yaml too.
    callers = {REPO / "action.yml", *REPO.glob("actions/**/*.yml"), *REPO.glob("actions/*.sh")}
    callers |= set(REPO.glob("tekton/**/*.yaml"))
    assert REPO / "tekton/ibm-toolchain/devsecops/.pipeline-config.yaml" in callers
    for path in callers:
        assert "chaingate.ci." not in path.read_text(), f"{path} still runs a module path"
    assert sum(path.read_text().count('"$CHAINGATE_CI" run ') for path in callers) >= 15
    assert sum(path.read_text().count("chaingate-ci run ") for path in callers) >= 15


def test_inputs_under_two_names_must_agree() -> None:
    from chaingate.ci.inputs import InputError, one_of, subject_reference

    digest = "sha256:" + "cd" * 32
    assert one_of([("predicate", ""), ("predicate-path", "p.json")]) == "p.json"
    assert one_of([("predicate", "p.json"), ("predicate-path", "p.json")]) == "p.json"
    assert one_of([("a", ""), ("b", "")]) == ""
    assert subject_reference("", "r.io/app", digest) == f"r.io/app@{digest}"
    assert subject_reference("r.io/app:v1", "", digest) == f"r.io/app:v1@{digest}"
    assert subject_reference(f"r.io/app@{digest}", "", digest) == f"r.io/app@{digest}"
    for call, message in [
        (
            lambda: one_of([("predicate", "a"), ("predicate-path", "b")]),
            "inputs predicate ('a') and predicate-path",
        ),
        (lambda: subject_reference("r.io/a", "r.io/b", ""), "inputs image ('r.io/a') and subject-name"),
        (lambda: subject_reference("", "", digest), "no image"),
        (lambda: subject_reference("r.io/a", "", "sha256:12"), "is not a sha256 digest"),
        (lambda: subject_reference(f"r.io/a@{DIGEST}", "", digest), "contradicts the digest"),
    ]:
        with pytest.raises(InputError, match=re.escape(message)) as caught:
            call()
        assert caught.value.exit_code == 2


def test_input_and_subject_print_the_value_or_annotate_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert main(["input", "digest=", f"subject-digest={DIGEST}"], env={}, out=out) == 0
    assert main(["subject", "--subject-name", "r.io/app", "--subject-digest", DIGEST], env={}, out=out) == 0
    assert out.getvalue().splitlines() == [DIGEST, f"r.io/app@{DIGEST}"]
    refused = io.StringIO()
    env = {"GITHUB_ACTIONS": "true"}
    assert main(["input", "--required", "predicate=", "predicate-path="], env=env, out=refused) == 2
    assert refused.getvalue() == ""  # stdout is the value; the annotation went to stderr
    err = capsys.readouterr().err
    assert "::error title=chaingate inputs::give the input predicate or predicate-path" in err


def test_bundle_dir_is_only_for_attest_and_sign(tmp_path: Path) -> None:
    argv = ["run", "verify", "--result", str(tmp_path / "r.json"), "--bundle-dir", str(tmp_path), "--", "x"]
    assert main(argv, env={}, out=io.StringIO()) == 2
