"""What the gate costs: ``chaingate verify`` of a fully attested image against one ``sigstore verify``.

Run from the repository root (needs Debian's ``docker-registry`` on PATH, as the test-suite does)::

    bash scripts/test.sh && .tox/py/bin/python benchmarks/verify_bench.py [--runs 7]

(the installed wheel, with bytecode: see benchmarks/README.md on ``PYTHONDONTWRITEBYTECODE``)

It starts Debian's docker-registry (no referrers API, so the tag fallback
is read) and the loopback Sigstore stack, pushes one image, and attaches a
signature, SLSA provenance and a CycloneDX SBOM, each a DSSE bundle signed
by sigstore-python. It then times, in the same run and on the same bundles:

* ``verify_image`` in-process (registry reads + three bundle verifications +
  policy), the cost a deploy step pays;
* ``chaingate verify`` as a fresh process, the cost a pipeline step pays;
* ``python -m sigstore verify identity --offline`` of a single one of those
  bundles, the floor any Sigstore-based check pays.

The table shows medians over ``--runs`` and the ratio of the chaingate CLI to
the sigstore CLI; the target is at most 1.5x, i.e. verifying everything
attached to an image (registry round trips included) should cost little more
than verifying one bundle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sigstore import dsse
from sigstore.oidc import IdentityToken

from chaingate.oci import media
from chaingate.oci.artifact import Blob, build_artifact, bytes_opener, push_artifact
from chaingate.oci.client import Registries
from chaingate.oci.interface import Manifest
from chaingate.oci.registry import RegistryStore
from chaingate.policy import load_policy
from chaingate.verify import verify_image
from chaingate_testing.images import File, Layer, build_image
from chaingate_testing.registry import DockerRegistry
from chaingate_testing.sigstore import SigstoreStack, github_actions_claims

REPO = "bench/app"
SAN = f"https://github.com/{REPO}/.github/workflows/release.yml@refs/heads/main"
TARGET = 1.5


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _predicates() -> list[tuple[str, dict[str, object]]]:
    return [
        ("https://sigstore.dev/cosign/sign/v1", {}),
        (
            "https://slsa.dev/provenance/v1",
            {
                "buildDefinition": {
                    "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                    "externalParameters": {
                        "workflow": {
                            "repository": f"https://github.com/{REPO}",
                            "path": ".github/workflows/release.yml",
                            "ref": "refs/heads/main",
                        }
                    },
                    # The commit the token's certificate names (github_actions_claims' default sha):
                    # the gate binds provenance to its certificate's CI extensions.
                    "resolvedDependencies": [
                        {
                            "uri": f"git+https://github.com/{REPO}@refs/heads/main",
                            "digest": {"gitCommit": "a" * 40},
                        }
                    ],
                },
                "runDetails": {"builder": {"id": SAN}, "metadata": {"finishedOn": _now()}},
            },
        ),
        (
            "https://cyclonedx.org/bom",
            {
                "bomFormat": "CycloneDX",
                "specVersion": "1.6",
                "metadata": {"timestamp": _now()},
                "components": [],
            },
        ),
    ]


def _seed(registry: DockerRegistry, stack: SigstoreStack, registries: Registries) -> tuple[str, str, bytes]:
    """Push the image and its three attestations; return the reference, the digest and one bundle."""
    store = RegistryStore(registries.client(registry.host), REPO)
    image = build_image([Layer([File("seed", uuid.uuid4().hex.encode())])])
    for blob in image.blobs():
        store.put_blob(blob.descriptor, bytes_opener(blob.data))
    manifest = Manifest.parse(image.manifest.data, image.manifest.descriptor)
    store.put_manifest(manifest, tag="v1")
    algorithm, _, hexpart = manifest.digest.partition(":")
    token = stack.mint_token(
        f"repo:{REPO}:ref:refs/heads/main", extra_claims=github_actions_claims(repository=REPO)
    )
    bundles = []
    with stack.signing_context().signer(IdentityToken(token)) as signer:
        for predicate_type, predicate in _predicates():
            doc = {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": f"{registry.host}/{REPO}", "digest": {algorithm: hexpart}}],
                "predicateType": predicate_type,
                "predicate": predicate,
            }
            bundle = signer.sign_dsse(dsse.Statement(json.dumps(doc).encode())).to_json().encode()
            artifact = build_artifact(
                manifest.descriptor,
                media.SIGSTORE_BUNDLE_V03,
                [Blob(media.SIGSTORE_BUNDLE_V03, bundle)],
                annotations={
                    media.ANNOTATION_BUNDLE_CONTENT: "dsse-envelope",
                    media.ANNOTATION_PREDICATE_TYPE: predicate_type,
                },
            )
            push_artifact(store, artifact)
            bundles.append(bundle)
    return f"{registry.host}/{REPO}@{manifest.digest}", manifest.digest, bundles[1]


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[:4])}… failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--runs", type=int, default=7, help="timed repetitions of each measurement (median shown)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chaingate-bench-") as tmp, SigstoreStack() as stack:
        work = Path(tmp)
        with DockerRegistry("anonymous", workdir=work / "registry") as registry:
            registries = Registries()
            reference, digest, bundle = _seed(registry, stack, registries)
            policy_path = work / "policy.yaml"
            policy_path.write_text(
                f"version: 1\nrequireDigest: true\nregistries: ['{registry.host}/bench/*']\n"
                f"signers: [{{issuer: '{stack.issuer_url}', subject: '{SAN}'}}]\n"
                "provenance: {required: true, maxAge: 1d}\nsbom: {required: true, maxAge: 1d}\n"
            )
            bundle_path = work / "provenance.sigstore.json"
            bundle_path.write_bytes(bundle)
            env = {**os.environ, "DOCKER_CONFIG": str(work / "no-docker-config")}
            env.pop("SIGSTORE_ID_TOKEN", None)

            policy = load_policy(policy_path)
            decision = verify_image(
                reference, policy, registries=registries, trust_config=stack.trust_config_path
            )
            if decision.verdict != "allow":
                raise SystemExit(f"benchmark image was denied: {decision.record()}")

            in_process = []
            for _ in range(args.runs):
                started = time.perf_counter()
                verify_image(reference, policy, registries=registries, trust_config=stack.trust_config_path)
                in_process.append(time.perf_counter() - started)
            registries.close()

            chaingate_cli = [
                sys.executable, "-m", "chaingate", "verify", reference, "--policy", str(policy_path),
                "--trust-config", str(stack.trust_config_path), "--no-sign",
            ]  # fmt: skip
            sigstore_cli = [
                sys.executable, "-m", "sigstore", "--trust-config", str(stack.trust_config_path),
                "verify", "identity", "--offline", "--bundle", str(bundle_path),
                "--cert-identity", SAN, "--cert-oidc-issuer", stack.issuer_url, digest,
            ]  # fmt: skip
            _timed(chaingate_cli, env)  # warm the page cache and bytecode for both, then alternate
            _timed(sigstore_cli, env)
            ours, theirs = [], []
            for _ in range(args.runs):
                ours.append(_timed(chaingate_cli, env))
                theirs.append(_timed(sigstore_cli, env))

    rows = [
        ("chaingate verify, in-process (3 bundles + registry)", statistics.median(in_process)),
        ("chaingate verify, CLI process (3 bundles + registry)", statistics.median(ours)),
        ("python -m sigstore verify identity --offline (1 bundle)", statistics.median(theirs)),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'measurement'.ljust(width)}  median (s)   runs={args.runs}")
    for name, seconds in rows:
        print(f"{name.ljust(width)}  {seconds:10.3f}")
    ratio = rows[1][1] / rows[2][1]
    verdict = "within" if ratio <= TARGET else "OVER"
    print(
        f"{'ratio chaingate CLI / sigstore CLI'.ljust(width)}  {ratio:10.2f}x  ({verdict} the {TARGET}x target)"
    )


if __name__ == "__main__":
    main()
