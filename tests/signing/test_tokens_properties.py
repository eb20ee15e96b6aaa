"""Hostile identity tokens and predicate files: one usage error naming the claim or file, never a traceback."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaingate.errors import EXIT_USAGE
from chaingate.predicate_types import CYCLONEDX_BOM
from chaingate.provenance.statement import StatementError
from chaingate.signing.interface import IdentityTokenError
from chaingate.signing.predicates import load_predicate
from chaingate.signing.tokens import check_token
from support.strategies import NASTY_NUMBERS, deep_json, json_values, mutated, outcome

NOW = 1_800_000_000.0
CLAIMS: dict[str, Any] = {
    "iss": "https://issuer",
    "sub": "me",
    "aud": "sigstore",
    "iat": NOW - 10,
    "exp": NOW + 600,
}


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims: bytes) -> str:
    return ".".join((_segment(b'{"alg":"RS256"}'), _segment(claims), "c2ln"))


def _check(raw: str) -> None:
    checked, error = outcome(lambda: check_token(raw, "--identity-token", now=NOW), IdentityTokenError)
    if isinstance(error, IdentityTokenError):
        assert error.exit_code == EXIT_USAGE and "\n" not in error.message
    else:
        assert checked is not None and checked.expires_at.year >= 1970  # what the CLI shows of a token


def test_the_base_token_passes() -> None:
    assert check_token(token(json.dumps(CLAIMS).encode()), "t", now=NOW).subject == "me"


@given(mutated(CLAIMS))
def test_claims_with_parts_replaced(claims: Any) -> None:
    _check(token(json.dumps(claims).encode()))


@given(json_values.map(lambda v: json.dumps(v).encode()) | deep_json() | st.binary(max_size=100))
def test_any_claims_segment(claims: bytes) -> None:
    _check(token(claims))


@given(st.text(max_size=200))
def test_any_token_text(raw: str) -> None:
    _check(raw)


# -- the attacks that gave tracebacks, each pinned ---------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize(
    "value",
    [
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"1e300",
        b"-1e300",
        b"1e400",
        b"1" + b"0" * 400,
        b"-1",
        b"253402300800",
    ],
)
def test_a_lifetime_claim_that_is_no_time_names_the_claim(claim: str, value: bytes) -> None:
    claims = json.dumps({k: v for k, v in CLAIMS.items() if k != claim})[:-1].encode()
    with pytest.raises(IdentityTokenError, match=rf"claim '{claim}' is not a time") as caught:
        check_token(
            token(claims + b', "' + claim.encode() + b'": ' + value + b"}"), "--identity-token", now=NOW
        )
    assert caught.value.exit_code == EXIT_USAGE


def test_claims_nested_100000_deep_are_malformed() -> None:
    with pytest.raises(IdentityTokenError, match="its header or claims are not base64url JSON"):
        check_token(token(b"[" * 40_000), "t", now=NOW)


def test_nasty_numbers_cover_the_claims() -> None:
    for number in NASTY_NUMBERS:
        _check(token(json.dumps({**CLAIMS, "exp": number}).encode()))


# -- predicate files --------------------------------------------------------------------------------------


def _predicate(tmp_path: Path, raw: bytes, predicate_type: str = "https://example.com/p/v1") -> None:
    path = tmp_path / "p.json"
    path.write_bytes(raw)
    _, error = outcome(lambda: load_predicate(path, predicate_type), StatementError)
    assert error is None or (str(error).startswith(f"--predicate {path}: ") and "\n" not in str(error))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=json_values.map(lambda v: json.dumps(v).encode()) | deep_json(), cyclonedx=st.booleans())
def test_any_predicate_file(tmp_path: Path, raw: bytes, cyclonedx: bool) -> None:
    _predicate(tmp_path, raw, CYCLONEDX_BOM if cyclonedx else "https://example.com/p/v1")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"[" * 100_000, "nested deeper than 128 levels"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": 1e400}', "the number 1e400 is out of range"),
    ],
)
def test_a_predicate_file_json_cannot_sign_is_refused(tmp_path: Path, raw: bytes, problem: str) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(raw)
    with pytest.raises(StatementError, match=rf"^--predicate {path}: not valid JSON \({problem}\)$"):
        load_predicate(path, "https://example.com/p/v1")
