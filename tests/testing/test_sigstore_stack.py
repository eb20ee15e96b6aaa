"""The loopback Sigstore stack is only useful if it is faithful, so these tests
drive sigstore-python's real signer and verifier against it: what it signs must
verify, and every piece of evidence the verifier relies on (payload, DSSE
signature, inclusion proof, checkpoint, SET, chain of trust, identity) must be
rejected once tampered with. Fulcio and Rekor must also refuse what their real
counterparts refuse.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore import dsse
from sigstore._internal.fulcio.client import FulcioClientError
from sigstore._internal.rekor import RekorClientError
from sigstore._internal.rekor.client import RekorClient
from sigstore._internal.trust import KeyringPurpose
from sigstore.errors import CertValidationError, VerificationError
from sigstore.models import Bundle, ClientTrustConfig
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import Verifier
from sigstore.verify.policy import (
    AllOf,
    GitHubWorkflowRef,
    GitHubWorkflowRepository,
    GitHubWorkflowSHA,
    GitHubWorkflowTrigger,
    Identity,
    OIDCBuildConfigURI,
    OIDCBuildSignerURI,
    OIDCBuildTrigger,
    OIDCIssuerV2,
    OIDCRunInvocationURI,
    OIDCRunnerEnvironment,
    OIDCSourceRepositoryDigest,
    OIDCSourceRepositoryOwnerURI,
    OIDCSourceRepositoryRef,
    OIDCSourceRepositoryURI,
    OIDCSourceRepositoryVisibility,
)

import chaingate
from chaingate_testing.sigstore import SigstoreStack, github_actions_claims
from chaingate_testing.sigstore.fulcio import der_utf8_string
from chaingate_testing.sigstore.oidc import encode_jwt

pytestmark = pytest.mark.sigstore

EMAIL = "alice@example.test"
REPOSITORY = "octo-org/octo-app"
WORKFLOW_IDENTITY = f"https://github.com/{REPOSITORY}/.github/workflows/release.yml@refs/heads/main"
ARTIFACT = b"chaingate test artifact\n"
IMAGE_DIGEST = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"


@pytest.fixture(scope="module", autouse=True)
def _loopback_only() -> Iterator[None]:
    """Public Sigstore and TUF must never be contacted: any non-loopback connect fails the test."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1"):
            raise AssertionError(f"a test tried to reach {address!r}")
        real_connect(self, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        yield


@pytest.fixture(scope="module")
def stack() -> Iterator[SigstoreStack]:
    with SigstoreStack() as s:
        yield s


@pytest.fixture(scope="module")
def other_stack() -> Iterator[SigstoreStack]:
    with SigstoreStack() as s:
        yield s


def _context(stack: SigstoreStack) -> SigningContext:
    config = ClientTrustConfig.from_json(stack.trust_config_path.read_text())
    return SigningContext.from_trust_config(config)


def _verifier(stack: SigstoreStack) -> Verifier:
    config = ClientTrustConfig.from_json(stack.trust_config_path.read_text())
    return Verifier(trusted_root=config.trusted_root)


def _statement() -> dsse.Statement:
    return (
        dsse.StatementBuilder()
        .subjects([dsse.Subject(name="registry.test/app", digest=dsse.DigestSet({"sha256": IMAGE_DIGEST}))])
        .predicate_type("https://slsa.dev/provenance/v1")
        .predicate({"buildDefinition": {"buildType": "https://chaingate.test/build/v1"}})
        .build()
    )


def _email_policy(stack: SigstoreStack) -> Identity:
    return Identity(identity=EMAIL, issuer=stack.issuer_url)


@pytest.fixture(scope="module")
def email_bundles(stack: SigstoreStack) -> tuple[Bundle, Bundle]:
    """An artifact bundle and a DSSE bundle, signed after a warm-up entry so
    both inclusion proofs have sibling hashes to tamper with."""
    token = IdentityToken(stack.mint_token("user-1234", email=EMAIL))
    with _context(stack).signer(token) as signer:
        signer.sign_artifact(b"warm-up entry")
        artifact_bundle = signer.sign_artifact(ARTIFACT)
        dsse_bundle = signer.sign_dsse(_statement())
    return artifact_bundle, dsse_bundle


def _tampered(bundle: Bundle, mutate: Callable[[dict[str, Any]], None]) -> Bundle:
    document = json.loads(bundle.to_json())
    mutate(document)
    return Bundle.from_json(json.dumps(document))


def _flip_b64(value: str, position: int = -5) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[position] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _tlog(document: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = document["verificationMaterial"]["tlogEntries"][0]
    return entry


# --- the happy paths -------------------------------------------------------


def test_trust_config_is_accepted_by_sigstore_python(stack: SigstoreStack) -> None:
    config = ClientTrustConfig.from_json(stack.trust_config_path.read_text())
    signing = config.signing_config
    assert signing.get_fulcio().url == stack.fulcio_url
    assert signing.get_oidc_url() == stack.issuer_url
    (tlog,) = signing.get_tlogs()
    assert isinstance(tlog, RekorClient)
    assert tlog.url == f"{stack.rekor_url}/api/v1"
    root = config.trusted_root
    assert root.get_fulcio_certs() == stack.fulcio.chain
    root.rekor_keyring(KeyringPurpose.SIGN)
    root.ct_keyring(KeyringPurpose.SIGN)


def test_email_identity_signs_and_verifies(
    stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]
) -> None:
    artifact_bundle, dsse_bundle = email_bundles
    verifier = _verifier(stack)

    verifier.verify_artifact(ARTIFACT, artifact_bundle, _email_policy(stack))
    payload_type, payload = verifier.verify_dsse(dsse_bundle, _email_policy(stack))

    assert payload_type == "application/vnd.in-toto+json"
    statement = json.loads(payload)
    assert statement["subject"][0]["digest"]["sha256"] == IMAGE_DIGEST
    cert = artifact_bundle.signing_certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.RFC822Name) == [EMAIL]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == stack.fulcio.certificate_lifetime
    kinds = {json.loads(entry.body)["kind"] for entry in stack.rekor.entries()}
    assert kinds == {"hashedrekord", "dsse"}


def test_github_actions_identity_signs_and_verifies(stack: SigstoreStack) -> None:
    claims = github_actions_claims(repository=REPOSITORY, sha="c0ffee" + "0" * 34)
    token = IdentityToken(stack.mint_token(f"repo:{REPOSITORY}:ref:refs/heads/main", extra_claims=claims))
    with _context(stack).signer(token) as signer:
        bundle = signer.sign_dsse(_statement())

    server = "https://github.com"
    policy = AllOf(
        [
            Identity(identity=WORKFLOW_IDENTITY, issuer=stack.issuer_url),
            OIDCIssuerV2(stack.issuer_url),
            GitHubWorkflowTrigger("push"),
            GitHubWorkflowSHA(str(claims["sha"])),
            GitHubWorkflowRepository(REPOSITORY),
            GitHubWorkflowRef("refs/heads/main"),
            OIDCBuildSignerURI(WORKFLOW_IDENTITY),
            OIDCRunnerEnvironment("github-hosted"),
            OIDCSourceRepositoryURI(f"{server}/{REPOSITORY}"),
            OIDCSourceRepositoryDigest(str(claims["sha"])),
            OIDCSourceRepositoryRef("refs/heads/main"),
            OIDCSourceRepositoryOwnerURI(f"{server}/octo-org"),
            OIDCBuildConfigURI(WORKFLOW_IDENTITY),
            OIDCBuildTrigger("push"),
            OIDCRunInvocationURI(f"{server}/{REPOSITORY}/actions/runs/{claims['run_id']}/attempts/1"),
            OIDCSourceRepositoryVisibility("public"),
        ]
    )
    _verifier(stack).verify_dsse(bundle, policy)

    cert = bundle.signing_certificate
    oids = {ext.oid.dotted_string for ext in cert.extensions}
    expected = {f"1.3.6.1.4.1.57264.1.{n}" for n in [1, 2, 3, 4, 5, 6, 8, *range(9, 23)]}
    assert expected <= oids
    identifier = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.15")).value
    assert isinstance(identifier, x509.UnrecognizedExtension)
    assert identifier.value == der_utf8_string(str(claims["repository_id"]))
    legacy = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.4")).value
    assert isinstance(legacy, x509.UnrecognizedExtension)
    assert legacy.value == b"release"


def test_log_entries_can_be_fetched_and_reverified_against_a_larger_tree(
    stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]
) -> None:
    artifact_bundle, _ = email_bundles
    original = artifact_bundle.log_entry._inner
    client = RekorClient(stack.rekor_url)
    uuid = stack.rekor.entries()[original.log_index].uuid

    fetched = client.log.entries.get(uuid=uuid)
    info = client.log.get()

    assert fetched._inner.canonicalized_body == original.canonicalized_body
    assert fetched._inner.inclusion_proof.tree_size == info.tree_size > original.inclusion_proof.tree_size
    trusted_root = ClientTrustConfig.from_json(stack.trust_config_path.read_text()).trusted_root
    fetched._verify(trusted_root.rekor_keyring(KeyringPurpose.VERIFY))


# --- the verifier rejects tampering -----------------------------------------


def test_tampered_artifact_is_rejected(stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]) -> None:
    with pytest.raises(VerificationError, match="digest mismatch"):
        _verifier(stack).verify_artifact(ARTIFACT + b"x", email_bundles[0], _email_policy(stack))


def test_tampered_artifact_signature_is_rejected(
    stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]
) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        doc["messageSignature"]["signature"] = _flip_b64(doc["messageSignature"]["signature"])

    with pytest.raises(VerificationError, match="Signature is invalid for input"):
        _verifier(stack).verify_artifact(ARTIFACT, _tampered(email_bundles[0], mutate), _email_policy(stack))


def test_tampered_dsse_signature_is_rejected(
    stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]
) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        signature = doc["dsseEnvelope"]["signatures"][0]
        signature["sig"] = _flip_b64(signature["sig"])

    with pytest.raises(VerificationError, match="DSSE: invalid signature"):
        _verifier(stack).verify_dsse(_tampered(email_bundles[1], mutate), _email_policy(stack))


def test_tampered_dsse_payload_is_rejected(
    stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]
) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
        statement["subject"][0]["digest"]["sha256"] = "0" * 64
        doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    with pytest.raises(VerificationError, match="DSSE: invalid signature"):
        _verifier(stack).verify_dsse(_tampered(email_bundles[1], mutate), _email_policy(stack))


def test_corrupted_checkpoint_signature_is_rejected(
    stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]
) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        checkpoint = _tlog(doc)["inclusionProof"]["checkpoint"]
        note, signature_line = checkpoint["envelope"].rstrip("\n").split("\n\n")
        dash, name, signature = signature_line.split(" ")
        checkpoint["envelope"] = f"{note}\n\n{dash} {name} {_flip_b64(signature)}\n"

    with pytest.raises(VerificationError, match="checkpoint: invalid signature"):
        _verifier(stack).verify_artifact(ARTIFACT, _tampered(email_bundles[0], mutate), _email_policy(stack))


def test_checkpoint_for_another_root_is_rejected(
    stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]
) -> None:
    """A validly signed checkpoint that commits to a different tree must not vouch for this proof."""
    later = stack.rekor.checkpoint(stack.rekor.tree_size, b"\x42" * 32)

    def mutate(doc: dict[str, Any]) -> None:
        _tlog(doc)["inclusionProof"]["checkpoint"]["envelope"] = later

    with pytest.raises(VerificationError, match="invalid root hash"):
        _verifier(stack).verify_artifact(ARTIFACT, _tampered(email_bundles[0], mutate), _email_policy(stack))


def test_wrong_inclusion_proof_hash_is_rejected(
    stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]
) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        hashes_ = _tlog(doc)["inclusionProof"]["hashes"]
        assert hashes_, "the fixture signs a warm-up entry so the proof is non-trivial"
        hashes_[0] = _flip_b64(hashes_[0], 0)

    with pytest.raises(VerificationError, match="inclusion proof contains invalid root hash"):
        _verifier(stack).verify_artifact(ARTIFACT, _tampered(email_bundles[0], mutate), _email_policy(stack))


def test_modified_set_is_rejected(stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        promise = _tlog(doc)["inclusionPromise"]
        promise["signedEntryTimestamp"] = _flip_b64(promise["signedEntryTimestamp"])

    with pytest.raises(VerificationError, match="SET: invalid inclusion promise"):
        _verifier(stack).verify_artifact(ARTIFACT, _tampered(email_bundles[0], mutate), _email_policy(stack))


def test_backdated_integrated_time_is_rejected(
    stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]
) -> None:
    """The SET binds the integration time; moving it by a second must break it."""

    def mutate(doc: dict[str, Any]) -> None:
        entry = _tlog(doc)
        entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)

    with pytest.raises(VerificationError, match="SET: invalid inclusion promise"):
        _verifier(stack).verify_dsse(_tampered(email_bundles[1], mutate), _email_policy(stack))


def test_bundle_from_an_independent_stack_is_untrusted(
    stack: SigstoreStack, other_stack: SigstoreStack
) -> None:
    token = IdentityToken(other_stack.mint_token("user-1234", email=EMAIL))
    with _context(other_stack).signer(token) as signer:
        foreign = signer.sign_artifact(ARTIFACT)
    _verifier(other_stack).verify_artifact(
        ARTIFACT, foreign, Identity(identity=EMAIL, issuer=other_stack.issuer_url)
    )

    with pytest.raises(CertValidationError, match="failed to build timestamp certificate chain"):
        _verifier(stack).verify_artifact(
            ARTIFACT, foreign, Identity(identity=EMAIL, issuer=other_stack.issuer_url)
        )


def _config_with_foreign_ct_log(stack: SigstoreStack, other_stack: SigstoreStack) -> ClientTrustConfig:
    document = json.loads(stack.trust_config_path.read_text())
    foreign = json.loads(other_stack.trust_config_path.read_text())
    document["trustedRoot"]["ctlogs"] = foreign["trustedRoot"]["ctlogs"]
    return ClientTrustConfig.from_json(json.dumps(document))


def test_sct_is_checked_against_the_trusted_ct_log(
    stack: SigstoreStack, other_stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]
) -> None:
    """The embedded SCT is real: trusting another CT log key makes both the
    signer (which checks Fulcio's answer) and the verifier refuse it."""
    config = _config_with_foreign_ct_log(stack, other_stack)
    token = IdentityToken(stack.mint_token("user-1234", email=EMAIL))
    with (
        pytest.raises(VerificationError, match="SCT verify failed"),
        SigningContext.from_trust_config(config).signer(token),
    ):
        pytest.fail("signer accepted a certificate whose SCT is from an untrusted log")

    verifier = Verifier(trusted_root=config.trusted_root)
    with pytest.raises(VerificationError, match="failed to verify SCT on signing certificate"):
        verifier.verify_artifact(ARTIFACT, email_bundles[0], _email_policy(stack))


@pytest.mark.parametrize(
    ("identity", "issuer", "message"),
    [
        ("mallory@example.test", None, "SANs do not match"),
        (EMAIL, "https://accounts.google.com", "OIDCIssuer does not match"),
    ],
)
def test_wrong_identity_or_issuer_is_rejected(
    stack: SigstoreStack,
    email_bundles: tuple[Bundle, Bundle],
    identity: str,
    issuer: str | None,
    message: str,
) -> None:
    policy = Identity(identity=identity, issuer=issuer or stack.issuer_url)
    with pytest.raises(VerificationError, match=message):
        _verifier(stack).verify_artifact(ARTIFACT, email_bundles[0], policy)


# --- Fulcio refuses bad requests --------------------------------------------


def _csr_request(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    return {
        "certificateSigningRequest": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()
    }


def _post_signing_cert(stack: SigstoreStack, token: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{stack.fulcio_url}/api/v2/signingCert",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_fulcio_issues_for_a_valid_token(stack: SigstoreStack) -> None:
    response = _post_signing_cert(
        stack, stack.mint_token("user-1", email=EMAIL), _csr_request(ec.generate_private_key(ec.SECP256R1()))
    )
    assert response.status_code == 201
    pems = response.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    chain = [x509.load_pem_x509_certificate(p.encode()) for p in pems]
    assert chain[1:] == stack.fulcio.chain
    assert chain[0].issuer == stack.fulcio.intermediate.subject


def _foreign_key_token(stack: SigstoreStack) -> str:
    now = int(time.time())
    claims = {"iss": stack.issuer_url, "sub": "user-1", "aud": "sigstore", "iat": now, "exp": now + 600}
    claims |= {"email": EMAIL, "email_verified": True}
    return encode_jwt(claims, ec.generate_private_key(ec.SECP256R1()), stack.oidc.kid)


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (lambda s: s.mint_token("user-1", email=EMAIL, issued_at=int(time.time()) - 3600), "expired"),
        (lambda s: s.mint_token("user-1", email=EMAIL, audience="not-sigstore"), "audience"),
        (_foreign_key_token, "signature does not verify"),
        (lambda s: s.mint_token("not a uri"), "subject must be a URI"),
    ],
    ids=["expired", "wrong-audience", "unknown-key", "non-uri-subject"],
)
def test_fulcio_rejects_bad_tokens(
    stack: SigstoreStack, make_token: Callable[[SigstoreStack], str], message: str
) -> None:
    response = _post_signing_cert(
        stack, make_token(stack), _csr_request(ec.generate_private_key(ec.SECP256R1()))
    )
    assert response.status_code in (400, 401)
    assert message in response.json()["message"]


def test_fulcio_rejects_a_token_from_an_untrusted_issuer(
    stack: SigstoreStack, other_stack: SigstoreStack
) -> None:
    token = other_stack.mint_token("user-1", email=EMAIL)
    response = _post_signing_cert(stack, token, _csr_request(ec.generate_private_key(ec.SECP256R1())))
    assert response.status_code == 401
    assert "issuer is not trusted" in response.json()["message"]


def test_sigstore_signer_surfaces_fulcio_rejection_of_a_forged_token(stack: SigstoreStack) -> None:
    """sigstore-python does not verify tokens itself; only Fulcio stands between a forgery and a cert."""
    token = IdentityToken(_foreign_key_token(stack))
    with pytest.raises(FulcioClientError), _context(stack).signer(token):
        pytest.fail("a certificate was issued for a forged token")


def test_fulcio_requires_proof_of_possession(stack: SigstoreStack) -> None:
    body = _csr_request(ec.generate_private_key(ec.SECP256R1()))
    pem = base64.b64decode(body["certificateSigningRequest"])
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the signature value
    csr = x509.load_der_x509_csr(bytes(der))
    body = {
        "certificateSigningRequest": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()
    }

    response = _post_signing_cert(stack, stack.mint_token("user-1", email=EMAIL), body)

    assert response.status_code == 400
    assert "proof of possession" in response.json()["message"]


def test_fulcio_accepts_a_signed_challenge_instead_of_a_csr(stack: SigstoreStack) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def body(challenge: bytes) -> dict[str, Any]:
        proof = base64.b64encode(key.sign(challenge, ec.ECDSA(hashes.SHA256()))).decode()
        return {"publicKeyRequest": {"publicKey": {"content": pem.decode()}, "proofOfPossession": proof}}

    token = stack.mint_token("user-1", email=EMAIL)
    assert _post_signing_cert(stack, token, body(EMAIL.encode())).status_code == 201
    refused = _post_signing_cert(stack, token, body(b"someone-else@example.test"))
    assert refused.status_code == 400


# --- Rekor refuses bad entries ------------------------------------------------


def _post_entry(stack: SigstoreStack, data: bytes) -> requests.Response:
    return requests.post(
        f"{stack.rekor_url}/api/v1/log/entries",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


def test_rekor_rejects_garbage_and_bad_signatures(
    stack: SigstoreStack, email_bundles: tuple[Bundle, Bundle]
) -> None:
    before = stack.rekor.tree_size
    assert _post_entry(stack, b"not json").status_code == 400
    assert (
        _post_entry(stack, json.dumps({"kind": "rekord", "apiVersion": "0.0.1"}).encode()).status_code == 400
    )

    recorded = json.loads(email_bundles[0].log_entry._inner.canonicalized_body)
    forged = json.loads(json.dumps(recorded))
    forged["spec"]["data"]["hash"]["value"] = "0" * 64
    response = _post_entry(stack, json.dumps(forged).encode())
    assert response.status_code == 400
    assert "signature does not verify" in response.json()["message"]

    duplicate = _post_entry(stack, json.dumps(recorded).encode())
    assert duplicate.status_code == 409
    assert stack.rekor.tree_size == before


# --- outages ------------------------------------------------------------------


def test_signer_raises_when_rekor_is_down(stack: SigstoreStack) -> None:
    token = IdentityToken(stack.mint_token("user-1", email=EMAIL))
    with (
        _context(stack).signer(token) as signer,
        stack.rekor.outage(),
        pytest.raises(RekorClientError, match="503"),
    ):
        signer.sign_artifact(ARTIFACT)
    with _context(stack).signer(token) as signer:
        signer.sign_artifact(ARTIFACT)  # and recovers once it is back


def test_signer_raises_when_fulcio_is_down(stack: SigstoreStack) -> None:
    token = IdentityToken(stack.mint_token("user-1", email=EMAIL))
    with stack.fulcio.outage(), pytest.raises(FulcioClientError), _context(stack).signer(token):
        pytest.fail("signer obtained a certificate from a Fulcio that is down")


# --- the demo entry point -------------------------------------------------------


def test_cli_serves_a_stack_the_sigstore_cli_can_use(tmp_path: Path) -> None:
    src = str(Path(chaingate.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    state = tmp_path / "stack"
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaingate_testing.sigstore", "--dir", str(state)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (state / "stack.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "stack did not come up"
            time.sleep(0.05)
        info = json.loads((state / "stack.json").read_text())
        token = Path(info["token_file"]).read_text().strip()
        assert (Path(info["token_file"]).stat().st_mode & 0o077) == 0

        artifact = tmp_path / "artifact.txt"
        artifact.write_bytes(ARTIFACT)
        sigstore_cli = [sys.executable, "-m", "sigstore", "--trust-config", info["trust_config"]]
        signed = subprocess.run(
            [*sigstore_cli, "sign", "--identity-token", token, str(artifact)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert signed.returncode == 0, signed.stderr
        verified = subprocess.run(
            [
                *sigstore_cli,
                "verify",
                "identity",
                "--offline",
                "--cert-identity",
                info["identity"],
                "--cert-oidc-issuer",
                info["issuer"],
                str(artifact),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert verified.returncode == 0, verified.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert info["fulcio_url"] in stdout
    assert token not in stdout
