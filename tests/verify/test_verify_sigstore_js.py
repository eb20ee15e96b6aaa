"""A GitHub-style attachment written by sigstore-js, the library actions/attest uses, must verify.

The attestation is made by real, pinned npm packages (``sigstore_js/package.json``):
``@sigstore/sign`` gets a certificate from the loopback Fulcio for a
GitHub-Actions-shaped token, logs a ``dsse`` entry in the loopback Rekor and
builds the v0.3 bundle; ``@sigstore/oci``'s ``attachArtifactToImage`` pushes it
as a referrer with the annotations actions/attest sets. Nothing chaingate
wrote is involved, so this is what the gate meets after a real workflow.

The packages are installed once into ``~/.cache/chaingate/sigstore-js/<hash of
package.json>`` and reused. A missing node or npm is a failure, not a skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chaingate.cli import run
from chaingate.oci import media
from chaingate.oci.client import Registries
from chaingate.policy import load_policy
from chaingate.predicate_types import SLSA_PROVENANCE_V1
from chaingate.verify import verify_image
from chaingate_testing.ociregistry import OCIRegistry
from chaingate_testing.registry import DockerRegistry
from chaingate_testing.sigstore import SigstoreStack, github_actions_claims
from support.gate import (
    BUILDER,
    REPO,
    SAN,
    SOURCE,
    Gate,
    Pushed,
    clause,
    provenance,
    push_image,
    statement,
)

pytestmark = [pytest.mark.sigstore, pytest.mark.registry, pytest.mark.slow]

PACKAGE = Path(__file__).parent / "sigstore_js"
SCRIPT = "attest.mjs"

POLICY = """\
version: 1
mode: enforce
registries: ["{host}/org/**"]
requireDigest: true
signers:
  - issuer: {issuer}
    subjectRegExp: ^https://github\\.com/org/app/\\.github/workflows/release\\.yml@refs/heads/main$
provenance: {{required: true, builderIds: ["{builder}"], sourceRepositories: ["{source}"], maxAge: 30d}}
sbom: {{required: false}}
vulnerabilities: {{required: false}}
"""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not on PATH: the sigstore-js interop test needs node 20+ and npm (apt-get install nodejs npm)"
        )
    return path


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chaingate" / "sigstore-js"


@pytest.fixture(scope="session")
def sigstore_js() -> Path:
    """The pinned packages installed (once, reused across runs) beside a fresh copy of the script."""
    node, npm = _tool("node"), _tool("npm")
    manifest = (PACKAGE / "package.json").read_bytes()
    target = _cache_root() / hashlib.sha256(manifest).hexdigest()[:16]
    if not (target / ".installed").is_file():
        staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / "package.json").write_bytes(manifest)
        argv = [npm, "install", "--prefix", str(staging), "--ignore-scripts", "--no-audit", "--no-fund"]
        argv += ["--fetch-timeout=60000", "--fetch-retries=3"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.fail("npm install of the pinned sigstore-js packages took more than 300 s")
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.fail(
                f"npm install of the pinned sigstore-js packages failed:\n{done.stdout}\n{done.stderr}"
            )
        (staging / ".installed").write_text(f"{node}\n")
        if (target / ".installed").is_file():  # another run finished first
            shutil.rmtree(staging, ignore_errors=True)
        else:
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
    # The script is copied on every run (ES modules resolve packages from their own directory).
    copy = target / f".{SCRIPT}.{os.getpid()}"
    shutil.copyfile(PACKAGE / SCRIPT, copy)
    copy.replace(target / SCRIPT)
    return target / SCRIPT


def attest_with_sigstore_js(script: Path, stack: SigstoreStack, pushed: Pushed, token: str) -> dict[str, Any]:
    """Sign a SLSA provenance statement and attach it as actions/attest does; returns the script's output."""
    request = {
        "fulcioURL": stack.fulcio_url,
        "rekorURL": stack.rekor_url,
        "token": token,
        "imageName": pushed.name,
        "imageDigest": pushed.digest,
        "statement": statement(pushed.digest, SLSA_PROVENANCE_V1, provenance()),
    }
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    done = subprocess.run(
        [_tool("node"), str(script)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=script.parent,
    )
    assert done.returncode == 0, f"sigstore-js failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(params=["referrers-api", "fallback-tag"])
def pushed(request: pytest.FixtureRequest, gate: Gate) -> Pushed:
    """An image in the in-repo OCI 1.1 registry, or in Debian's docker-registry (tag fallback)."""
    if request.param == "referrers-api":
        registry: OCIRegistry | DockerRegistry = request.getfixturevalue("oci_registry")
    else:
        registry = request.getfixturevalue("docker_registry")
    return push_image(gate.registries, registry.host)


def test_actions_attest_style_attachment_verifies(
    gate: Gate,
    pushed: Pushed,
    sigstore_js: Path,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A log entry first, so sigstore-js's is never index 0 even when this test runs alone
    # (that case is pinned by the test below).
    gate.ids.good.sign(statement(pushed.digest, SLSA_PROVENANCE_V1, provenance()))
    out = attest_with_sigstore_js(sigstore_js, gate.stack, pushed, gate.token())
    bundle, referrer = out["bundle"], out["descriptor"]["digest"]
    assert bundle["mediaType"] == media.SIGSTORE_BUNDLE_V03
    assert bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"] == "dsse"

    policy = gate.policy(pushed.host, base=POLICY)
    decision = gate.verify(pushed.ref, policy)
    table = "\n".join(f"{c.clause}: {c.result}: {c.reason}" for c in decision.clauses)
    table += "\nignored: " + "\n".join(f"{d}: {r}" for d, r in decision.ignored)
    assert decision.verdict == "allow", table
    assert decision.ignored == (), table
    signers, prov = clause(decision, "signers"), clause(decision, "provenance")
    assert signers.result == "pass" and SAN in signers.reason, table
    assert signers.evidence == (referrer,), table
    assert prov.result == "pass" and prov.evidence == (referrer,), table
    assert f"source {SOURCE}" in prov.reason, table

    # The CLI agrees, and inspect lists the attachment with what sigstore-js put in it.
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty-docker-config"))
    argv = [
        "verify",
        pushed.ref,
        "--policy",
        str(gate.tmp / "policy.yaml"),
        "--trust-config",
        str(gate.trust),
    ]
    assert run(argv) == 0, capsys.readouterr()
    capsys.readouterr()
    assert run(["inspect", pushed.ref, "--format", "json"]) == 0
    nodes = {node["digest"]: node for node in json.loads(capsys.readouterr().out)["attachments"]}
    node = nodes[referrer]
    assert node["source"] == request.node.callspec.params["pushed"]
    assert node["predicateTypeAnnotation"] == SLSA_PROVENANCE_V1
    assert node["bundle"]["predicateType"] == SLSA_PROVENANCE_V1
    assert node["bundle"]["signer"]["san"] == SAN
    assert node["bundle"]["subjectDigests"] == [pushed.digest]


def test_first_entry_of_a_fresh_log_verifies(
    sigstore_js: Path, oci_registry: OCIRegistry, registries: Registries, tmp_path: Path
) -> None:
    """Log index 0 in a tree of one: proto3 JSON (sigstore-js, cosign 3) omits both, and that is still valid."""
    with SigstoreStack() as stack:
        pushed = push_image(registries, oci_registry.host)
        token = stack.mint_token(
            f"repo:{REPO}:ref:refs/heads/main", extra_claims=github_actions_claims(repository=REPO)
        )
        bundle = attest_with_sigstore_js(sigstore_js, stack, pushed, token)["bundle"]
        entry = bundle["verificationMaterial"]["tlogEntries"][0]
        assert "logIndex" not in entry and "hashes" not in entry["inclusionProof"]
        path = tmp_path / "policy.yaml"
        path.write_text(
            POLICY.format(host=pushed.host, issuer=stack.issuer_url, builder=BUILDER, source=SOURCE)
        )
        decision = verify_image(
            pushed.ref, load_policy(path), registries=registries, trust_config=stack.trust_config_path
        )
    reasons = "\n".join(f"{d}: {r}" for d, r in decision.ignored)
    assert decision.verdict == "allow", reasons
