"""A loopback OIDC issuer that mints identity tokens for keyless signing.

Keyless signing needs an identity token that Fulcio trusts. In CI that is
GitHub's token; here the stack plays the identity provider so tests can mint
exactly the tokens they need: email identities, GitHub-Actions-shaped
workflow identities, expired ones, ones for the wrong audience. Tokens are
real ES256 JWTs and the issuer publishes its keys at the standard discovery
endpoints, so Fulcio verifies them the way it verifies any provider's.

There is no interactive (authorization code) flow: tokens are minted in
process with :meth:`OIDCIssuer.mint`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any, TypedDict

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from chaingate_testing.sigstore._service import HTTPError, LoopbackService, Request, Response

#: The audience sigstore-python requests and Fulcio requires.
SIGSTORE_AUDIENCE = "sigstore"


class MintOptions(TypedDict, total=False):
    """The keyword options of :meth:`OIDCIssuer.mint`, so a wrapper can pass them on without restating them."""

    audience: str
    expires_in: int
    issued_at: int | None
    email: str | None
    extra_claims: Mapping[str, object] | None


JWTVerifyingKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_EC_ALGORITHMS: dict[str, tuple[type[ec.EllipticCurve], hashes.HashAlgorithm, int]] = {
    "ES256": (ec.SECP256R1, hashes.SHA256(), 32),
    "ES384": (ec.SECP384R1, hashes.SHA384(), 48),
}
_CURVE_NAMES = {"secp256r1": ("P-256", "ES256"), "secp384r1": ("P-384", "ES384")}
_JWK_CURVES: dict[str, type[ec.EllipticCurve]] = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1}


class JWTError(ValueError):
    """A token that is malformed or whose signature does not verify."""


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url, as JOSE requires."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url_encode`; tolerant of missing padding, strict otherwise."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JWTError(f"invalid base64url segment: {exc}") from exc


def _int_to_b64url(value: int, length: int) -> str:
    return b64url_encode(value.to_bytes(length, "big"))


def public_jwk(key: ec.EllipticCurvePublicKey, kid: str) -> dict[str, str]:
    """The JWK a relying party needs to verify tokens signed by ``key``."""
    crv, alg = _CURVE_NAMES[key.curve.name]
    size = (key.curve.key_size + 7) // 8
    numbers = key.public_numbers()
    return {
        "kty": "EC",
        "crv": crv,
        "x": _int_to_b64url(numbers.x, size),
        "y": _int_to_b64url(numbers.y, size),
        "kid": kid,
        "alg": alg,
        "use": "sig",
    }


def jwk_thumbprint(key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 thumbprint: a stable key id that changes whenever the key does."""
    jwk = public_jwk(key, "")
    members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return b64url_encode(hashlib.sha256(canonical).digest())


def jwk_to_public_key(jwk: Mapping[str, Any]) -> JWTVerifyingKey:
    """Load an EC or RSA JWK; anything else is refused rather than guessed at."""
    kty = jwk.get("kty")
    try:
        if kty == "EC":
            curve = _JWK_CURVES[str(jwk["crv"])]
            x = int.from_bytes(b64url_decode(str(jwk["x"])), "big")
            y = int.from_bytes(b64url_decode(str(jwk["y"])), "big")
            return ec.EllipticCurvePublicNumbers(x, y, curve()).public_key()
        if kty == "RSA":
            n = int.from_bytes(b64url_decode(str(jwk["n"])), "big")
            e = int.from_bytes(b64url_decode(str(jwk["e"])), "big")
            return rsa.RSAPublicNumbers(e, n).public_key()
    except (KeyError, ValueError) as exc:
        raise JWTError(f"unusable JWK: {exc}") from exc
    raise JWTError(f"unsupported JWK key type: {kty!r}")


def encode_jwt(claims: Mapping[str, object], key: ec.EllipticCurvePrivateKey, kid: str) -> str:
    """Sign ``claims`` as a compact JWS (ES256 or ES384, chosen by the key's curve).

    Public so a test can forge a token with the right shape but a key the
    issuer never published.
    """
    _, alg = _CURVE_NAMES[key.curve.name]
    _, digest, size = _EC_ALGORITHMS[alg]
    header = {"alg": alg, "typ": "JWT", "kid": kid}
    signing_input = (
        b64url_encode(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url_encode(json.dumps(dict(claims), separators=(",", ":")).encode())
    )
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(digest)))
    return signing_input + "." + b64url_encode(r.to_bytes(size, "big") + s.to_bytes(size, "big"))


def verify_jwt(token: str, keys: Mapping[str, JWTVerifyingKey]) -> dict[str, Any]:
    """Check a compact JWS against ``keys`` (by kid) and return its claims.

    Only the signature is checked here; what the claims must say (issuer,
    audience, lifetime) is the relying party's policy, so Fulcio checks that.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise JWTError("token is not a compact JWS (three dot-separated parts)")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JWTError(f"token header or claims are not JSON: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JWTError("token header and claims must be JSON objects")
    alg = header.get("alg")
    kid = header.get("kid")
    if isinstance(kid, str) and kid in keys:
        key = keys[kid]
    elif kid is None and len(keys) == 1:
        key = next(iter(keys.values()))
    else:
        raise JWTError(f"token is signed with an unknown key id {kid!r}")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    signature = b64url_decode(parts[2])
    try:
        if alg in _EC_ALGORITHMS and isinstance(key, ec.EllipticCurvePublicKey):
            curve, digest, size = _EC_ALGORITHMS[alg]
            if not isinstance(key.curve, curve) or len(signature) != 2 * size:
                raise JWTError(f"{alg} signature does not match the key")
            der = encode_dss_signature(
                int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            )
            key.verify(der, signing_input, ec.ECDSA(digest))
        elif alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise JWTError(f"unsupported or mismatched token algorithm {alg!r}")
    except InvalidSignature as exc:
        raise JWTError("token signature does not verify") from exc
    return claims


def github_actions_claims(
    *,
    repository: str = "octo-org/octo-app",
    ref: str = "refs/heads/main",
    sha: str = "a" * 40,
    workflow_path: str = ".github/workflows/release.yml",
    workflow: str = "release",
    event_name: str = "push",
    run_id: str = "4242424242",
    run_attempt: str = "1",
    runner_environment: str = "github-hosted",
    repository_id: str = "123456789",
    repository_owner_id: str = "987654321",
    repository_visibility: str = "public",
    actor: str = "octocat",
    job_workflow_ref: str | None = None,
) -> dict[str, object]:
    """The claims GitHub Actions puts in its OIDC token, for a push build.

    Pass the result as ``extra_claims`` to :meth:`OIDCIssuer.mint`, with a
    subject in GitHub's form, ``repo:<owner>/<name>:ref:<ref>``. A reusable
    workflow is modelled by passing its own ``job_workflow_ref``.
    """
    owner = repository.split("/", 1)[0]
    workflow_ref = f"{repository}/{workflow_path}@{ref}"
    return {
        "repository": repository,
        "repository_id": repository_id,
        "repository_owner": owner,
        "repository_owner_id": repository_owner_id,
        "repository_visibility": repository_visibility,
        "ref": ref,
        "ref_type": "tag" if ref.startswith("refs/tags/") else "branch",
        "sha": sha,
        "workflow": workflow,
        "workflow_ref": workflow_ref,
        "workflow_sha": sha,
        "job_workflow_ref": job_workflow_ref or workflow_ref,
        "job_workflow_sha": sha,
        "event_name": event_name,
        "run_id": run_id,
        "run_number": "7",
        "run_attempt": run_attempt,
        "runner_environment": runner_environment,
        "actor": actor,
        "actor_id": "1",
    }


class OIDCIssuer(LoopbackService):
    """The identity provider: publishes its discovery document and JWKS, mints tokens."""

    name = "oidc"

    def __init__(self) -> None:
        super().__init__()
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.kid = jwk_thumbprint(self._key.public_key())

    @property
    def issuer_url(self) -> str:
        """The ``iss`` of every minted token; Fulcio discovers the keys from it."""
        return self.url

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/jwks"

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [public_jwk(self._key.public_key(), self.kid)]}

    def discovery_document(self) -> dict[str, object]:
        return {
            "issuer": self.issuer_url,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": ["openid", "email"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "email", "email_verified"],
        }

    def mint(
        self,
        subject: str,
        *,
        audience: str = SIGSTORE_AUDIENCE,
        expires_in: int = 600,
        issued_at: int | None = None,
        email: str | None = None,
        extra_claims: Mapping[str, object] | None = None,
    ) -> str:
        """A signed identity token for ``subject``.

        ``issued_at`` (epoch seconds) in the past together with a short
        ``expires_in`` yields an expired token; ``email`` adds a verified
        email claim, which Fulcio turns into an email SAN. ``extra_claims`` are
        applied last, so they can also override the standard claims.
        """
        iat = int(time.time()) if issued_at is None else issued_at
        claims: dict[str, object] = {
            "iss": self.issuer_url,
            "sub": subject,
            "aud": audience,
            "iat": iat,
            "nbf": iat,
            "exp": iat + expires_in,
            "jti": secrets.token_hex(16),
        }
        if email is not None:
            claims["email"] = email
            claims["email_verified"] = True
        if extra_claims:
            claims.update(extra_claims)
        return encode_jwt(claims, self._key, self.kid)

    def handle(self, request: Request) -> Response:
        if request.method != "GET":
            raise HTTPError(405, f"{request.method} is not supported")
        if request.path == "/.well-known/openid-configuration":
            return Response.json(200, self.discovery_document())
        if request.path == "/jwks":
            return Response.json(200, self.jwks())
        raise HTTPError(404, f"no such endpoint: {request.path}")
