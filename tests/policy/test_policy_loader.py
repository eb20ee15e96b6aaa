"""Loading the policy file: what a valid one means, and that every mistake is located as file:line: key."""

from __future__ import annotations

import textwrap
from datetime import date, timedelta
from pathlib import Path

import pytest

from chaingate.errors import EXIT_USAGE
from chaingate.policy import PolicyError, load_policy
from chaingate.policy.model import Glob, parse_duration

TODAY = date(2026, 3, 1)
DIGEST = "sha256:" + "a" * 64

FULL = f"""\
version: 1
mode: warn
registries: ["us.icr.io/team/*", "us.icr.io/platform/**"]
requireDigest: true
signers:
  - issuer: https://token.actions.githubusercontent.com
    subject: https://github.com/org/app/.github/workflows/release.yml@refs/heads/main
  - issuer: https://token.actions.githubusercontent.com
    subjectRegExp: ^https://github\\.com/org/app/\\.github/workflows/release\\.yml@refs/tags/v.*$
    githubWorkflowRepository: org/app
provenance: {{required: true, builderIds: [https://github.com/actions/runner], sourceRepositories: [https://github.com/org/app], maxAge: 30d}}
sbom: {{required: false, maxAge: 7d}}
vulnerabilities: {{maxAge: 12h, deny: [critical, HIGH], denyIds: [CVE-2024-3094]}}
quarantine:
  - {{digest: "{DIGEST}", reason: INC-7}}
  - file: quarantine.txt
exceptions:
  - {{id: EXC-12, clause: vulnerabilities, image: "us.icr.io/team/legacy@{DIGEST}", ids: [CVE-2024-1234],
     owner: alice@example.com, justification: vendor fix pending, issue: "https://github.com/org/app/issues/12",
     expires: 2026-12-31}}
  - {{id: EXC-13, clause: quarantine, image: "us.icr.io/team/*", owner: bob@example.com,
     justification: rollback, issue: "https://github.com/org/app/issues/13", expires: "2026-04-01"}}
projects: {{"4a1b-project": {{mode: enforce}}, 1234: {{mode: warn}}}}
"""


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_complete_policy_loads_into_its_model(tmp_path: Path) -> None:
    write(tmp_path, f"# quarantined\nsha256:{'b' * 64} stolen key\n\n", "quarantine.txt")
    policy = load_policy(write(tmp_path, FULL), today=TODAY)
    assert policy.mode == "warn" and policy.require_digest
    assert policy.digest.startswith("sha256:") and len(policy.digest) == 71
    assert [str(g) for g in policy.registries or ()] == ["us.icr.io/team/*", "us.icr.io/platform/**"]
    assert policy.signers[0].subject and policy.signers[1].subject_regexp is not None
    assert policy.signers[1].claims == {"githubWorkflowRepository": "org/app"}
    assert policy.provenance is not None and policy.provenance.max_age == timedelta(days=30)
    assert policy.sbom is not None and not policy.sbom.required
    assert policy.vulnerabilities is not None and policy.vulnerabilities.required
    assert policy.vulnerabilities.deny == {
        "critical",
        "high",
    } and policy.vulnerabilities.max_age == timedelta(hours=12)
    assert [(q.digest, q.reason) for q in policy.quarantine] == [
        (DIGEST, "INC-7"),
        ("sha256:" + "b" * 64, "stolen key"),
    ]
    assert policy.quarantine[1].source.endswith("quarantine.txt:2")
    assert policy.files[0][0].endswith("quarantine.txt")
    assert [e.id for e in policy.exceptions] == ["EXC-12", "EXC-13"]
    assert policy.exceptions[0].ids == {"CVE-2024-1234"} and policy.exceptions[1].expires == date(2026, 4, 1)
    assert policy.mode_for("4a1b-project") == "enforce" and policy.mode_for("1234") == "warn"
    assert policy.mode_for(None) == "warn" and policy.mode_for("other") == "warn"


def test_minimal_policy_defaults(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "version: 1\nsigners: [{issuer: https://i, subject: me}]\n"))
    assert policy.mode == "enforce" and not policy.require_digest and policy.registries is None
    assert policy.provenance is None and policy.exceptions == () and dict(policy.projects) == {}


MALFORMED = [
    (
        "unknown-top-key",
        "version: 1\nrequireDigests: true\nsigners: []\n",
        2,
        "requireDigests: unknown key (did you mean 'requireDigest'?)",
    ),
    (
        "unknown-nested-key",
        "version: 1\nsigners: [{issuer: a, subject: b}]\nprovenance:\n  builderId: [x]\n",
        4,
        "provenance.builderId: unknown key",
    ),
    (
        "wrong-type-bool",
        "version: 1\nrequireDigest: yes please\nsigners: [{issuer: a, subject: b}]\n",
        2,
        "requireDigest: expected true or false, not 'yes please'",
    ),
    (
        "wrong-type-list",
        "version: 1\nregistries: us.icr.io/*\nsigners: [{issuer: a, subject: b}]\n",
        2,
        "registries: expected a list",
    ),
    (
        "unanchored-start",
        "version: 1\nsigners:\n  - issuer: a\n    subjectRegExp: https://github\\.com/org/app/.*$\n",
        4,
        "signers[0].subjectRegExp: regular expression 'https://github\\\\.com/org/app/.*$' is not anchored",
    ),
    (
        "unanchored-end",
        "version: 1\nsigners:\n  - issuer: a\n    subjectRegExp: ^https://github\\.com/org/app/.*\n",
        4,
        "is not anchored",
    ),
    (
        "escaped-dollar",
        "version: 1\nsigners:\n  - issuer: a\n    subjectRegExp: '^https://x\\$'\n",
        4,
        "is not anchored",
    ),
    (
        "regexp-does-not-compile",
        "version: 1\nsigners:\n  - issuer: a\n    subjectRegExp: ^(org$\n",
        4,
        "does not compile",
    ),
    (
        "subject-and-regexp",
        "version: 1\nsigners:\n  - issuer: a\n    subject: b\n    subjectRegExp: ^b$\n",
        3,
        "signers[0]: give exactly one of subject and subjectRegExp",
    ),
    ("no-signers", "version: 1\nsigners: []\n", 2, "signers: at least one signer is required"),
    ("missing-signers", "version: 1\nmode: warn\n", 1, "signers: required key is missing"),
    (
        "unknown-claim",
        "version: 1\nsigners:\n  - issuer: a\n    subject: b\n    githubRepo: org/app\n",
        5,
        "signers[0].githubRepo: unknown key",
    ),
    (
        "bad-version",
        "version: 2\nsigners: [{issuer: a, subject: b}]\n",
        1,
        "version: unsupported policy version 2",
    ),
    (
        "bad-mode",
        "version: 1\nmode: enforced\nsigners: [{issuer: a, subject: b}]\n",
        2,
        "mode: 'enforced' is not a mode",
    ),
    (
        "bad-duration-words",
        "version: 1\nsigners: [{issuer: a, subject: b}]\nsbom: {maxAge: 30 days}\n",
        3,
        "sbom.maxAge: '30 days' is not a duration",
    ),
    (
        "bad-duration-zero",
        "version: 1\nsigners: [{issuer: a, subject: b}]\nsbom:\n  maxAge: 0d\n",
        4,
        "sbom.maxAge: '0d' is not a duration",
    ),
    (
        "bad-duration-seconds",
        "version: 1\nsigners: [{issuer: a, subject: b}]\nvulnerabilities: {maxAge: 5s}\n",
        3,
        "vulnerabilities.maxAge: '5s' is not a duration",
    ),
    (
        "bad-duration-number",
        "version: 1\nsigners: [{issuer: a, subject: b}]\nprovenance: {maxAge: 30}\n",
        3,
        "provenance.maxAge: the number 30 is not a duration",
    ),
    (
        "bad-glob-globstar",
        "version: 1\nregistries:\n  - us.icr.io/team/a**\nsigners: [{issuer: a, subject: b}]\n",
        3,
        "registries[0]: glob 'us.icr.io/team/a**': '**' must be a whole path segment",
    ),
    (
        "bad-glob-empty-segment",
        "version: 1\nregistries: [us.icr.io//app]\nsigners: [{issuer: a, subject: b}]\n",
        2,
        "has an empty path segment",
    ),
    (
        "bad-glob-chars",
        "version: 1\nregistries: ['us.icr.io/team/?pp']\nsigners: [{issuer: a, subject: b}]\n",
        2,
        "segment '?pp' may hold only",
    ),
    (
        "bad-severity",
        "version: 1\nsigners: [{issuer: a, subject: b}]\nvulnerabilities:\n  deny: [severe]\n",
        4,
        "vulnerabilities.deny[0]: 'severe' is not a severity",
    ),
    (
        "bad-quarantine-digest",
        "version: 1\nsigners: [{issuer: a, subject: b}]\nquarantine:\n  - {digest: 'sha256:ABC', reason: x}\n",
        4,
        "quarantine[0].digest: 'sha256:ABC' is not a digest",
    ),
    (
        "quarantine-without-reason",
        f"version: 1\nsigners: [{{issuer: a, subject: b}}]\nquarantine:\n  - digest: '{DIGEST}'\n",
        4,
        "quarantine[0].reason: required key is missing",
    ),
    (
        "duplicate-key",
        "version: 1\nsigners: [{issuer: a, subject: b}]\nversion: 1\n",
        3,
        "version: duplicate key",
    ),
    ("yaml-syntax", "version: 1\nsigners: [{issuer: a, subject: b}\nmode: warn\n", 3, "not valid YAML"),
    ("yaml-alias", "version: 1\nx: &a [1]\nsigners: *a\n", 3, "YAML aliases (*name) are not allowed"),
    (
        "python-tag",
        "version: 1\nsigners: [{issuer: !!python/name:os.system a, subject: b}]\n",
        2,
        "signers[0].issuer: unsupported YAML tag",
    ),
    (
        "regexp-too-deep",
        "version: 1\nsigners: [{issuer: a, subjectRegExp: '^" + "(" * 5000 + ")" * 5000 + "$'}]\n",
        2,
        "signers[0].subjectRegExp: regular expression is too complex to compile",
    ),
    (
        "regexp-huge-repeat",
        "version: 1\nsigners: [{issuer: a, subjectRegExp: '^a{1,99999999999}$'}]\n",
        2,
        "signers[0].subjectRegExp: regular expression is too complex to compile (OverflowError)",
    ),
    (
        "github-with-issuer",
        "version: 1\nsigners:\n  - github: {repository: o/r, workflow: .github/workflows/a.yml, ref: refs/heads/main}\n"
        "    issuer: https://evil.example\n",
        4,
        "signers[0].issuer: unknown key",
    ),
    (
        "github-missing-ref",
        "version: 1\nsigners: [{github: {repository: o/r, workflow: .github/workflows/a.yml}}]\n",
        2,
        "signers[0].github.ref: required key is missing",
    ),
    (
        "github-bad-repository",
        "version: 1\nsigners: [{github: {repository: https://github.com/o/r, workflow: .github/workflows/a.yml, "
        "ref: refs/heads/main}}]\n",
        2,
        "signers[0].github.repository: 'https://github.com/o/r' is not OWNER/REPO",
    ),
    (
        "github-bad-workflow",
        "version: 1\nsigners: [{github: {repository: o/r, workflow: release.yml, ref: refs/heads/main}}]\n",
        2,
        "signers[0].github.workflow: 'release.yml' is not a workflow file path",
    ),
    (
        "github-short-ref",
        "version: 1\nsigners: [{github: {repository: o/r, workflow: .github/workflows/a.yml, ref: main}}]\n",
        2,
        "signers[0].github.ref: 'main' is not a full git ref",
    ),
]


def test_the_typed_github_signer_expands_to_certificate_claims(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nsigners:\n  - github: {repository: org/app, workflow: .github/workflows/release.yml, "
        "ref: refs/tags/v1.2.0}\n",
    )
    (signer,) = load_policy(path, today=TODAY).signers
    workflow = "https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1.2.0"
    assert signer.issuer == "https://token.actions.githubusercontent.com"
    assert signer.subject == workflow and signer.subject_regexp is None
    assert dict(signer.claims) == {
        "buildSignerURI": workflow,
        "sourceRepositoryURI": "https://github.com/org/app",
        "sourceRepositoryRef": "refs/tags/v1.2.0",
    }
    assert signer.line == 3


@pytest.mark.parametrize(
    ("text", "line", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_policies_name_file_line_and_key(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as raised:
        load_policy(path, today=TODAY)
    error = raised.value
    assert error.exit_code == EXIT_USAGE
    assert str(error).startswith(f"{path}:{line}: "), str(error)
    assert message in str(error), str(error)
    assert "\n" not in str(error)


def _exception(**overrides: str) -> str:
    fields = {
        "id": "EXC-1",
        "clause": "vulnerabilities",
        "image": f"us.icr.io/team/app@{DIGEST}",
        "owner": "alice@example.com",
        "justification": "vendor fix pending",
        "issue": "https://github.com/org/app/issues/1",
        "expires": "2026-12-31",
    }
    fields.update(overrides)
    body = "".join(f"    {k}: {v}\n" for k, v in fields.items() if v != "-")
    return "version: 1\nsigners: [{issuer: a, subject: b}]\nexceptions:\n  - " + body.lstrip()


@pytest.mark.parametrize("missing", ["owner", "justification", "issue", "expires", "id", "clause", "image"])
def test_exception_without_a_required_field_is_refused(tmp_path: Path, missing: str) -> None:
    path = write(tmp_path, _exception(**{missing: "-"}))
    with pytest.raises(
        PolicyError, match=rf"^{path}:4: exceptions\[0\]\.{missing}: required key is missing$"
    ):
        load_policy(path, today=TODAY)


@pytest.mark.parametrize(
    ("overrides", "line", "message"),
    [
        (
            {"expires": "2027-03-02"},
            10,
            "exceptions[0].expires: 2027-03-02 is more than a year away (latest allowed: 2027-03-01)",
        ),
        ({"expires": "someday"}, 10, "exceptions[0].expires: 'someday' is not a date"),
        ({"expires": "2026-12-31T10:00:00Z"}, 10, "expected a date (YYYY-MM-DD), not a time"),
        ({"clause": "signers"}, 5, "exceptions[0].clause: 'signers' cannot be waived"),
        ({"clause": "provenanc"}, 5, "'provenanc' cannot be waived"),
        (
            {"clause": "sbom", "ids": "[CVE-1]"},
            11,
            "exceptions[0].ids: ids only narrow a vulnerabilities exception",
        ),
        ({"image": "us.icr.io/team/app:1.0"}, 6, "names a tag; tags move"),
        (
            {"image": "us.icr.io/team/app@sha256:1234"},
            6,
            "exceptions[0].image: 'sha256:1234' is not a digest",
        ),
        ({"image": "'us.icr.io/team/a**'"}, 6, "'**' must be a whole path segment"),
        ({"owner": "''"}, 7, "exceptions[0].owner: must not be empty"),
        ({"image": "us.icr.io/Team/app"}, 6, "invalid repository path component 'Team'"),
    ],
)
def test_bad_exceptions_are_located(
    tmp_path: Path, overrides: dict[str, str], line: int, message: str
) -> None:
    path = write(tmp_path, _exception(**overrides))
    with pytest.raises(PolicyError) as raised:
        load_policy(path, today=TODAY)
    assert str(raised.value).startswith(f"{path}:{line}: ") and message in str(raised.value), str(
        raised.value
    )


def test_exception_expiring_exactly_a_year_ahead_is_accepted_and_leap_days_clamp(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path, _exception(expires="2027-03-01")), today=TODAY).exceptions[
        0
    ].expires == date(2027, 3, 1)
    with pytest.raises(PolicyError, match="latest allowed: 2029-02-28"):
        load_policy(write(tmp_path, _exception(expires="2029-03-01")), today=date(2028, 2, 29))


def test_duplicate_exception_ids_are_refused(tmp_path: Path) -> None:
    text = _exception() + "  - " + _exception().split("  - ", 1)[1]
    with pytest.raises(PolicyError, match=r":11: exceptions\[1\]\.id: exception id 'EXC-1' is used twice"):
        load_policy(write(tmp_path, text), today=TODAY)


def test_quarantine_file_errors_name_that_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, f"{DIGEST}\n# fine\nsha256:nothex\n", "q.txt")
    policy = write(tmp_path, "version: 1\nsigners: [{issuer: a, subject: b}]\nquarantine: [{file: q.txt}]\n")
    with pytest.raises(
        PolicyError, match=rf"^{tmp_path / 'q.txt'}:3: quarantine\[0\]\.file: 'sha256:nothex' is not a digest"
    ):
        load_policy(policy)
    missing = write(
        tmp_path, "version: 1\nsigners: [{issuer: a, subject: b}]\nquarantine:\n  - file: nope.txt\n"
    )
    with pytest.raises(PolicyError, match=r":4: quarantine\[0\]\.file: cannot read the quarantine list file"):
        load_policy(missing)


def test_unreadable_empty_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "absent.yaml")
    with pytest.raises(PolicyError, match=":1: the policy file is empty"):
        load_policy(write(tmp_path, "# nothing\n"))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"version: 1\n\xff\xfe\n")
    with pytest.raises(PolicyError, match=":2: not UTF-8 text"):
        load_policy(binary)


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("us.icr.io/team/*", "us.icr.io/team/app", True),
        ("us.icr.io/team/*", "us.icr.io/team/app/sub", False),
        ("us.icr.io/team/*", "us.icr.io/team", False),
        ("us.icr.io/team/**", "us.icr.io/team/app/sub", True),
        ("us.icr.io/team/**", "us.icr.io/team", False),
        ("us.icr.io/**/app", "us.icr.io/app", True),
        ("us.icr.io/**/app", "us.icr.io/a/b/app", True),
        ("us.icr.io/**/app", "us.icr.io/a/b/app-evil", False),
        ("*.icr.io/team/app", "us.icr.io/team/app", True),
        ("*.icr.io/team/app", "evil.com/x.icr.io/team/app", False),
        ("us.icr.io/team/app*", "us.icr.io/team/app-evil", True),
        ("us.icr.io/team/app", "us.icr.io/team/app-evil", False),
        ("localhost:5000/**", "localhost:5000/a/b", True),
        ("**", "docker.io/library/alpine", True),
    ],
)
def test_glob_semantics(pattern: str, name: str, matches: bool) -> None:
    assert Glob(pattern).matches(name) is matches


def test_durations() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("1w") == timedelta(weeks=1)
    assert [parse_duration(t) for t in ("", "1", "d", "1.5d", "-1d", "01d", "1 d", "1D", "1y")] == [None] * 9


def test_exact_exception_names_are_normalised_like_docker(tmp_path: Path) -> None:
    exception = load_policy(write(tmp_path, _exception(image=f"alpine@{DIGEST}")), today=TODAY).exceptions[0]
    assert exception.image.matches("docker.io/library/alpine", (DIGEST,))
    assert not exception.image.matches("docker.io/library/alpine", ("sha256:" + "b" * 64,))
    assert not exception.image.matches("docker.io/evil/alpine", (DIGEST,))
