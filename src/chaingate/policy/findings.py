"""Reading the findings of a vulnerability scan predicate, whichever scanner wrote it.

The gate judges scans by their findings' ids and severities, so this module
turns the formats scanners attest with (CycloneDX, cosign's vuln/v1 wrapping
CycloneDX, Trivy, Grype, osv-scanner, a plain list) into one shape. A result
in no format read here is ``None``, never an empty list: an unreadable scan
must not pass as a clean one.

Many advisories (OSV and distro records above all) carry only a CVSS vector.
Reading those as ``unknown`` would let a 9.8 pass ``deny: [critical]``, so a
finding without a known severity word is rated from its vectors (or a bare
CVSS score) with the ``cvss`` library, the highest rating winning.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4, CVSSError

from chaingate.predicate_types import is_cyclonedx

SEVERITY_RANK = {"critical": 5, "high": 4, "medium": 3, "low": 2, "none": 1, "unknown": 0}

#: Longest vector handed to the library. Real ones stay under 200 characters
#: (a CVSS 4 vector with every metric is about 190); the bound keeps hostile input cheap.
MAX_VECTOR_CHARS = 512

# The shape of every CVSS vector: an optional ``CVSS:x.y/`` label, then ``metric:value`` fields.
# Anything else is refused before the library sees it.
_VECTOR_SHAPE = re.compile(
    r"(?:CVSS:[234]\.[0-9]/)?[A-Za-z]{1,4}:[A-Za-z]{1,8}(?:/[A-Za-z]{1,4}:[A-Za-z]{1,8}){0,63}"
)
# How the formats name a CVSS version, mapped to the ``CVSS:x.y/`` label an unlabelled vector lacks.
_VERSION_LABELS = {
    "2": "",
    "2.0": "",
    "3": "CVSS:3.0/",
    "3.0": "CVSS:3.0/",
    "3.1": "CVSS:3.1/",
    "4": "CVSS:4.0/",
    "4.0": "CVSS:4.0/",
}


def get_path(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


@dataclass(frozen=True)
class Finding:
    """One vulnerability as a scan reports it, severity normalised to :data:`SEVERITIES` plus ``none``."""

    id: str
    severity: str
    aliases: frozenset[str] = frozenset()

    @property
    def names(self) -> frozenset[str]:
        """Every id it goes by, upper-cased: ``cve-2024-3094`` in a scan is the policy's ``CVE-2024-3094``."""
        return frozenset(name.upper() for name in self.aliases | {self.id})


def scan_findings(predicate_type: str, predicate: Mapping[str, Any]) -> list[Finding] | None:
    """The findings of a vulnerability scan predicate; None when its format is not one chaingate reads.

    Read: CycloneDX (``vulnerabilities``), cosign's vuln/v1 wrapping a
    CycloneDX, Trivy (``Results[].Vulnerabilities``), Grype (``matches``),
    osv-scanner (``results[].packages[].vulnerabilities``) or a plain
    ``vulnerabilities: [{id, severity, aliases}]`` result. Never raises: the
    predicate is whatever a signer put there.
    """
    if is_cyclonedx(predicate_type):
        return _cyclonedx_findings(get_path(predicate, "vulnerabilities"))
    result = get_path(predicate, "scanner", "result")
    if not isinstance(result, Mapping):
        return None
    if isinstance(result.get("vulnerabilities"), list):
        # CycloneDX by its marker, or by its shape: a writer that omits bomFormat still rates with ``ratings``,
        # which the plain reader would not see (every severity would read as unknown).
        if result.get("bomFormat") == "CycloneDX" or any(
            isinstance(v, Mapping) and "ratings" in v for v in result["vulnerabilities"]
        ):
            return _cyclonedx_findings(result["vulnerabilities"])
        return _plain_findings(result["vulnerabilities"])
    if isinstance(result.get("Results"), list):
        return _trivy_findings(result["Results"])
    if isinstance(result.get("matches"), list):
        return _grype_findings(result["matches"])
    if isinstance(result.get("results"), list):
        return _osv_findings(result["results"])
    return None


def cvss_severity(vector: object, version: str = "") -> str:
    """The rating of a CVSS vector's base score on its version's scale; ``unknown`` if it is not one."""
    scored = cvss_score(vector, version)
    return "unknown" if scored is None else score_severity(scored[1], scored[0])


def cvss_score(vector: object, version: str = "") -> tuple[str, float] | None:
    """The CVSS version ("2.0", "3.0", "3.1", "4.0") and base score of a vector; None if it is not one.

    ``version`` is what the surrounding format says, used only to label a
    vector written without its ``CVSS:x.y/`` prefix; a labelled vector speaks
    for itself. An unlabelled vector with no version is v2, the only version
    without a label. Never raises: vectors come from scan predicates.
    """
    if not isinstance(vector, str) or len(vector) > MAX_VECTOR_CHARS:
        return None
    vector = vector.strip()
    if not vector.startswith("CVSS:"):
        vector = _VERSION_LABELS.get(version, "") + vector
    return _vector_score(vector)


def score_severity(score: object, version: str = "") -> str:
    """The qualitative rating of a bare CVSS base score; ``unknown`` unless it is a number from 0 to 10.

    CVSS v3 and v4 share one scale (0 none, then low, medium from 4.0, high
    from 7.0, critical from 9.0). CVSS v2 defines no ratings of its own and
    NVD's v2 scale stops at "high"; a v2 10.0 read as "high" would pass a
    policy denying ``critical``, so v2 scores use the same scale, failing
    closed (0 is still "low" there: v2 has no "none").
    """
    if isinstance(score, bool) or not isinstance(score, int | float):
        return "unknown"
    # A comparison, not float(): a huge int would overflow, and NaN fails it.
    if not 0 <= score <= 10:
        return "unknown"
    if score == 0 and version not in ("2", "2.0"):
        return "none"
    return "low" if score < 4 else "medium" if score < 7 else "high" if score < 9 else "critical"


@functools.lru_cache(maxsize=4096)
def _vector_score(vector: str) -> tuple[str, float] | None:
    """Scans repeat the same few vectors thousands of times, hence the (bounded) cache."""
    if not _VECTOR_SHAPE.fullmatch(vector):
        return None
    try:
        if vector.startswith("CVSS:4."):
            return "4.0", float(CVSS4(_v4_base(vector)).base_score)
        if vector.startswith("CVSS:3."):
            return vector[5:8], float(CVSS3(vector).base_score)
        if vector.startswith("CVSS:") and not vector.startswith("CVSS:2.0/"):
            return None
        return "2.0", float(CVSS2(vector.removeprefix("CVSS:2.0/")).base_score)
    # The library signals bad vectors with CVSSError; the rest guard against what fuzzing has not met.
    except (CVSSError, KeyError, ValueError, TypeError, ArithmeticError):
        return None


def _v4_base(vector: str) -> str:
    """Only the base metrics of a CVSS v4 vector.

    The library scores the whole vector, so a threat (``E:U``) or
    environmental (``MAV:P/MVC:N``) metric chosen by whoever wrote the scan
    would lower the severity a policy denies on: a 9.3 becomes 8.1 ("high")
    with ``E:U``. The base score is what advisories publish and gates compare.
    """
    prefix, _, rest = vector.partition("/")
    kept = [part for part in rest.split("/") if part.split(":", 1)[0] in _V4_BASE_METRICS]
    return "/".join([prefix, *kept])


#: CVSS v4.0's base metrics (specification section 2): exploitability, then vulnerable and subsequent system impact.
_V4_BASE_METRICS = frozenset(("AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA"))


def _severity(value: Any) -> str:
    text = value.lower() if isinstance(value, str) and len(value) <= 32 else ""
    if text in ("critical", "high", "medium", "low", "none"):
        return text
    if text == "important":  # Red Hat's scale: low, moderate, important, critical
        return "high"
    if text == "unimportant":  # Debian's tracker: below low
        return "low"
    if text == "moderate":
        return "medium"
    if text == "negligible":
        return "low"
    if text in ("info", "informational"):
        return "none"
    return "unknown"


def _worst(severities: Iterable[str]) -> str:
    return max(severities, key=SEVERITY_RANK.__getitem__, default="unknown")


def _rated(word: Any, computed: Iterable[str]) -> str:
    """The advisory's own severity word when known, else the worst of those computed from its CVSS data."""
    severity = _severity(word)
    return severity if severity != "unknown" else _worst(computed)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _ids(values: Any, key: str) -> frozenset[str]:
    """Alias ids from a list of strings or of objects carrying ``key`` (scanners differ)."""
    out: set[str] = set()
    for value in _items(values):
        ident = value.get(key) if isinstance(value, Mapping) else value
        if isinstance(ident, str):
            out.add(ident)
    return frozenset(out)


def _cyclonedx_findings(vulnerabilities: Any) -> list[Finding] | None:
    if not isinstance(vulnerabilities, list):
        return None
    out: list[Finding] = []
    for v in vulnerabilities:
        ident = get_path(v, "id")
        if not isinstance(ident, str):
            return None
        severity = _worst(_cyclonedx_rating(r) for r in _items(get_path(v, "ratings")))
        out.append(Finding(ident, severity, _ids(get_path(v, "references"), "id")))
    return out


# CycloneDX's ``method`` names for CVSS; a rating by another method (OWASP, SSVC) has no CVSS score.
_CYCLONEDX_METHODS = {"CVSSv2": "2.0", "CVSSv3": "3.0", "CVSSv31": "3.1", "CVSSv4": "4.0"}


def _cyclonedx_rating(rating: Any) -> str:
    """Each rating is one source's view (NVD, GHSA, a distro), so each is rated on its own and the worst counts."""
    method = get_path(rating, "method")
    version = _CYCLONEDX_METHODS.get(method) if isinstance(method, str) else ""
    computed = [cvss_severity(get_path(rating, "vector"), version or "")]
    if version is not None:
        computed.append(score_severity(get_path(rating, "score"), version))
    return _rated(get_path(rating, "severity"), computed)


def _plain_findings(vulnerabilities: list[Any]) -> list[Finding] | None:
    out: list[Finding] = []
    for v in vulnerabilities:
        ident = get_path(v, "id")
        if not isinstance(ident, str):
            return None
        out.append(
            Finding(ident, _plain_severity(get_path(v, "severity")), _ids(get_path(v, "aliases"), "id"))
        )
    return out


def _plain_severity(value: Any) -> str:
    """A word, a vector string, or (as in OSV) a list of ``{type, score}`` objects."""
    if isinstance(value, list):
        return _worst(_osv_severities(value))
    return _rated(value, [cvss_severity(value)])


def _trivy_findings(results: list[Any]) -> list[Finding] | None:
    out: list[Finding] = []
    for result in results:
        vulns = get_path(result, "Vulnerabilities")
        if vulns is None:
            continue
        if not isinstance(vulns, list):
            return None
        for v in vulns:
            ident = get_path(v, "VulnerabilityID")
            if not isinstance(ident, str):
                return None
            out.append(
                Finding(
                    ident,
                    _rated(get_path(v, "Severity"), _trivy_cvss(get_path(v, "CVSS"))),
                    _ids(get_path(v, "VendorIDs"), "id"),  # RHSA-…, DSA-…: what a denyIds may name
                )
            )
    return out


# Trivy's ``CVSS.<source>`` fields per CVSS version: (vector field, score field, version).
_TRIVY_FIELDS = (
    ("V2Vector", "V2Score", "2.0"),
    ("V3Vector", "V3Score", "3.1"),
    ("V40Vector", "V40Score", "4.0"),
)


def _trivy_cvss(by_source: Any) -> Iterator[str]:
    """Ratings from Trivy's ``CVSS: {nvd: {...}, redhat: {...}, ghsa: {...}}``; a score counts where its vector is absent."""
    if not isinstance(by_source, Mapping):
        return
    for data in by_source.values():
        for vector_key, score_key, version in _TRIVY_FIELDS:
            vector = get_path(data, vector_key)
            if vector is None:
                yield score_severity(get_path(data, score_key), version)
            else:
                yield cvss_severity(vector, version)


def _grype_findings(matches: list[Any]) -> list[Finding] | None:
    out: list[Finding] = []
    for match in matches:
        ident = get_path(match, "vulnerability", "id")
        if not isinstance(ident, str):
            return None
        related = _items(get_path(match, "relatedVulnerabilities"))
        computed = [*_grype_cvss(get_path(match, "vulnerability", "cvss"))]
        for r in related:
            computed.extend(_grype_cvss(get_path(r, "cvss")))
        out.append(
            Finding(
                ident,
                _rated(get_path(match, "vulnerability", "severity"), computed),
                _ids(related, "id"),
            )
        )
    return out


def _grype_cvss(entries: Any) -> Iterator[str]:
    """Ratings from Grype's ``cvss: [{version, vector, metrics: {baseScore}}]``."""
    for entry in _items(entries):
        version = get_path(entry, "version")
        version = version if isinstance(version, str) else ""
        vector = get_path(entry, "vector")
        if vector is None:
            yield score_severity(get_path(entry, "metrics", "baseScore"), version)
        else:
            yield cvss_severity(vector, version)


def _osv_findings(results: list[Any]) -> list[Finding] | None:
    out: list[Finding] = []
    for result in results:
        packages = get_path(result, "packages")
        if not isinstance(packages, list):
            return None
        for package in packages:
            vulns = get_path(package, "vulnerabilities") or []
            if not isinstance(vulns, list):
                return None
            for v in vulns:
                ident = get_path(v, "id")
                if not isinstance(ident, str):
                    return None
                computed = [*_osv_severities(get_path(v, "severity"))]
                for affected in _items(get_path(v, "affected")):
                    computed.extend(_osv_severities(get_path(affected, "severity")))
                severity = _rated(get_path(v, "database_specific", "severity"), computed)
                out.append(Finding(ident, severity, _ids(get_path(v, "aliases"), "id")))
    return out


# OSV ``severity[].type`` per CVSS version; its ``score`` is the vector (the schema's word, not ours).
_OSV_TYPES = {"CVSS_V2": "2.0", "CVSS_V3": "3.1", "CVSS_V4": "4.0"}


def _osv_severities(entries: Any) -> Iterator[str]:
    """Ratings from OSV's ``severity: [{type, score}]``; the ``Ubuntu`` type's score is a priority word."""
    for entry in _items(entries):
        kind = get_path(entry, "type")
        score = get_path(entry, "score")
        if kind == "Ubuntu":
            yield _severity(score)
        elif isinstance(kind, str) and kind in _OSV_TYPES:
            yield cvss_severity(score, _OSV_TYPES[kind])
