"""OIDC identity tokens for keyless signing: where they come from and whether they can work.

Sources, first match wins: ``--identity-token``, ``--identity-token-file``,
``$SIGSTORE_ID_TOKEN``, then GitHub Actions' ambient token service
(``$ACTIONS_ID_TOKEN_REQUEST_URL`` + ``$ACTIONS_ID_TOKEN_REQUEST_TOKEN``,
audience ``sigstore``).

A token is checked here, offline, before anything touches Fulcio, Rekor or a
registry: a malformed, expired or wrong-audience token would only fail at
Fulcio after the image had been resolved, and an error that early is cheap
and leaves nothing behind. The checks are exactly those Fulcio will make on
the claims (not the signature: only the issuer's keys can verify that).

A token is a bearer credential. It never appears in a message, a log record
or a ``repr``; one fetched from GitHub is also registered with the runner's
``::add-mask::`` command so a later step echoing it shows ``***``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from chaingate import safejson
from chaingate.signing.interface import IdentityTokenError
from chaingate.timeutil import format_epoch
from chaingate.userfiles import read_user_file

log = logging.getLogger(__name__)

SIGSTORE_AUDIENCE = "sigstore"
ENV_TOKEN = "SIGSTORE_ID_TOKEN"  # noqa: S105 — a variable name, not a secret
ENV_GITHUB_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
ENV_GITHUB_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105 — a variable name
#: A JWT is a few kilobytes; a file or response much larger is not one.
MAX_TOKEN_BYTES = 64 * 1024
#: Clock skew tolerated on ``nbf``/``iat`` only; expiry is not stretched.
CLOCK_SKEW = 5
GITHUB_TIMEOUT = (10.0, 30.0)
GITHUB_ATTEMPTS = 3
#: The last second of the year 9999: the largest ``exp``/``iat``/``nbf`` a date can show.
MAX_EPOCH_SECONDS = 253_402_300_799


@dataclass(frozen=True)
class IdentityToken:
    """A checked token and its (unverified) claims; ``raw`` is the secret and is never shown."""

    raw: str = field(repr=False)
    source: str
    claims: Mapping[str, Any] = field(repr=False, hash=False)

    @property
    def issuer(self) -> str:
        return str(self.claims.get("iss", ""))

    @property
    def subject(self) -> str:
        return str(self.claims.get("sub", ""))

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(float(self.claims["exp"]), UTC)


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def decode_claims(raw: str, source: str) -> dict[str, Any]:
    """The claims of a compact JWS, without verifying it; errors name the source, never the token."""
    parts = raw.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise IdentityTokenError(
            f"identity token from {source} is malformed: not a JWT (three dot-separated parts)"
        )
    try:
        header = safejson.loads(_b64url(parts[0]))
        # NaN and 1e400 stay numbers here so that the lifetime check refuses them by claim name.
        claims = safejson.loads(_b64url(parts[1]), finite=False)
    except (binascii.Error, ValueError):
        raise IdentityTokenError(
            f"identity token from {source} is malformed: its header or claims are not base64url JSON"
        ) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise IdentityTokenError(
            f"identity token from {source} is malformed: header and claims must be objects"
        )
    return claims


def _number(claims: Mapping[str, Any], name: str, source: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IdentityTokenError(
            f"identity token from {source} is malformed: claim {name!r} is missing or not a number"
        )
    # A NaN compares false with everything, so it would pass every lifetime check; 1e300 or
    # a 400-digit integer cannot become a date. JWT times are seconds since 1970 (RFC 7519).
    if not 0 <= value <= MAX_EPOCH_SECONDS:
        raise IdentityTokenError(
            f"identity token from {source} is malformed: claim {name!r} is not a time "
            f"(seconds since 1970, at most {MAX_EPOCH_SECONDS})"
        )
    return float(value)


def check_token(raw: str, source: str, *, now: float | None = None) -> IdentityToken:
    """A token Fulcio can accept as far as its claims show: JWT shape, iss/sub, ``sigstore`` audience, lifetime."""
    raw = raw.strip()
    if not raw:
        raise IdentityTokenError(f"identity token from {source} is empty")
    if len(raw) > MAX_TOKEN_BYTES:
        raise IdentityTokenError(f"identity token from {source} is larger than {MAX_TOKEN_BYTES} bytes")
    claims = decode_claims(raw, source)
    for name in ("iss", "sub"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise IdentityTokenError(f"identity token from {source} is malformed: claim {name!r} is missing")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if SIGSTORE_AUDIENCE not in audiences:
        shown = ", ".join(repr(a) for a in audiences if isinstance(a, str)) or "none"
        raise IdentityTokenError(
            f"identity token from {source} is for audience {shown}, not {SIGSTORE_AUDIENCE!r}",
            hint="request the token with audience 'sigstore' (GitHub: core.getIDToken('sigstore'))",
        )
    now = time.time() if now is None else now
    expires = _number(claims, "exp", source, required=True)
    issued = _number(claims, "iat", source, required=True)
    not_before = _number(claims, "nbf", source, required=False)
    assert expires is not None and issued is not None
    if expires <= now:
        raise IdentityTokenError(
            f"identity token from {source} expired at {format_epoch(expires)}",
            hint="identity tokens live minutes: fetch a fresh one right before signing",
        )
    if not_before is not None and not_before > now + CLOCK_SKEW:
        raise IdentityTokenError(
            f"identity token from {source} is not valid before {format_epoch(not_before)}"
        )
    if issued > now + CLOCK_SKEW:
        raise IdentityTokenError(
            f"identity token from {source} claims to be issued in the future ({format_epoch(issued)})"
        )
    return IdentityToken(raw, source, claims)


def _read_file(path: Path) -> str:
    data = read_user_file(
        path, MAX_TOKEN_BYTES, f"--identity-token-file {path}", IdentityTokenError, "; not a token"
    )
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise IdentityTokenError(f"--identity-token-file {path}: not ASCII text; not a token") from None


def mask_in_github_logs(raw: str, env: Mapping[str, str], stream: TextIO | None = None) -> None:
    """Ask the Actions runner to mask ``raw`` in every later log line (it reads commands on stderr too).

    stderr, not stdout: stdout may be a JSON document a workflow redirects to a file.
    """
    if env.get("GITHUB_ACTIONS") == "true":
        out = stream or sys.stderr
        out.write(f"::add-mask::{raw}\n")
        out.flush()


Fetch = Callable[[str, Mapping[str, str]], tuple[int, bytes]]


def _requests_fetch(url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
    import requests

    with requests.get(
        url, headers=dict(headers), timeout=GITHUB_TIMEOUT, stream=True, allow_redirects=False
    ) as resp:
        body = resp.raw.read(MAX_TOKEN_BYTES + 1, decode_content=True)
        return resp.status_code, body


def github_ambient_token(
    env: Mapping[str, str], *, fetch: Fetch | None = None, sleep: Callable[[float], None] = time.sleep
) -> str:
    """Request a ``sigstore``-audience token from the Actions token service (bounded: size, time, attempts)."""
    url, bearer = env.get(ENV_GITHUB_URL, ""), env.get(ENV_GITHUB_TOKEN, "")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise IdentityTokenError(f"${ENV_GITHUB_URL} is not an http(s) URL")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "audience"]
    query.append(("audience", SIGSTORE_AUDIENCE))
    request_url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    headers = {"Authorization": f"bearer {bearer}", "Accept": "application/json; api-version=2.0"}
    get = fetch or _requests_fetch
    where = f"GitHub Actions token service {parts.netloc}"
    last = ""
    for attempt in range(1, GITHUB_ATTEMPTS + 1):
        try:
            status, body = get(request_url, headers)
        except Exception as e:  # any transport failure is retried, then reported by type only
            status, body, last = 0, b"", type(e).__name__
        if status == 200:
            if len(body) > MAX_TOKEN_BYTES:
                raise IdentityTokenError(f"{where}: response larger than {MAX_TOKEN_BYTES} bytes")
            try:
                value = safejson.loads(body).get("value")
            except (ValueError, AttributeError):
                value = None
            if not isinstance(value, str) or not value:
                raise IdentityTokenError(f"{where}: response has no token 'value'")
            return value
        if status:
            last = f"HTTP {status}"
        if status and status < 500 and status != 429:
            break
        if attempt < GITHUB_ATTEMPTS:
            sleep(min(2.0 ** (attempt - 1), 5.0))
    raise IdentityTokenError(
        f"{where}: could not get an identity token ({last})",
        hint="the job needs `permissions: id-token: write`",
    )


def resolve_token(
    *,
    token: str | None = None,
    token_file: Path | None = None,
    env: Mapping[str, str],
    fetch: Fetch | None = None,
    mask_stream: TextIO | None = None,
    now: float | None = None,
) -> IdentityToken:
    """The first available identity token, checked; an :class:`IdentityTokenError` (exit 2) otherwise."""
    if token is not None:
        return check_token(token, "--identity-token", now=now)
    if token_file is not None:
        return check_token(_read_file(token_file), f"--identity-token-file {token_file}", now=now)
    if env.get(ENV_TOKEN, "").strip():
        return check_token(env[ENV_TOKEN], f"${ENV_TOKEN}", now=now)
    if env.get(ENV_GITHUB_URL) and env.get(ENV_GITHUB_TOKEN):
        raw = github_ambient_token(env, fetch=fetch)
        mask_in_github_logs(raw, env, mask_stream)
        log.debug("using an identity token from the GitHub Actions token service")
        return check_token(raw, "the GitHub Actions token service", now=now)
    hint = "pass --identity-token or --identity-token-file, or set $SIGSTORE_ID_TOKEN"
    if env.get("GITHUB_ACTIONS") == "true":
        hint = "grant the job `permissions: id-token: write` so GitHub provides a token, or " + hint
    raise IdentityTokenError("no identity token for keyless signing", hint=hint)
