"""The one error family of chaingate.

Every failure a user can act on is a :class:`ChaingateError`. The core raises
them; only the CLI turns them into output and an exit code, in one place, so a
library caller gets the same diagnostics as a shell user and no traceback ever
reaches a terminal for bad input.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from chaingate.text import lines, one_line

#: Exit code for a usage or configuration error (bad input, unreachable service,
#: failed verification of data we were asked to read).
EXIT_USAGE = 2
#: Exit code for a policy denial (the gate said no).
EXIT_DENIED = 1
#: A message or hint longer than this is cut (with an ellipsis): it names a fault, it is not a log.
MAX_MESSAGE_CHARS = 2000
#: Lines of diagnostics printed (a denial lists its reasons); the rest are counted, not shown.
MAX_DIAGNOSTIC_LINES = 60


class ChaingateError(Exception):
    """A failure with a message a user can act on.

    ``message`` is one line naming the file, field or reference at fault;
    ``hint`` optionally says what to do about it. Neither may ever contain a
    credential: errors are printed and logged verbatim.

    Messages quote servers and payloads (a registry's error body, a Code
    Engine reason), so both are passed through :func:`chaingate.text.one_line`
    when the error is made: whoever catches one and prints ``message``, or
    embeds it in a reason or a warning, holds text that cannot start a line
    in a CI log, let alone a workflow command.
    """

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        message = one_line(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.hint = None if hint is None else one_line(hint, MAX_MESSAGE_CHARS)

    def __str__(self) -> str:
        return self.message

    def diagnostics(self) -> str:
        """The full text shown to a user: the message, then the hint if any."""
        text = self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def printable(self) -> str:
        """The diagnostics as printed: line by line neutralised, every line after the first indented.

        A subclass's ``diagnostics`` may add lines built from outside text (a
        denial's reasons); the indentation keeps them inside this error's block
        for readers that parse it (``chaingate.ci.report.error_text``), and the
        neutralising keeps a reason holding a line break from starting a line
        of its own with ``::``.
        """
        return lines(
            self.diagnostics(), limit=MAX_MESSAGE_CHARS, max_lines=MAX_DIAGNOSTIC_LINES, continuation=2
        )

    def log_and_exit(self) -> NoReturn:
        """Print the diagnostics on stderr and exit with this error's code."""
        print(f"chaingate: error: {self.printable()}", file=sys.stderr)
        sys.exit(self.exit_code)
