"""Run the loopback Sigstore stack until SIGTERM/SIGINT, for the demo.

``python -m chaingate_testing.sigstore --dir DIR`` writes
``DIR/trust_config.json`` (for ``--trust-config``-style client options),
``DIR/token`` (an identity token, mode 0600) and ``DIR/stack.json`` (URLs,
file paths and the identity/issuer a verifier should expect), prints the
URLs, and serves. The token itself is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from chaingate_testing.sigstore.oidc import github_actions_claims
from chaingate_testing.sigstore.stack import SigstoreStack


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chaingate_testing.sigstore",
        description="Serve a loopback OIDC issuer, Fulcio and Rekor until interrupted.",
    )
    parser.add_argument("--dir", type=Path, required=True, help="where to write trust_config.json etc.")
    identity = parser.add_mutually_exclusive_group()
    identity.add_argument("--email", default="signer@chaingate.test", help="email identity of the token")
    identity.add_argument(
        "--github-repository",
        metavar="OWNER/NAME",
        help="mint a GitHub-Actions-shaped token for this repository instead of an email one",
    )
    parser.add_argument(
        "--token-lifetime",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="lifetime of the minted token (Fulcio refuses expired tokens)",
    )
    return parser


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by the owner only, since it holds a bearer token."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    directory: Path = args.dir.resolve()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    with SigstoreStack(directory) as stack:
        issued_at = int(time.time())
        if args.github_repository:
            claims = github_actions_claims(repository=args.github_repository)
            token = stack.mint_token(
                f"repo:{args.github_repository}:ref:{claims['ref']}",
                expires_in=args.token_lifetime,
                issued_at=issued_at,
                extra_claims=claims,
            )
            identity = f"https://github.com/{claims['job_workflow_ref']}"
        else:
            token = stack.mint_token(
                args.email, email=args.email, expires_in=args.token_lifetime, issued_at=issued_at
            )
            identity = args.email
        token_file = directory / "token"
        _write_private(token_file, token + "\n")
        description = {
            "oidc_issuer": stack.issuer_url,
            "fulcio_url": stack.fulcio_url,
            "rekor_url": stack.rekor_url,
            "trust_config": str(stack.trust_config_path),
            "token_file": str(token_file),
            "token_expires_at": issued_at + args.token_lifetime,
            "identity": identity,
            "issuer": stack.issuer_url,
            "pid": os.getpid(),
        }
        stack_file = directory / "stack.json"
        tmp = directory / ".stack.json.tmp"
        tmp.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
        tmp.replace(stack_file)
        print(f"oidc issuer:  {stack.issuer_url}")
        print(f"fulcio:       {stack.fulcio_url}")
        print(f"rekor:        {stack.rekor_url}")
        print(f"trust config: {stack.trust_config_path}")
        print(f"stack info:   {stack_file}")
        print(f"identity:     {identity}")
        print("ready; stop with SIGTERM or Ctrl-C", flush=True)
        while not stop.wait(0.5):
            continue
    print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
