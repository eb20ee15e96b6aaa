"""``chaingate.ci.runner``: the step log, where nothing chaingate or the report prints can command a runner."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaingate.ci.github import write_github
from chaingate.ci.report import StepReport
from chaingate.ci.runner import run_chaingate, write_log
from support.ci import json_service
from support.ci_emulation import ActionRun, process_commands

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
    write_log(report, {"GITHUB_ACTIONS": "true"}, out)
    write_github(report, {"GITHUB_ACTIONS": "true"}, out)
    write_log(report, {"GITHUB_ACTIONS": "true"}, out)
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
    write_log(report, {}, out)
    assert "::stop-commands::" not in out.getvalue()
    assert out.getvalue().splitlines() == [
        *SHOWN,
        "revision: web",
        "  \\x3a:error::x",
        f"error: {SHOWN[0]}",
        *SHOWN[1:],
    ]


@pytest.fixture
def token_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """GitHub's OIDC token service on loopback, answering with a JWT-shaped value chaingate masks, then refuses."""
    token = "eyJhbGciOiJub25lIn0.eyJ4IjoxfQ.c2lnbmF0dXJl"
    with json_service(lambda path, headers: {"value": token}) as url:
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", f"{url}/token")
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-request-token")
        monkeypatch.delenv("SIGSTORE_ID_TOKEN", raising=False)
        yield token


def test_run_prints_chaingate_between_stop_commands_and_relays_only_its_own_masks(
    token_service: str, tmp_path: Path
) -> None:
    err = io.StringIO()
    code, kept = run_chaingate(["sign", f"oci:{tmp_path / 'layout'}"], stdout_path=None, err=err, github=True)
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
    code, kept = run_chaingate(["--version"], stdout_path=None, err=err)
    assert code == 0 and err.getvalue() == kept and kept.startswith("chaingate ")
    err = io.StringIO()
    code, _ = run_chaingate(["--version"], stdout_path=tmp_path / "out", err=err, github=True)
    token = err.getvalue().splitlines()[0].removeprefix("::stop-commands::")
    assert code == 0 and err.getvalue() == f"::stop-commands::{token}\n::{token}::\n"
    assert (tmp_path / "out").read_text().startswith("chaingate ")
