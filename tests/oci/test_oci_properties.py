"""Hostile references, manifests and indexes: parsed, or refused with one OCIError; never a traceback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaingate.oci import media
from chaingate.oci.digest import validate_digest
from chaingate.oci.errors import OCIError
from chaingate.oci.interface import Descriptor, Manifest, Platform
from chaingate.oci.reference import (
    LayoutReference,
    Reference,
    is_loopback,
    parse_image_reference,
    parse_reference,
)
from support.strategies import deep_json, json_text, json_values, mutated, mutated_bytes, outcome

D = "sha256:" + "a" * 64
E = "sha256:" + "b" * 64
MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": media.OCI_MANIFEST,
    "config": {"mediaType": media.OCI_CONFIG, "digest": D, "size": 2},
    "layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": E, "size": 10},
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": D,
            "size": 0,
            "annotations": {"a": "b"},
        },
    ],
    "subject": {"mediaType": media.OCI_MANIFEST, "digest": E, "size": 100},
    "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
}
INDEX: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": media.OCI_INDEX,
    "manifests": [
        {
            "mediaType": media.OCI_MANIFEST,
            "digest": D,
            "size": 500,
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
        },
        {
            "mediaType": media.OCI_MANIFEST,
            "digest": E,
            "size": 7,
            "platform": {"os": "linux", "architecture": "amd64"},
        },
    ],
}
DESCRIPTOR = Descriptor(media.OCI_MANIFEST, "sha256:" + "c" * 64, 0)


def _parse(raw: bytes, descriptor: Descriptor = DESCRIPTOR) -> None:
    """Parse and use every accessor a caller uses; only OCIError may come out."""
    _, error = outcome(lambda: _use(raw, descriptor), OCIError)
    assert error is None or "\n" not in str(error)


def _use(raw: bytes, descriptor: Descriptor) -> None:
    manifest = Manifest.parse(raw, descriptor)
    manifest.subject  # noqa: B018 — each accessor re-reads the content, and each must hold up
    manifest.annotations  # noqa: B018
    manifest.artifact_type  # noqa: B018
    for child in manifest.children():
        child.to_dict()
        if child.platform is not None:
            Platform("linux", "amd64").matches(child.platform)


def test_the_bases_parse() -> None:
    assert len(Manifest.parse(json_text(MANIFEST), DESCRIPTOR).layers) == 2
    assert Manifest.parse(json_text(INDEX), DESCRIPTOR).is_index


@given(json_values)
def test_any_json_value_as_a_manifest(value: Any) -> None:
    _parse(json_text(value))


@given(st.binary(max_size=300) | deep_json())
def test_any_bytes_or_deep_nesting_as_a_manifest(raw: bytes) -> None:
    _parse(raw)


@given(mutated(MANIFEST) | mutated(INDEX))
def test_a_manifest_or_index_with_parts_replaced(doc: Any) -> None:
    _parse(json_text(doc))


@given(mutated_bytes(json_text(MANIFEST)) | mutated_bytes(json_text(INDEX)))
def test_a_manifest_or_index_with_bytes_mutated(raw: bytes) -> None:
    _parse(raw)


@given(st.sampled_from([media.OCI_MANIFEST, media.OCI_INDEX, media.DOCKER_MANIFEST, "", "x"]), json_values)
def test_any_descriptor_object(media_type: str, value: Any) -> None:
    for doc in (value, {"mediaType": media_type, "digest": D, "size": 1, "platform": value}):
        outcome(lambda doc=doc: Descriptor.from_dict(doc, "d"), OCIError)


REFERENCE_ALPHABET = [*"abcz09AZ._-/:@[]+ \n\t\x00é", "sha256:", "a" * 64, "localhost", "oci:", "docker://"]


@given(st.lists(st.sampled_from(REFERENCE_ALPHABET), max_size=12).map("".join) | st.text(max_size=80))
def test_any_reference_text(text: str) -> None:
    ref, error = outcome(lambda: parse_image_reference(text), OCIError)
    assert error is None or "\n" not in str(error)  # the message quotes the input with repr()
    if isinstance(ref, Reference):
        # What was accepted names one repository, exactly: no white space or control character
        # survives into a URL, a glob match or a decision record.
        shown = str(ref)
        assert not any(c.isspace() or ord(c) < 32 for c in shown), shown
        assert parse_reference(shown) == ref
        ref.is_loopback  # noqa: B018
    elif isinstance(ref, LayoutReference) and ref.digest:
        validate_digest(ref.digest)


@given(st.text(max_size=40))
def test_is_loopback_takes_any_host(host: str) -> None:
    assert is_loopback(host) in (True, False)


# -- the attacks that gave tracebacks or slipped through, each pinned --------------------------------------


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 100_000, b"[" * 100_000 + b"]" * 100_000])
def test_a_manifest_nested_100000_deep_is_an_oci_error(raw: bytes) -> None:
    with pytest.raises(OCIError, match=r"not valid JSON \(nested deeper than 128 levels\)"):
        Manifest.parse(raw, DESCRIPTOR)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_in_a_manifest_are_refused(number: bytes) -> None:
    raw = json_text(MANIFEST).replace(b'"size": 10}', b'"size": ' + number + b"}")
    assert raw != json_text(MANIFEST)
    with pytest.raises(OCIError, match="not valid JSON"):
        Manifest.parse(raw, DESCRIPTOR)


def test_a_digest_with_a_trailing_newline_is_malformed() -> None:
    doc = json.loads(json_text(MANIFEST))
    doc["layers"][0]["digest"] = E + "\n"
    with pytest.raises(OCIError, match=r"layers\[0\]: malformed digest"):
        Manifest.parse(json_text(doc), DESCRIPTOR)
    with pytest.raises(OCIError, match="malformed digest"):
        validate_digest(D + "\n")


def test_a_digest_that_is_not_a_string_is_malformed() -> None:
    with pytest.raises(OCIError, match="malformed digest"):
        validate_digest(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "alpine\n:latest",
        "registry.example.com/app\n@" + D,
        "localhost:5000\n/app",
        "a/b\n/c",
    ],
)
def test_a_newline_inside_a_reference_is_refused(text: str) -> None:
    with pytest.raises(OCIError):
        parse_reference(text)


def test_is_loopback_of_an_unclosed_bracket_is_false() -> None:
    assert is_loopback("[::1") is False
    assert is_loopback("[::1]:5000") is True
