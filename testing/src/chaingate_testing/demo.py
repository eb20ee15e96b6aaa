"""The main job: the chain on the built-in sample image, against local services it starts itself.

Run by ``bash scripts/demo.sh``. Every step is a real ``chaingate`` command run
in a subprocess, printed before it runs, so the output doubles as a tutorial.
The services stop when the job ends, whatever happens, and no process is left.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from chaingate_testing.codeengine import FakeIBMCloud
from chaingate_testing.images import BuiltImage, File, Layer, build_image, sample_image, write_layout
from chaingate_testing.registry import DockerRegistry
from chaingate_testing.sigstore import SigstoreStack
from chaingate_testing.sigstore.oidc import github_actions_claims

DEMO_REPOSITORY = "example-org/sample-app"
DEMO_BUILDER = f"https://github.com/{DEMO_REPOSITORY}/.github/workflows/release.yml@refs/heads/main"
DEMO_SUBJECT = f"repo:{DEMO_REPOSITORY}:ref:refs/heads/main"


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _chaingate(*args: str, env: dict[str, str] | None = None, expect: int = 0) -> str:
    cmd = [sys.executable, "-m", "chaingate", *args]
    print("$ chaingate " + " ".join(shlex.quote(a) for a in args), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.stdout:
        print(out.stdout.rstrip())
    if out.returncode != 0:
        print(out.stderr.rstrip(), flush=True)
    if out.returncode != expect:
        raise SystemExit(f"demo: `chaingate {args[0]}` exited {out.returncode}, expected {expect}")
    if expect:
        print(f"(exit code {out.returncode}, as expected)")
    return out.stdout


def _digest_of(ref: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "chaingate", "inspect", ref, "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    digest: str = json.loads(out.stdout)["digest"]
    return digest


def _policy(registry: str, issuer: str) -> str:
    return f"""version: 1
mode: enforce
registries: ["{registry}/demo/*"]
signers:
  - issuer: {issuer}
    subject: {DEMO_BUILDER}
provenance:
  required: true
  builderIds: [{DEMO_BUILDER}]
  sourceRepositories: [https://github.com/{DEMO_REPOSITORY}]
  maxAge: 30d
sbom:
  required: true
  maxAge: 7d
"""


def _unsigned_image() -> BuiltImage:
    return build_image([Layer([File("app/main.py", b"print('nobody signed me')\n")])])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaingate_testing.demo", description=__doc__)
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

    with (
        DockerRegistry("anonymous", workdir=out / "registry") as registry,
        SigstoreStack(out / "sigstore") as stack,
    ):
        _step(f"2. local services: Debian's docker-registry on {registry.url}, Sigstore-compatible stack")
        print(f"   OIDC issuer {stack.issuer_url}, Fulcio {stack.fulcio_url}, Rekor {stack.rekor_url}")
        print(f"   trust config (private Sigstore): {stack.trust_config_path}")
        ref = f"{registry.host}/demo/sample:1.0"
        token_file = out / "identity-token"
        claims = github_actions_claims(
            repository=DEMO_REPOSITORY, workflow_path=".github/workflows/release.yml"
        )
        token_file.write_text(stack.mint_token(DEMO_SUBJECT, extra_claims=claims, expires_in=1800))
        token_file.chmod(0o600)
        signing = ["--trust-config", str(stack.trust_config_path), "--identity-token-file", str(token_file)]

        _step("3. push the image (copy, with any attachments) into the registry")
        _chaingate("copy", f"oci:{layout}:1.0", ref, env=env)
        digest = _digest_of(ref, env)
        pinned = f"{registry.host}/demo/sample@{digest}"

        _step(
            "4. SLSA v1 provenance for the digest (build context from flags here; from the CI env in a pipeline)"
        )
        provenance = out / "provenance.json"
        _chaingate(
            "provenance",
            pinned,
            "--ci",
            "none",
            "-o",
            str(provenance),
            "--build-type",
            "https://actions.github.io/buildtypes/workflow/v1",
            "--builder-id",
            DEMO_BUILDER,
            "--source-uri",
            f"https://github.com/{DEMO_REPOSITORY}",
            "--source-commit",
            "a" * 40,
            "--source-ref",
            "refs/heads/main",
            env=env,
        )

        _step("5. keyless attestations: OIDC token -> Fulcio certificate -> DSSE -> Rekor -> OCI referrer")
        _chaingate(
            "attest", pinned, "--predicate", str(provenance), "--type", "slsaprovenance1", *signing, env=env
        )
        _chaingate("sign", pinned, *signing, env=env)

        _step("6. CycloneDX SBOM of the image, attested the same way")
        sbom = out / "sbom.cdx.json"
        _chaingate("sbom", pinned, "-o", str(sbom), env=env)
        _chaingate("attest", pinned, "--predicate", str(sbom), "--type", "cyclonedx", *signing, env=env)

        _step("7. inspect: the image and every attachment, with signer identity and log entry")
        _chaingate("inspect", pinned, env=env)

        _step("8. the gate: policy over everything attached -> decision record")
        policy = out / "policy.yaml"
        policy.write_text(_policy(registry.host, stack.issuer_url))
        print(policy.read_text().rstrip())
        decision = out / "decision.json"
        _chaingate("verify", ref, "--policy", str(policy), "--trust-config", str(stack.trust_config_path),
                   "-o", str(decision), "--no-sign", env=env)  # fmt: skip

        with FakeIBMCloud() as cloud:
            _step(f"9. deploy to Code Engine (loopback fake of the v2 and IAM APIs at {cloud.url})")
            project = cloud.add_project("demo")["id"]
            cloud.add_app(project, "sample", f"{registry.host}/demo/sample@sha256:{'0' * 64}")
            apikey = "demo-" + os.urandom(8).hex()
            cloud.add_service_id("chaingate-deployer", apikey=apikey)
            deploy_env = {**env, **cloud.environment(apikey)}
            deploy = ["--policy", str(policy), "--trust-config", str(stack.trust_config_path),
                      "--project", project, "--app", "sample"]  # fmt: skip
            _chaingate("deploy", ref, *deploy, env=deploy_env)

            _step("10. an unsigned image is denied, and Code Engine is not touched")
            unsigned = f"{registry.host}/demo/unsigned:1.0"
            write_layout(out / "unsigned-layout", _unsigned_image(), tag="1.0")
            _chaingate("copy", f"oci:{out / 'unsigned-layout'}:1.0", unsigned, env=env)
            writes = len(cloud.writes)
            _chaingate("deploy", unsigned, *deploy, env=deploy_env, expect=1)
            if len(cloud.writes) != writes:
                raise SystemExit("demo: a denied deploy wrote to Code Engine")
            print(f"Code Engine write calls during the denied deploy: {len(cloud.writes) - writes}")
        _chaingate("copy", pinned, f"docker-archive:{out / 'sample.tar'}", env=env)

    _step("done")
    print(f"artifacts in {out}: OCI layout, provenance.json, sbom.cdx.json, policy.yaml, decision.json,")
    print("  sample.tar (docker archive with every attachment), sigstore/trust_config.json")
    print(
        "the registry, the Sigstore stack and the Code Engine fake have been stopped; no process is left running"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
