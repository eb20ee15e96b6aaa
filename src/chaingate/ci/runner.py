"""Running a chaingate step and writing its log, so that nothing in the log can command a runner.

On GitHub everything chaingate itself prints, and the report's log lines, go
to the log between ``::stop-commands::TOKEN`` and ``::TOKEN::`` with a fresh
random TOKEN, so a crafted reason cannot smuggle a workflow command
(``::add-mask::``, ``::set-env``…) into a GitHub run even where a line slipped
through unneutralised. Tekton and IBM Toolchain logs interpret no commands;
there the text is only neutralised.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from chaingate.ci.github import on_github
from chaingate.ci.report import MAX_CELL_CHARS, MAX_ERROR_LINES, StepReport
from chaingate.text import lines as text_lines

#: The one workflow command relayed from chaingate's output: its mask for a token it fetched itself.
MASK_COMMAND = "::add-mask::"
#: chaingate's output kept for the report (its error block is near the end of far less than this).
MAX_KEPT_CHARS = 256 * 1024


class StoppedLog:
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


def _log_lines(text: str) -> str:
    return text_lines(text, limit=MAX_CELL_CHARS, max_lines=MAX_ERROR_LINES, continuation=2)


def write_log(report: StepReport, env: Mapping[str, str], out: TextIO) -> None:
    """The human lines for the step log, neutralised; on GitHub, inside stop-commands as well."""
    shown = [*report.details, *(f"{k}: {v}" for k, v in report.outputs.items() if v)]
    github = on_github(env)
    if not github:
        # Annotations carry these on GitHub; elsewhere the log is the only place they show.
        shown += [f"warning: {w}" for w in report.warnings] + [f"error: {e}" for e in report.errors]
    log = StoppedLog(out, github)
    log.open()
    for line in shown:
        log.write(f"{_log_lines(line)}\n")
    log.close()


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
    log = StoppedLog(err, github)
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
                if line.startswith("::") or size > MAX_KEPT_CHARS:
                    continue
                kept.append(line)
                size += len(line)
            code = proc.wait()
    finally:
        log.close()
        if stdout_handle is not None:
            stdout_handle.close()
    return code, "".join(kept)
