"""Debian's real ``docker-registry`` (distribution 2.8) on loopback, in each auth mode it supports.

An OCI client that has only ever met a mock registry has only met its author's
reading of the spec. Distribution is what most registries in the wild are, or
imitate, so the tests and the demo run the real binary: anonymous, behind
htpasswd Basic auth, and behind docker "token" auth. Token auth needs an
authorization server, so a small one lives here too; it signs the JWTs exactly
the way distribution 2.8 verifies them (ES256, libtrust key ID in ``kid``, a
self-signed certificate as the trusted root), which is the part a client can
get subtly wrong and a mock cannot catch.

Everything binds to 127.0.0.1 and nothing here is meant to be secure beyond
never writing a password or a token to a log.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import datetime as dt
import fnmatch
import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, get_args
from urllib.parse import parse_qs, urlsplit

import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

__all__ = [
    "DEFAULT_USERS",
    "Access",
    "DockerRegistry",
    "IssuedToken",
    "Mode",
    "TokenServer",
    "libtrust_key_id",
]

Mode = Literal["anonymous", "htpasswd", "token"]

#: Test-only credentials; the demo prints them, so they must never be real ones.
DEFAULT_USERS: Mapping[str, str] = {"alice": "wonderland-secret", "bob": "builder-secret"}

_LOG = logging.getLogger(__name__)
_LOOPBACK = "127.0.0.1"
# Bounded so a port stolen between probe and bind costs a retry, not a flaky run,
# while a registry that cannot start for another reason fails fast.
_START_ATTEMPTS = 3
_LOG_TAIL_LINES = 40
_BIND_RACE_MARKERS = ("address already in use", "bind:")


def _b64url(data: bytes) -> str:
    """JOSE base64url: the alphabet of RFC 4648 §5 with the padding stripped."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key ID distribution looks up a token's ``kid`` by.

    Distribution 2.8 indexes the keys of its ``rootcertbundle`` by libtrust's
    fingerprint (``keyIDFromCryptoKey``): SHA-256 of the DER SubjectPublicKeyInfo,
    truncated to 240 bits, base32 without padding, in 12 colon-separated groups
    of 4. A token whose ``kid`` differs by one character is rejected with a bare
    401, so this must match byte for byte.
    """
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass(frozen=True)
class Access:
    """One entry of a token's ``access`` claim: what the bearer may do to one resource."""

    type: str
    name: str
    actions: tuple[str, ...]

    def claim(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


@dataclass(frozen=True)
class IssuedToken:
    """What the token server granted, kept so a test can assert the scopes a client asked for.

    ``grant`` tells which door the client came through (``"get"`` for the docker
    token GET, ``"password"``/``"refresh_token"`` for the OAuth2 POST), because a
    client that silently falls back from one to the other is a behaviour worth
    pinning down.
    """

    account: str | None
    scopes: tuple[str, ...]
    access: tuple[Access, ...]
    grant: str


class _TokenRequestError(Exception):
    """A refusal the handler turns into an HTTP error; the message never holds a secret."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class TokenServer:
    """The token endpoint of the docker "token" auth scheme, as distribution 2.8 verifies it.

    ``acl`` maps a user to ``{repository glob: actions}``; anonymous callers get
    ``pull`` on the ``anonymous_pull`` globs. A grant is always the intersection
    of what was asked and what the ACL allows, never more, because a client that
    forgets to ask for ``push`` must fail here exactly as it would against a real
    authorization server.
    """

    def __init__(
        self,
        *,
        service: str,
        issuer: str,
        users: Mapping[str, str],
        acl: Mapping[str, Mapping[str, Sequence[str]]],
        anonymous_pull: Sequence[str],
        ttl: int = 300,
        directory: Path | None = None,
    ) -> None:
        self.service = service
        self.issuer = issuer
        self.users: Mapping[str, str] = dict(users)
        self.acl: Mapping[str, Mapping[str, tuple[str, ...]]] = {
            user: {glob: tuple(actions) for glob, actions in rules.items()} for user, rules in acl.items()
        }
        self.anonymous_pull = tuple(anonymous_pull)
        self.ttl = ttl
        self.issued: list[IssuedToken] = []
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.key_id = libtrust_key_id(self._key.public_key())
        self._directory = directory
        self._own_directory: Path | None = None
        self._cert_pem_path: Path | None = None
        self._lock = threading.Lock()
        self._refresh_tokens: dict[str, str] = {}
        self._httpd: _TokenHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        """Write the signing certificate and serve ``/token`` on a fresh loopback port.

        The port comes from binding port 0 directly, so unlike the registry there
        is no window in which another process can take it.
        """
        if self._httpd is not None:
            raise RuntimeError("token server already running")
        directory = self._directory
        if directory is None:
            directory = self._own_directory = Path(tempfile.mkdtemp(prefix="chaingate-token-"))
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / "token-signer.pem"
        cert_path.write_bytes(self._certificate().public_bytes(serialization.Encoding.PEM))
        self._cert_pem_path = cert_path
        httpd = _TokenHTTPServer((_LOOPBACK, 0), _TokenHandler)
        httpd.token_server = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            name="chaingate-token-server",
            kwargs={"poll_interval": 0.1},
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Idempotent, so fixtures and atexit hooks can both call it without coordinating."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if self._own_directory is not None:
            shutil.rmtree(self._own_directory, ignore_errors=True)
            self._own_directory = None

    def __enter__(self) -> Self:
        return self if self._httpd is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The realm a registry's challenge points clients at."""
        if self._httpd is None:
            raise RuntimeError("token server not started")
        return f"http://{_LOOPBACK}:{self._httpd.server_address[1]}/token"

    @property
    def cert_pem_path(self) -> Path:
        """The ``rootcertbundle`` the registry must trust for tokens from this server."""
        if self._cert_pem_path is None:
            raise RuntimeError("token server not started")
        return self._cert_pem_path

    def clear(self) -> None:
        """Forget issued tokens, so a test asserts only on the requests it made itself."""
        with self._lock:
            self.issued.clear()

    # -- policy ----------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> str:
        """The account for valid credentials; constant-time so timing leaks nothing even in tests."""
        expected = self.users.get(username)
        candidate = password.encode("utf-8")
        reference = (expected if expected is not None else secrets.token_hex(16)).encode("utf-8")
        if not hmac.compare_digest(candidate, reference) or expected is None:
            raise _TokenRequestError(401, "UNAUTHORIZED", "invalid username or password")
        return username

    def grant(self, account: str | None, scopes: Sequence[str]) -> tuple[Access, ...]:
        """Per requested scope, the requested actions the ACL allows, in the order asked.

        A scope this server does not understand (not ``repository:NAME:ACTIONS``)
        is answered with an empty grant rather than an error, as docker's
        reference authorization servers do, so the registry is the one to refuse.
        """
        rules: Mapping[str, tuple[str, ...]]
        if account is None:
            rules = {glob: ("pull",) for glob in self.anonymous_pull}
        else:
            rules = self.acl.get(account, {})
        granted: list[Access] = []
        for scope in scopes:
            parsed = _parse_scope(scope)
            if parsed is None:
                continue
            kind, name, requested = parsed
            allowed: list[str] = []
            if kind == "repository":
                for glob, permitted in rules.items():
                    if fnmatch.fnmatchcase(name, glob):
                        allowed.extend(a for a in permitted if a not in allowed)
            actions: list[str] = []
            for action in requested:
                if action in allowed or "*" in allowed:
                    candidates = [action]
                elif action == "*":
                    candidates = allowed
                else:
                    candidates = []
                actions.extend(a for a in candidates if a not in actions)
            granted.append(Access(kind, name, tuple(actions)))
        return tuple(granted)

    def issue(self, account: str | None, scopes: Sequence[str], *, grant: str) -> tuple[str, int, str]:
        """Sign a token for ``account`` and record it; returns (jwt, expires_in, issued_at)."""
        access = self.grant(account, scopes)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            # distribution 2.8 compares ``aud`` as a single string, not a list.
            "aud": self.service,
            "exp": now + self.ttl,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": [entry.claim() for entry in access],
        }
        header = {"typ": "JWT", "alg": "ES256", "kid": self.key_id}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        with self._lock:
            self.issued.append(IssuedToken(account, tuple(scopes), access, grant))
        issued_at = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{signing_input}.{_b64url(signature)}", self.ttl, issued_at

    def new_refresh_token(self, account: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._refresh_tokens[token] = account
        return token

    def redeem_refresh_token(self, token: str) -> str:
        with self._lock:
            account = self._refresh_tokens.get(token)
        if account is None:
            raise _TokenRequestError(400, "invalid_grant", "unknown refresh token")
        return account

    def check_service(self, service: str | None) -> None:
        """A token for another audience would be refused by the registry; say so at the source."""
        if service is not None and service != self.service:
            raise _TokenRequestError(400, "invalid_request", f"unknown service {service!r}")

    def _certificate(self) -> x509.Certificate:
        """Self-signed, because distribution only uses the bundle to look keys up by ``kid``."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chaingate test token signer")])
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )


def _parse_scope(scope: str) -> tuple[str, str, tuple[str, ...]] | None:
    """Split ``type:name:actions``; the name may itself hold a colon (a host with a port)."""
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    return kind, name, tuple(a for a in actions.split(",") if a)


class _TokenHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    token_server: TokenServer


class _TokenHandler(BaseHTTPRequestHandler):
    """HTTP framing only; every decision is a :class:`TokenServer` method."""

    server: _TokenHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # The request line carries only service/scope/account; credentials travel
        # in headers and the POST body, which are never logged.
        _LOG.debug("token server: " + format, *args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/token":
            self._send_json(404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})
            return
        query = parse_qs(url.query, keep_blank_values=True)
        tokens = self.server.token_server
        try:
            tokens.check_service(_first(query, "service"))
            account = self._basic_account()
            claimed = _first(query, "account")
            if claimed and account is not None and claimed != account:
                raise _TokenRequestError(400, "invalid_request", "account does not match credentials")
            token, expires_in, issued_at = tokens.issue(account, query.get("scope", []), grant="get")
        except _TokenRequestError as err:
            extra = {"WWW-Authenticate": f'Basic realm="{tokens.url}"'} if err.status == 401 else {}
            self._send_json(err.status, {"errors": [{"code": err.code, "message": err.message}]}, extra)
            return
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": expires_in,
            "issued_at": issued_at,
        }
        if account is not None and _first(query, "offline_token") == "true":
            body["refresh_token"] = tokens.new_refresh_token(account)
        self._send_json(200, body)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/token":
            self._send_json(404, {"error": "not_found"})
            return
        tokens = self.server.token_server
        try:
            form = self._form()
            tokens.check_service(_first(form, "service"))
            grant_type = _first(form, "grant_type")
            if grant_type == "password":
                username, password = _first(form, "username"), _first(form, "password")
                if username is None or password is None:
                    raise _TokenRequestError(400, "invalid_request", "username and password are required")
                try:
                    account = tokens.authenticate(username, password)
                except _TokenRequestError as err:
                    raise _TokenRequestError(400, "invalid_grant", err.message) from None
            elif grant_type == "refresh_token":
                refresh = _first(form, "refresh_token")
                if refresh is None:
                    raise _TokenRequestError(400, "invalid_request", "refresh_token is required")
                account = tokens.redeem_refresh_token(refresh)
            else:
                raise _TokenRequestError(400, "unsupported_grant_type", f"grant_type {grant_type!r}")
            # OAuth2 carries several scopes space-separated in one field; docker
            # sends them that way, and repeating the field is accepted too.
            scopes = [s for value in form.get("scope", []) for s in value.split(" ") if s]
            token, expires_in, issued_at = tokens.issue(account, scopes, grant=grant_type)
        except _TokenRequestError as err:
            self._send_json(err.status, {"error": err.code, "error_description": err.message})
            return
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "issued_at": issued_at,
            "scope": " ".join(scopes),
        }
        if grant_type == "refresh_token":
            body["refresh_token"] = _first(form, "refresh_token")
        elif _first(form, "access_type") == "offline":
            body["refresh_token"] = tokens.new_refresh_token(account)
        self._send_json(200, body)

    def _basic_account(self) -> str | None:
        header = self.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise _TokenRequestError(401, "UNAUTHORIZED", "only Basic credentials are accepted here")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _TokenRequestError(401, "UNAUTHORIZED", "malformed Basic credentials") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise _TokenRequestError(401, "UNAUTHORIZED", "malformed Basic credentials")
        return self.server.token_server.authenticate(username, password)

    def _form(self) -> dict[str, list[str]]:
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise _TokenRequestError(400, "invalid_request", "expected a form-encoded body")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise _TokenRequestError(400, "invalid_request", "bad Content-Length") from None
        if not 0 <= length <= 64 * 1024:
            raise _TokenRequestError(400, "invalid_request", "form too large")
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        return parse_qs(raw, keep_blank_values=True)

    def _send_json(
        self, status: int, body: Mapping[str, Any], extra: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        if status >= 400:
            # An error may leave a request body unread; reusing the connection
            # would parse it as the next request.
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        # RFC 6749 §5.1: token responses must not be cached.
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def _first(values: Mapping[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[0] if found else None


def _free_port() -> int:
    """A port that was free a moment ago; the caller retries if someone else takes it first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class DockerRegistry:
    """Debian's ``docker-registry`` as a context manager, in one of three auth modes.

    The workdir holds the config, the htpasswd file, the token signer's
    certificate, the storage and the log. A workdir this class created itself is
    deleted on :meth:`stop` so test runs leave nothing in /tmp; pass ``workdir``
    to keep it, e.g. to inspect the storage afterwards or restart on the same data.
    """

    TOKEN_SERVICE = "chaingate-test-registry"
    TOKEN_ISSUER = "chaingate-test-token-issuer"
    REALM = "chaingate-test-registry"

    def __init__(
        self,
        mode: Mode = "anonymous",
        *,
        users: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        acl: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        anonymous_pull: Sequence[str] = ("public/*",),
        binary: str = "docker-registry",
    ) -> None:
        if mode not in get_args(Mode):
            raise ValueError(f"unknown registry mode {mode!r}; expected one of {get_args(Mode)}")
        for user in users or {}:
            if not user or ":" in user:
                raise ValueError(f"user name {user!r} cannot be used with Basic auth")
        self.mode: Mode = mode
        self.users: Mapping[str, str] = dict(DEFAULT_USERS if users is None else users)
        self.binary = binary
        self._owns_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="chaingate-registry-")) if workdir is None else Path(workdir)
        )
        self.storage = self.workdir / "storage"
        self.log_path = self.workdir / "registry.log"
        self.config_path = self.workdir / "config.yml"
        self.token_server: TokenServer | None = None
        if mode == "token":
            self.token_server = TokenServer(
                service=self.TOKEN_SERVICE,
                issuer=self.TOKEN_ISSUER,
                users=self.users,
                acl=acl if acl is not None else {user: {"*": ("pull", "push")} for user in self.users},
                anonymous_pull=anonymous_pull,
                directory=self.workdir,
            )
        self._process: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._port: int | None = None
        self._atexit_registered = False

    # -- addresses -------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of an image reference and the docker config key."""
        if self._port is None:
            raise RuntimeError("registry not started")
        return f"{_LOOPBACK}:{self._port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def pid(self) -> int | None:
        """The registry process's pid, kept after :meth:`stop` so a test can check it is gone."""
        return self._pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> Self:
        """Launch the registry (and token server) and return once ``GET /v2/`` answers as the mode should.

        The port is probed free and then handed to the registry, so another
        process can take it in between; that shows up as a bind error in the log
        and costs a bounded retry on a new port.
        """
        if self.running:
            raise RuntimeError(f"registry already running at {self.url}")
        binary = shutil.which(self.binary)
        if binary is None:
            raise RuntimeError(
                f"{self.binary!r} not found on PATH; install Debian's registry with "
                "`apt-get install docker-registry`"
            )
        deadline = time.monotonic() + timeout
        try:
            self.storage.mkdir(parents=True, exist_ok=True)
            auth = self._prepare_auth()
            for attempt in range(1, _START_ATTEMPTS + 1):
                self._launch(binary, auth)
                outcome = self._wait_ready(deadline)
                if outcome == "ready":
                    if not self._atexit_registered:
                        atexit.register(self.stop)
                        self._atexit_registered = True
                    return self
                self._terminate()
                if outcome == "bind" and attempt < _START_ATTEMPTS:
                    _LOG.debug("registry port %s was taken; retrying on another", self._port)
                    continue
                raise RuntimeError(
                    f"docker-registry did not become ready ({outcome}, attempt {attempt} of "
                    f"{_START_ATTEMPTS}); last lines of {self.log_path}:\n{self._log_tail()}"
                )
            raise AssertionError("unreachable: the loop returns or raises")
        except BaseException:
            # The error already carries the log tail, so a workdir of our own
            # can go; a caller's workdir stays for inspection.
            self._shutdown(remove_workdir=self._owns_workdir)
            raise

    def stop(self) -> None:
        """Idempotent; terminate, escalate to kill, and release everything :meth:`start` took."""
        self._shutdown(remove_workdir=self._owns_workdir)

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def docker_config(self, directory: Path, user: str = "alice") -> Path:
        """A docker ``config.json`` holding ``user``'s credentials, for tests that set DOCKER_CONFIG."""
        if user not in self.users:
            raise ValueError(f"unknown user {user!r}; known: {sorted(self.users)}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        auth = base64.b64encode(f"{user}:{self.users[user]}".encode()).decode("ascii")
        path = directory / "config.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"auths": {self.host: {"auth": auth}}}, handle, indent=2)
        return directory

    # -- internals ---------------------------------------------------------------------

    def _prepare_auth(self) -> dict[str, Any]:
        """The config's ``auth`` section, writing whatever files it points at."""
        if self.mode == "htpasswd":
            path = self.workdir / "htpasswd"
            path.write_text(_htpasswd_lines(self.users), encoding="utf-8")
            return {"htpasswd": {"realm": self.REALM, "path": str(path)}}
        if self.mode == "token":
            assert self.token_server is not None
            self.token_server.start()
            return {
                "token": {
                    "realm": self.token_server.url,
                    "service": self.token_server.service,
                    "issuer": self.token_server.issuer,
                    "rootcertbundle": str(self.token_server.cert_pem_path),
                }
            }
        return {}

    def _launch(self, binary: str, auth: Mapping[str, Any]) -> None:
        self._port = _free_port()
        config: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": self.host,
                "secret": secrets.token_hex(32),
                "debug": {"addr": ""},
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
            "health": {"storagedriver": {"enabled": False}},
        }
        if auth:
            config["auth"] = dict(auth)
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)
        # REGISTRY_* variables override the config file; a developer's shell must
        # not be able to change what the tests run against.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [binary, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                # Its own session: a Ctrl-C aimed at pytest must reach our atexit
                # hook first rather than race it.
                start_new_session=True,
            )
        self._pid = self._process.pid

    def _wait_ready(self, deadline: float) -> str:
        """``"ready"``, ``"bind"`` (lost the port race), ``"exited"`` or ``"timed out"``."""
        expected = 200 if self.mode == "anonymous" else 401
        with requests.Session() as probe:
            # A developer's HTTP(S)_PROXY must not swallow a loopback probe.
            probe.trust_env = False
            return self._poll(probe, expected, deadline)

    def _poll(self, probe: requests.Session, expected: int, deadline: float) -> str:
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                tail = self._log_tail().lower()
                return "bind" if all(m in tail for m in _BIND_RACE_MARKERS) else "exited"
            try:
                response = probe.get(f"{self.url}/v2/", timeout=(1.0, 0.5))
            except requests.RequestException:
                response = None
            if (
                response is not None
                and response.status_code == expected
                and response.headers.get("Docker-Distribution-Api-Version") == "registry/2.0"
                and self._process.poll() is None
            ):
                return "ready"
            if time.monotonic() >= deadline:
                return "timed out"
            time.sleep(0.05)

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def _shutdown(self, *, remove_workdir: bool) -> None:
        self._terminate()
        if self.token_server is not None:
            self.token_server.stop()
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False
        if remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(empty)"
        return "(no log)"


def _htpasswd_lines(users: Mapping[str, str]) -> str:
    """Bcrypt entries from apache2-utils' ``htpasswd``: distribution accepts no other hash.

    The password goes in on stdin (``-i``), not argv, so it never shows in ``ps``.
    """
    tool = shutil.which("htpasswd")
    if tool is None:
        raise RuntimeError("htpasswd not found on PATH; install it with `apt-get install apache2-utils`")
    lines = []
    for user, password in users.items():
        result = subprocess.run(
            [tool, "-niB", "-C", "5", user],
            input=password.encode("utf-8"),
            capture_output=True,
            check=False,
            timeout=30,
        )
        entry = result.stdout.decode("utf-8").strip()
        if result.returncode != 0 or not entry.startswith(f"{user}:$2"):
            raise RuntimeError(f"htpasswd failed for user {user!r} (exit {result.returncode})")
        lines.append(entry)
    return "\n".join(lines) + "\n"
