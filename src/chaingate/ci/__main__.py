"""``chaingate-ci``: run or report a chaingate step through the channels of the CI it runs in.

The composite actions, the Tekton Tasks and the IBM Toolchain stages call
this declared entry point (``chaingate-ci run STEP … -- CHAINGATE-ARGS``)
rather than a module path, so the installed command is the contract and the
modules behind it can move. It only parses, delivers the report to every
channel and maps a report that cannot be made to an exit code: the step
exits with chaingate's own code, and with 2 only when nothing trustworthy
could be reported.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from chaingate.ci.bundle import save_bundle
from chaingate.ci.github import on_github, workflow_command, write_github, write_masks
from chaingate.ci.ibm_toolchain import ibm_evidence
from chaingate.ci.inputs import InputError, one_of, subject_reference
from chaingate.ci.report import STEPS, ReportError, StepReport, build_report
from chaingate.ci.runner import MAX_KEPT_CHARS, run_chaingate, write_log
from chaingate.ci.tekton import write_tekton_results

PROG = "chaingate-ci"


def _pairs(items: Sequence[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ReportError(f"{flag}: {item!r} is not NAME=VALUE")
        out[key] = value
    return out


def _channel_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", help="an extra output (repeatable)")
    parser.add_argument(
        "--show-summary",
        choices=("true", "false"),
        default="true",
        help="write the step's section of the GitHub job summary (actions/attest's show-summary)",
    )
    parser.add_argument(
        "--tekton-result",
        action="append",
        metavar="NAME[:OUTPUT]=PATH",
        help="write this Tekton result; NAME:OUTPUT picks the output (repeatable)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Report a chaingate step to the CI it runs in (GitHub outputs/summary/annotations, "
        "Tekton results, IBM DevSecOps evidence).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("report", help="report one step's result")
    p.add_argument("step", choices=STEPS)
    p.add_argument("--exit-code", type=int, required=True, help="chaingate's exit code")
    p.add_argument("--result", type=Path, help="the JSON the step wrote (record, statement, SBOM…)")
    p.add_argument("--stderr", type=Path, help="chaingate's stderr, for the error of a failed step")
    _channel_options(p)
    r = sub.add_parser(
        "run",
        help="run chaingate, then report its result (chaingate's exit code is kept)",
        usage="%(prog)s STEP [options] -- CHAINGATE-ARGS…",
    )
    r.add_argument("step", choices=STEPS)
    r.add_argument("--result", type=Path, help="the JSON the step writes (-o FILE), or where its stdout goes")
    r.add_argument(
        "--capture-stdout",
        action="store_true",
        help="write chaingate's stdout to --result instead of the log",
    )
    r.add_argument(
        "--bundle-dir",
        type=Path,
        help="attest/sign: read the attached Sigstore bundle back and save it here (output bundle-path)",
    )
    _channel_options(r)
    i = sub.add_parser(
        "input", help="print the value of inputs that name the same thing (all given ones must agree)"
    )
    i.add_argument("pairs", nargs="+", metavar="NAME=VALUE")
    i.add_argument("--required", action="store_true", help="one of them must be given")
    s = sub.add_parser("subject", help="print the image reference from image / subject-name / subject-digest")
    s.add_argument("--image", default="")
    s.add_argument("--subject-name", default="")
    s.add_argument("--subject-digest", default="")
    m = sub.add_parser("mask", help="print ::add-mask:: for the values of these environment variables")
    m.add_argument("names", nargs="+", metavar="VAR")
    return parser


def _deliver(
    report: StepReport,
    args: argparse.Namespace,
    tekton: Mapping[str, str],
    env: Mapping[str, str],
    out: TextIO,
) -> None:
    write_log(report, env, out)
    write_github(report, env, out, summary=args.show_summary == "true")
    write_tekton_results(report, tekton)
    for problem in ibm_evidence(report, env):
        print(f"chaingate: warning: IBM DevSecOps evidence: {problem}", file=sys.stderr)


def _step_output(
    args: argparse.Namespace, chaingate_argv: Sequence[str], env: Mapping[str, str]
) -> tuple[int, str]:
    """chaingate's exit code and stderr: from running the step (``run``), or from what it left (``report``)."""
    if args.command == "report":
        stderr = ""
        if args.stderr is not None and args.stderr.is_file():
            stderr = args.stderr.read_text(encoding="utf-8", errors="replace")[-MAX_KEPT_CHARS:]
        return int(args.exit_code), stderr
    if not chaingate_argv:
        raise ReportError("run: name the chaingate command after --")
    if args.capture_stdout and args.result is None:
        raise ReportError("run: --capture-stdout needs --result FILE")
    if args.bundle_dir is not None and (args.step not in ("attest", "sign") or args.result is None):
        raise ReportError("run: --bundle-dir is for attest and sign, with --result FILE")
    if env.get("RUNNER_DEBUG") == "1":
        # GitHub's "debug logging" re-run sets RUNNER_DEBUG=1: whoever asked for it wants chaingate's -v too.
        chaingate_argv = ["-v", *chaingate_argv]
    return run_chaingate(
        chaingate_argv,
        stdout_path=args.result if args.capture_stdout else None,
        err=sys.stderr,
        github=on_github(env),
    )


def _input(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    """``input``/``subject``: the one value printed for ``$(…)``; a disagreement is an annotation on stderr
    (the runner reads commands from both streams, and stdout is the value) and exit 2."""
    try:
        if args.command == "input":
            pairs = _pairs(args.pairs, "input")
            value = one_of(list(pairs.items()))
            if args.required and not value:
                raise InputError(f"give the input {' or '.join(pairs)}")
        else:
            value = subject_reference(args.image, args.subject_name, args.subject_digest)
    except (InputError, ReportError) as e:
        if on_github(env):
            print(workflow_command("error", e.message, title="chaingate inputs"), file=sys.stderr)
        print(f"chaingate: error: {e.message}", file=sys.stderr)
        return e.exit_code
    out.write(value + "\n")
    out.flush()
    return 0


def main(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None, out: TextIO | None = None
) -> int:
    """``mask``, ``input``, ``subject``, ``report`` or ``run``; the exit code is chaingate's, or 2 when the result cannot be reported."""
    env = os.environ if env is None else env
    out = out or sys.stdout
    given = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first "--" is chaingate's own command line, never this command's options.
    split = given.index("--") if "--" in given else len(given)
    args = _parser().parse_args(given[:split])
    if args.command == "mask":
        write_masks(args.names, env, out)
        return 0
    if args.command in ("input", "subject"):
        return _input(args, env, out)
    code: int = args.exit_code if args.command == "report" else 0
    try:
        extra = _pairs(args.set, "--set")
        tekton = _pairs(args.tekton_result, "--tekton-result")
        code, stderr = _step_output(args, given[split + 1 :], env)
        if code == 0 and args.command == "run" and args.bundle_dir is not None:
            extra["bundle-path"] = str(save_bundle(args.result, args.bundle_dir, given[split + 1 :]))
        report = build_report(args.step, code, result=args.result, stderr=stderr, extra=extra)
        _deliver(report, args, tekton, env, out)
    except OSError as e:
        failure = ReportError(f"{getattr(e, 'filename', '') or ''} {e.strerror or e}".strip())
    except ReportError as e:
        failure = e
    else:
        return code
    message = f"chaingate {args.step}: cannot report the result: {failure.message}"
    if on_github(env):
        out.write(workflow_command("error", message, title=f"chaingate {args.step}") + "\n")
        out.flush()
    print(f"chaingate: error: {message}", file=sys.stderr)
    return code if code != 0 else failure.exit_code


if __name__ == "__main__":
    sys.exit(main())
