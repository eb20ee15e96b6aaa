"""A thin OCI distribution client over ``requests``.

Thin on purpose: every request goes through :meth:`RegistryClient.request`,
which owns the three things a registry client gets wrong most often —
authentication driven by ``WWW-Authenticate`` (with per-scope token caching and
scope widening), bounded retries that honour ``Retry-After``, and bounded reads.
Everything else is a few lines of URL building on top, so the behaviour is the
same for every endpoint. Digest checks of what comes back live in the callers
that know which digest they asked for.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from chaingate.oci import media
from chaingate.oci.bodies import DecodedRaw, SizedBody, error_detail
from chaingate.oci.credentials import Credentials, CredentialStore
from chaingate.oci.digest import VerifiedReader, sha256_digest, verify_bytes
from chaingate.oci.errors import (
    AuthError,
    DigestMismatch,
    NotFound,
    OCIError,
    RegistryUnavailable,
    SizeLimitExceeded,
)
from chaingate.oci.interface import Descriptor, Progress, no_progress
from chaingate.oci.reference import is_loopback
from chaingate.oci.registries import Registries as Registries
from chaingate.oci.registries import RegistryOptions as RegistryOptions

log = logging.getLogger(__name__)

#: Besides 429/502/503/504, 408 and 500 are transient too: distribution's filesystem driver answers 500
#: while a concurrent writer rewrites a tag link (seen with parallel attaches), as go-containerregistry notes.
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_MAX_TOKEN_RESPONSE = 1024 * 1024
_MAX_PAGES = 100
_MANIFEST_ACCEPT = ", ".join(
    [media.OCI_INDEX, media.OCI_MANIFEST, media.DOCKER_MANIFEST_LIST, media.DOCKER_MANIFEST]
)


class Refused(OCIError):
    """The registry's final answer to one request: its status and its own words, already neutralised.

    Kept apart from the message so a caller can tell what kind of refusal it
    was (an immutable tag, a permission) without parsing our prose.
    """

    def __init__(self, message: str, *, status: int, detail: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.detail = detail


class RefusedAuth(AuthError, Refused):
    """A final 401/403: an authentication or permission failure, with the registry's answer."""


@dataclass
class _Token:
    value: str = field(repr=False)
    expires_at: float


@dataclass(frozen=True)
class _Challenge:
    scheme: str
    params: Mapping[str, str]


_CHALLENGE_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> _Challenge | None:
    """Parse the first challenge of a ``WWW-Authenticate`` header (registries send one)."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {
        m.group(1).lower(): (m.group(2).replace('\\"', '"') if m.group(2) is not None else m.group(3))
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return _Challenge(scheme.lower(), params)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RegistryClient:
    """The distribution API of one registry host, with its credentials and token cache."""

    def __init__(self, host: str, options: RegistryOptions) -> None:
        self.host = host
        self.options = options
        plain = is_loopback(host) or host in options.insecure_registries
        self.base_url = f"{'http' if plain else 'https'}://{host}"
        self._session = requests.Session()
        self._session.max_redirects = 5
        self._session.headers["User-Agent"] = options.user_agent
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._bearer: _Challenge | None = None
        self._basic = False
        self._creds_loaded = False
        self._creds: Credentials | None = None

    def _timeouts(self, doing: str) -> tuple[float, float]:
        """(connect, read) timeouts for one request, clamped to the command's deadline if it has one."""
        connect, read = self.options.connect_timeout, self.options.read_timeout
        deadline = self.options.deadline
        if deadline is None:
            return connect, read
        return deadline.clamp(connect, doing), deadline.clamp(read, doing)

    def _body(self, resp: requests.Response, doing: str) -> DecodedRaw:
        return DecodedRaw(resp, self.options.deadline, doing, self.options.read_timeout)

    def _passed(self, doing: str) -> None:
        """After a failed request: when the deadline is why, say so instead of blaming the network."""
        if self.options.deadline is not None:
            self.options.deadline.check(doing)

    # -- authentication -------------------------------------------------------------------------

    def _credentials(self) -> Credentials | None:
        if not self._creds_loaded:
            store = self.options.credentials or CredentialStore()
            self._creds = store.lookup(self.host)
            self._creds_loaded = True
        return self._creds

    def _auth_header(self, scopes: tuple[str, ...]) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get(scopes)
            if token and token.expires_at > time.time() + 5:
                return {"Authorization": f"Bearer {token.value}"}
            bearer, basic = self._bearer, self._basic
        if bearer is not None:
            return {"Authorization": f"Bearer {self._fetch_token(bearer, scopes)}"}
        if basic:
            creds = self._credentials()
            if creds and creds.username is not None and creds.password is not None:
                raw = f"{creds.username}:{creds.password}".encode()
                return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _fetch_token(self, challenge: _Challenge, scopes: tuple[str, ...]) -> str:
        realm = challenge.params.get("realm")
        if not realm or urlsplit(realm).scheme not in ("http", "https"):
            raise AuthError(f"{self.host}: the registry's Bearer challenge has no usable realm")
        if (
            urlsplit(realm).scheme == "http"
            and not is_loopback(urlsplit(realm).netloc)
            and urlsplit(realm).netloc not in self.options.insecure_registries
        ):
            raise AuthError(f"{self.host}: refusing to send credentials to a plain-HTTP token realm {realm}")
        service = challenge.params.get("service")
        creds = self._credentials()
        try:
            if creds and creds.registry_token:
                value, ttl = creds.registry_token, 60.0
            elif creds and creds.identity_token:
                value, ttl = self._oauth_refresh(realm, service, scopes, creds.identity_token)
            else:
                value, ttl = self._token_get(realm, service, scopes, creds)
        except requests.RequestException as e:
            self._passed(f"requesting a token from {realm}")
            raise RegistryUnavailable(
                f"{self.host}: token service {realm} unreachable ({type(e).__name__})"
            ) from None
        with self._lock:
            self._tokens[scopes] = _Token(value, time.time() + ttl)
        return value

    def _token_get(
        self, realm: str, service: str | None, scopes: tuple[str, ...], creds: Credentials | None
    ) -> tuple[str, float]:
        params: list[tuple[str, str]] = []
        if service:
            params.append(("service", service))
        params.extend(("scope", s) for s in scopes)
        auth = None
        if creds and creds.username is not None and creds.password is not None:
            auth = (creds.username, creds.password)
            params.append(("account", creds.username))
        resp = self._session.get(
            realm,
            params=params,
            auth=auth,
            timeout=self._timeouts(f"requesting a token from {realm}"),
            stream=True,
        )
        return self._token_from(resp, realm)

    def _oauth_refresh(
        self, realm: str, service: str | None, scopes: tuple[str, ...], refresh: str
    ) -> tuple[str, float]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": service or "",
            "scope": " ".join(scopes),
            "client_id": "chaingate",
        }
        resp = self._session.post(
            realm, data=form, timeout=self._timeouts(f"requesting a token from {realm}"), stream=True
        )
        return self._token_from(resp, realm)

    def _token_from(self, resp: requests.Response, realm: str) -> tuple[str, float]:
        with resp:
            if resp.status_code in (401, 403):
                raise AuthError(
                    f"{self.host}: the token service refused the credentials ({resp.status_code})",
                    hint="check `docker login` / the docker config.json or $REGISTRY_AUTH_FILE for this registry",
                )
            if resp.status_code != 200:
                raise AuthError(f"{self.host}: the token service {realm} answered {resp.status_code}")
            raw = self._read_limited(resp, _MAX_TOKEN_RESPONSE, f"token response from {realm}")
        try:
            doc = json.loads(raw)
        except ValueError:
            raise AuthError(f"{self.host}: the token service returned invalid JSON") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(f"{self.host}: the token service returned no token")
        expires = doc.get("expires_in", 60)
        ttl = float(expires) if isinstance(expires, int | float) and expires > 0 else 60.0
        return token, ttl

    def _on_challenge(self, resp: requests.Response, scopes: tuple[str, ...], what: str) -> tuple[str, ...]:
        """Adopt the scheme a 401/403 asks for; returns the (possibly widened) scopes to retry with.

        A 403 without a challenge, from a registry using tokens, gets one more
        try with a fresh token for the same scopes; from any other registry it is
        final. Raises when nothing can make the request pass.
        """
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            if resp.status_code == 403 and self._bearer is not None:
                with self._lock:
                    self._tokens.pop(scopes, None)
                return scopes
            detail = error_detail(resp, self.options.deadline)
            raise RefusedAuth(
                f"{self.host}: {what} denied ({resp.status_code})" + (f": {detail}" if detail else ""),
                status=resp.status_code,
                detail=detail,
                hint="check that the credentials grant " + ", ".join(scopes),
            )
        if challenge.scheme == "basic":
            creds = self._credentials()
            if not creds or creds.username is None or creds.password is None:
                raise AuthError(
                    f"{self.host}: the registry requires credentials and none were found",
                    hint="log in with `docker login`, or set DOCKER_CONFIG / REGISTRY_AUTH_FILE",
                )
            if self._basic:
                raise AuthError(f"{self.host}: the registry refused the credentials from {creds.source}")
            self._basic = True
            return scopes
        if challenge.scheme == "bearer":
            wanted = set(scopes)
            extra = challenge.params.get("scope")
            if extra:
                wanted.update(s for s in extra.split(" ") if s)
            widened = tuple(sorted(wanted))
            with self._lock:
                self._bearer = challenge
                self._tokens.pop(scopes, None)
                self._tokens.pop(widened, None)
            return widened
        raise AuthError(f"{self.host}: unsupported authentication scheme {challenge.scheme!r}")

    # -- transport --------------------------------------------------------------------------------

    def url(self, path: str, query: Mapping[str, str] | Sequence[tuple[str, str]] | None = None) -> str:
        out = f"{self.base_url}{path}"
        if query:
            out += "?" + urlencode(query)
        return out

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None = None,
        body: bytes | Callable[[], Any] | SizedBody | None = None,
        ok: Sequence[int] = (200,),
        not_found: str | None = None,
    ) -> requests.Response:
        """Send one request with auth, bounded retries and a timeout; return a response with an ``ok`` status.

        ``body`` is bytes, or a callable returning a fresh body per attempt
        (streams cannot be replayed). The response is streamed: callers read it
        with a bound and close it. 404 raises :class:`NotFound` with
        ``not_found`` as the message when given.
        """
        deadline = time.monotonic() + self.options.retry_budget
        attempt = 0
        auth_rounds = 0
        what = f"{method} {urlsplit(url).path}"
        # A streamed body is consumed by the first attempt: never resend it, let the caller restart.
        replayable = body is None or isinstance(body, bytes) or callable(body)
        while True:
            attempt += 1
            hdrs = dict(headers or {})
            hdrs.update(self._auth_header(scopes))
            data = body() if callable(body) else body
            try:
                resp = self._session.request(
                    method,
                    url,
                    headers=hdrs,
                    data=data,
                    stream=True,
                    timeout=self._timeouts(f"requesting {what}"),
                    allow_redirects=method in ("GET", "HEAD"),
                )
            except (requests.ConnectionError, requests.Timeout) as e:
                self._passed(f"requesting {what}")
                if not replayable or attempt >= self.options.max_attempts or time.monotonic() >= deadline:
                    raise RegistryUnavailable(
                        f"{self.host}: {what} failed after {attempt} attempts ({type(e).__name__})",
                        hint="is the registry up and reachable? (--timeout and retries are bounded)",
                    ) from None
                self._wait(attempt, None, deadline, what)
                continue
            except requests.RequestException as e:
                self._passed(f"requesting {what}")
                raise OCIError(f"{self.host}: {what} failed: {type(e).__name__}") from None
            status = resp.status_code
            if status in ok:
                return resp
            if status in (401, 403):
                if auth_rounds >= 3:
                    detail = error_detail(resp, self.options.deadline)
                    resp.close()
                    raise RefusedAuth(
                        f"{self.host}: {what} still unauthorized ({status}) after {auth_rounds} authentication "
                        "rounds" + (f": {detail}" if detail else ""),
                        status=status,
                        detail=detail,
                        hint="check the credentials and that they grant " + ", ".join(scopes),
                    )
                scopes = self._on_challenge(resp, scopes, what)
                resp.close()
                auth_rounds += 1
                continue
            if status in _RETRY_STATUS:
                retry_after = _retry_after(resp.headers.get("Retry-After"))
                resp.close()
                if not replayable:
                    raise RegistryUnavailable(f"{self.host}: {what} answered {status} while streaming a body")
                if attempt >= self.options.max_attempts:
                    raise RegistryUnavailable(
                        f"{self.host}: {what} answered {status} {attempt} times; giving up"
                    )
                self._wait(attempt, retry_after, deadline, what)
                continue
            if status == 404:
                detail = error_detail(resp, self.options.deadline)
                resp.close()
                raise NotFound(
                    not_found or f"{self.host}: {what}: not found" + (f" ({detail})" if detail else "")
                )
            detail = error_detail(resp, self.options.deadline)
            resp.close()
            raise Refused(
                f"{self.host}: {what} answered {status}" + (f": {detail}" if detail else ""),
                status=status,
                detail=detail,
            )

    def _wait(self, attempt: int, retry_after: float | None, deadline: float, what: str) -> None:
        backoff = min(self.options.max_backoff, self.options.backoff_base * (2 ** (attempt - 1)))
        delay = random.uniform(0, backoff)  # full jitter: concurrent pipeline steps do not retry in lockstep
        if retry_after is not None:
            delay = max(delay, retry_after)
        remaining = deadline - time.monotonic()
        whole = self.options.deadline
        if whole is not None and delay >= whole.left():
            raise whole.error(f"waiting to retry {what}")
        if delay > remaining:
            raise RegistryUnavailable(
                f"{self.host}: {what}: retry budget of {self.options.retry_budget:.0f}s exhausted"
                + (f" (server asked to wait {retry_after:.0f}s)" if retry_after is not None else "")
            )
        log.debug("%s: retrying %s in %.2fs (attempt %d)", self.host, what, delay, attempt)
        self.options.sleep(delay)

    def _read_limited(self, resp: requests.Response, limit: int, what: str) -> bytes:
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            resp.close()
            raise SizeLimitExceeded(f"{what}: {declared} bytes exceeds the limit of {limit}")
        data = self._body(resp, f"reading {what}").read(limit + 1)
        if len(data) > limit:
            resp.close()
            raise SizeLimitExceeded(f"{what}: larger than the limit of {limit} bytes")
        return data

    # -- distribution API ---------------------------------------------------------------------------

    @staticmethod
    def scope(repository: str, push: bool = False) -> str:
        return f"repository:{repository}:{'pull,push' if push else 'pull'}"

    def _manifest_request(self, method: str, repository: str, reference: str) -> requests.Response:
        """HEAD and GET of a manifest accept the same media types and say the same when it is missing."""
        return self.request(
            method,
            self.url(f"/v2/{repository}/manifests/{reference}"),
            scopes=(self.scope(repository),),
            headers={"Accept": _MANIFEST_ACCEPT},
            not_found=f"{self.host}/{repository}: manifest {reference} not found",
        )

    def head_manifest(self, repository: str, reference: str) -> Descriptor:
        """Resolve a tag or digest with HEAD (no body, so it does not count against pull limits)."""
        resp = self._manifest_request("HEAD", repository, reference)
        with resp:
            digest = resp.headers.get("Docker-Content-Digest", "")
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            length = resp.headers.get("Content-Length", "")
        if not digest:
            # Some registries omit the header on HEAD; GET and hash instead.
            raw, mt = self.get_manifest_bytes(repository, reference)
            return Descriptor(mt, sha256_digest(raw), len(raw))
        from chaingate.oci.digest import validate_digest

        validate_digest(digest, where=f"{self.host}/{repository}:{reference} Docker-Content-Digest")
        size = int(length) if length.isdigit() else 0
        return Descriptor(media_type or media.OCI_MANIFEST, digest, size)

    def get_manifest_bytes(self, repository: str, reference: str) -> tuple[bytes, str]:
        """The raw bytes and media type of a manifest, bounded; the caller checks the digest."""
        resp = self._manifest_request("GET", repository, reference)
        with resp:
            raw = self._read_limited(resp, media.MAX_MANIFEST_BYTES, f"{self.host}/{repository}@{reference}")
            header_digest = resp.headers.get("Docker-Content-Digest")
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if header_digest and header_digest.startswith("sha256:") and not reference.startswith("sha"):
            verify_bytes(raw, header_digest, what=f"manifest {self.host}/{repository}:{reference}")
        return raw, media_type

    def open_blob(self, repository: str, descriptor: Descriptor) -> VerifiedReader:
        resp = self.request(
            "GET",
            self.url(f"/v2/{repository}/blobs/{descriptor.digest}"),
            scopes=(self.scope(repository),),
            not_found=f"{self.host}/{repository}: blob {descriptor.digest} not found",
        )
        declared = resp.headers.get("Content-Length")
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        # With a Content-Encoding, Content-Length counts encoded bytes; the VerifiedReader still bounds the rest.
        if declared and declared.isdigit() and not encoded and int(declared) != descriptor.size:
            resp.close()
            exc = SizeLimitExceeded if int(declared) > descriptor.size else DigestMismatch
            raise exc(
                f"blob {descriptor.digest} in {self.host}/{repository}: server sends {declared} bytes, "
                f"the descriptor says {descriptor.size}"
            )
        return VerifiedReader(
            self._body(resp, f"reading blob {descriptor.digest}"),  # type: ignore[arg-type]
            descriptor.digest,
            descriptor.size,
            what=f"blob {descriptor.digest} in {self.host}/{repository}",
        )

    def blob_exists(self, repository: str, descriptor: Descriptor, *, push: bool = False) -> bool:
        try:
            resp = self.request(
                "HEAD",
                self.url(f"/v2/{repository}/blobs/{descriptor.digest}"),
                scopes=(self.scope(repository, push),),
            )
        except NotFound:
            return False
        with resp:
            length = resp.headers.get("Content-Length", "")
        return not length.isdigit() or int(length) == descriptor.size

    def mount_blob(self, repository: str, descriptor: Descriptor, from_repository: str) -> bool:
        """Cross-repository mount; False when the registry starts a plain upload instead."""
        resp = self.request(
            "POST",
            self.url(
                f"/v2/{repository}/blobs/uploads/", {"mount": descriptor.digest, "from": from_repository}
            ),
            scopes=tuple(sorted((self.scope(repository, True), self.scope(from_repository)))),
            ok=(201, 202),
        )
        with resp:
            mounted = resp.status_code == 201
            location = resp.headers.get("Location")
        if not mounted and location:
            # Cancel the upload session the registry opened instead of mounting; best effort.
            try:
                self.request(
                    "DELETE",
                    urljoin(self.base_url + "/", location),
                    scopes=(self.scope(repository, True),),
                    ok=(200, 202, 204, 404),
                ).close()
            except OCIError as e:
                log.debug("could not cancel upload session: %s", e)
        return mounted

    def upload_blob(
        self,
        repository: str,
        descriptor: Descriptor,
        opener: Callable[[], IO[bytes]],
        *,
        progress: Progress = no_progress,
    ) -> None:
        """Upload a blob monolithically or in chunks; a failed attempt restarts from ``opener()``."""
        what = f"blob {descriptor.digest[:19]}"
        for attempt in range(1, 4):
            try:
                location = self._start_upload(repository)
                if descriptor.size <= self.options.monolithic_limit:
                    with opener() as stream:
                        resp = self._put_blob(
                            location,
                            repository,
                            descriptor,
                            {
                                "Content-Type": "application/octet-stream",
                                "Content-Length": str(descriptor.size),
                            },
                            SizedBody(stream, descriptor.size, what, progress),
                        )
                else:
                    with opener() as stream:
                        location = self._patch_chunks(
                            location, repository, descriptor, stream, what, progress
                        )
                    resp = self._put_blob(location, repository, descriptor, {"Content-Length": "0"}, b"")
                self._finish_upload(repository, descriptor, resp)
                return
            except RegistryUnavailable:
                if attempt == 3:
                    raise
                log.debug("retrying upload of %s from the start", descriptor.digest)

    def _start_upload(self, repository: str) -> str:
        resp = self.request(
            "POST",
            self.url(f"/v2/{repository}/blobs/uploads/"),
            scopes=(self.scope(repository, True),),
            ok=(202,),
        )
        with resp:
            location = resp.headers.get("Location")
        if not location:
            raise OCIError(f"{self.host}/{repository}: upload started without a Location header")
        return urljoin(self.base_url + "/", location)

    def _patch_chunks(
        self,
        location: str,
        repository: str,
        descriptor: Descriptor,
        stream: IO[bytes],
        what: str,
        progress: Progress,
    ) -> str:
        """Send ``stream`` in ``chunk_size`` PATCHes; returns where the closing PUT goes."""
        offset = 0
        while True:
            chunk = stream.read(self.options.chunk_size)
            if not chunk:
                return location
            resp = self.request(
                "PATCH",
                location,
                scopes=(self.scope(repository, True),),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                    "Content-Length": str(len(chunk)),
                },
                body=chunk,
                ok=(202,),
            )
            with resp:
                next_location = resp.headers.get("Location")
            offset += len(chunk)
            progress(what, offset, descriptor.size)
            if next_location:
                location = urljoin(self.base_url + "/", next_location)

    def _put_blob(
        self,
        location: str,
        repository: str,
        descriptor: Descriptor,
        headers: Mapping[str, str],
        body: bytes | SizedBody,
    ) -> requests.Response:
        """The PUT that closes an upload, whole blob or empty after chunks: it names the digest."""
        return self.request(
            "PUT",
            self._with_query(location, digest=descriptor.digest),
            scopes=(self.scope(repository, True),),
            headers=headers,
            body=body,
            ok=(201,),
        )

    @staticmethod
    def _with_query(location: str, **params: str) -> str:
        return location + ("&" if "?" in location else "?") + urlencode(params)

    def _finish_upload(self, repository: str, descriptor: Descriptor, resp: requests.Response) -> None:
        with resp:
            got = resp.headers.get("Docker-Content-Digest")
        if got and got != descriptor.digest:
            raise DigestMismatch(
                f"{self.host}/{repository}: registry stored blob as {got}, expected {descriptor.digest}"
            )

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str | None:
        """PUT a manifest by tag or digest; returns the ``OCI-Subject`` header (referrers API support)."""
        resp = self.request(
            "PUT",
            self.url(f"/v2/{repository}/manifests/{reference}"),
            scopes=(self.scope(repository, True),),
            headers={"Content-Type": media_type},
            body=raw,
            ok=(201, 200),
        )
        with resp:
            got = resp.headers.get("Docker-Content-Digest")
            subject = resp.headers.get("OCI-Subject")
        expected = sha256_digest(raw)
        if got and got.startswith("sha256:") and got != expected:
            raise DigestMismatch(
                f"{self.host}/{repository}: registry stored manifest as {got}, expected {expected}"
            )
        return subject

    def referrers(self, repository: str, digest: str, artifact_type: str | None = None) -> list[Any] | None:
        """The referrers API listing (all pages), or None when the registry does not implement it."""
        query = {"artifactType": artifact_type} if artifact_type else None
        url: str | None = self.url(f"/v2/{repository}/referrers/{digest}", query)
        entries: list[Any] = []
        pages = 0
        while url and pages < _MAX_PAGES:
            pages += 1
            try:
                resp = self.request(
                    "GET",
                    url,
                    scopes=(self.scope(repository),),
                    headers={"Accept": media.OCI_INDEX},
                    ok=(200, 405),
                )
            except NotFound:
                return None
            with resp:
                if resp.status_code == 405:
                    return None
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
                raw = self._read_limited(resp, media.MAX_MANIFEST_BYTES, f"referrers of {digest}")
                link = resp.headers.get("Link")
            if ctype and ctype != media.OCI_INDEX:
                return None  # an HTML 200 from a proxy or a registry without the API
            try:
                doc = json.loads(raw)
            except ValueError:
                raise OCIError(f"{self.host}/{repository}: referrers of {digest}: invalid JSON") from None
            manifests = doc.get("manifests") if isinstance(doc, dict) else None
            if not isinstance(manifests, list):
                raise OCIError(f"{self.host}/{repository}: referrers of {digest}: no manifests array")
            entries.extend(manifests)
            url = self._next_link(link)
        return entries

    def _next_link(self, link: str | None) -> str | None:
        if not link:
            return None
        m = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link)
        if not m:
            return None
        nxt: str = urljoin(self.base_url + "/", m.group(1))
        if urlsplit(nxt).netloc != urlsplit(self.base_url).netloc:
            raise OCIError(f"{self.host}: pagination link points to another host: {urlsplit(nxt).netloc}")
        return nxt

    def list_tags(self, repository: str) -> list[str]:
        url: str | None = self.url(f"/v2/{repository}/tags/list", {"n": "1000"})
        tags: list[str] = []
        pages = 0
        while url and pages < _MAX_PAGES:
            pages += 1
            resp = self.request(
                "GET",
                url,
                scopes=(self.scope(repository),),
                not_found=f"{self.host}/{repository}: repository not found",
            )
            with resp:
                raw = self._read_limited(resp, media.MAX_MANIFEST_BYTES, f"tags of {repository}")
                link = resp.headers.get("Link")
            try:
                doc = json.loads(raw)
            except ValueError:
                raise OCIError(f"{self.host}/{repository}: tags list is not JSON") from None
            page = doc.get("tags") if isinstance(doc, dict) else None
            if page:
                if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                    raise OCIError(f"{self.host}/{repository}: tags list is malformed")
                tags.extend(page)
            url = self._next_link(link)
        return tags

    def close(self) -> None:
        self._session.close()
