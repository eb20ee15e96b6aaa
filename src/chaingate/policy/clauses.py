"""Evaluating the policy's clauses over verified facts: pure functions, no I/O, no clock.

Everything that can go wrong with bytes, signatures and registries has been
dealt with before this module is reached: it receives only attestations that
count (verified bundle, matching signer, statement about this digest) and the
facts about the image, and the current time as an argument. That keeps every
rule of DESIGN.md testable as a table of inputs and outputs, and keeps the
decision reproducible from the record.

Ages follow DESIGN.md: age = now - the earlier of the trusted signing time
and the time the payload claims, so a payload can neither make itself
fresher than its signature nor hide that it describes an old build.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from chaingate.policy.interface import ClauseResult, Result
from chaingate.policy.model import (
    Policy,
    PolicyException,
    ProvenanceRule,
    SbomRule,
    VulnerabilityRule,
    format_duration,
)

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
CYCLONEDX_BOM = "https://cyclonedx.org/bom"
COSIGN_VULN_V1 = "https://cosign.sigstore.dev/attestation/vuln/v1"
#: Exceptions this close to their end are reported, so they are renewed or fixed in time.
EXPIRY_WARNING = timedelta(days=14)
#: How many denied findings a reason names before summarising the rest.
_MAX_NAMED = 5
_SEVERITY_RANK = {"critical": 5, "high": 4, "medium": 3, "low": 2, "none": 1, "unknown": 0}


@dataclass(frozen=True)
class Attestation:
    """An attachment that counts: verified, signed by a policy signer, its statement about the image."""

    #: Digest of the referrer (or legacy tag) manifest the bundle was read from.
    referrer: str
    #: The manifest digest it is attached to and its statement names (the image, or its platform manifest).
    attached_to: str
    source: str
    predicate_type: str
    predicate: Mapping[str, Any]
    #: Trusted signing time (Rekor integrated time or TSA timestamp), never the payload's claim.
    signed_at: datetime
    signer: str
    issuer: str


@dataclass(frozen=True)
class ImageFacts:
    """What is known about the image being verified, independent of its attachments."""

    reference: str
    #: ``REGISTRY/REPO``; None for an image that is not in a registry (layout, archive).
    repository: str | None
    #: Whether the reference itself carried a digest (``requireDigest``).
    pinned: bool
    #: The manifest digest the reference resolved to; None when the image could not be read.
    digest: str | None
    #: The platform manifest selected inside a multi-arch index, if any.
    platform_digest: str | None = None

    @property
    def digests(self) -> tuple[str, ...]:
        return tuple(d for d in (self.digest, self.platform_digest) if d)


@dataclass(frozen=True)
class Finding:
    """One vulnerability as a scan reports it, severity normalised to :data:`SEVERITIES` plus ``none``."""

    id: str
    severity: str
    aliases: frozenset[str] = frozenset()

    @property
    def names(self) -> frozenset[str]:
        return self.aliases | {self.id}


@dataclass(frozen=True)
class Evaluation:
    clauses: tuple[ClauseResult, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _Outcome:
    """A clause result before exceptions; ``findings`` set when only these findings make it fail."""

    result: Result
    reason: str
    evidence: tuple[str, ...] = ()
    findings: tuple[Finding, ...] | None = None


def evaluate(
    policy: Policy, facts: ImageFacts, attestations: Sequence[Attestation], *, now: datetime
) -> Evaluation:
    """Every policy clause's result (exceptions applied) and the warnings about exceptions."""
    warnings: list[str] = []
    outcomes: list[tuple[str, _Outcome]] = [
        ("registries", _registries(policy, facts)),
        ("requireDigest", _require_digest(policy, facts)),
    ]
    if facts.digest is None:
        unread = _Outcome("skipped", "the image could not be read (see the image clause)")
        outcomes += [
            (name, unread) for name in ("quarantine", "signers", "provenance", "sbom", "vulnerabilities")
        ]
    else:
        outcomes += [
            ("quarantine", _quarantine(policy, facts)),
            ("signers", _signers(attestations)),
            ("provenance", _provenance(policy.provenance, attestations, now)),
            ("sbom", _sbom(policy.sbom, attestations, now)),
            ("vulnerabilities", _vulnerabilities(policy.vulnerabilities, attestations, now)),
        ]
    results = tuple(
        _apply_exceptions(name, outcome, policy, facts, now, warnings) for name, outcome in outcomes
    )
    return Evaluation(results, tuple(warnings))


# -- exceptions --------------------------------------------------------------------------------------


def _apply_exceptions(
    clause: str, outcome: _Outcome, policy: Policy, facts: ImageFacts, now: datetime, warnings: list[str]
) -> ClauseResult:
    matching = [
        e
        for e in policy.exceptions
        if e.clause == clause and e.image.matches(facts.repository, facts.digests)
    ]
    active: list[PolicyException] = []
    for exception in matching:
        if not exception.active(now):
            warnings.append(
                f"exception {exception.id} ({clause}, owner {exception.owner}) expired at the end of "
                f"{exception.expires.isoformat()}; not applied"
            )
            continue
        active.append(exception)
        left = exception.expires_at - now
        if left <= EXPIRY_WARNING:
            warnings.append(
                f"exception {exception.id} ({clause}, owner {exception.owner}) expires at the end of "
                f"{exception.expires.isoformat()} (in {format_duration(left)}); renew it or fix {exception.issue}"
            )
    if outcome.result != "fail" or not active:
        return ClauseResult(clause, outcome.result, outcome.reason, outcome.evidence)
    whole = [e for e in active if not e.ids]
    if whole:
        used = whole[0]
        return ClauseResult(
            clause,
            "waived",
            f"waived by {used.id} until the end of {used.expires.isoformat()} (owner {used.owner}, "
            f"{used.issue}); {outcome.reason}",
            outcome.evidence,
            used.id,
        )
    if outcome.findings is None:
        ids = ", ".join(e.id for e in active)
        return ClauseResult(
            clause,
            "fail",
            f"{outcome.reason} (exception {ids} waives only listed ids, and this failure is not about findings)",
            outcome.evidence,
        )
    waived_ids = frozenset().union(*(e.ids for e in active))
    remaining = [f for f in outcome.findings if not (f.names & waived_ids)]
    used_ids = ",".join(e.id for e in active if any(f.names & e.ids for f in outcome.findings))
    if remaining:
        return ClauseResult(
            clause,
            "fail",
            f"denied findings not covered by exceptions: {_name_findings(remaining)}",
            outcome.evidence,
            used_ids or None,
        )
    return ClauseResult(
        clause,
        "waived",
        f"denied findings {_name_findings(outcome.findings)} waived by {used_ids}; {outcome.reason}",
        outcome.evidence,
        used_ids,
    )


# -- clauses ------------------------------------------------------------------------------------------


def _registries(policy: Policy, facts: ImageFacts) -> _Outcome:
    if policy.registries is None:
        return _Outcome("skipped", "the policy allows any registry (no registries list)")
    if facts.repository is None:
        return _Outcome("fail", f"{facts.reference} is not in a registry, so no registries glob can allow it")
    for glob in policy.registries:
        if glob.matches(facts.repository):
            return _Outcome("pass", f"{facts.repository} matches {glob}")
    globs = ", ".join(str(g) for g in policy.registries)
    return _Outcome("fail", f"{facts.repository} matches none of the allowed registries ({globs})")


def _require_digest(policy: Policy, facts: ImageFacts) -> _Outcome:
    if not policy.require_digest:
        return _Outcome("skipped", "requireDigest is off")
    if facts.pinned:
        return _Outcome("pass", "the reference names a digest")
    return _Outcome(
        "fail",
        f"{facts.reference} is a tag reference; requireDigest needs REGISTRY/REPO@sha256:…"
        + (f" (it resolved to {facts.digest})" if facts.digest else ""),
    )


def _quarantine(policy: Policy, facts: ImageFacts) -> _Outcome:
    hits = [q for q in policy.quarantine if q.digest in facts.digests]
    if hits:
        return _Outcome(
            "fail", "; ".join(f"{q.digest} is quarantined: {q.reason} ({q.source})" for q in hits)
        )
    if not policy.quarantine:
        return _Outcome("skipped", "nothing is quarantined")
    return _Outcome("pass", f"not among {len(policy.quarantine)} quarantined digests")


def _signers(attestations: Sequence[Attestation]) -> _Outcome:
    if not attestations:
        return _Outcome(
            "fail", "no attachment counts: nothing verified, signed by a policy signer and about this image"
        )
    kinds = sorted({a.predicate_type for a in attestations})
    signers = sorted({a.signer for a in attestations})
    return _Outcome(
        "pass",
        f"{len(attestations)} attestation(s) signed by {', '.join(signers)} ({', '.join(kinds)})",
        _evidence(attestations),
    )


def _provenance(rule: ProvenanceRule | None, attestations: Sequence[Attestation], now: datetime) -> _Outcome:
    if rule is None:
        return _Outcome("skipped", "the policy has no provenance clause")
    found = [a for a in attestations if a.predicate_type in (SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V02)]
    if not found:
        if rule.required:
            return _Outcome("fail", "no signed SLSA provenance (v1 or v0.2) about this image")
        return _Outcome("skipped", "no provenance attached (not required)")
    allowed_sources = {_normal_repository(s) for s in rule.source_repositories}
    good: list[tuple[Attestation, str]] = []
    problems: list[str] = []
    for att in found:
        builder, source, claimed = _provenance_facts(att)
        issues: list[str] = []
        if rule.builder_ids and builder not in rule.builder_ids:
            issues.append(f"builder {builder or 'none'} is not in builderIds")
        if allowed_sources and (source is None or _normal_repository(source) not in allowed_sources):
            issues.append(f"source {source or 'none'} is not in sourceRepositories")
        age = age_of(att, claimed, now)
        if rule.max_age is not None and age > rule.max_age:
            issues.append(
                f"built {format_duration(age)} ago, older than maxAge {format_duration(rule.max_age)}"
            )
        if issues:
            problems.append(f"{_short(att.referrer)}: {'; '.join(issues)}")
        else:
            good.append(
                (
                    att,
                    f"builder {builder or 'unknown'}, source {source or 'unknown'}, age {format_duration(age)}",
                )
            )
    if good:
        return _Outcome("pass", f"SLSA provenance: {good[0][1]}", _evidence(a for a, _ in good))
    return _Outcome("fail", "no provenance satisfies the policy: " + " | ".join(problems), _evidence(found))


def _sbom(rule: SbomRule | None, attestations: Sequence[Attestation], now: datetime) -> _Outcome:
    if rule is None:
        return _Outcome("skipped", "the policy has no sbom clause")
    found = [a for a in attestations if _is_cyclonedx(a.predicate_type)]
    if not found:
        if rule.required:
            return _Outcome("fail", "no signed CycloneDX SBOM about this image")
        return _Outcome("skipped", "no SBOM attached (not required)")
    aged = sorted(
        ((age_of(a, _time_at(a.predicate, "metadata", "timestamp"), now), a) for a in found),
        key=lambda t: t[0],
    )
    fresh = [(age, a) for age, a in aged if rule.max_age is None or age <= rule.max_age]
    if fresh:
        return _Outcome(
            "pass", f"CycloneDX SBOM, age {format_duration(fresh[0][0])}", _evidence(a for _, a in fresh)
        )
    assert rule.max_age is not None
    return _Outcome(
        "fail",
        f"the newest SBOM is {format_duration(aged[0][0])} old, older than maxAge {format_duration(rule.max_age)}",
        _evidence(a for _, a in aged),
    )


def _vulnerabilities(
    rule: VulnerabilityRule | None, attestations: Sequence[Attestation], now: datetime
) -> _Outcome:
    if rule is None:
        return _Outcome("skipped", "the policy has no vulnerabilities clause")
    scans = [
        a for a in attestations if a.predicate_type == COSIGN_VULN_V1 or _is_cyclonedx_with_vulnerabilities(a)
    ]
    if not scans:
        if rule.required:
            return _Outcome("fail", "no signed vulnerability scan about this image")
        return _Outcome("skipped", "no vulnerability scan attached (not required)")
    aged = sorted(((age_of(a, _scan_time(a), now), a) for a in scans), key=lambda t: t[0])
    newest_age = aged[0][0]
    newest = [a for age, a in aged if age == newest_age]
    evidence = _evidence(newest)
    if rule.max_age is not None and newest_age > rule.max_age:
        return _Outcome(
            "fail",
            f"the newest scan is {format_duration(newest_age)} old, older than maxAge {format_duration(rule.max_age)}",
            evidence,
        )
    findings: list[Finding] = []
    for att in newest:
        read = scan_findings(att.predicate_type, att.predicate)
        if read is None:
            return _Outcome(
                "fail", f"{_short(att.referrer)}: the scan result is in no format chaingate reads", evidence
            )
        findings.extend(read)
    denied = [f for f in findings if f.severity in rule.deny or (f.names & rule.deny_ids)]
    if denied:
        return _Outcome(
            "fail",
            f"denied findings in the scan of {format_duration(newest_age)} ago: {_name_findings(denied)}",
            evidence,
            tuple(denied),
        )
    return _Outcome(
        "pass",
        f"scan of {format_duration(newest_age)} ago: {len(findings)} finding(s), none denied",
        evidence,
    )


# -- reading predicates -------------------------------------------------------------------------------


def age_of(att: Attestation, claimed: datetime | None, now: datetime) -> timedelta:
    """now - the earlier of the trusted signing time and the payload's claimed time."""
    start = att.signed_at if claimed is None else min(att.signed_at, claimed)
    return now - start


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time from a payload (naive ones read as UTC); None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


def _time_at(doc: Any, *path: str) -> datetime | None:
    return parse_time(_get(doc, *path))


def _first_time(doc: Any, *paths: tuple[str, ...]) -> datetime | None:
    for path in paths:
        value = _time_at(doc, *path)
        if value is not None:
            return value
    return None


def _provenance_facts(att: Attestation) -> tuple[str | None, str | None, datetime | None]:
    """(builder id, primary source repository, claimed build time) of a SLSA v1 or v0.2 predicate."""
    p = att.predicate
    if att.predicate_type == SLSA_PROVENANCE_V1:
        builder = _get(p, "runDetails", "builder", "id")
        claimed = _first_time(
            p, ("runDetails", "metadata", "finishedOn"), ("runDetails", "metadata", "startedOn")
        )
        external = _get(p, "buildDefinition", "externalParameters")
        source = _get(external, "workflow", "repository")
        if not isinstance(source, str):
            candidate = _get(external, "source")
            source = candidate if isinstance(candidate, str) else _get(candidate, "uri")
        if not isinstance(source, str):
            source = _git_dependency(_get(p, "buildDefinition", "resolvedDependencies"))
    else:
        builder = _get(p, "builder", "id")
        claimed = _first_time(p, ("metadata", "buildFinishedOn"), ("metadata", "buildStartedOn"))
        source = _get(p, "invocation", "configSource", "uri")
        if not isinstance(source, str):
            source = _git_dependency(_get(p, "materials"))
    return (
        builder if isinstance(builder, str) else None,
        source if isinstance(source, str) else None,
        claimed,
    )


def _git_dependency(entries: Any) -> str | None:
    """The first dependency that is a git source (``git+…`` URI, or pinned by a git commit)."""
    if not isinstance(entries, list):
        return None
    for entry in entries:
        uri = _get(entry, "uri")
        digest = _get(entry, "digest")
        is_git = isinstance(digest, Mapping) and ("gitCommit" in digest or "sha1" in digest)
        if isinstance(uri, str) and (uri.startswith("git+") or is_git):
            return uri
    return None


def _normal_repository(uri: str) -> str:
    """A source URI reduced to scheme://host/path: no ``git+``, ``@ref``, ``.git`` or trailing slash."""
    parts = urlsplit(uri.removeprefix("git+"))
    path = parts.path.split("@", 1)[0].rstrip("/").removesuffix(".git")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


def _is_cyclonedx(predicate_type: str) -> bool:
    return predicate_type == CYCLONEDX_BOM or predicate_type.startswith(CYCLONEDX_BOM + "/")


def _is_cyclonedx_with_vulnerabilities(att: Attestation) -> bool:
    return _is_cyclonedx(att.predicate_type) and isinstance(att.predicate.get("vulnerabilities"), list)


def _scan_time(att: Attestation) -> datetime | None:
    if att.predicate_type == COSIGN_VULN_V1:
        return _first_time(att.predicate, ("metadata", "scanFinishedOn"), ("metadata", "scanStartedOn"))
    return _time_at(att.predicate, "metadata", "timestamp")


def scan_findings(predicate_type: str, predicate: Mapping[str, Any]) -> list[Finding] | None:
    """The findings of a vulnerability scan predicate; None when its format is not one chaingate reads.

    Read: CycloneDX (``vulnerabilities``), cosign's vuln/v1 wrapping a
    CycloneDX, Trivy (``Results[].Vulnerabilities``), Grype (``matches``),
    osv-scanner (``results[].packages[].vulnerabilities``) or a plain
    ``vulnerabilities: [{id, severity, aliases}]`` result.
    """
    if _is_cyclonedx(predicate_type):
        return _cyclonedx_findings(predicate.get("vulnerabilities"))
    result = _get(predicate, "scanner", "result")
    if not isinstance(result, Mapping):
        return None
    if isinstance(result.get("vulnerabilities"), list):
        if result.get("bomFormat") == "CycloneDX":
            return _cyclonedx_findings(result["vulnerabilities"])
        return _plain_findings(result["vulnerabilities"])
    if isinstance(result.get("Results"), list):
        return _trivy_findings(result["Results"])
    if isinstance(result.get("matches"), list):
        return _grype_findings(result["matches"])
    if isinstance(result.get("results"), list):
        return _osv_findings(result["results"])
    return None


def _severity(value: Any) -> str:
    text = value.lower() if isinstance(value, str) else ""
    if text in ("critical", "high", "medium", "low", "none"):
        return text
    if text == "moderate":
        return "medium"
    if text == "negligible":
        return "low"
    if text in ("info", "informational"):
        return "none"
    return "unknown"


def _ids(values: Any, key: str) -> frozenset[str]:
    """Alias ids from a list of strings or of objects carrying ``key`` (scanners differ)."""
    out: set[str] = set()
    if isinstance(values, list):
        for value in values:
            ident = value.get(key) if isinstance(value, Mapping) else value
            if isinstance(ident, str):
                out.add(ident)
    return frozenset(out)


def _cyclonedx_findings(vulnerabilities: Any) -> list[Finding] | None:
    if not isinstance(vulnerabilities, list):
        return None
    out: list[Finding] = []
    for v in vulnerabilities:
        ident = _get(v, "id")
        if not isinstance(ident, str):
            return None
        ratings = _get(v, "ratings")
        severities = [_severity(_get(r, "severity")) for r in ratings] if isinstance(ratings, list) else []
        severity = max(severities, key=lambda s: _SEVERITY_RANK[s]) if severities else "unknown"
        out.append(Finding(ident, severity, _ids(_get(v, "references"), "id")))
    return out


def _plain_findings(vulnerabilities: list[Any]) -> list[Finding] | None:
    out: list[Finding] = []
    for v in vulnerabilities:
        ident = _get(v, "id")
        if not isinstance(ident, str):
            return None
        out.append(Finding(ident, _severity(_get(v, "severity")), _ids(_get(v, "aliases"), "id")))
    return out


def _trivy_findings(results: list[Any]) -> list[Finding] | None:
    out: list[Finding] = []
    for result in results:
        vulns = _get(result, "Vulnerabilities")
        if vulns is None:
            continue
        if not isinstance(vulns, list):
            return None
        for v in vulns:
            ident = _get(v, "VulnerabilityID")
            if not isinstance(ident, str):
                return None
            out.append(Finding(ident, _severity(_get(v, "Severity"))))
    return out


def _grype_findings(matches: list[Any]) -> list[Finding] | None:
    out: list[Finding] = []
    for match in matches:
        ident = _get(match, "vulnerability", "id")
        if not isinstance(ident, str):
            return None
        out.append(
            Finding(
                ident,
                _severity(_get(match, "vulnerability", "severity")),
                _ids(_get(match, "relatedVulnerabilities"), "id"),
            )
        )
    return out


def _osv_findings(results: list[Any]) -> list[Finding] | None:
    out: list[Finding] = []
    for result in results:
        packages = _get(result, "packages")
        if not isinstance(packages, list):
            return None
        for package in packages:
            vulns = _get(package, "vulnerabilities") or []
            if not isinstance(vulns, list):
                return None
            for v in vulns:
                ident = _get(v, "id")
                if not isinstance(ident, str):
                    return None
                severity = _get(v, "database_specific", "severity")
                out.append(Finding(ident, _severity(severity), _ids(_get(v, "aliases"), "id")))
    return out


# -- formatting ---------------------------------------------------------------------------------------


def _evidence(attestations: Iterable[Attestation]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.referrer for a in attestations))


def _short(digest: str) -> str:
    return digest[:19]


def _name_findings(findings: Sequence[Finding]) -> str:
    ordered = sorted(findings, key=lambda f: (-_SEVERITY_RANK[f.severity], f.id))
    named = ", ".join(f"{f.id} ({f.severity})" for f in ordered[:_MAX_NAMED])
    if len(ordered) > _MAX_NAMED:
        named += f" and {len(ordered) - _MAX_NAMED} more"
    return named
