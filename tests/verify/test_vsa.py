"""The VSA step without a Sigstore stack: when it is skipped, why, and the document verify writes either way.

Signing and attaching themselves run end to end in ``test_verify_cli.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaingate.oci.registries import Registries
from chaingate.policy.interface import ClauseResult
from chaingate.policy.record import Decision
from chaingate.signing.attest import PreparedSigner
from chaingate.signing.interface import IdentityTokenError
from chaingate.signing.tokens import ENV_GITHUB_TOKEN, ENV_GITHUB_URL, ENV_TOKEN, IdentityToken
from chaingate.verify.vsa import (
    NO_IDENTITY,
    VsaAttachment,
    attach_vsa,
    has_ambient_identity,
    verify_document,
    vsa_signer,
)

DIGEST = "sha256:" + "ab" * 32


def decision(digest: str = DIGEST) -> Decision:
    return Decision(
        image="example.com/app:v1",
        digest=digest,
        repository="example.com/app",
        mode="enforce",
        verdict="deny",
        clauses=(ClauseResult("signers", "fail", "no attestation counts"),),
        ignored=(),
        warnings=(),
    )


def test_without_an_identity_or_with_no_sign_there_is_no_signer() -> None:
    none = {"trust_config": None, "identity_token": None, "identity_token_file": None}
    assert vsa_signer(**none, env={}) is None
    assert vsa_signer(**none, env={ENV_TOKEN: "  "}) is None
    assert vsa_signer(**none, env={ENV_GITHUB_URL: "https://t"}) is None  # the URL alone is no token
    # --no-sign wins over a token that would otherwise be checked (and refused)
    assert vsa_signer(**{**none, "identity_token": "not-a-jwt"}, sign=False, env={}) is None


def test_an_offered_identity_is_checked_before_anything_is_read() -> None:
    with pytest.raises(IdentityTokenError):
        vsa_signer(identity_token="not-a-jwt", identity_token_file=None, trust_config=None, env={})
    with pytest.raises(IdentityTokenError):
        vsa_signer(identity_token=None, identity_token_file=None, trust_config=None, env={ENV_TOKEN: "x.y"})


def test_ambient_identity() -> None:
    assert has_ambient_identity({ENV_TOKEN: "t"})
    assert has_ambient_identity({ENV_GITHUB_URL: "https://t", ENV_GITHUB_TOKEN: "r"})
    assert not has_ambient_identity({ENV_GITHUB_TOKEN: "r"})


def test_unsigned_reasons_and_the_document(tmp_path: Path) -> None:
    registries = Registries()
    d = decision()
    unsigned = attach_vsa("example.com/app:v1", d, None, registries, now=d.time)
    assert unsigned == VsaAttachment(reason=NO_IDENTITY) and not unsigned.signed
    signer = PreparedSigner(IdentityToken("raw", "test", {}), None, None)
    unresolved = attach_vsa("example.com/app:v1", decision(""), signer, registries, now=d.time)
    assert unresolved.reason == "the image was not resolved; there is no digest to attest about"
    archive = tmp_path / "image.tar"
    from chaingate_testing.images import File, Layer, build_image, write_docker_archive

    write_docker_archive(archive, build_image([Layer([File("a", b"1")])]))
    refused = attach_vsa(f"docker-archive:{archive}", d, signer, registries, now=d.time)
    assert refused.reason == "a docker archive cannot carry attachments"

    document = verify_document(d, unsigned)
    assert document["vsaAttestation"] == {"signed": False, "reason": NO_IDENTITY}
    assert document["vsa"]["subject"][0]["digest"] == {"sha256": "ab" * 32}
    assert {k: v for k, v in document.items() if k not in ("vsa", "vsaAttestation")} == d.record()
    assert verify_document(decision(""), unresolved)["vsa"] is None
