"""A registry's error text reaches the CI log as one inert line, on GitHub inside stop-commands.

The registry here is hostile: its OCI error message breaks lines every way a
runner or terminal honours and follows each break with a workflow command
(``::error::``, ``::add-mask::``, legacy ``##[error]``), plus ANSI colour. The
steps run as GitHub and Tekton run them (``ci_emulation``); what the emulated
runner obeys is what GitHub's runner would obey.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.ci import hostile_registry
from support.ci_emulation import REPO, ActionRun, CompositeAction, TektonTask, github_env

_TOKEN = re.compile(r"[0-9a-f]{32}")
_INJECTED = ("::error::pwned", "::warning::pwned", "::add-mask::chaingate", "::set-output")


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    with hostile_registry() as host:
        yield host


def _stop_blocks(raw: str) -> list[tuple[int, int]]:
    """(open, close) line numbers of every stop-commands block in a raw step log; each must be closed."""
    rows = re.split(r"\r\n|\r|\n", raw)
    blocks = []
    for index, line in enumerate(rows):
        if line.startswith("::stop-commands::"):
            token = line.removeprefix("::stop-commands::")
            assert _TOKEN.fullmatch(token), line
            closing = [i for i, row in enumerate(rows) if row == f"::{token}::" and i > index]
            assert closing, f"stop-commands token {token} is never closed"
            blocks.append((index, closing[0]))
    return blocks


def _assert_inert(text: str) -> None:
    """No line a runner would read as a command came from the registry, and no terminal control either."""
    for line in re.split(r"\r\n|\r|\n", text):
        assert not line.lstrip().startswith(_INJECTED), line
        assert "##[" not in line, line
    for char in ("\x1b", "\u2028", "\x85"):
        assert char not in text


def test_a_registry_error_cannot_issue_workflow_commands_in_a_github_log(
    hostile: str, tmp_path: Path
) -> None:
    action = CompositeAction(REPO / "actions" / "sbom" / "action.yml")
    run: ActionRun = action.run(
        {"image": f"{hostile}/team/app:v1", "insecure-registry": hostile},
        github_env(tmp_path),
        tmp_path / "r",
    )

    assert run.exit_code == 2 and run.steps[-1].id == "resolve"
    # The runner obeyed exactly one command: chaingate's own annotation of the error, quoting the registry.
    assert run.masks == []
    (annotation,) = run.annotations
    assert annotation.level == "error" and annotation.title == "chaingate resolve"
    assert "answered 400: DENIED: access denied ::error::pwned ::warning::pwned-cr" in annotation.message
    assert "\\x1b[31mred" in annotation.message and "#\\x23[error]legacy-pwned" in annotation.message
    assert not any(line.lstrip().startswith(_INJECTED) for line in run.log)
    _assert_inert(run.raw)
    # chaingate's run, and the report's log lines, each in a block with its own random token, closed again.
    blocks = _stop_blocks(run.step("resolve").stderr + run.step("resolve").stdout)
    tokens = re.findall(r"^::stop-commands::(\S+)$", run.raw, re.M)
    assert len(blocks) == len(tokens) == 2 and len(set(tokens)) == 2
    error_line = next(line for line in run.step("resolve").stderr.splitlines() if "chaingate: error:" in line)
    start, end = _stop_blocks(run.step("resolve").stderr)[0]
    assert start < run.step("resolve").stderr.splitlines().index(error_line) < end


def test_a_registry_error_is_one_inert_line_in_a_tekton_log(hostile: str, tmp_path: Path) -> None:
    task = TektonTask(REPO / "tekton" / "task" / "chaingate-sbom" / "0.1" / "chaingate-sbom.yaml")
    run = task.run(
        {"IMAGE_REF": f"{hostile}/team/app:v1", "INSECURE_REGISTRIES": hostile},
        tmp=tmp_path,
        workspaces={"output": tmp_path / "output"},
    )

    assert run.exit_code == 2
    log = run.stdout + run.stderr
    _assert_inert(log)
    assert "::stop-commands::" not in log  # Tekton's log interprets nothing; no markers to clutter it
    errors = [line for line in log.splitlines() if "answered 400: DENIED" in line]
    assert errors and all("::error::pwned ::warning::pwned-cr \\x1b[31mred" in line for line in errors)
