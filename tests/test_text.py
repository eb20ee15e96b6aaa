"""``chaingate.text``: outside text made one inert line (or inert lines) for any log."""

from __future__ import annotations

import re

import pytest

from chaingate.text import lines, one_line

#: Every character class one_line treats, with what it must become.
CASES = [
    ("a\tb\nc\rd\r\ne\x0bf\x0cg", "a b c d e f g"),  # ASCII white space, runs folded
    ("a\u2028b\u2029c\x85d", "a b c d"),  # Unicode line/paragraph separators and NEL break lines too
    ("a\xa0\u3000\u2009b", "a b"),  # Unicode spaces
    ("  \n padded \t ", "padded"),  # ends trimmed
    ("\x00\x07\x08", "\\x00\\x07\\x08"),  # C0 controls
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # ESC: ANSI sequences shown, not obeyed
    ("a\x1cb\x1fc", "a\\x1cb\\x1fc"),  # separators Python's splitlines breaks at
    ("\x7f", "\\x7f"),  # DEL
    ("\x80\x9b2J\x9f", "\\x80\\x9b2J\\x9f"),  # C1 controls (0x9b is a one-byte CSI)
    ("abc\u202edcba\u2066", "abc\\u202edcba\\u2066"),  # bidi overrides and isolates
    ("bad \udcff byte", "bad \\udcff byte"),  # a lone surrogate (surrogateescape) cannot be printed
    ("::error::pwned", "\\x3a:error::pwned"),  # a workflow command at the start of the line
    ("x ##[error]pwned", "x #\\x23[error]pwned"),  # the legacy form, found anywhere in a line
    ("###[x", "##\\x23[x"),
    ("a::b ::c", "a::b ::c"),  # colons elsewhere are text
    ("émoji ✅ and 中文", "émoji ✅ and 中文"),  # printable Unicode stays
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_one_line_folds_white_space_and_escapes_controls(raw: str, expected: str) -> None:
    assert one_line(raw) == expected


@pytest.mark.parametrize("raw", [raw for raw, _ in CASES] + ["x" * 500, "\n::x" * 200, "a\x1b" * 300])
def test_one_line_is_idempotent_and_never_a_command(raw: str) -> None:
    once = one_line(raw, 100)
    assert one_line(once, 100) == once
    assert "\n" not in once and not once.startswith("::") and "##[" not in once
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", once)


def test_one_line_is_bounded_with_an_ellipsis() -> None:
    assert one_line("x" * 400) == "x" * 400
    assert one_line("x" * 401) == "x" * 399 + "…"
    assert one_line("abcdef", 4) == "abc…" and len(one_line("\x1b" * 50, 10)) == 10
    assert one_line("abc", 0) == "…"
    assert one_line(None) == "None" and one_line(ValueError("bad\nvalue")) == "bad value"


def test_lines_keeps_layout_and_neutralises_each_line() -> None:
    text = "message \x1b[1m\n  - reason one\n::error::pwned\n\n\t  hint: do\r\n" + "\n".join(
        "x" * 3 for _ in range(30)
    )
    out = lines(text, limit=50, max_lines=5, continuation=2)
    assert out.splitlines() == [
        "message \\x1b[1m",
        "  - reason one",
        "  \\x3a:error::pwned",
        "   hint: do",
        "  xxx",
        "  … 29 more lines",
    ]
    assert lines("only\n") == "only" and lines("") == "" and lines("a\n\nb", continuation=0) == "a\nb"
