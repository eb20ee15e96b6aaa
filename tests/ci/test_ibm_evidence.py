"""Which IBM DevSecOps evidence each chaingate step files, what it attaches, and what it publishes.

The types are the ones IBM's ``collect-evidence`` page lists (type/tool table);
the rules checked here are the ones a later stage or an auditor relies on: one
``set_env`` value per attestation, never a path that exists only in this pod,
and the signature attached to signing evidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chaingate.ci import ibm_toolchain
from chaingate.ci.report import StepReport

DIGEST = "sha256:" + "ab" * 32


def collect(report: StepReport, env: dict[str, str] | None = None) -> list[list[str]]:
    calls: list[list[str]] = []

    def run(argv: Any) -> int:
        calls.append(list(argv))
        return 0

    assert ibm_toolchain.ibm_evidence(report, env or {}, which=lambda name: name, run=run) == []
    return calls


def evidence_of(calls: list[list[str]]) -> tuple[str, list[str]]:
    (argv,) = [c for c in calls if c[0] == "collect-evidence"]
    files = [argv[i + 1] for i, a in enumerate(argv) if a == "--attachment"]
    return argv[argv.index("--evidence-type") + 1], files


@pytest.mark.parametrize(
    ("predicate_type", "expected"),
    [
        ("https://slsa.dev/provenance/v1", "com.ibm.cloud.slsa"),
        ("https://slsa.dev/provenance/v0.2", "com.ibm.cloud.slsa"),
        ("https://cyclonedx.org/bom", "com.ibm.code_bom_check"),
        ("https://spdx.dev/Document/v2.3", "com.ibm.code_bom_check"),
        ("https://cosign.sigstore.dev/attestation/vuln/v1", "com.ibm.cloud.image_vulnerability_scan"),
        ("https://openvex.dev/ns", "com.ibm.cloud.image_vulnerability_scan"),
        ("https://example.com/custom/v1", "com.ibm.cloud.image_signing"),
    ],
)
def test_an_attestation_is_filed_by_its_predicate_type_with_its_bundle(
    tmp_path: Path, predicate_type: str, expected: str
) -> None:
    bundle = tmp_path / "bundle.sigstore.json"
    bundle.write_text("{}")
    outputs = {"digest": DIGEST, "referrer": "sha256:" + "1" * 64, "predicate-type": predicate_type,
               "bundle-path": str(bundle)}  # fmt: skip
    assert evidence_of(collect(StepReport("attest", 0, outputs, ""))) == (expected, [str(bundle)])


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("sbom", "com.ibm.code_bom_check"),
        ("provenance", "com.ibm.cloud.slsa"),
        ("verify", "com.ibm.cloud.verify_signature"),
        ("deploy", "com.ibm.cloud.verify_signature"),
    ],
)
def test_documents_are_filed_with_the_document_attached(tmp_path: Path, step: str, expected: str) -> None:
    document = tmp_path / f"{step}.json"
    document.write_text("{}")
    report = StepReport(step, 0, {"digest": DIGEST, step: str(document)}, "", attachment=str(document))
    assert evidence_of(collect(report)) == (expected, [str(document)])


def test_a_signature_is_image_signing_evidence_with_the_signature_attached(tmp_path: Path) -> None:
    bundle = tmp_path / "sig.sigstore.json"
    bundle.write_text("{}")
    report = StepReport("sign", 0, {"digest": DIGEST, "referrer": "sha256:" + "2" * 64,
                                    "bundle-path": str(bundle)}, "")  # fmt: skip
    calls = collect(report)
    assert evidence_of(calls) == ("com.ibm.cloud.image_signing", [str(bundle)])
    assert ["set_env", "chaingate-signature-referrer", "sha256:" + "2" * 64] in calls


def test_pod_local_paths_are_never_published_and_attestations_keep_their_own_keys(tmp_path: Path) -> None:
    sbom = tmp_path / "sbom.cdx.json"
    sbom.write_text("{}")
    published: dict[str, str] = {}
    reports = [
        StepReport("sbom", 0, {"sbom": str(sbom), "components": "3", "image": f"r/a@{DIGEST}"}, "",
                   attachment=str(sbom)),
        StepReport("attest", 0, {"digest": DIGEST, "referrer": "sha256:" + "3" * 64,
                                 "predicate-type": "https://slsa.dev/provenance/v1", "bundle-path": "/tmp/b1"}, ""),
        StepReport("attest", 0, {"digest": DIGEST, "referrer": "sha256:" + "4" * 64,
                                 "predicate-type": "https://cyclonedx.org/bom", "bundle-path": "/tmp/b2"}, ""),
    ]  # fmt: skip
    for report in reports:
        for argv in collect(report):
            if argv[0] == "set_env":
                assert argv[1] not in published or published[argv[1]] == argv[2], argv
                published[argv[1]] = argv[2]
    assert published == {
        "chaingate-components": "3",
        "chaingate-image": f"r/a@{DIGEST}",
        "chaingate-digest": DIGEST,
        "chaingate-provenance-referrer": "sha256:" + "3" * 64,
        "chaingate-provenance-predicate-type": "https://slsa.dev/provenance/v1",
        "chaingate-sbom-referrer": "sha256:" + "4" * 64,
        "chaingate-sbom-predicate-type": "https://cyclonedx.org/bom",
    }


def test_an_unknown_predicate_type_gets_a_key_of_its_own() -> None:
    assert ibm_toolchain.attestation_kind("https://example.com/Custom/v1") == (
        "example-com-custom-v1",
        "com.ibm.cloud.image_signing",
    )


def test_the_evidence_type_can_still_be_chosen_by_the_stage() -> None:
    report = StepReport("verify", 1, {"verdict": "deny"}, "")
    kind, files = evidence_of(collect(report, {"CHAINGATE_IBM_EVIDENCE_TYPE": "com.example.gate"}))
    assert (kind, files) == ("com.example.gate", [])
