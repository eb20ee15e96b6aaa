"""Clause evaluation as a table: verified facts in, results out, no registry or signature involved."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chaingate.policy import Decision, load_policy
from chaingate.policy.clauses import (
    Attestation,
    CertificateFacts,
    ImageFacts,
    evaluate,
    scan_findings,
)
from chaingate.policy.interface import ClauseResult
from chaingate.policy.model import Policy
from chaingate.predicate_types import COSIGN_VULN_V1, CYCLONEDX_BOM, SLSA_PROVENANCE_V1

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "1" * 64
FACTS = ImageFacts("us.icr.io/team/app@" + DIGEST, "us.icr.io/team/app", True, DIGEST)
ASSETS = Path(__file__).resolve().parents[1] / "assets"


def policy(tmp_path: Path, extra: str = "") -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nsigners: [{issuer: https://issuer, subject: me}]\n" + textwrap.dedent(extra))
    return load_policy(path, today=NOW.date())


def att(
    ptype: str, predicate: Mapping[str, Any], signed_at: datetime = NOW, referrer: str = "sha256:" + "f" * 64
) -> Attestation:
    return Attestation(referrer, DIGEST, "referrers-api", ptype, predicate, signed_at, "me", "https://issuer")


def result(results: tuple[ClauseResult, ...], name: str) -> ClauseResult:
    return next(c for c in results if c.clause == name)


def slsa(finished: str | None) -> dict[str, Any]:
    meta = {"finishedOn": finished} if finished else {}
    return {"runDetails": {"builder": {"id": "b"}, "metadata": meta}}


@pytest.mark.parametrize(
    ("signed_days_ago", "claimed", "verdict"),
    [
        (1, None, "pass"),  # no claim: the trusted time alone
        (1, "2026-03-09T12:00:00Z", "pass"),
        (1, "2026-02-01T00:00:00Z", "fail"),  # an old claim stays old
        (40, "2026-03-10T11:00:00Z", "fail"),  # a fresh claim cannot rejuvenate an old signature
        (1, "2027-01-01T00:00:00Z", "pass"),  # a claim from the future does not matter either
        (1, "not a time", "pass"),  # an unreadable claim is ignored, the signing time still bounds
    ],
)
def test_age_is_the_earlier_of_signing_and_claimed_time(
    tmp_path: Path, signed_days_ago: int, claimed: str | None, verdict: str
) -> None:
    rules = policy(tmp_path, "provenance: {maxAge: 30d}\n")
    attestation = att(SLSA_PROVENANCE_V1, slsa(claimed), NOW - timedelta(days=signed_days_ago))
    assert result(evaluate(rules, FACTS, [attestation], now=NOW).clauses, "provenance").result == verdict


def test_exceptions_last_until_the_end_of_their_day_utc(tmp_path: Path) -> None:
    rules = policy(
        tmp_path,
        f"""\
        quarantine: [{{digest: "{DIGEST}", reason: INC}}]
        exceptions:
          - {{id: E, clause: quarantine, image: "us.icr.io/team/*", owner: o, justification: j, issue: i,
             expires: 2026-03-10}}
        """,
    )
    last_second = datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC)
    midnight = datetime(2026, 3, 11, 0, 0, tzinfo=UTC)
    inside = evaluate(rules, FACTS, [], now=last_second)
    assert result(inside.clauses, "quarantine").result == "waived"
    assert any("expires at the end of 2026-03-10 (in 1s)" in w for w in inside.warnings)
    after = evaluate(rules, FACTS, [], now=midnight)
    assert result(after.clauses, "quarantine").result == "fail"
    assert after.warnings == (
        "exception E (quarantine, owner o) expired at the end of 2026-03-10; not applied",
    )


def test_exception_for_a_glob_does_not_reach_other_repositories(tmp_path: Path) -> None:
    rules = policy(
        tmp_path,
        f"""\
        quarantine: [{{digest: "{DIGEST}", reason: INC}}]
        exceptions:
          - {{id: E, clause: quarantine, image: "us.icr.io/team/*", owner: o, justification: j, issue: i,
             expires: 2026-12-01}}
        """,
    )
    elsewhere = ImageFacts("x", "us.icr.io/other/app", True, DIGEST)
    assert result(evaluate(rules, elsewhere, [], now=NOW).clauses, "quarantine").result == "fail"
    assert result(evaluate(rules, FACTS, [], now=NOW).clauses, "quarantine").exception_id == "E"


def test_signers_fail_without_attestations_and_skip_when_the_image_was_not_read(tmp_path: Path) -> None:
    rules = policy(tmp_path)
    assert result(evaluate(rules, FACTS, [], now=NOW).clauses, "signers").result == "fail"
    unread = ImageFacts("x", "us.icr.io/team/app", False, None)
    assert result(evaluate(rules, unread, [], now=NOW).clauses, "signers").result == "skipped"


def test_optional_clauses_skip_when_absent_but_judge_what_is_present(tmp_path: Path) -> None:
    rules = policy(tmp_path, "provenance: {required: false, builderIds: [good]}\nsbom: {required: false}\n")
    clauses = evaluate(rules, FACTS, [], now=NOW).clauses
    assert result(clauses, "provenance").result == "skipped" and result(clauses, "sbom").result == "skipped"
    judged = evaluate(rules, FACTS, [att(SLSA_PROVENANCE_V1, slsa(None))], now=NOW).clauses
    assert result(judged, "provenance").result == "fail"
    assert "builder b is not in builderIds" in result(judged, "provenance").reason


def test_image_outside_a_registry_cannot_match_registries(tmp_path: Path) -> None:
    rules = policy(tmp_path, "registries: ['**']\n")
    layout = ImageFacts("oci:/tmp/x", None, False, DIGEST)
    outcome = result(evaluate(rules, layout, [], now=NOW).clauses, "registries")
    assert outcome.result == "fail" and "is not in a registry" in outcome.reason


CRITICAL_SCAN = "sha256:" + "a" * 64
CLEAN_SCAN = "sha256:" + "b" * 64


def _critical_then_clean() -> list[Attestation]:
    """A critical finding scanned 3 days ago, then a clean scan an hour ago."""
    old = att(
        COSIGN_VULN_V1,
        _plain([{"id": "CVE-1", "severity": "critical"}]),
        NOW - timedelta(days=3),
        CRITICAL_SCAN,
    )
    return [old, att(COSIGN_VULN_V1, _plain([]), NOW - timedelta(hours=1), CLEAN_SCAN)]


@pytest.mark.parametrize(
    ("max_age", "verdict", "evidence"),
    [
        # Attack 4: every counted scan within maxAge is judged; the verdict is monotonic.
        ("7d", "fail", {CRITICAL_SCAN, CLEAN_SCAN}),
        # A scan older than maxAge is not judged: only the fresh clean one is.
        ("1d", "pass", {CLEAN_SCAN}),
    ],
)
def test_a_newer_clean_scan_does_not_roll_back_a_fresh_critical_finding(
    tmp_path: Path, max_age: str, verdict: str, evidence: set[str]
) -> None:
    rules = policy(tmp_path, f"vulnerabilities: {{deny: [critical], maxAge: {max_age}}}\n")
    outcome = result(evaluate(rules, FACTS, _critical_then_clean(), now=NOW).clauses, "vulnerabilities")
    assert outcome.result == verdict and set(outcome.evidence) == evidence
    if verdict == "fail":
        assert "CVE-1 (critical)" in outcome.reason and "2 scan(s) within maxAge" in outcome.reason


def test_an_sbom_with_an_empty_vulnerabilities_array_is_not_a_scan(tmp_path: Path) -> None:
    """Attack 3: a newer SBOM saying ``vulnerabilities: []`` must not mask the critical scan."""
    rules = policy(tmp_path, "vulnerabilities: {deny: [critical]}\n")
    scan = att(COSIGN_VULN_V1, _plain([{"id": "CVE-1", "severity": "critical"}]), NOW - timedelta(days=1))
    bom = att(CYCLONEDX_BOM, {"bomFormat": "CycloneDX", "vulnerabilities": []}, NOW, "sha256:" + "c" * 64)
    outcome = result(evaluate(rules, FACTS, [scan, bom], now=NOW).clauses, "vulnerabilities")
    assert outcome.result == "fail" and "CVE-1 (critical)" in outcome.reason
    alone = result(evaluate(rules, FACTS, [bom], now=NOW).clauses, "vulnerabilities")
    assert alone.result == "fail" and alone.reason == "no signed vulnerability scan about this image"


def test_an_unreadable_scan_does_not_count_and_is_never_clean(tmp_path: Path) -> None:
    rules = policy(tmp_path, "vulnerabilities: {deny: [critical]}\n")
    junk = att(COSIGN_VULN_V1, {"scanner": {"result": {"something": "else"}}}, NOW, "sha256:" + "d" * 64)
    outcome = result(evaluate(rules, FACTS, [junk], now=NOW).clauses, "vulnerabilities")
    assert outcome.result == "fail" and "no readable scan within maxAge" in outcome.reason
    clean = att(COSIGN_VULN_V1, _plain([]), NOW, "sha256:" + "e" * 64)
    both = result(evaluate(rules, FACTS, [junk, clean], now=NOW).clauses, "vulnerabilities")
    assert both.result == "pass" and "not counted: sha256:dddddddddddd" in both.reason
    assert both.evidence == ("sha256:" + "e" * 64,)


def test_the_gate_s_own_records_never_count_for_any_clause(tmp_path: Path) -> None:
    """Attack 1: a signed VSA (even a FAILED one) or deployment record is not a statement about the artifact."""
    rules = policy(tmp_path)
    vsa = att("https://slsa.dev/verification_summary/v1", {"verificationResult": "FAILED"})
    deployed = att("https://chaingate.dev/deployment/v1", {})
    outcome = result(evaluate(rules, FACTS, [vsa, deployed], now=NOW).clauses, "signers")
    assert outcome.result == "fail" and "the gate's own records never count" in outcome.reason
    custom = att("https://example.com/custom/v1", {})
    assert result(evaluate(rules, FACTS, [custom], now=NOW).clauses, "signers").result == "fail"
    for ptype in ("https://sigstore.dev/cosign/sign/v1", "https://spdx.dev/Document", CYCLONEDX_BOM):
        assert result(evaluate(rules, FACTS, [att(ptype, {})], now=NOW).clauses, "signers").result == "pass"


def _plain(vulns: list[dict[str, Any]]) -> dict[str, Any]:
    return {"scanner": {"uri": "x", "result": {"vulnerabilities": vulns}}}


@pytest.mark.parametrize(
    ("predicate_type", "predicate", "expected"),
    [
        (
            CYCLONEDX_BOM,
            {
                "vulnerabilities": [
                    {"id": "CVE-1", "ratings": [{"severity": "medium"}, {"severity": "critical"}]}
                ]
            },
            [("CVE-1", "critical")],
        ),
        (CYCLONEDX_BOM, {"vulnerabilities": [{"id": "CVE-2"}]}, [("CVE-2", "unknown")]),
        (
            COSIGN_VULN_V1,
            {
                "scanner": {
                    "result": {
                        "bomFormat": "CycloneDX",
                        "vulnerabilities": [{"id": "CVE-3", "ratings": [{"severity": "high"}]}],
                    }
                }
            },
            [("CVE-3", "high")],
        ),
        (
            COSIGN_VULN_V1,
            {
                "scanner": {
                    "result": {
                        "Results": [
                            {"Vulnerabilities": None},
                            {"Vulnerabilities": [{"VulnerabilityID": "CVE-4", "Severity": "LOW"}]},
                        ]
                    }
                }
            },
            [("CVE-4", "low")],
        ),
        (
            COSIGN_VULN_V1,
            {
                "scanner": {
                    "result": {"matches": [{"vulnerability": {"id": "GHSA-1", "severity": "Negligible"}}]}
                }
            },
            [("GHSA-1", "low")],
        ),
        (
            COSIGN_VULN_V1,
            {
                "scanner": {
                    "result": {
                        "results": [
                            {
                                "packages": [
                                    {
                                        "vulnerabilities": [
                                            {"id": "GO-1", "database_specific": {"severity": "MODERATE"}}
                                        ]
                                    }
                                ]
                            }
                        ]
                    }
                }
            },
            [("GO-1", "medium")],
        ),
        (
            COSIGN_VULN_V1,
            {"scanner": {"result": {"vulnerabilities": [{"id": "X-1", "severity": "weird"}]}}},
            [("X-1", "unknown")],
        ),
        (COSIGN_VULN_V1, {"scanner": {"result": {"runs": []}}}, None),
        (COSIGN_VULN_V1, {"scanner": {}}, None),
        (COSIGN_VULN_V1, {"scanner": {"result": {"matches": [{"vulnerability": {}}]}}}, None),
    ],
)
def test_scan_formats(
    predicate_type: str, predicate: dict[str, Any], expected: list[tuple[str, str]] | None
) -> None:
    found = scan_findings(predicate_type, predicate)
    assert (None if found is None else [(f.id, f.severity) for f in found]) == expected


def test_deny_ids_match_aliases(tmp_path: Path) -> None:
    rules = policy(tmp_path, "vulnerabilities: {denyIds: [CVE-2024-3094]}\n")
    scan = _plain([{"id": "GHSA-x", "severity": "low", "aliases": ["CVE-2024-3094"]}])
    outcome = result(evaluate(rules, FACTS, [att(COSIGN_VULN_V1, scan)], now=NOW).clauses, "vulnerabilities")
    assert outcome.result == "fail" and "GHSA-x (low)" in outcome.reason


def _decision(verdict: str, level: int = 0) -> Decision:
    return Decision(
        image="us.icr.io/team/app@" + DIGEST,
        digest=DIGEST,
        repository="us.icr.io/team/app",
        mode="enforce",
        verdict=verdict,  # type: ignore[arg-type]
        clauses=(
            ClauseResult("signers", "pass" if verdict == "allow" else "fail", "why", ("sha256:" + "f" * 64,)),
        ),
        ignored=(("sha256:" + "e" * 64, "referrers-api: bad"),),
        warnings=("w",),
        policy_digest="sha256:" + "9" * 64,
        policy_path="policy.yaml",
        time=NOW,
        project="p",
        inputs=(("sha256:" + "f" * 64, SLSA_PROVENANCE_V1),),
        slsa_build_level=level,
    )


def test_decision_record_carries_what_design_lists() -> None:
    record = _decision("deny").record()
    for key in ("image", "digest", "policyDigest", "mode", "verdict", "clauses", "time", "toolVersion"):
        assert key in record
    assert record["clauses"] == [
        {
            "clause": "signers",
            "result": "fail",
            "reason": "why",
            "evidence": ["sha256:" + "f" * 64],
            "exceptionId": None,
        }
    ]
    assert record["ignored"] == [{"digest": "sha256:" + "e" * 64, "reason": "referrers-api: bad"}]
    assert record["time"] == "2026-03-10T12:00:00Z" and record["allowed"] is False
    json.dumps(record)


@pytest.mark.parametrize(
    ("verdict", "level", "result_", "levels"),
    [
        ("deny", 2, "FAILED", ["FAILED"]),
        ("allow", 2, "PASSED", ["SLSA_BUILD_LEVEL_2"]),
        ("allow", 0, "PASSED", ["SLSA_BUILD_LEVEL_0"]),
    ],
)
def test_vsa_statement_is_an_in_toto_statement_about_the_digest(
    verdict: str, level: int, result_: str, levels: list[str]
) -> None:
    vsa = _decision(verdict, level).vsa_statement()
    schema = json.loads((ASSETS / "in-toto-statement-v1.schema.json").read_text())
    jsonschema.validate(vsa, schema)
    assert vsa["predicateType"] == "https://slsa.dev/verification_summary/v1"
    assert vsa["subject"] == [{"name": "us.icr.io/team/app", "digest": {"sha256": "1" * 64}}]
    predicate = vsa["predicate"]
    assert predicate["verificationResult"] == result_ and predicate["verifiedLevels"] == levels
    assert predicate["policy"]["digest"] == {"sha256": "9" * 64}
    assert predicate["inputAttestations"] == [
        {"uri": f"oci://us.icr.io/team/app@sha256:{'f' * 64}", "digest": {"sha256": "f" * 64}}
    ]
    assert predicate["timeVerified"] == "2026-03-10T12:00:00Z"


# -- provenance bound to its certificate (attack 5) ----------------------------------------------------------

WORKFLOW = "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main"
CERT = CertificateFacts(
    source_repository_uri="https://github.com/org/app",
    source_repository_digest="a" * 40,
    source_repository_ref="refs/heads/main",
    build_signer_uri=WORKFLOW,
    build_config_uri=WORKFLOW,
    runner_environment="github-hosted",
)


def github_provenance(
    *, builder: str = WORKFLOW, source: str = "https://github.com/org/app", commit: str = "a" * 40
) -> dict[str, Any]:
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
                {"uri": f"git+{source}@refs/heads/main", "digest": {"gitCommit": commit}}
            ],
        },
        "runDetails": {"builder": {"id": builder}, "metadata": {"finishedOn": "2026-03-10T11:00:00Z"}},
    }


def bound(predicate: dict[str, Any], cert: CertificateFacts = CERT) -> Attestation:
    return Attestation(
        "sha256:" + "f" * 64,
        DIGEST,
        "referrers-api",
        SLSA_PROVENANCE_V1,
        predicate,
        NOW,
        "me",
        "https://issuer",
        cert,
    )


PROVENANCE_RULE = f"provenance: {{builderIds: ['{WORKFLOW}', 'https://evil.example/builder'], sourceRepositories: [https://github.com/org/app, https://github.com/org/other]}}\n"


@pytest.mark.parametrize(
    ("predicate", "reason"),
    [
        (github_provenance(), None),
        # actions/attest-build-provenance names the runner as the builder, the workflow in externalParameters
        (github_provenance(builder="https://github.com/actions/runner/github-hosted"), "builder"),
        # a builder the policy allows, but not the workflow that holds the certificate
        (
            github_provenance(builder="https://evil.example/builder"),
            "is not the certificate's workflow or runner",
        ),
        # a source the policy allows, but not the repository the certificate was issued to
        (
            github_provenance(source="https://github.com/org/other"),
            "source https://github.com/org/other is not the certificate's source repository",
        ),
        (github_provenance(commit="b" * 40), f"source commit {'b' * 40} is not the certificate's {'a' * 40}"),
    ],
)
def test_provenance_must_agree_with_its_certificate(
    tmp_path: Path, predicate: dict[str, Any], reason: str | None
) -> None:
    rules = policy(tmp_path, PROVENANCE_RULE)
    outcome = result(evaluate(rules, FACTS, [bound(predicate)], now=NOW).clauses, "provenance")
    if reason is None:
        assert outcome.result == "pass", outcome.reason
    elif reason == "builder":  # the runner form is bound, but the policy's builderIds do not list the runner
        assert outcome.result == "fail" and "not in builderIds" in outcome.reason
        assert "certificate" not in outcome.reason
    else:
        assert outcome.result == "fail" and reason in outcome.reason, outcome.reason


def test_the_runner_builder_form_is_bound_to_the_runner_and_workflow(tmp_path: Path) -> None:
    runner = "https://github.com/actions/runner/github-hosted"
    rules = policy(tmp_path, f"provenance: {{builderIds: ['{runner}']}}\n")
    ok = result(
        evaluate(rules, FACTS, [bound(github_provenance(builder=runner))], now=NOW).clauses, "provenance"
    )
    assert ok.result == "pass", ok.reason
    self_hosted = CertificateFacts(**{**CERT.__dict__, "runner_environment": "self-hosted"})
    moved = bound(github_provenance(builder=runner), self_hosted)
    outcome = result(evaluate(rules, FACTS, [moved], now=NOW).clauses, "provenance")
    assert outcome.result == "fail" and "is not the certificate's workflow or runner" in outcome.reason
    other_workflow = github_provenance(builder=runner)
    other_workflow["buildDefinition"]["externalParameters"]["workflow"]["path"] = (
        ".github/workflows/other.yml"
    )
    outcome = result(evaluate(rules, FACTS, [bound(other_workflow)], now=NOW).clauses, "provenance")
    assert outcome.result == "fail" and "is not the certificate's build config" in outcome.reason


def test_a_certificate_without_ci_extensions_binds_nothing(tmp_path: Path) -> None:
    rules = policy(tmp_path, PROVENANCE_RULE)
    anything = bound(
        github_provenance(builder="https://evil.example/builder", commit="b" * 40), CertificateFacts()
    )
    assert result(evaluate(rules, FACTS, [anything], now=NOW).clauses, "provenance").result == "pass"


# -- found by the adversarial review of the gate ----------------------------------------------------------

INDEX = "sha256:" + "9" * 64
CHILD = "sha256:" + "8" * 64


def test_a_quarantined_platform_manifest_denies_its_index(tmp_path: Path) -> None:
    """Without --platform the index is verified, but the runtime runs one of its platform manifests."""
    rules = policy(tmp_path, f'quarantine: [{{digest: "{CHILD}", reason: INC-9}}]\n')
    facts = ImageFacts("us.icr.io/team/app@" + INDEX, "us.icr.io/team/app", True, INDEX, children=(CHILD,))
    outcome = result(evaluate(rules, facts, [], now=NOW).clauses, "quarantine")
    assert outcome.result == "fail" and f"{CHILD} is quarantined: INC-9" in outcome.reason
    assert "(a platform manifest of this index)" in outcome.reason


def _quarantine_exception(image: str) -> str:
    return (
        "exceptions:\n"
        f"  - {{id: EXC-1, clause: quarantine, image: '{image}', owner: a@example.com, justification: j,\n"
        "     issue: https://example.com/1, expires: 2026-04-01}\n"
    )


def test_a_digest_pinned_exception_waives_only_the_quarantined_digest(tmp_path: Path) -> None:
    quarantine = f'quarantine: [{{digest: "{CHILD}", reason: INC-9}}]\n'
    platform = ImageFacts("us.icr.io/team/app@" + INDEX, "us.icr.io/team/app", True, CHILD, INDEX)
    by_index = policy(tmp_path, quarantine + _quarantine_exception(f"us.icr.io/team/app@{INDEX}"))
    assert result(evaluate(by_index, platform, [], now=NOW).clauses, "quarantine").result == "fail"
    by_glob = policy(tmp_path, quarantine + _quarantine_exception("us.icr.io/team/*"))
    assert result(evaluate(by_glob, platform, [], now=NOW).clauses, "quarantine").result == "waived"
    by_digest = policy(tmp_path, quarantine + _quarantine_exception(f"us.icr.io/team/app@{CHILD}"))
    waived = result(evaluate(by_digest, platform, [], now=NOW).clauses, "quarantine")
    assert waived.result == "waived" and waived.exception_id == "EXC-1"


def test_an_sbom_of_another_image_does_not_count(tmp_path: Path) -> None:
    rules = policy(tmp_path, "sbom: {required: true}\n")
    other = att(CYCLONEDX_BOM, {"metadata": {"component": {"version": "sha256:" + "7" * 64}}})
    outcome = result(evaluate(rules, FACTS, [other], now=NOW).clauses, "sbom")
    assert outcome.result == "fail" and f"describes sha256:{'7' * 64}" in outcome.reason
    own = att(CYCLONEDX_BOM, {"metadata": {"component": {"version": DIGEST}}})
    assert result(evaluate(rules, FACTS, [other, own], now=NOW).clauses, "sbom").result == "pass"
    unnamed = att(CYCLONEDX_BOM, {"metadata": {"component": {"version": "1.0"}}})
    assert result(evaluate(rules, FACTS, [unnamed], now=NOW).clauses, "sbom").result == "pass"


def test_deny_ids_and_exception_ids_ignore_case(tmp_path: Path) -> None:
    rules = policy(tmp_path, "vulnerabilities: {denyIds: [cve-2024-3094]}\n")
    scan = att(COSIGN_VULN_V1, _plain([{"id": "GHSA-1", "severity": "low", "aliases": ["CVE-2024-3094"]}]))
    outcome = result(evaluate(rules, FACTS, [scan], now=NOW).clauses, "vulnerabilities")
    assert outcome.result == "fail" and "GHSA-1 (low)" in outcome.reason
