"""Helpers for the gate tests: images in real registries, attestations signed by the loopback Sigstore stack.

Good attestations are written by ``chaingate.signing.attest`` (the writer the
gate must read); adversarial ones are signed with sigstore-python's own
signer and attached by hand, exactly per the attachment contract of docs/design.md, so
a test can tamper with any byte before it is pushed. Every image is built
from a unique seed, so attachments of one test can never leak into another.
"""

from __future__ import annotations

import base64
import json
import textwrap
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sigstore import dsse
from sigstore.oidc import IdentityToken

from chaingate.oci import media
from chaingate.oci.artifact import Blob, build_artifact, bytes_opener, push_artifact
from chaingate.oci.client import Registries
from chaingate.oci.interface import Descriptor, ImageStore, Manifest
from chaingate.oci.registry import RegistryStore
from chaingate.oci.stores import open_image
from chaingate.policy import Policy, load_policy
from chaingate.predicate_types import COSIGN_VULN_V1, CYCLONEDX_BOM, SLSA_PROVENANCE_V1
from chaingate.verify import Decision, verify_image
from chaingate_testing.images import BuiltImage, BuiltIndex, File, Layer, build_image, build_index
from chaingate_testing.sigstore import SigstoreStack, github_actions_claims

REPO = "org/app"
SAN = f"https://github.com/{REPO}/.github/workflows/release.yml@refs/heads/main"
BUILDER = "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main"
SOURCE = "https://github.com/org/app"
SIGN_V1 = "https://sigstore.dev/cosign/sign/v1"


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def statement(digest: str, predicate_type: str, predicate: dict[str, Any]) -> dict[str, Any]:
    algorithm, _, hexpart = digest.partition(":")
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "image", "digest": {algorithm: hexpart}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def provenance(
    *, builder: str = BUILDER, source: str = SOURCE, finished: datetime | None = None
) -> dict[str, Any]:
    finished = finished or now()
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {
                    "ref": "refs/heads/main",
                    "repository": source,
                    "path": ".github/workflows/release.yml",
                }
            },
            "resolvedDependencies": [
                {"uri": f"git+{source}@refs/heads/main", "digest": {"gitCommit": "a" * 40}}
            ],
        },
        "runDetails": {
            "builder": {"id": builder},
            "metadata": {"startedOn": rfc3339(finished), "finishedOn": rfc3339(finished)},
        },
    }


def sbom(
    *, timestamp: datetime | None = None, vulnerabilities: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {"timestamp": rfc3339(timestamp or now())},
        "components": [{"type": "library", "name": "openssl", "version": "3.0.0"}],
    }
    if vulnerabilities is not None:
        doc["vulnerabilities"] = vulnerabilities
    return doc


def vuln_scan(findings: list[tuple[str, str]], *, finished: datetime | None = None) -> dict[str, Any]:
    """A cosign vuln/v1 predicate wrapping a Trivy-shaped result."""
    moment = rfc3339(finished or now())
    return {
        "invocation": {"uri": "https://github.com/org/app/actions/runs/1"},
        "scanner": {
            "uri": "pkg:github/aquasecurity/trivy@0.50.0",
            "version": "0.50.0",
            "result": {
                "Results": [
                    {
                        "Target": "image",
                        "Vulnerabilities": [{"VulnerabilityID": i, "Severity": s} for i, s in findings],
                    }
                ]
            },
        },
        "metadata": {"scanStartedOn": moment, "scanFinishedOn": moment},
    }


@dataclass
class Identity:
    """A signing session of one OIDC identity against one stack (certificate fetched once)."""

    stack: SigstoreStack
    signer: Any

    def sign(self, doc: dict[str, Any]) -> bytes:
        bundle = self.signer.sign_dsse(dsse.Statement(json.dumps(doc).encode()))
        data: bytes = bundle.to_json().encode()
        return data


def github_identity(
    stack: SigstoreStack,
    exits: ExitStack,
    repository: str = REPO,
    workflow: str = ".github/workflows/release.yml",
) -> Identity:
    token = stack.mint_token(
        f"repo:{repository}:ref:refs/heads/main",
        extra_claims=github_actions_claims(repository=repository, workflow_path=workflow),
    )
    signer = exits.enter_context(stack.signing_context().signer(IdentityToken(token)))
    return Identity(stack, signer)


@dataclass
class Identities:
    good: Identity
    lookalike: Identity
    other_workflow: Identity
    email: Identity
    foreign: Identity


@dataclass
class Pushed:
    """An image in a registry: where it is and how to name it."""

    store: RegistryStore
    host: str
    repository: str
    digest: str
    descriptor: Descriptor
    built: BuiltImage | BuiltIndex

    @property
    def tag_ref(self) -> str:
        return f"{self.host}/{self.repository}:v1"

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repository}@{self.digest}"

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repository}"


def _put_image(store: ImageStore, image: BuiltImage, tag: str | None) -> Manifest:
    for blob in image.blobs():
        if not store.has_blob(blob.descriptor):
            store.put_blob(blob.descriptor, bytes_opener(blob.data))
    manifest = Manifest.parse(image.manifest.data, image.manifest.descriptor)
    store.put_manifest(manifest, tag=tag)
    return manifest


def push_image(
    registries: Registries, host: str, repository: str = REPO, *, multiarch: bool = False
) -> Pushed:
    store = RegistryStore(registries.client(host), repository)
    seed = uuid.uuid4().hex.encode()
    if not multiarch:
        image = build_image([Layer([File("seed", seed)])])
        manifest = _put_image(store, image, "v1")
        return Pushed(store, host, repository, manifest.digest, manifest.descriptor, image)
    from chaingate.oci.interface import Platform

    images = [
        build_image([Layer([File("seed", seed + arch.encode())])], platform=Platform("linux", arch))
        for arch in ("amd64", "arm64")
    ]
    for image in images:
        _put_image(store, image, None)
    index = build_index(images)
    manifest = Manifest.parse(index.index.data, index.index.descriptor)
    store.put_manifest(manifest, tag="v1")
    return Pushed(store, host, repository, manifest.digest, manifest.descriptor, index)


def attach(
    store: ImageStore, subject: Descriptor, bundle: bytes, predicate_type: str = SLSA_PROVENANCE_V1
) -> str:
    """Attach ``bundle`` to ``subject`` per docs/design.md's attachment contract; returns the referrer digest."""
    artifact = build_artifact(
        subject,
        media.SIGSTORE_BUNDLE_V03,
        [Blob(media.SIGSTORE_BUNDLE_V03, bundle)],
        annotations={
            media.ANNOTATION_BUNDLE_CONTENT: "dsse-envelope",
            media.ANNOTATION_PREDICATE_TYPE: predicate_type,
        },
    )
    return push_artifact(store, artifact).digest


def attest(
    registries: Registries,
    pushed: Pushed,
    trust: Path,
    token: str,
    predicate_type: str,
    predicate: dict[str, Any],
) -> str:
    """Attach through chaingate's own writer (``chaingate.signing.attest``); returns the referrer digest."""
    from chaingate.signing.attest import attest_image, prepare_signer
    from chaingate.signing.predicates import LoadedPredicate
    from chaingate.signing.tokens import check_token
    from chaingate.signing.trust import load_trust_config

    signer = prepare_signer(check_token(token, "test"), load_trust_config(trust))
    opened = open_image(pushed.ref, registries)
    result = attest_image(opened, LoadedPredicate(predicate_type, predicate, "test"), signer, now=now())
    return result.referrer.digest


POLICY = """\
version: 1
mode: enforce
registries: ["{host}/org/**"]
requireDigest: true
signers:
  - issuer: {issuer}
    subjectRegExp: ^https://github\\.com/org/app/\\.github/workflows/release\\.yml@refs/heads/main$
provenance: {{required: true, builderIds: ["{builder}"], sourceRepositories: ["{source}"], maxAge: 30d}}
sbom: {{required: true, maxAge: 7d}}
vulnerabilities: {{required: true, maxAge: 1d, deny: [critical, high], denyIds: [CVE-2024-3094]}}
"""


@dataclass
class Gate:
    """Everything a gate test needs: registries, the stack, identities and a policy writer."""

    stack: SigstoreStack
    ids: Identities
    registries: Registries
    tmp: Path
    hosts: dict[str, str] = field(default_factory=dict)

    @property
    def trust(self) -> Path:
        return self.stack.trust_config_path

    def policy(self, host: str, extra: str = "", *, base: str = POLICY, name: str = "policy.yaml") -> Policy:
        text = base.format(host=host, issuer=self.stack.issuer_url, builder=BUILDER, source=SOURCE)
        path = self.tmp / name
        path.write_text(text + textwrap.dedent(extra))
        return load_policy(path)

    def token(self) -> str:
        return self.stack.mint_token(
            f"repo:{REPO}:ref:refs/heads/main", extra_claims=github_actions_claims(repository=REPO)
        )

    def full(self, pushed: Pushed, *, subject: Descriptor | None = None) -> list[str]:
        """A signature, provenance, SBOM and clean scan, signed by the good identity, about ``subject``."""
        target = subject or pushed.descriptor
        good = self.ids.good
        out = []
        for ptype, predicate in (
            (SIGN_V1, {}),
            (SLSA_PROVENANCE_V1, provenance()),
            (CYCLONEDX_BOM, sbom()),
            (COSIGN_VULN_V1, vuln_scan([("CVE-2023-0001", "LOW")])),
        ):
            out.append(
                attach(pushed.store, target, good.sign(statement(target.digest, ptype, predicate)), ptype)
            )
        return out

    def verify(self, ref: str, policy: Policy, **kwargs: Any) -> Decision:
        kwargs.setdefault("trust_config", self.trust)
        return verify_image(ref, policy, registries=self.registries, **kwargs)


def clause(decision: Decision, name: str) -> Any:
    return next(c for c in decision.clauses if c.clause == name)


def tampered(bundle: bytes, mutate: Callable[[dict[str, Any]], None]) -> bytes:
    """The bundle JSON with ``mutate`` applied: what an attacker (or a broken copier) would push."""
    document = json.loads(bundle)
    mutate(document)
    return json.dumps(document).encode()


def flip_b64(value: str, position: int = -5) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[position] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def tlog_entry(document: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = document["verificationMaterial"]["tlogEntries"][0]
    return entry
