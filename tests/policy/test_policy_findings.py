"""Severities of scan findings, read from each scanner's format and computed from CVSS vectors when absent."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaingate.policy.findings import (
    MAX_VECTOR_CHARS,
    SEVERITY_RANK,
    cvss_score,
    cvss_severity,
    scan_findings,
    score_severity,
)
from chaingate.predicate_types import COSIGN_VULN_V1, CYCLONEDX_BOM

# Base scores as NVD publishes them.
LOG4SHELL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"  # CVE-2021-44228, 10.0
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
V2_HIGH = "AV:N/AC:L/Au:N/C:P/I:P/A:P"  # 7.5
MEDIUM = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"  # 5.3
LOW = "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"  # 1.8
V4_CRITICAL = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"  # 9.3
V4_MEDIUM = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"  # 6.9


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        (LOG4SHELL, ("3.1", 10.0)),
        (CRITICAL, ("3.1", 9.8)),
        (V2_HIGH, ("2.0", 7.5)),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", ("3.0", 9.8)),
        (V4_CRITICAL, ("4.0", 9.3)),
        (V4_MEDIUM, ("4.0", 6.9)),
    ],
)
def test_base_scores_agree_with_nvd(vector: str, expected: tuple[str, float]) -> None:
    assert cvss_score(vector) == expected


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        (LOG4SHELL, "critical"),
        (CRITICAL, "critical"),
        (MEDIUM, "medium"),
        (LOW, "low"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", "none"),
        (V4_CRITICAL, "critical"),
        (V4_MEDIUM, "medium"),
        (V2_HIGH, "high"),
        # v2 10.0: NVD's v2 scale stops at high, which would pass deny: [critical]; v2 uses the v3 scale
        ("AV:N/AC:L/Au:N/C:C/I:C/A:C", "critical"),
        # v4 threat/environmental metrics chosen by the scan's author do not lower the base rating
        (f"{V4_CRITICAL}/E:U", "critical"),
        (f"{V4_CRITICAL}/MAV:P/MVC:N/MVI:N/MVA:N", "critical"),
        ("CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", "high"),
        (f"  {CRITICAL}\n", "critical"),
    ],
)
def test_vectors_rate_on_their_version_scale(vector: str, expected: str) -> None:
    assert cvss_severity(vector) == expected


@pytest.mark.parametrize(
    "vector",
    [
        "",
        "garbage",
        "CVSS:3.1/",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",  # A missing
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:H",  # duplicate metric
        "CVSS:3.1/AV:Z/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # no such value
        "CVSS:5.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # no such version
        "CVSS:2.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # v3 metrics under a v2 label
        "CVSS:4.1/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # unlabelled v3 is read as v2
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\x00",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H;rm -rf /",
        CRITICAL + "/E:X" * (MAX_VECTOR_CHARS // 4),  # valid, but longer than any real vector
        "CVSS:3.1/" + "AV:N/" * 100_000 + "A:H",
        9.8,
        None,
        {"vector": CRITICAL},
    ],
)
def test_what_is_not_a_vector_rates_unknown(vector: Any) -> None:
    assert cvss_score(vector) is None and cvss_severity(vector) == "unknown"


def test_a_format_version_labels_an_unlabelled_vector_only() -> None:
    bare = CRITICAL.removeprefix("CVSS:3.1/")
    assert cvss_score(bare, "3.1") == ("3.1", 9.8)
    assert cvss_score(bare, "4.0") is None  # v3 metrics are not a v4 vector
    assert cvss_score(V2_HIGH, "2.0") == ("2.0", 7.5)
    assert cvss_score(CRITICAL, "2.0") == ("3.1", 9.8)  # the label speaks for itself


@pytest.mark.parametrize(
    ("score", "version", "expected"),
    [
        (0, "3.1", "none"),
        (0.1, "3.1", "low"),
        (3.9, "3.1", "low"),
        (4.0, "3.1", "medium"),
        (6.9, "3.1", "medium"),
        (7.0, "3.1", "high"),
        (8.9, "3.1", "high"),
        (9.0, "4.0", "critical"),
        (10, "", "critical"),
        (0.0, "2.0", "low"),
        (3.9, "2.0", "low"),
        (4.0, "2.0", "medium"),
        (6.9, "2.0", "medium"),
        (7.0, "2", "high"),
        (8.9, "2.0", "high"),
        (10.0, "2.0", "critical"),
        (-0.1, "3.1", "unknown"),
        (10.1, "3.1", "unknown"),
        (float("nan"), "3.1", "unknown"),
        (float("inf"), "3.1", "unknown"),
        (10**400, "3.1", "unknown"),
        (True, "3.1", "unknown"),
        ("9.8", "3.1", "unknown"),
    ],
)
def test_scores_map_to_the_qualitative_scale(score: Any, version: str, expected: str) -> None:
    assert score_severity(score, version) == expected


def _cyclonedx(*ratings: dict[str, Any]) -> dict[str, Any]:
    return {"vulnerabilities": [{"id": "CVE-1", "ratings": list(ratings)}]}


def _trivy(severity: str | None, cvss: dict[str, Any]) -> dict[str, Any]:
    vuln: dict[str, Any] = {"VulnerabilityID": "CVE-1", "CVSS": cvss}
    if severity is not None:
        vuln["Severity"] = severity
    return {"scanner": {"result": {"Results": [{"Vulnerabilities": [vuln]}]}}}


def _grype(
    severity: str | None, cvss: list[dict[str, Any]], related: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    vuln: dict[str, Any] = {"id": "GHSA-1", "cvss": cvss}
    if severity is not None:
        vuln["severity"] = severity
    match = {"vulnerability": vuln, "relatedVulnerabilities": list(related)}
    return {"scanner": {"result": {"matches": [match]}}}


def _osv(vuln: dict[str, Any]) -> dict[str, Any]:
    record = {"id": "GO-1", **vuln}
    return {"scanner": {"result": {"results": [{"packages": [{"vulnerabilities": [record]}]}]}}}


def _plain(severity: Any) -> dict[str, Any]:
    return {"scanner": {"result": {"vulnerabilities": [{"id": "X-1", "severity": severity}]}}}


def _severity_of(predicate_type: str, predicate: dict[str, Any]) -> str:
    found = scan_findings(predicate_type, predicate)
    assert found is not None and len(found) == 1
    return found[0].severity


# One finding per format carrying only CVSS data, and the severity it must read as.
VECTOR_ONLY = {
    "cyclonedx": (CYCLONEDX_BOM, _cyclonedx({"method": "CVSSv31", "vector": CRITICAL}), "critical"),
    "cyclonedx-unknown-word": (
        CYCLONEDX_BOM,
        _cyclonedx({"severity": "unknown", "method": "CVSSv31", "vector": CRITICAL}),
        "critical",
    ),
    "cyclonedx-unlabelled": (
        CYCLONEDX_BOM,
        _cyclonedx({"method": "CVSSv31", "vector": CRITICAL.removeprefix("CVSS:3.1/")}),
        "critical",
    ),
    "cyclonedx-v2": (CYCLONEDX_BOM, _cyclonedx({"method": "CVSSv2", "vector": V2_HIGH}), "high"),
    "cyclonedx-v4": (CYCLONEDX_BOM, _cyclonedx({"method": "CVSSv4", "vector": V4_CRITICAL}), "critical"),
    "cyclonedx-score": (CYCLONEDX_BOM, _cyclonedx({"method": "CVSSv31", "score": 9.8}), "critical"),
    "cyclonedx-score-no-method": (CYCLONEDX_BOM, _cyclonedx({"score": 9.8}), "critical"),
    "cyclonedx-score-v2": (CYCLONEDX_BOM, _cyclonedx({"method": "CVSSv2", "score": 9.8}), "critical"),
    "cyclonedx-in-cosign": (
        COSIGN_VULN_V1,
        {"scanner": {"result": {"bomFormat": "CycloneDX", **_cyclonedx({"vector": CRITICAL})}}},
        "critical",
    ),
    "trivy": (COSIGN_VULN_V1, _trivy("UNKNOWN", {"nvd": {"V3Vector": CRITICAL, "V3Score": 9.8}}), "critical"),
    "trivy-no-word": (COSIGN_VULN_V1, _trivy(None, {"redhat": {"V3Vector": CRITICAL}}), "critical"),
    "trivy-v2": (COSIGN_VULN_V1, _trivy("UNKNOWN", {"nvd": {"V2Vector": V2_HIGH}}), "high"),
    "trivy-v4": (COSIGN_VULN_V1, _trivy("UNKNOWN", {"ghsa": {"V40Vector": V4_CRITICAL}}), "critical"),
    "trivy-score": (COSIGN_VULN_V1, _trivy("UNKNOWN", {"nvd": {"V3Score": 9.8}}), "critical"),
    "grype": (COSIGN_VULN_V1, _grype("Unknown", [{"version": "3.1", "vector": CRITICAL}]), "critical"),
    "grype-v4": (COSIGN_VULN_V1, _grype(None, [{"version": "4.0", "vector": V4_CRITICAL}]), "critical"),
    "grype-related": (
        COSIGN_VULN_V1,
        _grype("Unknown", [], ({"id": "CVE-1", "cvss": [{"version": "3.1", "vector": CRITICAL}]},)),
        "critical",
    ),
    "grype-score": (
        COSIGN_VULN_V1,
        _grype("Unknown", [{"version": "2.0", "metrics": {"baseScore": 7.5}}]),
        "high",
    ),
    "osv": (COSIGN_VULN_V1, _osv({"severity": [{"type": "CVSS_V3", "score": CRITICAL}]}), "critical"),
    "osv-v2": (COSIGN_VULN_V1, _osv({"severity": [{"type": "CVSS_V2", "score": V2_HIGH}]}), "high"),
    "osv-v4": (COSIGN_VULN_V1, _osv({"severity": [{"type": "CVSS_V4", "score": V4_CRITICAL}]}), "critical"),
    "osv-affected": (
        COSIGN_VULN_V1,
        _osv({"affected": [{"severity": [{"type": "CVSS_V3", "score": CRITICAL}]}]}),
        "critical",
    ),
    "osv-ubuntu": (COSIGN_VULN_V1, _osv({"severity": [{"type": "Ubuntu", "score": "high"}]}), "high"),
    "plain-vector": (COSIGN_VULN_V1, _plain(CRITICAL), "critical"),
    "plain-v4": (COSIGN_VULN_V1, _plain(V4_CRITICAL), "critical"),
    "plain-osv-list": (COSIGN_VULN_V1, _plain([{"type": "CVSS_V3", "score": CRITICAL}]), "critical"),
}


@pytest.mark.parametrize(
    ("predicate_type", "predicate", "expected"), VECTOR_ONLY.values(), ids=VECTOR_ONLY.keys()
)
def test_a_finding_with_only_cvss_data_is_rated_from_it(
    predicate_type: str, predicate: dict[str, Any], expected: str
) -> None:
    assert _severity_of(predicate_type, predicate) == expected


# The same finding with and without the advisory's word: (type, with the word "low", without it).
WORD_AND_VECTOR = {
    "cyclonedx": (
        CYCLONEDX_BOM,
        _cyclonedx({"severity": "low", "vector": CRITICAL}),
        _cyclonedx({"vector": CRITICAL}),
    ),
    "cyclonedx-score": (
        CYCLONEDX_BOM,
        _cyclonedx({"severity": "low", "score": 9.8}),
        _cyclonedx({"score": 9.8}),
    ),
    "trivy": (
        COSIGN_VULN_V1,
        _trivy("LOW", {"nvd": {"V3Vector": CRITICAL}}),
        _trivy("UNKNOWN", {"nvd": {"V3Vector": CRITICAL}}),
    ),
    "grype": (
        COSIGN_VULN_V1,
        _grype("Low", [{"version": "3.1", "vector": CRITICAL}]),
        _grype("Unknown", [{"version": "3.1", "vector": CRITICAL}]),
    ),
    "osv": (
        COSIGN_VULN_V1,
        _osv(
            {"database_specific": {"severity": "LOW"}, "severity": [{"type": "CVSS_V3", "score": CRITICAL}]}
        ),
        _osv({"database_specific": {"severity": "?"}, "severity": [{"type": "CVSS_V3", "score": CRITICAL}]}),
    ),
}


@pytest.mark.parametrize(
    ("predicate_type", "with_word", "without"), WORD_AND_VECTOR.values(), ids=WORD_AND_VECTOR.keys()
)
def test_the_advisorys_own_severity_wins_over_its_vector(
    predicate_type: str, with_word: dict[str, Any], without: dict[str, Any]
) -> None:
    assert _severity_of(predicate_type, with_word) == "low"
    assert _severity_of(predicate_type, without) == "critical"


@pytest.mark.parametrize(
    ("predicate_type", "predicate"),
    [
        (CYCLONEDX_BOM, _cyclonedx({"vector": MEDIUM}, {"vector": CRITICAL}, {"vector": LOW})),
        (CYCLONEDX_BOM, _cyclonedx({"vector": "CVSS:3.1/AV:N"}, {"vector": CRITICAL})),
        (
            CYCLONEDX_BOM,
            _cyclonedx({"severity": "medium"}, {"vector": V4_CRITICAL}),
        ),  # each rating on its own
        (CYCLONEDX_BOM, _cyclonedx({"method": "CVSSv31", "vector": "junk", "score": 9.8})),
        (
            COSIGN_VULN_V1,
            _trivy(
                "UNKNOWN",
                {"redhat": {"V3Vector": MEDIUM}, "nvd": {"V2Vector": V2_HIGH, "V3Vector": CRITICAL}},
            ),
        ),
        (
            COSIGN_VULN_V1,
            _grype(None, [{"vector": MEDIUM}], ({"cvss": [{"vector": LOW}, {"vector": CRITICAL}]},)),
        ),
        (
            COSIGN_VULN_V1,
            _osv(
                {
                    "severity": [
                        {"type": "CVSS_V3", "score": MEDIUM},
                        {"type": "CVSS_V4", "score": V4_CRITICAL},
                    ]
                }
            ),
        ),
        (
            COSIGN_VULN_V1,
            _plain([{"type": "CVSS_V2", "score": V2_HIGH}, {"type": "CVSS_V3", "score": CRITICAL}]),
        ),
    ],
)
def test_several_vectors_take_the_highest_rating(predicate_type: str, predicate: dict[str, Any]) -> None:
    assert _severity_of(predicate_type, predicate) == "critical"


def test_equal_ratings_from_several_sources_stay_that_rating() -> None:
    scan = _trivy("UNKNOWN", {"nvd": {"V3Vector": MEDIUM}, "ghsa": {"V40Vector": V4_MEDIUM}})
    assert _severity_of(COSIGN_VULN_V1, scan) == "medium"


def test_a_bad_vector_leaves_its_finding_unknown_and_the_rest_rated() -> None:
    bad = [
        "garbage",
        "CVSS:9.9/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        CRITICAL + "/" + "X" * 100_000,
        12,
        None,
    ]
    scan = {
        "scanner": {
            "result": {
                "vulnerabilities": [
                    *({"id": f"BAD-{i}", "severity": v} for i, v in enumerate(bad)),
                    {"id": "GOOD", "severity": CRITICAL},
                ]
            }
        }
    }
    found = scan_findings(COSIGN_VULN_V1, scan)
    assert found is not None
    assert {f.id: f.severity for f in found} == {
        **{f"BAD-{i}": "unknown" for i in range(len(bad))},
        "GOOD": "critical",
    }


# JSON-like documents whose keys are mostly the ones the readers look for, so the fuzzing reaches them.
_KEYS = st.sampled_from(
    [
        "vulnerabilities",
        "ratings",
        "id",
        "severity",
        "vector",
        "method",
        "score",
        "references",
        "aliases",
        "bomFormat",
        "Results",
        "Vulnerabilities",
        "VulnerabilityID",
        "Severity",
        "CVSS",
        "nvd",
        "V2Vector",
        "V3Vector",
        "V40Vector",
        "V3Score",
        "matches",
        "vulnerability",
        "cvss",
        "version",
        "metrics",
        "baseScore",
        "relatedVulnerabilities",
        "results",
        "packages",
        "database_specific",
        "affected",
        "type",
    ]
) | st.text(max_size=8)
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(
        [
            CRITICAL,
            V2_HIGH,
            V4_CRITICAL,
            "CVSSv31",
            "CVSSv2",
            "CVSS_V3",
            "CVSS_V4",
            "Ubuntu",
            "CycloneDX",
            "3.1",
            "2.0",
            "4.0",
            "HIGH",
        ]
    )
)
_JSON = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([CYCLONEDX_BOM, COSIGN_VULN_V1]),
    st.dictionaries(_KEYS, _JSON, max_size=4)
    | st.fixed_dictionaries(
        {"scanner": st.fixed_dictionaries({"result": st.dictionaries(_KEYS, _JSON, max_size=4)})}
    ),
)
def test_no_scan_document_makes_the_reader_raise(predicate_type: str, predicate: dict[str, Any]) -> None:
    found = scan_findings(predicate_type, predicate)
    assert found is None or all(f.severity in SEVERITY_RANK for f in found)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    st.text(max_size=MAX_VECTOR_CHARS + 8)
    | st.lists(
        st.sampled_from(["CVSS:3.1", "CVSS:4.0", "AV:N", "AC:L", "Au:N", "C:H", "S:U", "/", ":", "X"]),
        max_size=40,
    ).map("".join),
    st.sampled_from(["", "2.0", "3.1", "4.0", "junk"]),
)
def test_no_string_makes_the_vector_reader_raise(vector: str, version: str) -> None:
    assert cvss_severity(vector, version) in SEVERITY_RANK


def test_trivy_vendor_ids_are_aliases_a_deny_id_can_name() -> None:
    """Second review: ``denyIds: [RHSA-2024:0001]`` must match a Trivy finding that lists it in VendorIDs."""
    result = {"Results": [{"Vulnerabilities": [
        {"VulnerabilityID": "CVE-2024-1", "Severity": "LOW", "VendorIDs": ["RHSA-2024:0001", "DSA-5555-1"]}
    ]}]}  # fmt: skip
    (finding,) = scan_findings(COSIGN_VULN_V1, {"scanner": {"result": result}}) or []
    assert {"RHSA-2024:0001", "DSA-5555-1", "CVE-2024-1"} <= finding.names


def test_a_cyclonedx_result_without_bom_format_is_still_rated() -> None:
    """Second review: without ``bomFormat`` the plain reader saw no severity, so critical read as unknown."""
    result = {"vulnerabilities": [{"id": "CVE-2024-2", "ratings": [{"severity": "critical"}]}]}
    (finding,) = scan_findings(COSIGN_VULN_V1, {"scanner": {"result": result}}) or []
    assert finding.severity == "critical"
