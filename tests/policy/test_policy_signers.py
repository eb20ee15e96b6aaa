"""The signers-only policy that ``verify --certificate-identity…`` builds instead of reading a file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from chaingate.policy import Policy, PolicyError, load_policy, signers_only_policy

ISSUER = "https://token.actions.githubusercontent.com"
SAN = "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main"


def _same_rules(built: Policy, loaded: Policy) -> None:
    for name in ("mode", "registries", "require_digest", "provenance", "sbom", "vulnerabilities"):
        assert getattr(built, name) == getattr(loaded, name), name
    assert (built.quarantine, built.exceptions, dict(built.projects), built.files) == ((), (), {}, ())
    ((a,), (b,)) = built.signers, loaded.signers
    assert (a.issuer, a.subject, dict(a.claims)) == (b.issuer, b.subject, dict(b.claims))
    assert (a.subject_regexp and a.subject_regexp.pattern) == (b.subject_regexp and b.subject_regexp.pattern)


def test_it_is_the_policy_the_loader_builds_from_the_same_signer(tmp_path: Path) -> None:
    regexp = r"^https://github\.com/org/app/\.github/workflows/release\.yml@refs/tags/v.*$"
    for entry, kwargs in (
        (f"{{issuer: {ISSUER}, subject: '{SAN}'}}", {"identity": SAN}),
        (f"{{issuer: {ISSUER}, subjectRegExp: '{regexp}'}}", {"identity_regexp": regexp}),
    ):
        path = tmp_path / "policy.yaml"
        path.write_text(f"version: 1\nsigners: [{entry}]\n")
        _same_rules(signers_only_policy(issuer=ISSUER, **kwargs), load_policy(path))


def test_its_path_and_digest_say_it_came_from_flags() -> None:
    policy = signers_only_policy(issuer=ISSUER, identity=SAN)
    assert str(policy.path) == "(flags)"
    canonical = json.dumps(
        {"--certificate-identity": SAN, "--certificate-oidc-issuer": ISSUER},
        sort_keys=True,
        separators=(",", ":"),
    )
    assert policy.digest == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    # Deterministic, and different for a different identity or form.
    assert signers_only_policy(issuer=ISSUER, identity=SAN).digest == policy.digest
    assert signers_only_policy(issuer=ISSUER, identity=SAN + "x").digest != policy.digest
    assert signers_only_policy(issuer=ISSUER, identity_regexp=f"^{SAN}$").digest != policy.digest


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"identity_regexp": "https://github.com/org/.*"},
            "--certificate-identity-regexp: regular expression",
        ),
        ({"identity_regexp": "^https://github.com/org/.*"}, "is not anchored"),
        ({"identity_regexp": "https://github.com/org/.*$"}, "is not anchored"),
        ({"identity_regexp": "^https://github.com/org/.*\\$"}, "is not anchored"),  # an escaped, literal $
        ({"identity_regexp": "$"}, "is not anchored"),
        ({"identity_regexp": "^(unclosed$"}, "does not compile"),
        ({"identity_regexp": "^" + "(" * 5000 + ")" * 5000 + "$"}, "--certificate-identity-regexp"),
        ({"identity": ""}, "--certificate-identity: empty identity"),
        ({}, "give exactly one of them"),
        ({"identity": SAN, "identity_regexp": "^x$"}, "give exactly one of them"),
    ],
)
def test_mistakes_name_the_flag(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        signers_only_policy(issuer=ISSUER, **kwargs)
    assert caught.value.message.startswith("(flags): ")
    assert message in caught.value.message


def test_an_empty_issuer_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"^\(flags\): --certificate-oidc-issuer: empty issuer$"):
        signers_only_policy(issuer="", identity=SAN)


def test_the_vsa_names_no_file_for_a_policy_built_from_flags() -> None:
    from datetime import UTC, datetime

    from chaingate.policy.record import Decision

    decision = Decision(
        image="r.example/app@sha256:" + "1" * 64,
        digest="sha256:" + "1" * 64,
        repository="r.example/app",
        mode="enforce",
        verdict="allow",
        clauses=(),
        ignored=(),
        warnings=(),
        policy_digest="sha256:" + "2" * 64,
        policy_path="(flags)",
        time=datetime(2026, 1, 1, tzinfo=UTC),
    )
    policy = decision.vsa_statement()["predicate"]["policy"]
    assert policy == {"digest": {"sha256": "2" * 64}}
