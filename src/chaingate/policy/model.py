"""The policy file version 1 as frozen values, with the matching rules that belong to the data.

Everything here is immutable and already validated by the loader, so the
evaluation code never has to ask whether a field might be malformed: a
:class:`Policy` that exists is one that can be applied. The matching rules
(globs, image patterns, exception lifetimes) live next to the data they
interpret so the loader's validation and the gate's evaluation cannot
disagree about what a pattern means.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from chaingate.policy.interface import Mode

#: Severities a ``vulnerabilities.deny`` list may name (scanner spellings are normalised to these).
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "unknown")

#: Identity claims a ``signers`` entry may require, and the Fulcio certificate
#: extensions (arc under 1.3.6.1.4.1.57264.1) that carry them: (arc, DER-encoded?,
#: compare the URL's path only?). Every extension present must match and at
#: least one must be present; Fulcio writes the legacy raw ones (.2-.6) beside
#: the DER ones (.9-.22), so requiring agreement catches a certificate whose
#: two spellings disagree instead of picking whichever suits a forger.
SIGNER_CLAIMS: Mapping[str, tuple[tuple[int, bool, bool], ...]] = {
    "githubWorkflowTrigger": ((2, False, False), (20, True, False)),
    "githubWorkflowSha": ((3, False, False), (13, True, False)),
    "githubWorkflowName": ((4, False, False),),
    "githubWorkflowRepository": ((5, False, False), (12, True, True)),
    "githubWorkflowRef": ((6, False, False), (14, True, False)),
    "buildSignerURI": ((9, True, False),),
    "buildSignerDigest": ((10, True, False),),
    "runnerEnvironment": ((11, True, False),),
    "sourceRepositoryURI": ((12, True, False),),
    "sourceRepositoryDigest": ((13, True, False),),
    "sourceRepositoryRef": ((14, True, False),),
    "sourceRepositoryIdentifier": ((15, True, False),),
    "sourceRepositoryOwnerURI": ((16, True, False),),
    "sourceRepositoryOwnerIdentifier": ((17, True, False),),
    "buildConfigURI": ((18, True, False),),
    "buildConfigDigest": ((19, True, False),),
    "buildTrigger": ((20, True, False),),
    "runInvocationURI": ((21, True, False),),
    "sourceRepositoryVisibilityAtSigning": ((22, True, False),),
}

_SEGMENT_CHARS = re.compile(r"^[A-Za-z0-9._:\-\[\]*]+$")
_DURATION = re.compile(r"^([1-9][0-9]{0,5})([wdhm])$")
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}


def parse_duration(text: str) -> timedelta | None:
    """``30d``, ``12h``, ``90m``, ``1w`` as a timedelta; None when ``text`` is not one of those forms."""
    m = _DURATION.match(text)
    if m is None:
        return None
    return int(m.group(1)) * _UNITS[m.group(2)]


def format_duration(value: timedelta) -> str:
    """A short human form (``3d 4h``, ``12m``) for reasons and warnings."""
    seconds = int(value.total_seconds())
    if seconds < 0:
        return "-" + format_duration(-value)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if minutes and not days:
        parts.append(f"{minutes}m")
    return " ".join(parts) or f"{seconds}s"


class RegexpProblem(ValueError):
    """Why an identity regular expression is refused, with the hint to show."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def compile_anchored(text: str) -> re.Pattern[str]:
    """``text`` compiled, when it is anchored ``^…$`` as an identity regexp must be; else :class:`RegexpProblem`.

    Unanchored, ``https://github\\.com/org/app/.*`` would also match an identity
    that merely contains it (``https://evil.example/?https://github.com/org/app/x``).
    A final ``$`` that is escaped (``\\$``) is a literal dollar, not an anchor.
    """
    body = text[1:-1] if len(text) >= 2 else ""
    escapes = len(body) - len(body.rstrip("\\"))
    if len(text) < 2 or not (text.startswith("^") and text.endswith("$")) or escapes % 2 == 1:
        raise RegexpProblem(
            f"regular expression {text!r} is not anchored",
            "start it with ^ and end it with $ so it cannot match inside a longer identity",
        )
    try:
        return re.compile(text)
    except re.error as e:
        raise RegexpProblem(f"regular expression {text!r} does not compile ({e})") from None
    except (RecursionError, OverflowError) as e:  # thousands of nested groups, a{1,99999999999}
        raise RegexpProblem(f"regular expression is too complex to compile ({type(e).__name__})") from None


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid ``REGISTRY/REPO`` glob, or None when it is."""
    if not pattern:
        return "empty glob"
    for segment in pattern.split("/"):
        if not segment:
            return f"glob {pattern!r} has an empty path segment"
        if "**" in segment and segment != "**":
            return f"glob {pattern!r}: '**' must be a whole path segment"
        if not _SEGMENT_CHARS.match(segment):
            return (
                f"glob {pattern!r}: segment {segment!r} may hold only letters, digits, '.', '_', '-', ':', "
                "'[', ']' and '*'"
            )
    return None


@dataclass(frozen=True)
class Glob:
    """A ``REGISTRY/REPO`` glob: ``*`` matches within one path segment, ``**`` across segments.

    ``**`` as the last segment matches one or more segments (``team/**`` is
    everything under ``team`` but not ``team`` itself); elsewhere it matches
    zero or more, as in gitignore.
    """

    text: str
    _segments: tuple[re.Pattern[str] | None, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = glob_problem(self.text)
        if problem is not None:
            raise ValueError(problem)
        segments = tuple(
            None if s == "**" else re.compile("".join("[^/]*" if c == "*" else re.escape(c) for c in s))
            for s in self.text.split("/")
        )
        object.__setattr__(self, "_segments", segments)

    def matches(self, name: str) -> bool:
        parts = name.split("/")
        pats = self._segments
        # reachable[i]: the first i pattern segments can consume the parts seen so far.
        # Iterative, so a pattern with many '**' cannot blow up on a long name.
        states = {0}
        for part in parts:
            following: set[int] = set()
            for i in _closure(states, pats):
                if i >= len(pats):
                    continue
                pat = pats[i]
                if pat is None:
                    following.add(i)  # '**' stays active, consuming this part
                    following.add(i + 1)
                elif pat.fullmatch(part):
                    following.add(i + 1)
            states = following
            if not states:
                return False
        final = _closure(states, pats)
        if len(pats) in final:
            # A trailing '**' must have consumed at least one part: it only reached the end by
            # consuming (states), never by being skipped (closure).
            return not (pats and pats[-1] is None and len(pats) not in states)
        return False

    def __str__(self) -> str:
        return self.text


def _closure(states: set[int], pats: tuple[re.Pattern[str] | None, ...]) -> set[int]:
    """States plus those reached by letting a non-final ``**`` match zero segments."""
    out = set(states)
    pending = list(states)
    while pending:
        i = pending.pop()
        if i < len(pats) and pats[i] is None and i + 1 not in out:
            out.add(i + 1)
            pending.append(i + 1)
    return out


@dataclass(frozen=True)
class ImagePattern:
    """What an exception names: ``REGISTRY/REPO@sha256:…`` (one image) or a ``REGISTRY/REPO`` glob."""

    text: str
    repository: Glob
    digest: str | None = None

    def matches(self, repository: str | None, digests: tuple[str, ...]) -> bool:
        if repository is None or not self.repository.matches(repository):
            return False
        return self.digest is None or self.digest in digests


@dataclass(frozen=True)
class Signer:
    """An identity whose signatures count: issuer, plus an exact subject or an anchored regexp, plus claims."""

    issuer: str
    subject: str | None
    subject_regexp: re.Pattern[str] | None
    claims: Mapping[str, str] = field(default_factory=dict, hash=False)
    line: int = 0


#: The OIDC issuer of GitHub Actions, which the typed ``github:`` signer form implies.
GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"


def github_signer(repository: str, workflow: str, ref: str, line: int = 0) -> Signer:
    """The policy's typed ``github: {repository, workflow, ref}`` signer as the claims it stands for.

    The workflow's URL is the certificate's SAN and its build signer URI; the
    repository and ref must also be the source the certificate names. Every
    claim must be present in the certificate, so a certificate from another
    issuer or without CI extensions never matches.
    """
    repo_url = f"https://github.com/{repository}"
    workflow_url = f"{repo_url}/{workflow}@{ref}"
    claims = {"buildSignerURI": workflow_url, "sourceRepositoryURI": repo_url, "sourceRepositoryRef": ref}
    return Signer(GITHUB_ACTIONS_ISSUER, workflow_url, None, claims, line)


@dataclass(frozen=True)
class ProvenanceRule:
    required: bool
    builder_ids: tuple[str, ...] = ()
    source_repositories: tuple[str, ...] = ()
    max_age: timedelta | None = None


@dataclass(frozen=True)
class SbomRule:
    required: bool
    max_age: timedelta | None = None


@dataclass(frozen=True)
class VulnerabilityRule:
    required: bool
    max_age: timedelta | None = None
    deny: frozenset[str] = frozenset()
    deny_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class QuarantineEntry:
    digest: str
    reason: str
    #: ``file:line`` where the entry was written, so a denial says where to lift it.
    source: str


@dataclass(frozen=True)
class PolicyException:
    """A time-boxed waiver of one clause for the images ``image`` names."""

    id: str
    clause: str
    image: ImagePattern
    ids: frozenset[str]
    owner: str
    justification: str
    issue: str
    expires: date
    line: int = 0

    @property
    def expires_at(self) -> datetime:
        """The first instant it no longer applies: midnight UTC after the ``expires`` day."""
        return datetime.combine(self.expires + timedelta(days=1), time(0, 0), UTC)

    def active(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass(frozen=True)
class ProjectOverride:
    mode: Mode


@dataclass(frozen=True)
class Policy:
    """A loaded policy file: where it came from, its digest, and every rule in it."""

    path: Path
    #: ``sha256:`` of the policy file's bytes: what the decision record says was applied.
    digest: str
    mode: Mode
    signers: tuple[Signer, ...]
    registries: tuple[Glob, ...] | None = None
    require_digest: bool = False
    provenance: ProvenanceRule | None = None
    sbom: SbomRule | None = None
    vulnerabilities: VulnerabilityRule | None = None
    quarantine: tuple[QuarantineEntry, ...] = ()
    exceptions: tuple[PolicyException, ...] = ()
    projects: Mapping[str, ProjectOverride] = field(default_factory=dict, hash=False)
    #: (path, sha256 digest) of every other file the policy read (quarantine lists).
    files: tuple[tuple[str, str], ...] = ()

    def mode_for(self, project: str | None) -> Mode:
        """The mode for ``project``: its override when the policy has one, else the policy's."""
        if project is not None and project in self.projects:
            return self.projects[project].mode
        return self.mode
