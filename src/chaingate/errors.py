"""The one error family of chaingate.

Every failure a user can act on is a :class:`ChaingateError`. The core raises
them; only the CLI turns them into output and an exit code, in one place, so a
library caller gets the same diagnostics as a shell user and no traceback ever
reaches a terminal for bad input.
"""

from __future__ import annotations

import sys
from typing import NoReturn

#: Exit code for a usage or configuration error (bad input, unreachable service,
#: failed verification of data we were asked to read).
EXIT_USAGE = 2
#: Exit code for a policy denial (the gate said no).
EXIT_DENIED = 1


class ChaingateError(Exception):
    """A failure with a message a user can act on.

    ``message`` is one line naming the file, field or reference at fault;
    ``hint`` optionally says what to do about it. Neither may ever contain a
    credential: errors are printed and logged verbatim.
    """

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def diagnostics(self) -> str:
        """The full text shown to a user: the message, then the hint if any."""
        text = self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def log_and_exit(self) -> NoReturn:
        """Print the diagnostics on stderr and exit with this error's code."""
        print(f"chaingate: error: {self.diagnostics()}", file=sys.stderr)
        sys.exit(self.exit_code)
