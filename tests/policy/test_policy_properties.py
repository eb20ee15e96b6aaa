"""Hostile policy files: whatever the bytes, loading gives a policy or one PolicyError, never a traceback."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from chaingate.errors import EXIT_USAGE
from chaingate.policy import PolicyError, load_policy
from support.strategies import deep_yaml, mutated, outcome, yaml_values

TODAY = date(2026, 3, 1)
DIGEST = "sha256:" + "a" * 64

BASE: dict[str, Any] = {
    "version": 1,
    "mode": "warn",
    "registries": ["us.icr.io/team/*"],
    "requireDigest": True,
    "signers": [
        {"issuer": "https://token.actions.githubusercontent.com", "subject": "https://github.com/org/app"},
        {
            "issuer": "https://i",
            "subjectRegExp": "^https://github\\.com/org/.*$",
            "githubWorkflowRepository": "o/a",
        },
    ],
    "provenance": {"required": True, "builderIds": ["https://b"], "maxAge": "30d"},
    "sbom": {"required": False, "maxAge": "7d"},
    "vulnerabilities": {"maxAge": "12h", "deny": ["critical"], "denyIds": ["CVE-2024-3094"]},
    "quarantine": [{"digest": DIGEST, "reason": "INC-7"}],
    "exceptions": [
        {
            "id": "EXC-1",
            "clause": "vulnerabilities",
            "image": f"us.icr.io/team/legacy@{DIGEST}",
            "ids": ["CVE-1"],
            "owner": "a@example.com",
            "justification": "j",
            "issue": "https://x/1",
            "expires": "2026-12-31",
        }
    ],
    "projects": {"4a1b": {"mode": "enforce"}, "1234": {"mode": "warn"}},
}


def _load(text: str | bytes) -> None:
    """Load ``text`` as a policy; only a PolicyError (exit 2, one line) may come out."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        _, error = outcome(lambda: load_policy(path, today=TODAY), PolicyError)
        if isinstance(error, PolicyError):
            assert error.exit_code == EXIT_USAGE
            assert "\n" not in error.message and error.message.startswith(str(path))


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def test_the_base_policy_loads() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.yaml"
        path.write_text(_dump(BASE))
        assert load_policy(path, today=TODAY).mode_for("1234") == "warn"


@given(st.text(alphabet=st.sampled_from(list("{}[]:,-?*&!|>'\"# \n\tab01.x")), max_size=200))
def test_yaml_punctuation_soup(text: str) -> None:
    _load(text)


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_any_text_or_bytes(text: str | bytes) -> None:
    _load(text)


@given(yaml_values)
def test_any_yaml_structure(doc: Any) -> None:
    _load(_dump(doc))


@given(mutated(BASE, yaml_values))
def test_a_valid_policy_with_parts_replaced(doc: Any) -> None:
    _load(_dump(doc))


@given(deep_yaml())
def test_deep_nesting_anywhere(nested: str) -> None:
    _load(nested)
    _load("version: 1\nsigners: " + nested)


# -- the attacks that gave tracebacks, each pinned -------------------------------------------------------

HEADER = "version: 1\nsigners: [{issuer: https://i, subject: me}]\n"


def _error(tmp_path: Path, text: str) -> PolicyError:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path, today=TODAY)
    return caught.value


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nsigners: " + "[" * 100_000,
        "version: 1\nsigners: " + "[" * 100_000 + "]" * 100_000,
        HEADER + "provenance: " + "{a: " * 30_000 + "1" + "}" * 30_000,
    ],
    ids=["unclosed-lists", "closed-lists", "flow-maps"],
)
def test_nesting_100000_deep_is_a_located_error(tmp_path: Path, text: str) -> None:
    error = _error(tmp_path, text)
    assert error.problem == "nested deeper than 64 levels" and error.line is not None


@pytest.mark.parametrize(
    ("key", "number"), [("0755", 493), ("0x1f", 31), ("1_000", 1000), ("+12", 12), ("1:20", 80)]
)
def test_a_project_id_yaml_reads_as_another_number_is_refused(tmp_path: Path, key: str, number: int) -> None:
    error = _error(tmp_path, HEADER + f"projects: {{{key}: {{mode: warn}}}}\n")
    assert error.line == 3 and error.key == "projects"
    assert error.problem == f"project id {key} reads as the number {number} in YAML"
    assert error.hint == f"quote it: '{key}'"


def test_a_quoted_octal_looking_project_id_is_kept_as_written(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(HEADER + "projects: {'0755': {mode: warn}, 1234: {mode: warn}}\n")
    policy = load_policy(path, today=TODAY)
    assert set(policy.projects) == {"0755", "1234"}


@pytest.mark.parametrize(
    "field",
    ["version: 0x" + "f" * 5000, "version: 0b" + "1" * 20000, "requireDigest: 0x" + "f" * 4000],
    ids=["hex-version", "binary-version", "hex-bool"],
)
def test_an_integer_too_large_to_print_is_refused(tmp_path: Path, field: str) -> None:
    key = field.split(":", 1)[0]
    version = "" if key == "version" else "version: 1\n"
    error = _error(tmp_path, f"{version}{field}\nsigners: [{{issuer: https://i, subject: me}}]\n")
    assert error.key == key and error.problem.endswith("is too large")


def test_a_quarantined_digest_with_a_trailing_newline_is_not_a_digest(tmp_path: Path) -> None:
    # `$` matched before the newline: the entry loaded and then never matched the image it names.
    error = _error(tmp_path, HEADER + f'quarantine: [{{digest: "{DIGEST}\\n", reason: INC}}]\n')
    assert error.key == "quarantine[0].digest" and "is not a digest" in error.problem
