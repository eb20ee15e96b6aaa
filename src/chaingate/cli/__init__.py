"""Command-line interface: argument parsing and output only.

The core returns values and raises :class:`ChaingateError`; :func:`run` maps
them to exit codes, here and nowhere else. ``parser`` declares the flags,
``commands`` calls the library and ``render`` words the output. Heavy modules
(requests, cryptography, sigstore, cyclonedx) are imported inside the command
functions so that ``chaingate --version`` and ``--help`` start fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from chaingate.cli.parser import build_parser
from chaingate.cli.render import ProgressPrinter
from chaingate.errors import ChaingateError
from chaingate.text import lines, one_line

__all__ = ["ProgressPrinter", "build_parser", "main", "run"]

log = logging.getLogger("chaingate")


class _SafeFormatter(logging.Formatter):
    """Log records quote registries and servers: each line is neutralised (see ``chaingate.text``)."""

    def format(self, record: logging.LogRecord) -> str:
        return lines(super().format(record), limit=2000, max_lines=200, continuation=2)


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SafeFormatter("chaingate: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), handlers=[handler])
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return func(args)
    except ChaingateError as e:
        e.log_and_exit()
    except OSError as e:
        # A file the user named could not be read or written: their input, not our bug.
        where = f"{e.filename}: " if e.filename else ""
        ChaingateError(f"{where}{e.strerror or e}").log_and_exit()
    except KeyboardInterrupt:
        print("chaingate: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # Last resort: a parser that let something through (RecursionError, OverflowError,
        # MemoryError, …) is still bad input or our bug, never a verdict. Exit 1 would read as
        # "denied" to a pipeline and a traceback as a crash, so: one line, exit 2.
        log.debug("traceback of the internal error:", exc_info=True)
        detail = one_line(e, 300)
        what = f"{type(e).__name__}: {detail}" if detail else type(e).__name__
        ChaingateError(f"internal error: {what} (run with -vv for the traceback)").log_and_exit()


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))
