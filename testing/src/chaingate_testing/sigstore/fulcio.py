"""A loopback Fulcio: the CA that turns an identity token into a signing certificate.

It answers sigstore-python's ``POST /api/v2/signingCert`` the way Fulcio
does, and checks what Fulcio checks before issuing: the token's signature
against the issuer's published keys (found by OIDC discovery, over
loopback), that the issuer is trusted, the ``sigstore`` audience, the token's
lifetime, and proof that the caller holds the private key. The certificate
follows Fulcio's profile (empty subject, critical SAN, codeSigning, the
57264.1.* identity extensions) and embeds an SCT from a CT log key the stack
owns, so sigstore-python's SCT and chain checks run for real.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chaingate_testing.sigstore._service import HTTPError, LoopbackService, Request, Response
from chaingate_testing.sigstore.oidc import (
    SIGSTORE_AUDIENCE,
    JWTError,
    JWTVerifyingKey,
    b64url_decode,
    jwk_to_public_key,
    verify_jwt,
)

SIGNING_CERT_PATH = "/api/v2/signingCert"
TRUST_BUNDLE_PATH = "/api/v2/trustBundle"

#: RFC 6962 embedded SCT list extension.
SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")

#: Fulcio's certificate extensions (sigstore/fulcio docs/oid-info.md).
OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_GITHUB_WORKFLOW_TRIGGER = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.2")
OID_GITHUB_WORKFLOW_SHA = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.3")
OID_GITHUB_WORKFLOW_NAME = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.4")
OID_GITHUB_WORKFLOW_REPOSITORY = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.5")
OID_GITHUB_WORKFLOW_REF = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.6")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OID_BUILD_SIGNER_URI = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.9")
OID_BUILD_SIGNER_DIGEST = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.10")
OID_RUNNER_ENVIRONMENT = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.11")
OID_SOURCE_REPOSITORY_URI = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.12")
OID_SOURCE_REPOSITORY_DIGEST = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.13")
OID_SOURCE_REPOSITORY_REF = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.14")
OID_SOURCE_REPOSITORY_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.15")
OID_SOURCE_REPOSITORY_OWNER_URI = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.16")
OID_SOURCE_REPOSITORY_OWNER_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.17")
OID_BUILD_CONFIG_URI = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.18")
OID_BUILD_CONFIG_DIGEST = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.19")
OID_BUILD_TRIGGER = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.20")
OID_RUN_INVOCATION_URI = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.21")
OID_SOURCE_REPOSITORY_VISIBILITY = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.22")

#: Claims without which Fulcio cannot describe a GitHub workflow identity.
GITHUB_REQUIRED_CLAIMS = (
    "job_workflow_ref",
    "sha",
    "event_name",
    "repository",
    "workflow",
    "ref",
    "run_id",
    "run_attempt",
    "repository_owner",
)

#: Tolerated clock skew for ``nbf``/``iat``: the issuer and CA share a clock
#: here, but real providers do not, and tokens minted "now" must not bounce.
CLOCK_SKEW = 60

_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 500: 13, 503: 14}
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

IssuablePublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def der_utf8_string(value: str) -> bytes:
    """DER UTF8String, the encoding Fulcio's v2 extensions (.8, .9-.22) use."""
    raw = value.encode("utf-8")
    return b"\x0c" + _der_length(len(raw)) + raw


def der_octet_string(content: bytes) -> bytes:
    return b"\x04" + _der_length(len(content)) + content


def _key_id(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo: the CT log id and RFC 6962 issuer key hash."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()


class CTLog:
    """The certificate-transparency log whose key signs Fulcio's embedded SCTs.

    Only the signing half of a CT log exists: Fulcio is its sole client and
    sigstore-python checks SCTs offline against the trusted root's ``ctlogs``.
    """

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = self._key.public_key()
        self.log_id = _key_id(self.public_key)

    def public_key_der(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign_precertificate(
        self, tbs_precertificate: bytes, issuer_key_hash: bytes, timestamp_ms: int
    ) -> bytes:
        """A TLS-encoded v1 SCT over a precertificate entry (RFC 6962 section 3.2)."""
        if len(issuer_key_hash) != 32:
            raise ValueError("issuer key hash must be 32 bytes")
        extensions = b""
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp_ms, 1)  # v1, certificate_timestamp, time, precert_entry
            + issuer_key_hash
            + len(tbs_precertificate).to_bytes(3, "big")
            + tbs_precertificate
            + struct.pack("!H", len(extensions))
            + extensions
        )
        signature = self._key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (
            struct.pack("!B", 0)
            + self.log_id
            + struct.pack("!Q", timestamp_ms)
            + struct.pack("!H", len(extensions))
            + extensions
            + struct.pack("!BBH", 4, 3, len(signature))  # sha256, ecdsa
            + signature
        )


def _sct_list_extension(scts: Sequence[bytes]) -> x509.UnrecognizedExtension:
    body = b"".join(struct.pack("!H", len(sct)) + sct for sct in scts)
    return x509.UnrecognizedExtension(SCT_LIST_OID, der_octet_string(struct.pack("!H", len(body)) + body))


def _raw_extension(oid: x509.ObjectIdentifier, value: str) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(oid, value.encode("utf-8"))


def _der_extension(oid: x509.ObjectIdentifier, value: str) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(oid, der_utf8_string(value))


def _claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise HTTPError(400, f"token claim {name!r} is missing or not a string")
    return str(value)


class _Principal:
    """What Fulcio derives from a token: the SAN and the identity extensions."""

    def __init__(
        self, san: x509.GeneralName, challenge: str, extensions: list[x509.UnrecognizedExtension]
    ) -> None:
        self.san = san
        #: What a ``publicKeyRequest`` proof of possession must sign.
        self.challenge = challenge
        self.extensions = extensions


def principal_from_claims(claims: Mapping[str, Any]) -> _Principal:
    """Map verified claims to a certificate identity, as Fulcio's issuer types do.

    Real Fulcio picks the principal type from its per-issuer configuration;
    the loopback issuer plays every provider, so the claims' shape decides:
    an ``email`` makes an email identity, a ``job_workflow_ref`` a GitHub
    workflow identity, anything else must have a URI subject.
    """
    issuer = _claim(claims, "iss")
    extensions = [_raw_extension(OID_ISSUER_V1, issuer), _der_extension(OID_ISSUER_V2, issuer)]
    if "email" in claims:
        email = _claim(claims, "email")
        if claims.get("email_verified") is not True:
            raise HTTPError(400, "email identity tokens must carry email_verified=true")
        return _Principal(x509.RFC822Name(email), email, extensions)
    if "job_workflow_ref" in claims:
        return _github_principal(claims, issuer, extensions)
    subject = _claim(claims, "sub")
    parts = urlsplit(subject)
    if not parts.scheme or not (parts.netloc or parts.path):
        raise HTTPError(400, "token subject must be a URI (or the token must carry an email)")
    return _Principal(x509.UniformResourceIdentifier(subject), subject, extensions)


def _github_principal(
    claims: Mapping[str, Any], issuer: str, extensions: list[x509.UnrecognizedExtension]
) -> _Principal:
    values = {name: _claim(claims, name) for name in GITHUB_REQUIRED_CLAIMS}
    server = str(claims.get("server_url") or "https://github.com").rstrip("/")
    repository = values["repository"]
    signer_uri = f"{server}/{values['job_workflow_ref']}"
    extensions += [
        _raw_extension(OID_GITHUB_WORKFLOW_TRIGGER, values["event_name"]),
        _raw_extension(OID_GITHUB_WORKFLOW_SHA, values["sha"]),
        _raw_extension(OID_GITHUB_WORKFLOW_NAME, values["workflow"]),
        _raw_extension(OID_GITHUB_WORKFLOW_REPOSITORY, repository),
        _raw_extension(OID_GITHUB_WORKFLOW_REF, values["ref"]),
        _der_extension(OID_BUILD_SIGNER_URI, signer_uri),
    ]
    optional: list[tuple[x509.ObjectIdentifier, str | None]] = [
        (OID_BUILD_SIGNER_DIGEST, _optional(claims, "job_workflow_sha")),
        (OID_RUNNER_ENVIRONMENT, _optional(claims, "runner_environment")),
        (OID_SOURCE_REPOSITORY_URI, f"{server}/{repository}"),
        (OID_SOURCE_REPOSITORY_DIGEST, values["sha"]),
        (OID_SOURCE_REPOSITORY_REF, values["ref"]),
        (OID_SOURCE_REPOSITORY_IDENTIFIER, _optional(claims, "repository_id")),
        (OID_SOURCE_REPOSITORY_OWNER_URI, f"{server}/{values['repository_owner']}"),
        (OID_SOURCE_REPOSITORY_OWNER_IDENTIFIER, _optional(claims, "repository_owner_id")),
        (OID_BUILD_CONFIG_URI, _prefixed(server, _optional(claims, "workflow_ref"))),
        (OID_BUILD_CONFIG_DIGEST, _optional(claims, "workflow_sha")),
        (OID_BUILD_TRIGGER, values["event_name"]),
        (
            OID_RUN_INVOCATION_URI,
            f"{server}/{repository}/actions/runs/{values['run_id']}/attempts/{values['run_attempt']}",
        ),
        (OID_SOURCE_REPOSITORY_VISIBILITY, _optional(claims, "repository_visibility")),
    ]
    extensions += [_der_extension(oid, value) for oid, value in optional if value]
    return _Principal(x509.UniformResourceIdentifier(signer_uri), _claim(claims, "sub"), extensions)


def _optional(claims: Mapping[str, Any], name: str) -> str | None:
    return _claim(claims, name) if name in claims else None


def _prefixed(server: str, path: str | None) -> str | None:
    return f"{server}/{path}" if path else None


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chaingate.test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA only signs certificates; a leaf only signs artifacts: no certificate here may do both."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class FulcioCA(LoopbackService):
    """Root and intermediate CA plus the ``/api/v2/signingCert`` endpoint.

    ``trusted_issuers`` are the OIDC issuer URLs whose tokens are honoured;
    each must be a loopback URL, since the CA fetches its keys.
    """

    name = "fulcio"

    def __init__(
        self,
        *,
        ct_log: CTLog,
        trusted_issuers: Sequence[str],
        certificate_lifetime: timedelta = timedelta(minutes=10),
    ) -> None:
        for issuer in trusted_issuers:
            parts = urlsplit(issuer)
            if parts.scheme not in ("http", "https") or parts.hostname not in _LOOPBACK_HOSTS:
                raise ValueError(f"trusted issuer must be a loopback http(s) URL: {issuer}")
        super().__init__()
        self.ct_log = ct_log
        self.trusted_issuers = tuple(trusted_issuers)
        self.certificate_lifetime = certificate_lifetime
        self._jwks_cache: dict[str, dict[str, JWTVerifyingKey]] = {}
        self._jwks_lock = threading.Lock()

        # Backdated a day: sigstore-python ignores trust material whose
        # validity starts in the future, and clocks on CI hosts drift.
        now = datetime.now(UTC).replace(microsecond=0)
        self.valid_from = now - timedelta(days=1)
        valid_until = now + timedelta(days=3650)
        self._root_key = ec.generate_private_key(ec.SECP384R1())
        self._intermediate_key = ec.generate_private_key(ec.SECP384R1())
        root_ski = x509.SubjectKeyIdentifier.from_public_key(self._root_key.public_key())
        self.root = (
            x509.CertificateBuilder()
            .subject_name(_name("chaingate-local-root"))
            .issuer_name(_name("chaingate-local-root"))
            .public_key(self._root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.valid_from)
            .not_valid_after(valid_until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(root_ski, critical=False)
            .sign(self._root_key, hashes.SHA384())
        )
        self._intermediate_ski = x509.SubjectKeyIdentifier.from_public_key(
            self._intermediate_key.public_key()
        )
        self.intermediate = (
            x509.CertificateBuilder()
            .subject_name(_name("chaingate-local-intermediate"))
            .issuer_name(self.root.subject)
            .public_key(self._intermediate_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.valid_from)
            .not_valid_after(valid_until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(self._intermediate_ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False
            )
            .sign(self._root_key, hashes.SHA384())
        )

    @property
    def chain(self) -> list[x509.Certificate]:
        """Issuer chain, leaf-side first, as the trusted root and Fulcio's response list it."""
        return [self.intermediate, self.root]

    def issue(self, public_key: IssuablePublicKey, claims: Mapping[str, Any]) -> x509.Certificate:
        """A leaf for ``public_key`` bound to the identity in (already verified) ``claims``."""
        principal = principal_from_claims(claims)
        now = datetime.now(UTC).replace(microsecond=0)
        serial = x509.random_serial_number()
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (_key_usage(ca=False), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False),
            (x509.SubjectKeyIdentifier.from_public_key(public_key), False),
            (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._intermediate_ski), False),
            (x509.SubjectAlternativeName([principal.san]), True),
            *((ext, False) for ext in principal.extensions),
        ]

        def builder() -> x509.CertificateBuilder:
            b = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(self.intermediate.subject)
                .public_key(public_key)
                .serial_number(serial)
                .not_valid_before(now)
                .not_valid_after(now + self.certificate_lifetime)
            )
            for ext, critical in extensions:
                b = b.add_extension(ext, critical=critical)
            return b

        # The SCT signs the precertificate TBS: the final TBS minus the SCT
        # extension. Building without it first, then appending it last, makes
        # the two identical, which the assertion below proves per certificate.
        precert = builder().sign(self._intermediate_key, hashes.SHA384())
        tbs = precert.tbs_certificate_bytes
        sct = self.ct_log.sign_precertificate(
            tbs, _key_id(self._intermediate_key.public_key()), int(time.time() * 1000)
        )
        final = (
            builder()
            .add_extension(_sct_list_extension([sct]), critical=False)
            .sign(self._intermediate_key, hashes.SHA384())
        )
        if final.tbs_precertificate_bytes != tbs:
            raise RuntimeError("embedded SCT would not cover the issued certificate's TBS")
        return final

    def error_response(self, status: int, message: str) -> Response:
        # Fulcio answers through grpc-gateway: a gRPC status code, not the HTTP one.
        return Response.json(status, {"code": _GRPC_CODES.get(status, 2), "message": message, "details": []})

    def handle(self, request: Request) -> Response:
        if request.path == SIGNING_CERT_PATH:
            if request.method != "POST":
                raise HTTPError(405, "signingCert takes POST")
            return self._signing_cert(request)
        if request.path == TRUST_BUNDLE_PATH:
            if request.method != "GET":
                raise HTTPError(405, "trustBundle takes GET")
            pems = [_pem(cert) for cert in self.chain]
            return Response.json(200, {"chains": [{"certificates": pems}]})
        raise HTTPError(404, f"no such endpoint: {request.path}")

    def _signing_cert(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise HTTPError(400, "request body must be a JSON object")
        token = self._token_from(request, body)
        claims = self.verify_token(token)
        principal = principal_from_claims(claims)
        public_key = self._proven_public_key(body, principal.challenge)
        leaf = self.issue(public_key, claims)
        certificates = [_pem(leaf), *(_pem(cert) for cert in self.chain)]
        return Response.json(201, {"signedCertificateEmbeddedSct": {"chain": {"certificates": certificates}}})

    @staticmethod
    def _token_from(request: Request, body: Mapping[str, Any]) -> str:
        credentials = body.get("credentials")
        if isinstance(credentials, dict) and isinstance(credentials.get("oidcIdentityToken"), str):
            return str(credentials["oidcIdentityToken"])
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPError(401, "no identity token: send 'Authorization: Bearer <token>'")
        return token.strip()

    def verify_token(self, token: str) -> dict[str, Any]:
        """Fulcio's token checks; every failure is a 401 with the reason."""
        try:
            unverified = json.loads(b64url_decode(token.split(".")[1]))
        except (IndexError, JWTError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HTTPError(401, f"identity token is malformed: {exc}") from exc
        issuer = unverified.get("iss") if isinstance(unverified, dict) else None
        if not isinstance(issuer, str) or issuer not in self.trusted_issuers:
            raise HTTPError(401, f"identity token issuer is not trusted: {issuer!r}")
        try:
            claims = self._verify_with_issuer_keys(token, issuer)
        except JWTError as exc:
            raise HTTPError(401, f"identity token rejected: {exc}") from exc
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if SIGSTORE_AUDIENCE not in audiences:
            raise HTTPError(401, f"identity token audience must include {SIGSTORE_AUDIENCE!r}")
        now = time.time()
        expiry = claims.get("exp")
        if not isinstance(expiry, int | float) or expiry <= now:
            raise HTTPError(401, "identity token is expired")
        not_before = claims.get("nbf", claims.get("iat"))
        if not isinstance(not_before, int | float) or not_before > now + CLOCK_SKEW:
            raise HTTPError(401, "identity token is not yet valid")
        return claims

    def _verify_with_issuer_keys(self, token: str, issuer: str) -> dict[str, Any]:
        keys = self._issuer_keys(issuer, refresh=False)
        try:
            return verify_jwt(token, keys)
        except JWTError:
            # A key rotation shows up as an unknown kid: refetch once, as
            # OIDC relying parties do, before calling the token bad.
            return verify_jwt(token, self._issuer_keys(issuer, refresh=True))

    def _issuer_keys(self, issuer: str, *, refresh: bool) -> dict[str, JWTVerifyingKey]:
        with self._jwks_lock:
            if not refresh and issuer in self._jwks_cache:
                return self._jwks_cache[issuer]
        discovery = _fetch_json(f"{issuer}/.well-known/openid-configuration")
        if not isinstance(discovery, dict) or discovery.get("issuer") != issuer:
            raise HTTPError(401, "issuer discovery document does not name the token's issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).hostname not in _LOOPBACK_HOSTS:
            raise HTTPError(401, "issuer discovery document has no loopback jwks_uri")
        jwks = _fetch_json(jwks_uri)
        raw_keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(raw_keys, list):
            raise HTTPError(401, "issuer JWKS has no keys")
        keys: dict[str, JWTVerifyingKey] = {}
        for jwk in raw_keys:
            if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str):
                try:
                    keys[jwk["kid"]] = jwk_to_public_key(jwk)
                except JWTError:
                    continue  # a key type we cannot use cannot have signed a token we accept
        with self._jwks_lock:
            self._jwks_cache[issuer] = keys
        return keys

    @staticmethod
    def _proven_public_key(body: Mapping[str, Any], challenge: str) -> IssuablePublicKey:
        csr_b64 = body.get("certificateSigningRequest")
        if isinstance(csr_b64, str):
            try:
                csr = x509.load_pem_x509_csr(base64.b64decode(csr_b64, validate=True))
            except (binascii.Error, ValueError) as exc:
                raise HTTPError(400, f"certificateSigningRequest is not a base64 PEM CSR: {exc}") from exc
            # The CSR's self-signature is the proof of possession.
            if not csr.is_signature_valid:
                raise HTTPError(400, "CSR signature does not verify: no proof of possession")
            return _issuable(csr.public_key())
        request = body.get("publicKeyRequest")
        if not isinstance(request, dict):
            raise HTTPError(400, "request needs certificateSigningRequest or publicKeyRequest")
        public_key_field = request.get("publicKey")
        content = public_key_field.get("content") if isinstance(public_key_field, dict) else None
        proof = request.get("proofOfPossession")
        if not isinstance(content, str) or not isinstance(proof, str):
            raise HTTPError(400, "publicKeyRequest needs publicKey.content and proofOfPossession")
        try:
            key = _issuable(serialization.load_pem_public_key(content.encode()))
            signature = base64.b64decode(proof, validate=True)
        except (binascii.Error, ValueError, UnsupportedAlgorithm) as exc:
            raise HTTPError(400, f"publicKeyRequest is malformed: {exc}") from exc
        # Fulcio's challenge: the caller signs the identity the certificate will name.
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, challenge.encode(), ec.ECDSA(hashes.SHA256()))
            elif isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, challenge.encode(), padding.PKCS1v15(), hashes.SHA256())
            else:
                key.verify(signature, challenge.encode())
        except InvalidSignature as exc:
            raise HTTPError(400, "proofOfPossession does not verify against the public key") from exc
        return key


def _issuable(key: object) -> IssuablePublicKey:
    """Fulcio's key policy: ECDSA on NIST curves, RSA of at least 2048 bits, or Ed25519."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise HTTPError(400, f"unsupported EC curve {key.curve.name}")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise HTTPError(400, "RSA keys must be at least 2048 bits")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise HTTPError(400, f"unsupported public key type {type(key).__name__}")


def _fetch_json(url: str) -> Any:
    """GET a JSON document from a loopback URL, bypassing any configured proxy."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in _LOOPBACK_HOSTS:
        raise HTTPError(401, f"refusing to fetch issuer metadata from a non-loopback URL: {url}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:  # scheme and host checked above
            return json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise HTTPError(401, f"cannot fetch issuer metadata from {url}: {exc}") from exc


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
