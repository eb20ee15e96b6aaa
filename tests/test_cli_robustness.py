"""The CLI's last resort: whatever escapes a parser is one line and exit 2, never a traceback read as "denied"."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import chaingate.cli.commands
from chaingate.cli import run


def test_a_policy_nested_100000_deep_is_exit_2_and_one_line(
    tmp_path: Path, sample_layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nsigners: " + "[" * 100_000)
    with pytest.raises(SystemExit) as exc:
        run(["verify", f"oci:{sample_layout}:latest", "--policy", str(policy)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == f"chaingate: error: {policy}:2: nested deeper than 64 levels\n"


def test_a_nested_policy_in_a_subprocess_has_no_traceback(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nsigners: [{issuer: https://i, subject: me}]\nprojects: {0755: {mode: warn}}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "chaingate", "verify", "oci:/nonexistent", "--policy", str(policy)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines()[0] == (
        f"chaingate: error: {policy}:3: projects: project id 0755 reads as the number 493 in YAML"
    )


@pytest.mark.parametrize(
    "error",
    [
        RecursionError("maximum recursion depth exceeded"),
        OverflowError("timestamp out of range\nfor platform time_t"),
        MemoryError(),
        ValueError("Exceeds the limit (4300 digits)"),
        KeyError("x"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_any_other_exception_is_an_internal_error_with_exit_2(
    error: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(args: argparse.Namespace) -> int:
        raise error

    monkeypatch.setattr(chaingate.cli.commands, "cmd_inspect", explode)
    with pytest.raises(SystemExit) as exc:
        run(["inspect", "oci:/x"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    detail = " ".join(str(error).split())
    what = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    assert err == f"chaingate: error: internal error: {what} (run with -vv for the traceback)\n"


def test_with_vv_the_traceback_is_logged_at_debug(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(args: argparse.Namespace) -> int:
        raise RecursionError("deep")

    monkeypatch.setattr(chaingate.cli.commands, "cmd_inspect", explode)
    caplog.set_level(logging.DEBUG, logger="chaingate")
    with pytest.raises(SystemExit):
        run(["-vv", "inspect", "oci:/x"])
    records = [r for r in caplog.records if r.exc_info]
    assert len(records) == 1 and records[0].levelno == logging.DEBUG
    assert records[0].exc_info is not None and records[0].exc_info[0] is RecursionError


def test_the_last_resort_leaves_an_interrupt_at_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raised: list[BaseException] = [KeyboardInterrupt(), OverflowError("x")]

    def fail(args: argparse.Namespace) -> int:
        raise raised.pop(0)

    monkeypatch.setattr(chaingate.cli.commands, "cmd_inspect", fail)
    assert run(["inspect", "oci:/x"]) == 130
    assert capsys.readouterr().err == "chaingate: interrupted\n"
    with pytest.raises(SystemExit) as exc:
        run(["inspect", "oci:/x"])
    assert exc.value.code == 2
