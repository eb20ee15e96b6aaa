"""The main job: the chain on the built-in sample image, against local services it starts itself.

Run by ``bash scripts/demo.sh``. Every step is a real ``chaingate`` command run
in a subprocess, printed before it runs, so the output doubles as a tutorial.
The services stop when the job ends, whatever happens, and no process is left.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from chaingate.testing.images import sample_image, write_layout
from chaingate.testing.registry import DockerRegistry


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _chaingate(*args: str, env: dict[str, str] | None = None) -> str:
    cmd = [sys.executable, "-m", "chaingate", *args]
    print("$ chaingate " + " ".join(shlex.quote(a) for a in args), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.stdout:
        print(out.stdout.rstrip())
    if out.returncode != 0:
        print(out.stderr.rstrip(), file=sys.stderr)
        raise SystemExit(f"demo: `chaingate {args[0]}` failed with exit code {out.returncode}")
    return out.stdout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaingate.testing.demo", description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("demo-output"), help="where artifacts are kept")
    args = parser.parse_args(argv)
    out: Path = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # The demo's registry is anonymous: never pick up the user's real registry credentials.
    env["DOCKER_CONFIG"] = tempfile.mkdtemp(prefix="chaingate-demo-docker-")
    env.pop("REGISTRY_AUTH_FILE", None)

    _step("1. build the sample image (pure Python, deterministic) into an OCI layout")
    image = sample_image()
    layout = write_layout(out / "sample-layout", image, tag="1.0")
    print(f"image {image.digest} with {len(image.layers)} layers -> oci:{layout}:1.0")

    with DockerRegistry("anonymous", workdir=out / "registry") as registry:
        _step(f"2. Debian's docker-registry started on {registry.url}")
        ref = f"{registry.host}/demo/sample:1.0"

        _step("3. copy the image, with its attachments, into the registry")
        _chaingate("copy", f"oci:{layout}:1.0", ref, env=env)

        _step("4. inspect it: digest, media type, attachments")
        _chaingate("inspect", ref, env=env)
        _chaingate("copy", ref, f"docker-archive:{out / 'sample.tar'}", env=env)

    _step("done")
    print(f"artifacts: {out}  (OCI layout, docker archive)")
    print("the registry has been stopped; no process is left running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
