"""``ChaingateError``: what it prints is one block no CI log can take for a command."""

from __future__ import annotations

import pytest

from chaingate.errors import EXIT_USAGE, MAX_MESSAGE_CHARS, ChaingateError

HOSTILE = "registry said: no\n::error::pwned\r::add-mask::x \x1b[31mred ##[error]legacy"


class Listed(ChaingateError):
    """A subclass whose diagnostics add lines, as a denial adds its reasons."""

    def __init__(self, message: str, reasons: list[str]) -> None:
        super().__init__(message)
        self.reasons = reasons

    def diagnostics(self) -> str:
        return "\n".join([self.message, *(f"  - {r}" for r in self.reasons)])


def test_message_and_hint_are_neutralised_when_the_error_is_made() -> None:
    error = ChaingateError(HOSTILE, hint="retry\n::warning::x")
    assert (
        error.message
        == str(error)
        == ("registry said: no ::error::pwned ::add-mask::x \\x1b[31mred #\\x23[error]legacy")
    )
    assert error.hint == "retry ::warning::x"
    assert ChaingateError(error.message).message == error.message  # re-wrapping changes nothing
    assert len(ChaingateError("x" * 10_000).message) == MAX_MESSAGE_CHARS


def test_printed_diagnostics_have_no_line_a_runner_obeys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        Listed(
            "denied", ["signers: none\n::error::pwned", "\x1b[2Jclear", *(f"r{i}" for i in range(100))]
        ).log_and_exit()
    assert exc.value.code == EXIT_USAGE
    rows = capsys.readouterr().err.splitlines()
    assert rows[:4] == [
        "chaingate: error: denied",
        "  - signers: none",
        "  \\x3a:error::pwned",
        "  - \\x1b[2Jclear",
    ]
    assert rows[-1] == "  … 44 more lines" and len(rows) == 61
    assert all(row.startswith("  ") for row in rows[1:])
    with pytest.raises(SystemExit):
        ChaingateError("bad input\n::x::y", hint="fix it").log_and_exit()
    assert capsys.readouterr().err == "chaingate: error: bad input ::x::y\n  hint: fix it\n"
