"""Text from outside, made safe to print where a CI system reads the log.

A registry's error body, a Code Engine reason, an IAM message or a string
inside a signed payload is chosen by whoever controls that server or payload.
Printed verbatim it can break a line and start a new one with a workflow
command: the GitHub Actions runner executes ``::command::`` at the start of any
line (after leading white space) and the legacy ``##[command]`` anywhere in a
line, so ``"\\n::add-mask::…"`` or ``"##[set-output …]"`` inside an error would
be obeyed, and ANSI escapes repaint what a reader sees. Everything from outside
therefore passes :func:`one_line` before it reaches a message, and multi-line
diagnostics pass :func:`lines`.

This module imports nothing from chaingate, so any module may use it.
"""

from __future__ import annotations

import re

#: Folded to one space: ASCII white space, NEL, the Unicode line and paragraph separators, and the
#: Unicode space characters (a run of them is one gap to a reader, and a line break to some readers).
_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_SPACES = re.compile(f"[{re.escape(_SPACE)}]+")
#: Shown as an escape: the other C0 controls (ESC starts ANSI sequences; the separators 0x1c-0x1f end
#: lines for Python's ``splitlines``), DEL, the C1 controls (0x9b is a one-byte CSI), the bidirectional
#: overrides and isolates (they reorder what a reader sees), and lone surrogates (unprintable as UTF-8).
_CONTROL = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
#: The legacy workflow-command prefix, which the runner finds anywhere in a line.
_LEGACY_COMMAND = "##["
ELLIPSIS = "…"


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(value: object, limit: int = 400) -> str:
    """``str(value)`` as one bounded line that no log reader or terminal can take for a command.

    White-space runs become one space (ends trimmed), control characters a
    visible ``\\xNN``/``\\uNNNN`` escape, ``##[`` becomes ``#\\x23[`` and a
    leading ``::`` becomes ``\\x3a:``; past ``limit`` characters the text is cut
    and ends with ``…``. Idempotent: a result passed again comes back unchanged.
    """
    limit = max(1, limit)
    text = _SPACES.sub(" ", str(value)).strip(" ")
    text = _CONTROL.sub(_escape, text)
    text = text.replace(_LEGACY_COMMAND, "#\\x23[")
    if text.startswith("::"):
        text = "\\x3a" + text[1:]
    if len(text) > limit:
        text = text[: limit - 1] + ELLIPSIS
    return text


def lines(value: object, *, limit: int = 400, max_lines: int = 20, continuation: int = 0) -> str:
    """Multi-line text made safe line by line, for diagnostics whose layout carries meaning.

    Each line goes through :func:`one_line`; its indentation (up to eight
    columns) is kept, and every line after the first is indented at least
    ``continuation`` columns, so a reader (and ``chaingate.ci.report``) sees
    where one message ends. Blank lines are dropped; past ``max_lines`` one
    line says how many more there were.
    """
    max_lines = max(1, max_lines)
    out: list[str] = []
    rows = [row for row in str(value).splitlines() if _SPACES.sub("", row)]
    for index, row in enumerate(rows[:max_lines]):
        indent = min(len(row) - len(row.lstrip(_SPACE)), 8)
        if index:
            indent = max(indent, continuation)
        out.append(" " * indent + one_line(row, limit))
    if len(rows) > max_lines:
        more = len(rows) - max_lines
        out.append(" " * max(continuation, 2) + f"{ELLIPSIS} {more} more line{'s' if more > 1 else ''}")
    return "\n".join(out)
