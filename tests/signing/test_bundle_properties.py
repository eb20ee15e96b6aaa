"""Hostile Sigstore bundles: loaded, or refused with one BundleReadError; never a traceback.

The mutations start from a real bundle the local Sigstore stack signs, so they
get past sigstore-python's model to the code behind it (the DSSE payload, the
tlog entry, the proto3 defaults chaingate restores).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sigstore import dsse
from sigstore.oidc import IdentityToken

from chaingate.errors import ChaingateError
from chaingate.signing.bundle import BundleReadError, load_bundle, summarize
from chaingate_testing.sigstore import SigstoreStack
from support.strategies import deep_json, json_text, json_values, mutated, mutated_bytes, outcome

STATEMENT = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": "app", "digest": {"sha256": "a" * 64}}],
    "predicateType": "https://example.com/p/v1",
    "predicate": {"k": [1, 2, {"x": None}]},
}
# The netguard fixture of tests/signing is function-scoped; it holds for every example alike.
examples = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def real_bundle(sigstore_stack: SigstoreStack) -> dict[str, Any]:
    token = sigstore_stack.mint_token("repo:org/app:ref:refs/heads/main")
    with sigstore_stack.signing_context().signer(IdentityToken(token)) as signer:
        bundle = signer.sign_dsse(dsse.Statement(json.dumps(STATEMENT).encode()))
    doc: dict[str, Any] = json.loads(bundle.to_json())
    return doc


def _read(raw: bytes) -> None:
    """Both readers: only a BundleReadError (a ChaingateError, one line) may come out."""
    for reader in (load_bundle, summarize):
        _, error = outcome(lambda reader=reader: reader(raw), BundleReadError)
        assert error is None or (isinstance(error, ChaingateError) and "\n" not in str(error))


def _with_payload(doc: dict[str, Any], payload: bytes) -> bytes:
    changed = json.loads(json.dumps(doc))
    changed["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    return json_text(changed)


def test_the_real_bundle_summarizes(real_bundle: dict[str, Any]) -> None:
    summary = summarize(json_text(real_bundle))
    assert summary.predicate_type == STATEMENT["predicateType"] and summary.tlog is not None


@given(
    json_values
    | st.dictionaries(st.sampled_from(["mediaType", "verificationMaterial", "dsseEnvelope"]), json_values)
)
def test_any_json_as_a_bundle(value: Any) -> None:
    _read(json_text(value))


@given(st.binary(max_size=200) | deep_json())
def test_any_bytes_or_deep_nesting_as_a_bundle(raw: bytes) -> None:
    _read(raw)


@examples
@given(data=st.data())
def test_a_real_bundle_with_parts_replaced(real_bundle: dict[str, Any], data: st.DataObject) -> None:
    _read(json_text(data.draw(mutated(real_bundle))))


@examples
@given(data=st.data())
def test_a_real_bundle_with_bytes_mutated(real_bundle: dict[str, Any], data: st.DataObject) -> None:
    _read(data.draw(mutated_bytes(json_text(real_bundle))))


@examples
@given(data=st.data())
def test_a_real_bundle_with_any_signed_payload(real_bundle: dict[str, Any], data: st.DataObject) -> None:
    payload = data.draw(
        json_values.map(json_text) | deep_json() | mutated(STATEMENT).map(json_text) | st.binary(max_size=50)
    )
    _read(_with_payload(real_bundle, payload))


# -- the attacks that gave tracebacks, each pinned ---------------------------------------------------------


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"mediaType":' * 100_000])
def test_a_bundle_nested_100000_deep_is_a_bundle_read_error(raw: bytes) -> None:
    with pytest.raises(BundleReadError, match=r"^not JSON: nested deeper than 128 levels$"):
        load_bundle(raw)
    with pytest.raises(BundleReadError, match=r"not a loadable Sigstore bundle \(not JSON: nested deeper"):
        summarize(raw)


def test_a_signed_payload_nested_100000_deep_is_a_bundle_read_error(real_bundle: dict[str, Any]) -> None:
    with pytest.raises(BundleReadError, match="DSSE payload is not base64 JSON"):
        summarize(_with_payload(real_bundle, b"[" * 100_000))


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"1e400"])
def test_non_finite_numbers_in_a_bundle_are_refused(real_bundle: dict[str, Any], constant: bytes) -> None:
    raw = json_text(real_bundle).replace(b'"mediaType": "', b'"x": ' + constant + b', "mediaType": "', 1)
    with pytest.raises(BundleReadError, match="not JSON"):
        load_bundle(raw)


def test_a_bundle_read_error_is_a_usage_error() -> None:
    # summarize() runs in `attest`/`inspect`; a plain ValueError there was a traceback with exit 1.
    assert issubclass(BundleReadError, ChaingateError) and BundleReadError("x").exit_code == 2


def test_a_certificate_with_a_malformed_extension_is_a_bundle_read_error(real_bundle: dict[str, Any]) -> None:
    # Found by test_a_real_bundle_with_bytes_mutated: cryptography parses extensions lazily, so a
    # SAN URI that is not IA5 text loaded fine and raised ValueError only in certificate_identity.
    doc = json.loads(json.dumps(real_bundle))
    der = base64.b64decode(doc["verificationMaterial"]["certificate"]["rawBytes"])
    assert der.count(b"repo:org/app") == 1
    doc["verificationMaterial"]["certificate"]["rawBytes"] = base64.b64encode(
        der.replace(b"repo:org/app", b"repo:org/\xe1pp")
    ).decode()
    with pytest.raises(BundleReadError, match=r"^signing certificate: error parsing asn1 value"):
        summarize(json_text(doc))


@pytest.mark.parametrize("subject", [True, 5, 1.5])
def test_a_signed_statement_whose_subject_is_not_a_list_summarizes(
    real_bundle: dict[str, Any], subject: Any
) -> None:
    # Found by the fuzz run of test_a_real_bundle_with_any_signed_payload: `for entry in True` was a TypeError.
    summary = summarize(_with_payload(real_bundle, json_text({**STATEMENT, "subject": subject})))
    assert summary.subject_digests == () and summary.predicate_type == STATEMENT["predicateType"]
