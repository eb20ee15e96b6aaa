"""How long provenance + attestation take, in-process and through the CLI, and how fast the CLI starts.

Run (from the repository root, with the dev virtualenv; needs Debian's
``docker-registry`` on PATH, as the test suite does)::

    PYTHONPATH=src .tox/py/bin/python benchmarks/attest_bench.py [--rounds 5]

It starts the loopback Sigstore stack and an anonymous docker-registry (no
referrers API, so every attach also rewrites the ``sha256-<hex>`` fallback
index), pushes one small image, and per round times:

- ``in-process``: ``image_provenance`` and then ``attest_image`` for three
  predicates (the SLSA provenance just made, a CycloneDX SBOM, a vuln report),
  with one prepared signer — the library cost without interpreter start-up;
- ``cli``: the same four steps as ``chaingate provenance`` plus three
  ``chaingate attest`` processes, as a CI step would run them;
- ``chaingate --version``: interpreter plus CLI start-up, the floor under
  every CLI call (target: at most 0.3 s, which is why heavy imports are lazy).

It prints a table of median and best times. It is not part of the tests:
figures depend on the machine, and nothing asserts on them.
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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from chaingate.ci.interface import BuildContext
from chaingate.oci.client import Registries, RegistryOptions
from chaingate.oci.copy import copy_image
from chaingate.oci.credentials import CredentialStore
from chaingate.oci.layout import LayoutStore
from chaingate.oci.stores import open_image
from chaingate.provenance.image import image_provenance
from chaingate.signing.attest import attest_image, prepare_signer
from chaingate.signing.predicates import load_predicate, predicate_type_for
from chaingate.signing.tokens import check_token
from chaingate_testing.images import File, Layer, build_image, write_layout
from chaingate_testing.registry import DockerRegistry
from chaingate_testing.sigstore import SigstoreStack, github_actions_claims

SHA = "a" * 40
CONTEXT = BuildContext(
    system="none",
    build_type="https://chaingate.dev/buildtypes/bench/v1",
    builder_id="https://chaingate.dev/builders/bench",
    invocation_id="bench",
    source_uri="https://git.test/app",
    source_commit=SHA,
)
CLI_FLAGS = [
    "--ci",
    "none",
    "--build-type",
    CONTEXT.build_type or "",
    "--builder-id",
    CONTEXT.builder_id or "",
    "--source-uri",
    CONTEXT.source_uri or "",
    "--source-commit",
    SHA,
]


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _write_predicates(directory: Path) -> dict[str, Path]:
    sbom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "metadata": {"timestamp": "2024-05-01T12:00:00Z"},
        "components": [{"type": "library", "name": f"c{i}", "version": "1.0"} for i in range(200)],
    }
    vuln = {"scanner": {"uri": "pkg:github/chaingate/chaingate", "result": []}}
    paths = {"cyclonedx": directory / "sbom.cdx.json", "vuln": directory / "vuln.json"}
    paths["cyclonedx"].write_text(json.dumps(sbom))
    paths["vuln"].write_text(json.dumps(vuln))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="chaingate-bench-"))
    env = {**os.environ, "DOCKER_CONFIG": str(work / "no-docker-config")}
    for name in ("GITHUB_ACTIONS", "SIGSTORE_ID_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL"):
        env.pop(name, None)
    layout = write_layout(work / "layout", build_image([Layer([File("app/main.py", b"print('bench')\n")])]))
    predicates = _write_predicates(work)
    rows: list[tuple[str, list[float]]] = []
    with SigstoreStack() as stack, DockerRegistry("anonymous", workdir=work / "registry") as registry:
        options = RegistryOptions(credentials=CredentialStore(env=env, home=work))
        registries = Registries(options)
        image = f"{registry.host}/bench/app:v1"
        opened = open_image(image, registries)
        copy_image(LayoutStore.open_directory(layout), "latest", opened.store, tag="v1")

        def token() -> str:
            claims = github_actions_claims(repository="octo-org/octo-app")
            return stack.mint_token("repo:octo-org/octo-app:ref:refs/heads/main", extra_claims=claims)

        def in_process() -> None:
            signer = prepare_signer(check_token(token(), "bench"), stack.client_trust_config())
            assert opened.target is not None
            now = datetime.now(UTC)
            provenance = image_provenance(
                opened.store, opened.target, opened.reference, CONTEXT, generated_at=now
            )
            path = work / "provenance.json"
            path.write_text(json.dumps(provenance.statement))
            for kind, source in (
                ("slsaprovenance1", path),
                ("cyclonedx", predicates["cyclonedx"]),
                ("vuln", predicates["vuln"]),
            ):
                attest_image(opened, load_predicate(source, predicate_type_for(kind)), signer, now=now)

        def cli() -> None:
            chaingate = [sys.executable, "-m", "chaingate"]
            signing = ["--trust-config", str(stack.trust_config_path), "--identity-token", token()]
            path = work / "provenance-cli.json"
            subprocess.run(
                [*chaingate, "provenance", image, "-o", str(path), *CLI_FLAGS],
                env=env,
                check=True,
                capture_output=True,
            )
            for kind, source in (
                ("slsaprovenance1", path),
                ("cyclonedx", predicates["cyclonedx"]),
                ("vuln", predicates["vuln"]),
            ):
                subprocess.run(
                    [*chaingate, "attest", image, "--predicate", str(source), "--type", kind, *signing],
                    env=env,
                    check=True,
                    capture_output=True,
                )

        def version() -> None:
            subprocess.run(
                [str(Path(sys.executable).parent / "chaingate"), "--version"],
                env=env,
                check=True,
                capture_output=True,
            )

        in_process()  # warm-up: first sigstore import and TLS-free connection setup
        rows.append(("in-process: provenance + 3 attests", [_timed(in_process) for _ in range(args.rounds)]))
        rows.append(("cli: provenance + 3 attests (4 processes)", [_timed(cli) for _ in range(args.rounds)]))
        rows.append(("chaingate --version", [_timed(version) for _ in range(max(args.rounds, 10))]))
        registries.close()
    print(f"{'what':<44} {'median':>9} {'best':>9} {'rounds':>7}")
    for label, times in rows:
        print(f"{label:<44} {statistics.median(times):>8.3f}s {min(times):>8.3f}s {len(times):>7}")


if __name__ == "__main__":
    main()
