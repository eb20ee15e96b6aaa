"""Evaluating the policy's clauses over verified facts: pure functions, no I/O, no clock.

Everything that can go wrong with bytes, signatures and registries has been
dealt with before this module is reached: it receives only attestations that
count (verified bundle, matching signer, statement about this digest) and the
facts about the image, and the current time as an argument. That keeps every
rule of docs/design.md testable as a table of inputs and outputs, and keeps the
decision reproducible from the record.

Ages follow docs/design.md: age = now - the earlier of the trusted signing time
and the time the payload claims, so a payload can neither make itself
fresher than its signature nor hide that it describes an old build.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from chaingate.policy.findings import SEVERITY_RANK, Finding
from chaingate.policy.findings import get_path as _get
from chaingate.policy.findings import scan_findings as scan_findings
from chaingate.policy.interface import ClauseResult, Result
from chaingate.policy.model import (
    Policy,
    PolicyException,
    ProvenanceRule,
    SbomRule,
    VulnerabilityRule,
    format_duration,
)
from chaingate.predicate_types import (
    COSIGN_SIGN_V1,
    COSIGN_VULN_V1,
    GATE_RECORD_PREFIXES,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    SPDX_DOCUMENT,
    is_cyclonedx,
)
from chaingate.timeutil import payload_time

#: GitHub's build type (actions/attest-build-provenance): its builder id is the runner, not the workflow.
GITHUB_RUNNER_BUILDER = "/actions/runner/"
#: Exceptions this close to their end are reported, so they are renewed or fixed in time.
EXPIRY_WARNING = timedelta(days=14)
#: How many denied findings a reason names before summarising the rest.
_MAX_NAMED = 5


@dataclass(frozen=True)
class CertificateFacts:
    """The build facts Fulcio's CI extensions (1.3.6.1.4.1.57264.1.9-.22) put in a signing certificate.

    They come from the OIDC token of the CI system, not from the signer's
    payload, so a provenance that contradicts them was not written by the
    build the certificate vouches for.
    """

    source_repository_uri: str | None = None
    source_repository_digest: str | None = None
    source_repository_ref: str | None = None
    build_signer_uri: str | None = None
    build_config_uri: str | None = None
    runner_environment: str | None = None

    @property
    def present(self) -> bool:
        return any(
            (self.source_repository_uri, self.source_repository_digest, self.build_signer_uri,
             self.build_config_uri)
        )  # fmt: skip


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
    #: What the signing certificate's Fulcio CI extensions say about the build (all None without them).
    certificate: CertificateFacts = field(default_factory=CertificateFacts)


def is_artifact_statement(predicate_type: str) -> bool:
    """Whether a statement is about the artifact (docs/design.md: only those count for ``signers``)."""
    return (
        predicate_type in (COSIGN_SIGN_V1, SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V02, COSIGN_VULN_V1)
        or is_cyclonedx(predicate_type)
        or predicate_type == SPDX_DOCUMENT
        or predicate_type.startswith(SPDX_DOCUMENT + "/")
    )


def is_gate_record(predicate_type: str) -> bool:
    return predicate_type.startswith(GATE_RECORD_PREFIXES)


@dataclass(frozen=True)
class ImageFacts:
    """What is known about the image being verified, independent of its attachments."""

    reference: str
    #: ``REGISTRY/REPO``; None for an image that is not in a registry (layout, archive).
    repository: str | None
    #: Whether the reference itself carried a digest (``requireDigest``).
    pinned: bool
    #: The verified manifest digest: what runs (the platform manifest's with ``--platform``); None when
    #: the image could not be read.
    digest: str | None
    #: The multi-arch index the platform manifest was selected from, if any.
    index_digest: str | None = None
    #: The platform manifests a verified multi-arch index lists (without ``--platform``): the runtime will
    #: run one of them, so quarantining any of them quarantines the index.
    children: tuple[str, ...] = ()

    @property
    def digests(self) -> tuple[str, ...]:
        """Both digests, so an exception naming either the index or the platform applies."""
        return tuple(d for d in (self.digest, self.index_digest) if d)


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
    #: The quarantined digests that make ``quarantine`` fail: only an exception naming one of them waives it.
    quarantined: tuple[str, ...] = ()


def evaluate(
    policy: Policy, facts: ImageFacts, attestations: Sequence[Attestation], *, now: datetime
) -> Evaluation:
    """Every policy clause's result (exceptions applied) and the warnings about exceptions."""
    # The gate's own records never count, whatever the caller passed (the gate lists them as ignored).
    attestations = [a for a in attestations if not is_gate_record(a.predicate_type)]
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
            ("sbom", _sbom(policy.sbom, attestations, facts, now)),
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
    if clause == "quarantine" and outcome.quarantined:
        # An exception pinned to a digest waives a quarantine only when it pins the quarantined digest itself:
        # naming the index must not lift the quarantine of one of its platform manifests (a glob still may).
        matching = [
            e
            for e in policy.exceptions
            if e.clause == clause
            and e.image.matches(facts.repository, outcome.quarantined)
            and (e.image.digest is None or e.image.digest in outcome.quarantined)
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
    runs = (*facts.digests, *facts.children)
    hits = [q for q in policy.quarantine if q.digest in runs]
    if hits:
        return _Outcome(
            "fail",
            "; ".join(
                f"{q.digest} is quarantined: {q.reason} ({q.source})"
                + (" (a platform manifest of this index)" if q.digest in facts.children else "")
                for q in hits
            ),
            quarantined=tuple(q.digest for q in hits),
        )
    if not policy.quarantine:
        return _Outcome("skipped", "nothing is quarantined")
    return _Outcome("pass", f"not among {len(policy.quarantine)} quarantined digests")


def _signers(attestations: Sequence[Attestation]) -> _Outcome:
    attestations = [a for a in attestations if is_artifact_statement(a.predicate_type)]
    if not attestations:
        return _Outcome(
            "fail",
            "no attachment counts: nothing verified, signed by a policy signer and about this image "
            "(a signature, provenance, SBOM or scan; the gate's own records never count)",
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
        builder, source, commit, claimed = _provenance_facts(att)
        issues = certificate_disagreements(att, builder, source, commit)
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


def _sbom(
    rule: SbomRule | None, attestations: Sequence[Attestation], facts: ImageFacts, now: datetime
) -> _Outcome:
    if rule is None:
        return _Outcome("skipped", "the policy has no sbom clause")
    boms = [a for a in attestations if is_cyclonedx(a.predicate_type)]
    # chaingate and syft name the image digest as metadata.component's version: an SBOM of another image,
    # signed about this one, describes the wrong filesystem and does not count.
    found = [a for a in boms if _sbom_image_digest(a) in (None, facts.digest, a.attached_to)]
    others = [f"{_short(a.referrer)} describes {_sbom_image_digest(a)}" for a in boms if a not in found]
    if not found:
        note = f" ({'; '.join(others)})" if others else ""
        if rule.required:
            return _Outcome("fail", f"no signed CycloneDX SBOM about this image{note}")
        return _Outcome("skipped", f"no SBOM attached (not required){note}")
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
    """Monotonic: every counted scan within ``maxAge`` is judged, and a denied finding in any of them denies.

    Only explicit scan statements count (an SBOM's own ``vulnerabilities`` is
    not a scan), and no scan can hide another: neither a newer clean one nor
    an empty SBOM rolls back what an older fresh scan found.
    """
    if rule is None:
        return _Outcome("skipped", "the policy has no vulnerabilities clause")
    scans = [a for a in attestations if a.predicate_type == COSIGN_VULN_V1]
    if not scans:
        if rule.required:
            return _Outcome("fail", "no signed vulnerability scan about this image")
        return _Outcome("skipped", "no vulnerability scan attached (not required)")
    aged = sorted(((age_of(a, _scan_time(a), now), a) for a in scans), key=lambda t: t[0])
    fresh = [(age, a) for age, a in aged if rule.max_age is None or age <= rule.max_age]
    if not fresh:
        assert rule.max_age is not None
        return _Outcome(
            "fail",
            f"the newest scan is {format_duration(aged[0][0])} old, older than maxAge "
            f"{format_duration(rule.max_age)}",
            _evidence(a for _, a in aged[:1]),
        )
    judged: list[tuple[timedelta, Attestation, list[Finding]]] = []
    unreadable: list[str] = []
    for age, att in fresh:
        read = scan_findings(att.predicate_type, att.predicate)
        if read is None:
            unreadable.append(f"{_short(att.referrer)}: the scan result is in no format chaingate reads")
        else:
            judged.append((age, att, read))
    if not judged:
        return _Outcome(
            "fail" if rule.required else "skipped",
            "no readable scan within maxAge: " + " | ".join(unreadable),
            _evidence(a for _, a in fresh),
        )
    evidence = _evidence(a for _, a, _ in judged)
    denied: dict[str, Finding] = {}
    total: set[str] = set()
    for _, _, findings in judged:
        for finding in findings:
            total.add(finding.id)
            if finding.severity in rule.deny or (finding.names & rule.deny_ids):
                denied.setdefault(finding.id, finding)
    scans_text = f"{len(judged)} scan(s) within maxAge (newest {format_duration(judged[0][0])} ago)"
    note = f"; not counted: {' | '.join(unreadable)}" if unreadable else ""
    if denied:
        findings_denied = tuple(denied.values())
        return _Outcome(
            "fail",
            f"denied findings in {scans_text}: {_name_findings(findings_denied)}{note}",
            evidence,
            findings_denied,
        )
    return _Outcome("pass", f"{scans_text}: {len(total)} finding(s), none denied{note}", evidence)


# -- reading predicates -------------------------------------------------------------------------------


def age_of(att: Attestation, claimed: datetime | None, now: datetime) -> timedelta:
    """now - the earlier of the trusted signing time and the payload's claimed time."""
    start = att.signed_at if claimed is None else min(att.signed_at, claimed)
    return now - start


def _time_at(doc: Any, *path: str) -> datetime | None:
    return payload_time(_get(doc, *path))


def _first_time(doc: Any, *paths: tuple[str, ...]) -> datetime | None:
    for path in paths:
        value = _time_at(doc, *path)
        if value is not None:
            return value
    return None


def _provenance_facts(att: Attestation) -> tuple[str | None, str | None, str | None, datetime | None]:
    """(builder id, primary source repository, its commit, claimed build time) of SLSA v1 or v0.2."""
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
        dependency = _git_dependency(_get(p, "buildDefinition", "resolvedDependencies"), source)
    else:
        builder = _get(p, "builder", "id")
        claimed = _first_time(p, ("metadata", "buildFinishedOn"), ("metadata", "buildStartedOn"))
        config = _get(p, "invocation", "configSource")
        source = _get(config, "uri")
        dependency = (source, _commit(_get(config, "digest"))) if isinstance(source, str) else None
        if dependency is None or dependency[1] is None:
            dependency = _git_dependency(_get(p, "materials"), source) or dependency
    if not isinstance(source, str) and dependency is not None:
        source = dependency[0]
    return (
        builder if isinstance(builder, str) else None,
        source if isinstance(source, str) else None,
        dependency[1] if dependency is not None else None,
        claimed,
    )


def _commit(digest: Any) -> str | None:
    if not isinstance(digest, Mapping):
        return None
    value = digest.get("gitCommit", digest.get("sha1"))
    return value.lower() if isinstance(value, str) else None


def _git_dependency(entries: Any, source: Any) -> tuple[str, str | None] | None:
    """(uri, commit) of the git source among ``entries``: the one naming ``source``, else the first git one."""
    if not isinstance(entries, list):
        return None
    candidates: list[tuple[str, str | None]] = []
    for entry in entries:
        uri = _get(entry, "uri")
        commit = _commit(_get(entry, "digest"))
        if isinstance(uri, str) and (uri.startswith("git+") or commit is not None):
            candidates.append((uri, commit))
    if isinstance(source, str):
        wanted = _normal_repository(source)
        for uri, commit in candidates:
            if _normal_repository(uri) == wanted:
                return uri, commit
    return candidates[0] if candidates else None


def provenance_disagreements(att: Attestation) -> list[str]:
    """:func:`certificate_disagreements` of a provenance attestation, its facts read here."""
    builder, source, commit, _ = _provenance_facts(att)
    return certificate_disagreements(att, builder, source, commit)


def certificate_disagreements(
    att: Attestation, builder: str | None, source: str | None, commit: str | None
) -> list[str]:
    """Where a provenance contradicts the CI facts of its own signing certificate (empty: it agrees).

    Modelled on slsa-verifier and ``gh attestation verify``: the certificate's
    source repository and commit come from the CI system's OIDC token, so the
    provenance must name the same ones; its builder must be the workflow that
    signed (build signer URI) or ran (build config URI), or, for GitHub's own
    build type, the runner environment the certificate names. A certificate
    without CI extensions (an e-mail identity, a Kubernetes service account)
    binds nothing here; the policy's signers and builderIds still apply.
    """
    cert = att.certificate
    if not cert.present:
        return []
    issues: list[str] = []
    if cert.source_repository_uri is not None and (
        source is None or _normal_repository(source) != _normal_repository(cert.source_repository_uri)
    ):
        issues.append(
            f"source {source or 'none'} is not the certificate's source repository {cert.source_repository_uri}"
        )
    if cert.source_repository_digest is not None and commit != cert.source_repository_digest.lower():
        issues.append(
            f"source commit {commit or 'none'} is not the certificate's {cert.source_repository_digest}"
        )
    builders = {u for u in (cert.build_signer_uri, cert.build_config_uri) if u}
    if cert.runner_environment and cert.source_repository_uri:
        parts = urlsplit(cert.source_repository_uri)
        builders.add(f"{parts.scheme}://{parts.netloc}{GITHUB_RUNNER_BUILDER}{cert.runner_environment}")
    if builders and builder not in builders:
        issues.append(f"builder {builder or 'none'} is not the certificate's workflow or runner")
    workflow = _get(att.predicate, "buildDefinition", "externalParameters", "workflow")
    if cert.build_config_uri and isinstance(workflow, Mapping) and att.predicate_type == SLSA_PROVENANCE_V1:
        named = f"{workflow.get('repository')}/{workflow.get('path')}@{workflow.get('ref')}"
        if named != cert.build_config_uri:
            issues.append(f"workflow {named} is not the certificate's build config {cert.build_config_uri}")
    return issues


def _normal_repository(uri: str) -> str:
    """A source URI reduced to scheme://host/path: no ``git+``, ``@ref``, ``.git`` or trailing slash."""
    parts = urlsplit(uri.removeprefix("git+"))
    path = parts.path.split("@", 1)[0].rstrip("/").removesuffix(".git")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


def _sbom_image_digest(att: Attestation) -> str | None:
    """The image digest a CycloneDX document names as ``metadata.component.version``, if it names one."""
    version = _get(att.predicate, "metadata", "component", "version")
    if isinstance(version, str) and version.startswith("sha256:"):
        return version
    return None


def _scan_time(att: Attestation) -> datetime | None:
    return _first_time(att.predicate, ("metadata", "scanFinishedOn"), ("metadata", "scanStartedOn"))


# -- formatting ---------------------------------------------------------------------------------------


def _evidence(attestations: Iterable[Attestation]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.referrer for a in attestations))


def _short(digest: str) -> str:
    return digest[:19]


def _name_findings(findings: Sequence[Finding]) -> str:
    ordered = sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], f.id))
    named = ", ".join(f"{f.id} ({f.severity})" for f in ordered[:_MAX_NAMED])
    if len(ordered) > _MAX_NAMED:
        named += f" and {len(ordered) - _MAX_NAMED} more"
    return named
