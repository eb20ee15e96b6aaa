"""The adversarial matrix of the gate: every case asserts the verdict and the reason.

Real parts only: images and attachments live in the in-repo OCI 1.1 registry
(referrers API, fault injection) or Debian's docker-registry (the tag
fallback); bundles are signed by sigstore-python against the loopback
Sigstore stack and verified by sigstore-python's own verifier.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chaingate.errors import ChaingateError
from chaingate.oci import media
from chaingate.oci.artifact import Blob, build_artifact, push_blobs
from chaingate.oci.interface import Descriptor
from chaingate.oci.reference import parse_reference
from chaingate.policy import CLAUSES
from chaingate.predicate_types import COSIGN_VULN_V1, CYCLONEDX_BOM, SLSA_PROVENANCE_V02, SLSA_PROVENANCE_V1
from chaingate.verify import Decision
from chaingate_testing.images import BuiltIndex
from chaingate_testing.ociregistry import Fault, OCIRegistry
from chaingate_testing.registry import DockerRegistry
from support.gate import (
    BUILDER,
    POLICY,
    REPO,
    SAN,
    SIGN_V1,
    SOURCE,
    Gate,
    Pushed,
    attach,
    attest,
    clause,
    flip_b64,
    now,
    provenance,
    push_image,
    sbom,
    statement,
    tampered,
    tlog_entry,
    vuln_scan,
)

pytestmark = [pytest.mark.sigstore, pytest.mark.registry]


def expect(decision: Decision, verdict: str, name: str, result: str, reason: str) -> None:
    """The verdict, and the named clause's result and reason (a substring), with the table on failure."""
    found = clause(decision, name)
    table = "\n".join(f"{c.clause}: {c.result}: {c.reason}" for c in decision.clauses)
    table += "\nignored: " + "\n".join(f"{d}: {r}" for d, r in decision.ignored)
    assert decision.verdict == verdict, table
    assert found.result == result, table
    assert reason in found.reason, table


def ignored_reason(decision: Decision, digest: str) -> str:
    reasons = [r for d, r in decision.ignored if d == digest]
    assert reasons, decision.ignored
    return reasons[0]


@pytest.fixture
def oci(gate: Gate, oci_registry: OCIRegistry) -> Pushed:
    return push_image(gate.registries, oci_registry.host)


def good(
    gate: Gate, pushed: Pushed, ptype: str = SLSA_PROVENANCE_V1, predicate: dict[str, Any] | None = None
) -> bytes:
    body = provenance() if predicate is None and ptype == SLSA_PROVENANCE_V1 else (predicate or {})
    return gate.ids.good.sign(statement(pushed.digest, ptype, body))


# -- the happy paths ------------------------------------------------------------------------------------


def test_fully_attested_image_on_the_referrers_api_is_allowed(gate: Gate, oci: Pushed) -> None:
    evidence = gate.full(oci)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "allow", "signers", "pass", "4 attestation(s) signed by " + SAN)
    assert set(clause(decision, "signers").evidence) == set(evidence)
    expect(decision, "allow", "provenance", "pass", "source https://github.com/org/app")
    assert decision.allowed and decision.repository == oci.name and decision.digest == oci.digest
    assert decision.ignored == () and decision.warnings == ()
    assert tuple(c.clause for c in decision.clauses) == CLAUSES


def test_fully_attested_image_on_the_tag_fallback_is_allowed(
    gate: Gate, docker_registry: DockerRegistry
) -> None:
    pushed = push_image(gate.registries, docker_registry.host)
    gate.full(pushed)
    decision = gate.verify(pushed.ref, gate.policy(pushed.host))
    expect(decision, "allow", "image", "pass", "4 attestation(s) counted, 0 attachment(s) ignored")


def test_attestations_written_by_chaingate_attest_are_counted(gate: Gate, oci: Pushed) -> None:
    token = gate.token()
    referrers = [
        attest(gate.registries, oci, gate.trust, token, SIGN_V1, {}),
        attest(gate.registries, oci, gate.trust, token, SLSA_PROVENANCE_V1, provenance()),
        attest(gate.registries, oci, gate.trust, token, CYCLONEDX_BOM, sbom()),
        attest(gate.registries, oci, gate.trust, token, COSIGN_VULN_V1, vuln_scan([])),
    ]
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "allow", "vulnerabilities", "pass", "0 finding(s), none denied")
    assert set(clause(decision, "signers").evidence) == set(referrers)


# -- who signed -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ptype", ["https://slsa.dev/verification_summary/v1", "https://chaingate.dev/deployment/v1"]
)
def test_the_gate_s_own_records_signed_by_a_policy_signer_never_count(
    gate: Gate, oci: Pushed, ptype: str
) -> None:
    """Attack 1: a VSA (even one saying FAILED) or deployment record is not a statement about the artifact."""
    body = {"verificationResult": "FAILED"} if "verification_summary" in ptype else {}
    referrer = attach(oci.store, oci.descriptor, good(gate, oci, ptype, body), ptype)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "signers", "fail", "the gate's own records never count")
    assert f"{ptype} is a gate's own record (signed by {SAN})" in ignored_reason(decision, referrer)
    gate.full(oci)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "allow", "signers", "pass", "4 attestation(s)")
    assert referrer not in clause(decision, "signers").evidence


def test_unsigned_image_is_denied(gate: Gate, oci: Pushed) -> None:
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    expect(decision, "deny", "provenance", "fail", "no signed SLSA provenance")


def test_wrong_san_is_not_counted(gate: Gate, oci: Pushed) -> None:
    bundle = gate.ids.other_workflow.sign(statement(oci.digest, SLSA_PROVENANCE_V1, provenance()))
    referrer = attach(oci.store, oci.descriptor, bundle)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    assert "workflows/other.yml@refs/heads/main" in ignored_reason(decision, referrer)
    assert "matches no signers entry" in ignored_reason(decision, referrer)


def test_wrong_issuer_is_not_counted(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    base = f"""\
version: 1
signers:
  - issuer: https://token.actions.githubusercontent.com
    subject: {SAN}
"""
    decision = gate.verify(oci.ref, gate.policy(oci.host, base=base))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    assert all(f"(issuer {gate.stack.issuer_url}) matches no signers entry" in r for _, r in decision.ignored)


def test_lookalike_repository_does_not_match_the_anchored_regexp(gate: Gate, oci: Pushed) -> None:
    bundle = gate.ids.lookalike.sign(statement(oci.digest, SLSA_PROVENANCE_V1, provenance()))
    referrer = attach(oci.store, oci.descriptor, bundle)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    assert "https://github.com/org/app-evil/.github/workflows/release.yml" in ignored_reason(
        decision, referrer
    )


def test_email_identity_is_not_counted(gate: Gate, oci: Pushed) -> None:
    referrer = attach(
        oci.store, oci.descriptor, gate.ids.email.sign(statement(oci.digest, SIGN_V1, {})), SIGN_V1
    )
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    assert "signer mallory@example.test" in ignored_reason(decision, referrer)


def test_bundle_from_an_untrusted_sigstore_instance_is_not_counted(gate: Gate, oci: Pushed) -> None:
    bundle = gate.ids.foreign.sign(statement(oci.digest, SLSA_PROVENANCE_V1, provenance()))
    referrer = attach(oci.store, oci.descriptor, bundle)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    assert "bundle does not verify: failed to build timestamp certificate chain" in ignored_reason(
        decision, referrer
    )


def test_github_workflow_claims_are_checked_from_the_certificate(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    base = """\
version: 1
signers:
  - issuer: {issuer}
    subject: https://github.com/org/app/.github/workflows/release.yml@refs/heads/main
    githubWorkflowRepository: {repo}
    githubWorkflowRef: refs/heads/main
"""
    allowed = gate.verify(oci.ref, gate.policy(oci.host, base=base.replace("{repo}", REPO)))
    expect(allowed, "allow", "signers", "pass", "4 attestation(s)")
    denied = gate.verify(oci.ref, gate.policy(oci.host, base=base.replace("{repo}", "org/other")))
    expect(denied, "deny", "signers", "fail", "no attachment counts")
    assert all("matches no signers entry" in r for _, r in denied.ignored)


# -- what was signed ------------------------------------------------------------------------------------


def test_statement_about_another_digest_is_a_replay(gate: Gate, oci: Pushed) -> None:
    other = push_image(gate.registries, oci.host)
    bundle = gate.ids.good.sign(statement(other.digest, SLSA_PROVENANCE_V1, provenance()))
    referrer = attach(oci.store, oci.descriptor, bundle)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    assert f"its statement is about {other.digest}, not {oci.digest}" in ignored_reason(decision, referrer)


def test_tampered_payload_does_not_verify(gate: Gate, oci: Pushed) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        payload = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
        payload["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/builder"
        doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()

    referrer = attach(oci.store, oci.descriptor, tampered(good(gate, oci), mutate))
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    assert "bundle does not verify: DSSE: invalid signature" in ignored_reason(decision, referrer)


def test_predicate_type_comes_from_the_statement_not_the_annotation(gate: Gate, oci: Pushed) -> None:
    bundle = gate.ids.good.sign(statement(oci.digest, SIGN_V1, {}))
    attach(oci.store, oci.descriptor, bundle, SLSA_PROVENANCE_V1)  # the annotation lies
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "provenance", "fail", "no signed SLSA provenance")
    expect(decision, "deny", "signers", "pass", SIGN_V1)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("checkpoint", "checkpoint: invalid signature"),
        ("inclusion-proof", "inclusion proof contains invalid root hash"),
        ("set", "SET: invalid inclusion promise"),
        ("integrated-time", "SET: invalid inclusion promise"),
        ("no-log-entry", "not a loadable Sigstore bundle"),
    ],
)
def test_corrupted_transparency_log_evidence_is_rejected(
    gate: Gate, oci: Pushed, case: str, reason: str
) -> None:
    good(gate, oci)  # a warm-up entry, so the inclusion proof has sibling hashes to corrupt
    original = good(gate, oci)

    def mutate(doc: dict[str, Any]) -> None:
        entry = tlog_entry(doc)
        if case == "checkpoint":
            checkpoint = entry["inclusionProof"]["checkpoint"]
            note, signature_line = checkpoint["envelope"].rstrip("\n").split("\n\n")
            dash, name, signature = signature_line.split(" ")
            checkpoint["envelope"] = f"{note}\n\n{dash} {name} {flip_b64(signature)}\n"
        elif case == "inclusion-proof":
            entry["inclusionProof"]["hashes"][0] = flip_b64(entry["inclusionProof"]["hashes"][0], 0)
        elif case == "set":
            promise = entry["inclusionPromise"]
            promise["signedEntryTimestamp"] = flip_b64(promise["signedEntryTimestamp"])
        elif case == "integrated-time":
            entry["integratedTime"] = str(int(entry["integratedTime"]) - 1)  # backdated by one second
        else:
            doc["verificationMaterial"]["tlogEntries"] = []

    referrer = attach(oci.store, oci.descriptor, tampered(original, mutate))
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    assert reason in ignored_reason(decision, referrer)


def test_message_signature_bundle_is_not_an_attestation(gate: Gate, oci: Pushed) -> None:
    bundle = gate.ids.good.signer.sign_artifact(oci.digest.encode()).to_json().encode()
    referrer = attach(oci.store, oci.descriptor, bundle, SIGN_V1)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    assert "a message signature, not a DSSE attestation" in ignored_reason(decision, referrer)


# -- age --------------------------------------------------------------------------------------------------


def test_stale_attestations_are_denied_when_now_moves_on(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    later = now() + timedelta(days=31)
    decision = gate.verify(oci.ref, gate.policy(oci.host), now=later)
    expect(decision, "deny", "provenance", "fail", "older than maxAge 30d")
    expect(decision, "deny", "sbom", "fail", "older than maxAge 7d")
    expect(decision, "deny", "vulnerabilities", "fail", "older than maxAge 1d")


def test_scan_older_than_a_day_is_denied_while_sbom_and_provenance_pass(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    decision = gate.verify(oci.ref, gate.policy(oci.host), now=now() + timedelta(days=2))
    expect(decision, "deny", "vulnerabilities", "fail", "the newest scan is 2d")
    expect(decision, "deny", "sbom", "pass", "CycloneDX SBOM, age 2d")
    expect(decision, "deny", "provenance", "pass", "age 2d")


def test_provenance_claiming_an_old_build_stays_old_though_freshly_signed(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    old = provenance(finished=now() - timedelta(days=60))
    attach(oci.store, oci.descriptor, gate.ids.good.sign(statement(oci.digest, SLSA_PROVENANCE_V1, old)))
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    # The fresh provenance of gate.full still satisfies the clause; alone, the old one would not.
    expect(decision, "allow", "provenance", "pass", "age ")
    assert re.search(r"age \d+s$", clause(decision, "provenance").reason)  # seconds, not the claimed 60 days
    only_old = push_image(gate.registries, oci.host)
    attach(
        only_old.store,
        only_old.descriptor,
        gate.ids.good.sign(statement(only_old.digest, SLSA_PROVENANCE_V1, old)),
    )
    decision = gate.verify(only_old.ref, gate.policy(oci.host))
    expect(decision, "deny", "provenance", "fail", "built 60d ago, older than maxAge 30d")


def test_sbom_claiming_an_old_timestamp_is_stale(gate: Gate, oci: Pushed) -> None:
    bundle = gate.ids.good.sign(
        statement(oci.digest, CYCLONEDX_BOM, sbom(timestamp=now() - timedelta(days=9)))
    )
    attach(oci.store, oci.descriptor, bundle, CYCLONEDX_BOM)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "sbom", "fail", "the newest SBOM is 9d old, older than maxAge 7d")


def test_claim_of_a_future_build_cannot_make_an_attestation_fresher(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    future = provenance(finished=now() + timedelta(days=400))
    attach(oci.store, oci.descriptor, gate.ids.good.sign(statement(oci.digest, SLSA_PROVENANCE_V1, future)))
    decision = gate.verify(oci.ref, gate.policy(oci.host), now=now() + timedelta(days=31))
    expect(decision, "deny", "provenance", "fail", "built 31d ago, older than maxAge 30d")


# -- provenance content -------------------------------------------------------------------------------------


def test_wrong_builder_is_denied(gate: Gate, oci: Pushed) -> None:
    predicate = provenance(builder="https://github.com/evil/ci/.github/workflows/build.yml@refs/heads/main")
    referrer = attach(oci.store, oci.descriptor, good(gate, oci, predicate=predicate))
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "provenance", "fail", "no signed SLSA provenance")
    assert "builder https://github.com/evil/ci/.github/workflows/build.yml@refs/heads/main is not the " in (
        ignored_reason(decision, referrer)
    )


def test_wrong_source_repository_is_denied(gate: Gate, oci: Pushed) -> None:
    referrer = attach(
        oci.store,
        oci.descriptor,
        good(gate, oci, predicate=provenance(source="https://github.com/org/app-evil")),
    )
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "provenance", "fail", "no signed SLSA provenance")
    assert "source https://github.com/org/app-evil is not the certificate's source repository" in (
        ignored_reason(decision, referrer)
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"source": "https://github.com/org/other"}, "is not the certificate's source repository"),
        (
            {"builder": "https://github.com/org/other/.github/workflows/release.yml@refs/heads/main"},
            "builder",
        ),
        ({"commit": "b" * 40}, f"source commit {'b' * 40} is not the certificate's {'a' * 40}"),
    ],
)
def test_provenance_claims_the_policy_allows_but_the_certificate_contradicts_do_not_count(
    gate: Gate, oci: Pushed, change: dict[str, str], reason: str
) -> None:
    """Attack 5: builderIds/sourceRepositories matched self-declared strings; now they are bound to the cert."""
    gate.full(oci)
    other = "https://github.com/org/other"
    predicate = provenance(
        source=change.get("source", SOURCE),
        builder=change.get("builder", provenance()["runDetails"]["builder"]["id"]),
    )
    predicate["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"] = change.get(
        "commit", "a" * 40
    )
    forged = attach(oci.store, oci.descriptor, good(gate, oci, predicate=predicate))
    policy_text = POLICY.replace(
        'sourceRepositories: ["{source}"]', f'sourceRepositories: ["{{source}}", "{other}"]'
    ).replace(
        'builderIds: ["{builder}"]',
        f'builderIds: ["{{builder}}", "{other}/.github/workflows/release.yml@refs/heads/main"]',
    )
    decision = gate.verify(oci.ref, gate.policy(oci.host, base=policy_text))
    expect(decision, "allow", "provenance", "pass", "source https://github.com/org/app")
    assert forged not in clause(decision, "provenance").evidence
    assert forged not in clause(decision, "signers").evidence
    assert "provenance contradicts its signing certificate" in ignored_reason(decision, forged)
    assert reason in ignored_reason(decision, forged)


def test_the_typed_github_signer_matches_the_certificate_extensions(gate: Gate, oci: Pushed) -> None:
    typed = POLICY.replace(
        "  - issuer: {issuer}\n    subjectRegExp: ^https://github\\.com/org/app/\\.github/workflows/release\\.yml@refs/heads/main$\n",
        "  - github: {{repository: org/app, workflow: .github/workflows/release.yml, ref: refs/heads/main}}\n",
    )
    assert typed != POLICY
    gate.full(oci)
    for identity in (gate.ids.lookalike, gate.ids.other_workflow, gate.ids.email):
        attach(oci.store, oci.descriptor, identity.sign(statement(oci.digest, SIGN_V1, {})), SIGN_V1)
    # The stack's issuer is not GitHub's: the typed form names GitHub's issuer, so nothing counts ...
    decision = gate.verify(oci.ref, gate.policy(oci.host, base=typed))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    # ... and with the issuer swapped for the stack's, exactly the good workflow's four count.
    from dataclasses import replace

    policy = gate.policy(oci.host, base=typed)
    policy = replace(policy, signers=tuple(replace(s, issuer=gate.stack.issuer_url) for s in policy.signers))
    decision = gate.verify(oci.ref, policy)
    expect(decision, "allow", "signers", "pass", "4 attestation(s) signed by " + SAN)
    assert sum("matches no signers entry" in r for _, r in decision.ignored) == 3


def test_slsa_v02_provenance_is_read(gate: Gate, oci: Pushed) -> None:
    v02 = {
        "builder": {"id": "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main"},
        "invocation": {
            "configSource": {
                "uri": "git+https://github.com/org/app@refs/heads/main",
                "digest": {"sha1": "a" * 40},
            }
        },
        "metadata": {"buildFinishedOn": (now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")},
    }
    attach(oci.store, oci.descriptor, good(gate, oci, SLSA_PROVENANCE_V02, v02), SLSA_PROVENANCE_V02)
    base = """\
version: 1
signers: [{{issuer: "{issuer}", subject: "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main"}}]
provenance: {{builderIds: ["{builder}"], sourceRepositories: ["{source}"], maxAge: 2d}}
"""
    decision = gate.verify(oci.ref, gate.policy(oci.host, base=base))
    expect(
        decision,
        "allow",
        "provenance",
        "pass",
        f"builder {BUILDER}, source git+https://github.com/org/app@refs/heads/main, age 1d",
    )


# -- vulnerabilities ------------------------------------------------------------------------------------------


def test_critical_vulnerability_is_denied(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    scan = vuln_scan([("CVE-2024-0001", "CRITICAL"), ("CVE-2024-0002", "MEDIUM")])
    attach(oci.store, oci.descriptor, good(gate, oci, COSIGN_VULN_V1, scan), COSIGN_VULN_V1)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "vulnerabilities", "fail", "denied findings in 2 scan(s) within maxAge")
    # The scan's age depends on the clock ticking between signing and verifying: match any whole seconds.
    assert re.search(
        r"\(newest \d+s ago\): CVE-2024-0001 \(critical\)$", clause(decision, "vulnerabilities").reason
    )
    assert "CVE-2024-0002" not in clause(decision, "vulnerabilities").reason


def test_denied_id_as_an_alias_in_a_cyclonedx_scan_is_denied(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    vulns = [
        {
            "id": "GHSA-xxxx-yyyy-zzzz",
            "ratings": [{"severity": "low"}],
            "references": [{"id": "CVE-2024-3094"}],
        }
    ]
    scan = vuln_scan([])
    scan["scanner"]["result"] = {**sbom(vulnerabilities=vulns)}
    attach(oci.store, oci.descriptor, good(gate, oci, COSIGN_VULN_V1, scan), COSIGN_VULN_V1)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "vulnerabilities", "fail", "GHSA-xxxx-yyyy-zzzz (low)")


def test_a_finding_with_only_a_cvss_vector_is_rated_from_it(gate: Gate, oci: Pushed) -> None:
    """Attack 6: OSV and distro records often carry only a vector; a 9.8 must not pass ``deny: [critical]``."""
    gate.full(oci)
    scan = vuln_scan([])
    scan["scanner"]["result"] = {
        "Results": [
            {
                "Target": "image",
                "Vulnerabilities": [
                    {
                        "VulnerabilityID": "CVE-2024-0009",
                        "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
                    }
                ],
            }
        ]
    }
    attach(oci.store, oci.descriptor, good(gate, oci, COSIGN_VULN_V1, scan), COSIGN_VULN_V1)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "vulnerabilities", "fail", "CVE-2024-0009 (critical)")


def test_a_newer_sbom_with_no_vulnerabilities_does_not_mask_a_critical_scan(gate: Gate, oci: Pushed) -> None:
    """Attack 3: an SBOM's own ``vulnerabilities: []`` is not a scan."""
    gate.full(oci)
    critical = vuln_scan([("CVE-2024-0001", "CRITICAL")], finished=now() - timedelta(hours=2))
    attach(oci.store, oci.descriptor, good(gate, oci, COSIGN_VULN_V1, critical), COSIGN_VULN_V1)
    attach(oci.store, oci.descriptor, good(gate, oci, CYCLONEDX_BOM, sbom(vulnerabilities=[])), CYCLONEDX_BOM)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "vulnerabilities", "fail", "CVE-2024-0001 (critical)")


def test_a_newer_clean_scan_does_not_roll_back_a_critical_one(gate: Gate, oci: Pushed) -> None:
    """Attack 4: every counted scan within maxAge is judged (monotonic), not only the newest."""
    critical = vuln_scan([("CVE-2024-0001", "CRITICAL")], finished=now() - timedelta(hours=6))
    attach(oci.store, oci.descriptor, good(gate, oci, COSIGN_VULN_V1, critical), COSIGN_VULN_V1)
    gate.full(oci)  # its clean scan is newer
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "vulnerabilities", "fail", "denied findings in 2 scan(s) within maxAge")
    # Once the critical scan is older than maxAge (1d), only the fresh clean scan is judged.
    later = gate.verify(oci.ref, gate.policy(oci.host), now=now() + timedelta(hours=20))
    expect(later, "allow", "vulnerabilities", "pass", "1 scan(s) within maxAge")


def test_unreadable_scan_result_fails_closed(gate: Gate, oci: Pushed) -> None:
    scan = vuln_scan([])
    scan["scanner"]["result"] = {"runs": [{"results": [{"ruleId": "CVE-2024-0001"}]}]}  # SARIF: not read
    referrer = attach(oci.store, oci.descriptor, good(gate, oci, COSIGN_VULN_V1, scan), COSIGN_VULN_V1)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(
        decision,
        "deny",
        "vulnerabilities",
        "fail",
        f"no readable scan within maxAge: {referrer[:19]}: the scan result is in no format chaingate reads",
    )
    # Beside a readable scan it does not count, and says so: never read as a clean scan.
    gate.full(oci)
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "allow", "vulnerabilities", "pass", f"not counted: {referrer[:19]}")


# -- quarantine and exceptions ---------------------------------------------------------------------------------


def test_quarantined_digest_is_denied(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    extra = f'quarantine: [{{digest: "{oci.digest}", reason: "INC-7 compromised build"}}]\n'
    decision = gate.verify(oci.ref, gate.policy(oci.host, extra))
    expect(decision, "deny", "quarantine", "fail", f"{oci.digest} is quarantined: INC-7 compromised build")


def test_quarantine_list_file_is_read(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    (gate.tmp / "quarantine.txt").write_text(
        f"# incident 7\n\n{'a' * 0}sha256:{'0' * 64}\n{oci.digest} leaked key\n"
    )
    decision = gate.verify(oci.ref, gate.policy(oci.host, "quarantine: [{file: quarantine.txt}]\n"))
    expect(
        decision,
        "deny",
        "quarantine",
        "fail",
        f"is quarantined: leaked key ({gate.tmp / 'quarantine.txt'}:4)",
    )


def _exception(clause_name: str, image: str, expires: str, ident: str = "EXC-1", ids: str = "") -> str:
    return f"""\
exceptions:
  - id: {ident}
    clause: {clause_name}
    image: "{image}"{ids}
    owner: alice@example.com
    justification: vendor fix pending
    issue: https://github.com/org/app/issues/12
    expires: {expires}
"""


def _days(n: int) -> str:
    return (now() + timedelta(days=n)).date().isoformat()


def test_quarantine_is_waived_only_by_an_exception_naming_it(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    quarantine = f'quarantine: [{{digest: "{oci.digest}", reason: "INC-7"}}]\n'
    waived = gate.verify(
        oci.ref, gate.policy(oci.host, quarantine + _exception("quarantine", oci.ref, _days(30)))
    )
    expect(waived, "allow", "quarantine", "waived", "waived by EXC-1")
    assert clause(waived, "quarantine").exception_id == "EXC-1"
    other = gate.verify(
        oci.ref, gate.policy(oci.host, quarantine + _exception("vulnerabilities", oci.ref, _days(30)))
    )
    expect(other, "deny", "quarantine", "fail", "is quarantined: INC-7")


def test_valid_exception_waives_the_vulnerability_clause(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    scan = vuln_scan([("CVE-2024-0001", "CRITICAL")])
    attach(oci.store, oci.descriptor, good(gate, oci, COSIGN_VULN_V1, scan), COSIGN_VULN_V1)
    decision = gate.verify(
        oci.ref, gate.policy(oci.host, _exception("vulnerabilities", f"{oci.host}/org/*", _days(30)))
    )
    expect(decision, "allow", "vulnerabilities", "waived", "waived by EXC-1 until the end of")
    assert decision.warnings == ()


def test_exception_ids_waive_only_the_listed_findings(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    scan = vuln_scan([("CVE-2024-0001", "CRITICAL"), ("CVE-2024-0002", "HIGH")])
    attach(oci.store, oci.descriptor, good(gate, oci, COSIGN_VULN_V1, scan), COSIGN_VULN_V1)
    partial = _exception("vulnerabilities", oci.ref, _days(30), ids="\n    ids: [CVE-2024-0001]")
    decision = gate.verify(oci.ref, gate.policy(oci.host, partial))
    expect(
        decision,
        "deny",
        "vulnerabilities",
        "fail",
        "denied findings not covered by exceptions: CVE-2024-0002 (high)",
    )
    both = _exception("vulnerabilities", oci.ref, _days(30), ids="\n    ids: [CVE-2024-0001, CVE-2024-0002]")
    expect(
        gate.verify(oci.ref, gate.policy(oci.host, both)),
        "allow",
        "vulnerabilities",
        "waived",
        "waived by EXC-1",
    )


def test_expired_exception_is_not_applied_and_is_reported(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    extra = f'quarantine: [{{digest: "{oci.digest}", reason: "INC-7"}}]\n' + _exception(
        "quarantine", oci.ref, _days(-1)
    )
    decision = gate.verify(oci.ref, gate.policy(oci.host, extra))
    expect(decision, "deny", "quarantine", "fail", "is quarantined")
    assert any(
        w.startswith("exception EXC-1 (quarantine, owner alice@example.com) expired")
        and w.endswith("not applied")
        for w in decision.warnings
    )


def test_foreign_exception_does_not_apply(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    other = push_image(gate.registries, oci.host)
    extra = f'quarantine: [{{digest: "{oci.digest}", reason: "INC-7"}}]\n' + _exception(
        "quarantine", other.ref, _days(30)
    )
    decision = gate.verify(oci.ref, gate.policy(oci.host, extra))
    expect(decision, "deny", "quarantine", "fail", "is quarantined")
    assert decision.warnings == ()


def test_exception_about_to_expire_applies_with_a_warning(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    extra = f'quarantine: [{{digest: "{oci.digest}", reason: "INC-7"}}]\n' + _exception(
        "quarantine", oci.ref, _days(3)
    )
    decision = gate.verify(oci.ref, gate.policy(oci.host, extra))
    expect(decision, "allow", "quarantine", "waived", "waived by EXC-1")
    assert any("expires at the end of" in w and "renew it" in w for w in decision.warnings)


# -- mode -------------------------------------------------------------------------------------------------


def test_warn_mode_reports_a_denial_but_allows(gate: Gate, oci: Pushed) -> None:
    decision = gate.verify(oci.ref, gate.policy(oci.host, base=_with_mode("warn")))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    assert decision.mode == "warn" and decision.allowed


def _with_mode(mode: str) -> str:
    from support.gate import POLICY

    return POLICY.replace("mode: enforce", f"mode: {mode}")


def test_project_override_switches_the_mode_for_that_project_only(gate: Gate, oci: Pushed) -> None:
    policy = gate.policy(oci.host, "projects: {proj-a: {mode: warn}}\n")
    in_project = gate.verify(oci.ref, policy, project="proj-a")
    assert in_project.verdict == "deny" and in_project.mode == "warn" and in_project.allowed
    elsewhere = gate.verify(oci.ref, policy, project="proj-b")
    assert elsewhere.mode == "enforce" and not elsewhere.allowed
    expect(elsewhere, "deny", "signers", "fail", "no attachment counts")


# -- references and registries ------------------------------------------------------------------------------


def test_tag_reference_is_denied_by_require_digest(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    decision = gate.verify(oci.tag_ref, gate.policy(oci.host))
    expect(
        decision, "deny", "requireDigest", "fail", f"{oci.tag_ref} is a tag reference; requireDigest needs"
    )
    assert (
        decision.digest == oci.digest
        and f"(it resolved to {oci.digest})" in clause(decision, "requireDigest").reason
    )
    expect(decision, "deny", "signers", "pass", "4 attestation(s)")


def test_tag_reference_is_allowed_without_require_digest(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    decision = gate.verify(oci.tag_ref, gate.policy(oci.host, base=_without_require_digest()))
    expect(decision, "allow", "requireDigest", "skipped", "requireDigest is off")


def _without_require_digest() -> str:
    from support.gate import POLICY

    return POLICY.replace("requireDigest: true", "requireDigest: false")


def test_registry_outside_the_allowlist_is_denied(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    decision = gate.verify(oci.ref, gate.policy("us.icr.io"))
    expect(
        decision,
        "deny",
        "registries",
        "fail",
        f"{oci.name} matches none of the allowed registries (us.icr.io/org/**)",
    )


# -- broken attachments beside good ones --------------------------------------------------------------------


def test_referrer_blob_that_does_not_match_its_digest_is_ignored(
    gate: Gate, fresh_oci_registry: OCIRegistry
) -> None:
    pushed = push_image(gate.registries, fresh_oci_registry.host)
    gate.full(pushed)
    bundle = good(gate, pushed)
    referrer = attach(pushed.store, pushed.descriptor, bundle)
    blob = "sha256:" + hashlib.sha256(bundle).hexdigest()
    fresh_oci_registry.add_fault(Fault(path=f"/blobs/{blob}", method="GET", corrupt=True))
    decision = gate.verify(pushed.ref, gate.policy(pushed.host))
    expect(decision, "allow", "signers", "pass", "4 attestation(s)")
    assert f"bundle blob {blob}" in ignored_reason(decision, referrer)
    assert "does not match the expected" in ignored_reason(decision, referrer)


def test_only_signature_with_a_corrupted_blob_denies(gate: Gate, fresh_oci_registry: OCIRegistry) -> None:
    pushed = push_image(gate.registries, fresh_oci_registry.host)
    bundle = good(gate, pushed)
    referrer = attach(pushed.store, pushed.descriptor, bundle)
    fresh_oci_registry.add_fault(
        Fault(path=f"/blobs/sha256:{hashlib.sha256(bundle).hexdigest()}", corrupt=True)
    )
    decision = gate.verify(pushed.ref, gate.policy(pushed.host))
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    assert "does not match the expected" in ignored_reason(decision, referrer)


def test_fallback_index_listing_a_missing_manifest_is_ignored(
    gate: Gate, fresh_oci_registry: OCIRegistry
) -> None:
    fresh_oci_registry.referrers_api = False  # a pre-1.1 registry: attachments go to the fallback tag
    pushed = push_image(gate.registries, fresh_oci_registry.host)
    gate.full(pushed)
    tag = "sha256-" + pushed.digest.split(":", 1)[1]
    raw, _ = pushed.store.client.get_manifest_bytes(REPO, tag)
    index = json.loads(raw)
    missing = "sha256:" + "e" * 64
    index["manifests"].append(
        {
            "mediaType": media.OCI_MANIFEST,
            "digest": missing,
            "size": 500,
            "artifactType": media.SIGSTORE_BUNDLE_V03,
        }
    )
    # Planted without validation: a real registry refuses an index naming a missing manifest.
    fresh_oci_registry.put_manifest_bytes(REPO, json.dumps(index).encode(), media.OCI_INDEX, tag=tag)
    decision = gate.verify(pushed.ref, gate.policy(pushed.host))
    expect(decision, "allow", "image", "pass", "4 attestation(s) counted, 1 attachment(s) ignored")
    assert ignored_reason(decision, missing).startswith("fallback-tag: ")
    assert "not found" in ignored_reason(decision, missing)


def test_one_bad_referrer_beside_good_ones_is_listed_but_does_not_deny(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    bad = attach(
        oci.store, oci.descriptor, gate.ids.lookalike.sign(statement(oci.digest, SIGN_V1, {})), SIGN_V1
    )
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "allow", "signers", "pass", "4 attestation(s)")
    assert "matches no signers entry" in ignored_reason(decision, bad)


def test_non_sigstore_referrer_is_listed_as_ignored(gate: Gate, oci: Pushed) -> None:
    gate.full(oci)
    artifact = build_artifact(oci.descriptor, "application/vnd.example.notes", [Blob("text/plain", b"hello")])
    push_blobs(oci.store, artifact)
    notes = oci.store.attach(artifact.manifest).digest
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "allow", "signers", "pass", "4 attestation(s)")
    assert "not a Sigstore bundle (artifactType application/vnd.example.notes)" in ignored_reason(
        decision, notes
    )


def test_cosign_legacy_tags_are_read(gate: Gate, oci: Pushed) -> None:
    from chaingate.oci.interface import Manifest

    legacy_tag = "sha256-" + oci.digest.split(":", 1)[1]
    old = build_artifact(
        oci.descriptor, "x", [Blob("application/vnd.dev.cosign.simplesigning.v1+json", b"{}")]
    )
    old_doc = json.loads(old.manifest.raw)
    del old_doc["subject"], old_doc["artifactType"]
    bundle = good(gate, oci)
    att = build_artifact(oci.descriptor, "x", [Blob(media.SIGSTORE_BUNDLE_V03, bundle)])
    att_doc = json.loads(att.manifest.raw)
    del att_doc["subject"], att_doc["artifactType"]
    digests = {}
    for suffix, artifact, doc in (("sig", old, old_doc), ("att", att, att_doc)):
        push_blobs(oci.store, artifact)
        raw = json.dumps(doc).encode()
        manifest = Manifest.parse(
            raw, Descriptor(media.OCI_MANIFEST, "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw))
        )
        oci.store.put_manifest(manifest, tag=f"{legacy_tag}.{suffix}")
        digests[suffix] = manifest.digest
    decision = gate.verify(oci.ref, gate.policy(oci.host))
    expect(decision, "deny", "provenance", "pass", "source https://github.com/org/app")
    assert clause(decision, "provenance").evidence == (digests["att"],)
    assert "legacy-tag:sig: cosign's pre-bundle signature format" in ignored_reason(decision, digests["sig"])


# -- multi-arch ------------------------------------------------------------------------------------------------


def _platform_descriptor(pushed: Pushed, index: int) -> Descriptor:
    assert isinstance(pushed.built, BuiltIndex)
    return pushed.built.images[index].manifest.descriptor


def test_multiarch_attestations_on_the_index_count(gate: Gate, oci_registry: OCIRegistry) -> None:
    from chaingate.oci.interface import Platform

    pushed = push_image(gate.registries, oci_registry.host, multiarch=True)
    gate.full(pushed)
    decision = gate.verify(pushed.ref, gate.policy(pushed.host), platform=Platform("linux", "arm64"))
    arm = _platform_descriptor(pushed, 1).digest
    expect(
        decision, "allow", "image", "pass", f"resolved to {arm} (platform manifest of index {pushed.digest})"
    )


def test_multiarch_attestations_on_the_selected_platform_count(gate: Gate, oci_registry: OCIRegistry) -> None:
    from chaingate.oci.interface import Platform

    pushed = push_image(gate.registries, oci_registry.host, multiarch=True)
    arm = _platform_descriptor(pushed, 1)
    gate.full(pushed, subject=arm)
    selected = gate.verify(pushed.ref, gate.policy(pushed.host), platform=Platform("linux", "arm64"))
    expect(selected, "allow", "signers", "pass", "4 attestation(s)")
    # Attack 2: what runs is the platform manifest; the decision and its VSA name it, the index goes beside.
    assert selected.digest == arm.digest and selected.index_digest == pushed.digest
    assert selected.record()["digest"] == arm.digest and selected.record()["indexDigest"] == pushed.digest
    assert selected.vsa_statement()["subject"][0]["digest"] == {"sha256": arm.digest.split(":", 1)[1]}
    other = gate.verify(pushed.ref, gate.policy(pushed.host), platform=Platform("linux", "amd64"))
    expect(other, "deny", "signers", "fail", "no attachment counts")
    unselected = gate.verify(pushed.ref, gate.policy(pushed.host))
    expect(unselected, "deny", "signers", "fail", "no attachment counts")
    assert any(
        "multi-arch index: only attachments of the index itself were read" in w for w in unselected.warnings
    )


def test_a_quarantined_platform_manifest_denies_its_index_without_platform(
    gate: Gate, oci_registry: OCIRegistry
) -> None:
    """Review finding: the index verified and deployed, the runtime runs the quarantined amd64 manifest."""
    pushed = push_image(gate.registries, oci_registry.host, multiarch=True)
    gate.full(pushed)
    amd = _platform_descriptor(pushed, 0).digest
    quarantine = f'quarantine: [{{digest: "{amd}", reason: "INC-9"}}]\n'
    decision = gate.verify(pushed.ref, gate.policy(pushed.host, quarantine))
    expect(decision, "deny", "quarantine", "fail", f"{amd} is quarantined: INC-9")
    assert "(a platform manifest of this index)" in clause(decision, "quarantine").reason


def test_multiarch_platform_that_does_not_exist_is_denied(gate: Gate, oci_registry: OCIRegistry) -> None:
    from chaingate.oci.interface import Platform

    pushed = push_image(gate.registries, oci_registry.host, multiarch=True)
    gate.full(pushed)
    decision = gate.verify(pushed.ref, gate.policy(pushed.host), platform=Platform("linux", "s390x"))
    expect(
        decision,
        "deny",
        "image",
        "fail",
        "no image for platform linux/s390x (available: linux/amd64, linux/arm64)",
    )


# -- outages and trust roots ----------------------------------------------------------------------------------


def test_registry_down_denies_instead_of_raising(gate: Gate, fresh_oci_registry: OCIRegistry) -> None:
    pushed = push_image(gate.registries, fresh_oci_registry.host)
    gate.full(pushed)
    fresh_oci_registry.stop()
    decision = gate.verify(pushed.ref, gate.policy(pushed.host))
    expect(decision, "deny", "image", "fail", f"{pushed.ref} could not be read: {pushed.host}")
    expect(decision, "deny", "signers", "skipped", "the image could not be read")
    assert decision.digest == ""


def test_failing_referrers_listing_denies(gate: Gate, fresh_oci_registry: OCIRegistry) -> None:
    pushed = push_image(gate.registries, fresh_oci_registry.host)
    gate.full(pushed)
    fresh_oci_registry.add_fault(Fault(path="/referrers/", status=503))
    decision = gate.verify(pushed.ref, gate.policy(pushed.host))
    expect(decision, "deny", "image", "fail", "could not list its attachments")
    assert decision.digest == pushed.digest


def test_unreachable_public_good_trust_root_denies(
    gate: Gate, oci: Pushed, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    gate.full(oci)
    decision = gate.verify(oci.ref, gate.policy(oci.host), trust_config=None)
    expect(decision, "deny", "signers", "fail", "no attachment counts")
    assert all("the public-good Sigstore trust root is unavailable" in r for _, r in decision.ignored)


def test_usage_errors_raise(gate: Gate, oci: Pushed, tmp_path: Any) -> None:
    policy = gate.policy(oci.host)
    with pytest.raises(ChaingateError, match=r"--trust-config .*missing\.json"):
        gate.verify(oci.ref, policy, trust_config=tmp_path / "missing.json")
    with pytest.raises(ChaingateError, match="invalid tag"):
        gate.verify(f"{oci.host}/org/app:bad tag!", policy)
    assert parse_reference(oci.ref).digest == oci.digest


def test_image_copied_to_an_oci_layout_verifies_offline_but_is_not_in_a_registry(
    gate: Gate, oci: Pushed
) -> None:
    from chaingate.oci.copy import copy_image
    from chaingate.oci.layout import LayoutStore

    gate.full(oci)
    layout = gate.tmp / "layout"
    with LayoutStore.open_directory(layout, create=True) as store:
        copy_image(oci.store, oci.digest, store, tag="v1")
    reference = f"oci:{layout}@{oci.digest}"
    no_registries = (
        "version: 1\nsigners: [{{issuer: '{issuer}', subject: '" + SAN + "'}}]\nrequireDigest: true\n"
    )
    allowed = gate.verify(reference, gate.policy(oci.host, base=no_registries))
    expect(allowed, "allow", "signers", "pass", "4 attestation(s)")
    expect(allowed, "allow", "requireDigest", "pass", "the reference names a digest")
    denied = gate.verify(reference, gate.policy(oci.host))
    expect(denied, "deny", "registries", "fail", "is not in a registry, so no registries glob can allow it")


def test_a_quarantined_image_inside_a_nested_index_denies_the_outer_index(tmp_path: Path) -> None:
    """Second review: containerd descends into an index inside an index, so the gate must look there too."""
    from chaingate.oci.client import Registries
    from chaingate.policy import load_policy
    from chaingate.verify import verify_image
    from chaingate_testing.images import BuiltBlob, File, Layer, build_image, write_layout

    layout = tmp_path / "layout"
    image = build_image([Layer([File("payload", b"x")])])
    write_layout(layout, image, tag="image")
    entry = {"mediaType": media.OCI_MANIFEST, "digest": image.digest, "size": image.manifest.descriptor.size}
    inner = BuiltBlob.of(media.OCI_INDEX, json.dumps({"schemaVersion": 2, "mediaType": media.OCI_INDEX,
                                                      "manifests": [entry]}).encode())  # fmt: skip
    outer_doc = {"schemaVersion": 2, "mediaType": media.OCI_INDEX,
                 "manifests": [{"mediaType": media.OCI_INDEX, "digest": inner.digest, "size": len(inner.data)}]}  # fmt: skip
    outer = BuiltBlob.of(media.OCI_INDEX, json.dumps(outer_doc).encode())
    for blob in (inner, outer):
        (layout / "blobs" / "sha256" / blob.digest.split(":")[1]).write_bytes(blob.data)
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(
        "version: 1\nsigners: [{issuer: https://issuer.example, subject: me}]\n"
        f'quarantine: [{{digest: "{image.digest}", reason: INC-11}}]\n'
    )
    registries = Registries()
    try:
        decision = verify_image(
            f"oci:{layout}@{outer.digest}", load_policy(policy_path), registries=registries
        )
    finally:
        registries.close()
    expect(decision, "deny", "quarantine", "fail", f"{image.digest} is quarantined: INC-11")
