"""A real, in-memory OCI Distribution v1.1 registry for tests.

Debian's docker-registry 2.8 predates the OCI 1.1 referrers API, so without this
server the referrers code path of our client could only be tested against mocks
that agree with whatever the client already believes. This one speaks the wire
protocol for real (uploads, manifests, tags, referrers, basic auth) and is
deliberately strict where the spec lets a registry be, so client bugs surface
here rather than against a production registry. It can also inject the faults a
healthy registry never produces on demand: bad bytes, lying lengths, throttling
storms and stalls.

Stdlib only, so it runs wherever the test-suite runs, with no daemon to install.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlencode, urlsplit

__all__ = [
    "DIGEST_RE",
    "NAME_RE",
    "OCI_INDEX_MEDIA_TYPE",
    "TAG_RE",
    "Fault",
    "OCIRegistry",
    "RecordedRequest",
]

#: Repository name grammar from the distribution spec (matched whole).
NAME_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
#: The digests this registry can verify; anything else is rejected as invalid.
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
#: Tag grammar from the distribution spec (matched whole).
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
OCI_INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"

_REALM = "chaingate-test"
_API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
_NOT_FOUND_TEXT = b"404 page not found\n"
# Spec grammar is ``start-end``; the ``bytes``/total decorations are tolerated
# because some clients send an RFC 9110 Content-Range by habit.
_CONTENT_RANGE_RE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")

_V2_RE = re.compile(r"/v2/?")
# Names may contain any path segment, so every pattern is greedy on the name and
# anchored on a suffix that cannot contain "/"; upload routes are tried before
# blob routes because ".../blobs/uploads" would otherwise read as a blob digest.
_UPLOAD_SESSION_RE = re.compile(r"/v2/(?P<name>.+)/blobs/uploads/(?P<session>[^/]+)")
_UPLOADS_RE = re.compile(r"/v2/(?P<name>.+)/blobs/uploads/?")
_BLOB_RE = re.compile(r"/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)")
_MANIFEST_RE = re.compile(r"/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)")
_TAGS_RE = re.compile(r"/v2/(?P<name>.+)/tags/list")
_REFERRERS_RE = re.compile(r"/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, so tests can assert on the client's wire behaviour.

    ``headers`` keeps the client's spelling of names; the ``Authorization``
    value is replaced by ``"<redacted>"`` so a recorded log can be printed in a
    failing test without leaking the credential it carried.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Fault:
    """When `method` (None = any) and the regex `path` (re.search on the URL path) match, and `times`
    (None = forever) has not run out, the fault acts instead of / on top of normal handling.

    Matching faults are consulted in the order they were added and all of them
    act (delays add up, headers merge, ``corrupt``/``oversize`` combine) until
    one with a ``status`` short-circuits the request; faults after it are not
    consulted and do not count a hit. ``hits`` is updated under the server lock,
    so it is exact even under concurrent clients.

    ``drip`` sends the body one byte every ``drip`` seconds after prompt
    headers: the slow-loris registry whose every socket read returns in time,
    so no per-read timeout ever fires.
    """

    path: str
    method: str | None = None
    times: int | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    corrupt: bool = False
    oversize: int | None = None
    drip: float = 0.0
    hits: int = 0


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names: lookups must not depend on client spelling
    body: bytes

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class _FaultPlan:
    delay: float = 0.0
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    corrupt: bool = False
    oversize: int = 0
    drip: float = 0.0


@dataclass
class _Manifest:
    data: bytes
    media_type: str
    subject: str | None
    artifact_type: str | None
    annotations: dict[str, Any] | None


@dataclass
class _Repo:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, _Manifest] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # subject digest -> referrer digests; a dict keeps push order and dedups.
    referrers: dict[str, dict[str, None]] = field(default_factory=dict)


@dataclass
class _Upload:
    repo: str
    data: bytearray = field(default_factory=bytearray)


class _HTTPError(Exception):
    """Unwinds a route to an OCI error response, so routes read as the happy path."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        detail: Any = None,
        headers: dict[str, str] | None = None,
        more: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        entry: dict[str, Any] = {"code": code, "message": message}
        if detail is not None:
            entry["detail"] = detail
        self.status = status
        self.errors = [entry, *(more or [])]
        self.headers = headers or {}

    def response(self) -> _Response:
        return _error_response(self.status, self.errors, self.headers)


def _error_response(
    status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> _Response:
    body = json.dumps({"errors": errors}).encode()
    return _Response(status, body, {"Content-Type": "application/json", **(headers or {})})


def _plain_not_found() -> _Response:
    # What Go's default mux answers: registries without a route say exactly this,
    # and clients must treat it as "no such API" rather than parse an OCI error.
    return _Response(404, _NOT_FOUND_TEXT, {"Content-Type": "text/plain; charset=utf-8"})


def _fault_code(status: int, path: str) -> str:
    """Pick the spec error code a real registry would pair with ``status`` on this route.

    Clients branch on the code as well as the status, so an injected 404 on a
    manifest must look like MANIFEST_UNKNOWN, not a generic error.
    """
    fixed = {
        401: "UNAUTHORIZED",
        403: "DENIED",
        405: "UNSUPPORTED",
        413: "SIZE_INVALID",
        416: "BLOB_UPLOAD_INVALID",
        429: "TOOMANYREQUESTS",
    }
    if status in fixed:
        return fixed[status]
    if status == 404:
        if "/manifests/" in path:
            return "MANIFEST_UNKNOWN"
        if "/blobs/uploads/" in path:
            return "BLOB_UPLOAD_UNKNOWN"
        if "/blobs/" in path:
            return "BLOB_UNKNOWN"
        return "NAME_UNKNOWN"
    if status == 400:
        return "MANIFEST_INVALID" if "/manifests/" in path else "BLOB_UPLOAD_INVALID"
    # The spec lists no code for 5xx; "UNKNOWN" is what docker-registry sends.
    return "UNKNOWN" if status >= 500 else "UNSUPPORTED"


def _hash(algorithm: str, data: bytes) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise _HTTPError(400, "NAME_INVALID", f"invalid repository name {name!r}", detail={"name": name})
    return name


def _check_digest(digest: str) -> str:
    if not DIGEST_RE.fullmatch(digest):
        raise _HTTPError(400, "DIGEST_INVALID", f"invalid or unsupported digest {digest!r}")
    return digest


def _range_header(size: int) -> str:
    # docker-registry answers "0-0" for an empty upload too; clients in the wild
    # are written against that, so this mirrors it rather than inventing "0--1".
    return f"0-{max(size - 1, 0)}"


def _descriptor(value: Any, where: str) -> tuple[str, int]:
    """Validate a descriptor enough to look up what it points at."""
    if not isinstance(value, dict):
        raise _HTTPError(400, "MANIFEST_INVALID", f"{where} is not a descriptor object")
    digest = value.get("digest")
    size = value.get("size")
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise _HTTPError(400, "MANIFEST_INVALID", f"{where}.digest is missing or invalid")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _HTTPError(400, "MANIFEST_INVALID", f"{where}.size is missing or invalid")
    return digest, size


def _descriptor_list(doc: dict[str, Any], key: str) -> list[tuple[str, int]]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _HTTPError(400, "MANIFEST_INVALID", f"{key} is not a list")
    return [_descriptor(item, f"{key}[{i}]") for i, item in enumerate(value)]


def _manifest_record(data: bytes, media_type: str, doc: dict[str, Any] | None) -> _Manifest:
    """Precompute what the referrers listing needs, so listing never re-parses stored bytes."""
    if doc is None:
        return _Manifest(data, media_type, None, None, None)
    subject = doc.get("subject")
    subject_digest = subject.get("digest") if isinstance(subject, dict) else None
    artifact_type = doc.get("artifactType")
    if not isinstance(artifact_type, str) or not artifact_type:
        config = doc.get("config")
        config_type = config.get("mediaType") if isinstance(config, dict) else None
        artifact_type = config_type if isinstance(config_type, str) and config_type else None
    annotations = doc.get("annotations")
    return _Manifest(
        data=data,
        media_type=media_type,
        subject=subject_digest if isinstance(subject_digest, str) else None,
        artifact_type=artifact_type,
        annotations=annotations if isinstance(annotations, dict) and annotations else None,
    )


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that can end every connection and join every handler thread.

    The stdlib neither tracks daemon handler threads nor closes idle keep-alive
    connections, so a plain ``server_close()`` leaves a thread per client
    connection parked in ``readline()`` until the client hangs up. Handlers stay
    daemonic, so a forgotten ``stop()`` cannot hang interpreter exit.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], registry: OCIRegistry) -> None:
        self.registry = registry
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._open: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._track_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        worker = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"ociregistry-conn-{client_address[1] if isinstance(client_address, tuple) else '?'}",
            daemon=True,
        )
        with self._track_lock:
            if isinstance(request, socket.socket):
                self._open.add(request)
            self._workers = [t for t in self._workers if t.is_alive()]
            self._workers.append(worker)
        worker.start()

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._track_lock:
                self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        # A client that hangs up mid-response (a timeout test, or stop()) is
        # expected here and is not worth a traceback on stderr; anything else is a
        # bug in this module and should be loud.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def end_connections(self, timeout: float) -> None:
        """Shut every client socket so its handler sees EOF, then join the handlers.

        Call only after ``shutdown()``: from then on no connection is accepted,
        so the sets are final.
        """
        with self._track_lock:
            sockets, workers = list(self._open), list(self._workers)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue
        for worker in workers:
            worker.join(timeout)


class _Handler(BaseHTTPRequestHandler):
    # Without TCP_NODELAY, a small response after a write stalls ~40 ms on delayed ACKs (Nagle).
    disable_nagle_algorithm = True
    """HTTP plumbing only: framing, body reading and writing. Protocol logic lives in OCIRegistry."""

    protocol_version = "HTTP/1.1"  # keep-alive, so clients' connection reuse is exercised too
    server_version = "chaingate-ociregistry/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: pytest output is for test failures, not access logs."""

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_GET
    do_POST = do_GET
    do_PUT = do_GET
    do_PATCH = do_GET
    do_DELETE = do_GET

    def _serve(self) -> None:
        registry = cast(_Server, self.server).registry
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        raw_headers = dict(self.headers.items())
        registry._record(
            RecordedRequest(
                method=self.command,
                path=path,
                query=query,
                headers={
                    k: "<redacted>" if k.lower() == "authorization" else v for k, v in raw_headers.items()
                },
            )
        )
        try:
            body, pending = self._read_body(registry.max_body)
        except _HTTPError as exc:
            # Broken framing: the stream cannot be resynchronised, so it carries no further request.
            body, pending = b"", exc
            self.close_connection = True
        request = _Request(self.command, path, query, {k.lower(): v for k, v in raw_headers.items()}, body)
        response, plan = registry._respond(request, pending)
        self._write(response, plan)

    def _read_body(self, limit: int) -> tuple[bytes, _HTTPError | None]:
        """Read the whole body, or drain it and return a 413 if it exceeds ``limit``.

        An oversize body is still consumed rather than left in the socket:
        closing on unread data makes the kernel send a reset, which can destroy
        the 413 before the client reads it and turn a clear refusal into a flaky
        connection error.
        """
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        declared = self.headers.get("Content-Length")
        if not declared:
            return b"", None
        if not declared.strip().isdigit():
            raise _HTTPError(400, "SIZE_INVALID", f"bad Content-Length {declared!r}")
        length = int(declared)
        if length > limit:
            self._discard(length)
            return b"", _HTTPError(
                413, "SIZE_INVALID", f"body of {length} bytes exceeds the {limit}-byte limit"
            )
        return self._read_exact(length), None

    def _read_chunked(self, limit: int) -> tuple[bytes, _HTTPError | None]:
        data = bytearray()
        total = 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _HTTPError(400, "SIZE_INVALID", "malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    continue
                if total > limit:
                    return b"", _HTTPError(413, "SIZE_INVALID", f"body exceeds the {limit}-byte limit")
                return bytes(data), None
            total += size
            if total > limit:
                data.clear()
                self._discard(size)
            else:
                data += self._read_exact(size)
            self.rfile.readline(3)

    def _discard(self, length: int) -> None:
        while length > 0:
            length -= len(self._read_exact(min(length, 1 << 16)))

    def _read_exact(self, length: int) -> bytes:
        data = self.rfile.read(length)
        if len(data) != length:
            raise ConnectionResetError("client closed the connection mid-body")
        return data

    def _write(self, response: _Response, plan: _FaultPlan) -> None:
        body = response.body
        if plan.corrupt and body:
            mutated = bytearray(body)
            mutated[len(mutated) // 2] ^= 0xFF
            body = bytes(mutated)
        if plan.oversize:
            body += b"\0" * plan.oversize
        self.send_response(response.status)
        headers = {_API_VERSION[0]: _API_VERSION[1], **response.headers, **plan.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        no_body = response.status == 204 or response.status < 200 or response.status == 304
        if not no_body:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and not no_body and self.command != "HEAD":
            if plan.drip > 0:
                self._drip(body, plan.drip)
            else:
                self.wfile.write(body)

    def _drip(self, body: bytes, interval: float) -> None:
        """One byte per ``interval`` until the body is sent, the client hangs up or the server stops."""
        stopping = cast(_Server, self.server).registry._stopping
        self.wfile.flush()
        for index in range(len(body)):
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            if stopping.wait(interval):
                self.close_connection = True
                return


_Route = Callable[[_Request, re.Match[str]], _Response]


class OCIRegistry:
    """An OCI Distribution v1.1 registry on loopback, with fault injection.

    Usable as a context manager from fixtures or scripts. All state is in memory
    behind one lock; requests are served by daemon threads so a forgotten
    ``stop()`` cannot hang interpreter exit, but ``stop()`` still joins them so
    a test that calls it leaves no thread behind.
    """

    def __init__(
        self,
        *,
        referrers_api: bool = True,
        basic_auth: tuple[str, str] | None = None,
        max_body: int = 64 * 1024 * 1024,
        host: str = "127.0.0.1",
    ) -> None:
        #: Mutable at runtime so one registry can play both a 1.1 and a pre-1.1 server.
        self.referrers_api = referrers_api
        self.max_body = max_body
        self.requests: list[RecordedRequest] = []
        self._basic_auth = basic_auth
        self._bind_host = host
        self._lock = threading.Lock()
        self._lifecycle = threading.Lock()
        self._stopping = threading.Event()
        self._repos: dict[str, _Repo] = {}
        self._uploads: dict[str, _Upload] = {}
        self._faults: list[Fault] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._routes: list[tuple[re.Pattern[str], dict[str, _Route]]] = [
            (_UPLOAD_SESSION_RE, {"GET": self._upload_status, "PATCH": self._upload_patch,
                                  "PUT": self._upload_put, "DELETE": self._upload_cancel}),
            (_UPLOADS_RE, {"POST": self._upload_start}),
            (_BLOB_RE, {"GET": self._blob_get, "HEAD": self._blob_get, "DELETE": self._blob_delete}),
            (_MANIFEST_RE, {"GET": self._manifest_get, "HEAD": self._manifest_get,
                            "PUT": self._manifest_put, "DELETE": self._manifest_delete}),
            (_TAGS_RE, {"GET": self._tags_list}),
            (_REFERRERS_RE, {"GET": self._referrers}),
        ]  # fmt: skip

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Bind an ephemeral loopback port and serve from a daemon thread."""
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError("OCIRegistry is already running")
            self._stopping.clear()
            server = _Server((self._bind_host, 0), self)
            self._port = int(server.server_address[1])
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.01},  # bounds how long stop() waits for the accept loop
                name=f"ociregistry-{self._port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and join every thread; calling it again is a no-op."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is None or thread is None:
                return
            self._stopping.set()  # wakes handlers sleeping in an injected delay
            server.shutdown()  # returns once the accept loop has exited
            server.end_connections(timeout=5.0)
            server.server_close()
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """``host:port`` as it goes in an image reference; still answers after stop() for messages."""
        if self._port is None:
            raise RuntimeError("OCIRegistry has not been started")
        bind = f"[{self._bind_host}]" if ":" in self._bind_host else self._bind_host
        return f"{bind}:{self._port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # -- recording and faults ---------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def clear_requests(self) -> None:
        """Empty the log in place, so a reference a test already holds stays live."""
        with self._lock:
            self.requests.clear()

    def add_fault(self, fault: Fault) -> Fault:
        """Arm ``fault`` and hand it back, so a test can read ``hits`` afterwards."""
        re.compile(fault.path)  # a typo in a test's regex should fail here, not silently never match
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _consult_faults(self, method: str, path: str) -> _FaultPlan:
        plan = _FaultPlan()
        with self._lock:
            for fault in self._faults:
                if fault.method is not None and fault.method.upper() != method:
                    continue
                if not re.search(fault.path, path):
                    continue
                if fault.times is not None and fault.hits >= fault.times:
                    continue
                fault.hits += 1
                plan.delay += fault.delay
                plan.headers.update(fault.headers)
                plan.corrupt = plan.corrupt or fault.corrupt
                plan.oversize += fault.oversize or 0
                plan.drip = max(plan.drip, fault.drip)
                if fault.status is not None:
                    plan.status = fault.status
                    break
        return plan

    # -- direct storage access (no HTTP) ------------------------------------

    def put_blob_bytes(self, repo: str, data: bytes) -> str:
        """Store a blob without HTTP, for arranging a test's starting state; returns its sha256 digest."""
        if not NAME_RE.fullmatch(repo):
            raise ValueError(f"invalid repository name {repo!r}")
        digest = _hash("sha256", data)
        with self._lock:
            self._repos.setdefault(repo, _Repo()).blobs[digest] = bytes(data)
        return digest

    def put_manifest_bytes(self, repo: str, data: bytes, media_type: str, tag: str | None = None) -> str:
        """Store a manifest without HTTP or validation; returns its sha256 digest.

        Validation is skipped on purpose: tests need to plant content a real push
        would refuse (dangling layers, non-JSON bytes) to see how clients cope.
        A parseable ``subject`` is still indexed, so referrers stay consistent.
        """
        if not NAME_RE.fullmatch(repo):
            raise ValueError(f"invalid repository name {repo!r}")
        if tag is not None and not TAG_RE.fullmatch(tag):
            raise ValueError(f"invalid tag {tag!r}")
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        doc = parsed if isinstance(parsed, dict) else None
        digest = _hash("sha256", data)
        with self._lock:
            self._store_manifest(repo, digest, _manifest_record(bytes(data), media_type, doc), tag)
        return digest

    def get_stored(self, repo: str, digest: str) -> bytes | None:
        """The stored bytes of a blob or manifest, or None, to check what a client really pushed."""
        with self._lock:
            stored = self._repos.get(repo)
            if stored is None:
                return None
            if digest in stored.blobs:
                return stored.blobs[digest]
            manifest = stored.manifests.get(digest)
            return manifest.data if manifest is not None else None

    def tags(self, repo: str) -> list[str]:
        with self._lock:
            stored = self._repos.get(repo)
            return sorted(stored.tags) if stored is not None else []

    def _store_manifest(self, repo: str, digest: str, manifest: _Manifest, tag: str | None) -> None:
        """Caller holds the lock."""
        stored = self._repos.setdefault(repo, _Repo())
        stored.manifests[digest] = manifest
        if tag is not None:
            stored.tags[tag] = digest
        if manifest.subject is not None:
            stored.referrers.setdefault(manifest.subject, {})[digest] = None

    # -- request handling ----------------------------------------------------

    def _respond(self, request: _Request, pending: _HTTPError | None) -> tuple[_Response, _FaultPlan]:
        """Faults come first: they model the network and gateway in front of a registry."""
        plan = self._consult_faults(request.method, request.path)
        if plan.delay > 0:
            self._stopping.wait(plan.delay)
        if plan.status is not None:
            code = _fault_code(plan.status, request.path)
            error = {"code": code, "message": f"injected fault: HTTP {plan.status}"}
            return _error_response(plan.status, [error]), plan
        if pending is not None:
            return pending.response(), plan
        try:
            self._authorize(request)
            return self._dispatch(request), plan
        except _HTTPError as exc:
            return exc.response(), plan
        except Exception as exc:
            # Answer instead of dropping the connection, so a bug here shows up in
            # the client's test as a readable 500 rather than a hang or reset.
            return _error_response(500, [{"code": "UNKNOWN", "message": f"registry bug: {exc!r}"}]), plan

    def _authorize(self, request: _Request) -> None:
        if self._basic_auth is None or not request.path.startswith("/v2"):
            return
        user, password = self._basic_auth
        expected = f"{user}:{password}".encode()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = b""
        if scheme.lower() == "basic":
            try:
                given = base64.b64decode(token.strip(), validate=True)
            except (binascii.Error, ValueError):
                given = b""
        if not hmac.compare_digest(given, expected):
            raise _HTTPError(
                401,
                "UNAUTHORIZED",
                "authentication required",
                headers={"WWW-Authenticate": f'Basic realm="{_REALM}"'},
            )

    def _dispatch(self, request: _Request) -> _Response:
        if _V2_RE.fullmatch(request.path):
            if request.method not in ("GET", "HEAD"):
                raise _HTTPError(405, "UNSUPPORTED", f"{request.method} not allowed on /v2/")
            return _Response(200, b"{}", {"Content-Type": "application/json"})
        for pattern, methods in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if pattern is _REFERRERS_RE and not self.referrers_api:
                return _plain_not_found()
            route = methods.get(request.method)
            if route is None:
                raise _HTTPError(405, "UNSUPPORTED", f"{request.method} not allowed on {request.path}")
            _check_name(match["name"])
            return route(request, match)
        return _plain_not_found()

    # -- blobs ----------------------------------------------------------------

    def _blob_get(self, request: _Request, match: re.Match[str]) -> _Response:
        digest = _check_digest(match["digest"])
        with self._lock:
            stored = self._repos.get(match["name"])
            data = stored.blobs.get(digest) if stored is not None else None
        if data is None:
            raise _HTTPError(404, "BLOB_UNKNOWN", f"blob {digest} unknown", detail={"digest": digest})
        headers = {
            "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": digest,
            "Accept-Ranges": "bytes",
        }
        wanted = request.headers.get("range")
        if wanted is None:
            return _Response(200, data, headers)
        span = self._byte_range(wanted, len(data))
        if span is None:  # multiple or malformed ranges: RFC 9110 lets us ignore the header
            return _Response(200, data, headers)
        start, end = span
        if start >= len(data) or start > end:
            raise _HTTPError(
                416,
                "SIZE_INVALID",
                "range not satisfiable",
                headers={"Content-Range": f"bytes */{len(data)}"},
            )
        end = min(end, len(data) - 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return _Response(206, data[start : end + 1], headers)

    @staticmethod
    def _byte_range(value: str, size: int) -> tuple[int, int] | None:
        match = _RANGE_RE.fullmatch(value.strip())
        if match is None or (not match[1] and not match[2]):
            return None
        if not match[1]:  # suffix form: the last N bytes
            return max(size - int(match[2]), 0), size - 1
        return int(match[1]), int(match[2]) if match[2] else size - 1

    def _blob_delete(self, request: _Request, match: re.Match[str]) -> _Response:
        digest = _check_digest(match["digest"])
        with self._lock:
            stored = self._repos.get(match["name"])
            if stored is None or stored.blobs.pop(digest, None) is None:
                raise _HTTPError(404, "BLOB_UNKNOWN", f"blob {digest} unknown", detail={"digest": digest})
        return _Response(202)

    # -- uploads --------------------------------------------------------------

    def _blob_created(self, name: str, digest: str) -> _Response:
        return _Response(
            201, headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
        )

    def _upload_headers(self, name: str, session: str, size: int) -> dict[str, str]:
        # Relative Location, as the spec allows: clients must resolve it against
        # the request URL, and an absolute one would hide a client that does not.
        return {
            "Location": f"/v2/{name}/blobs/uploads/{session}",
            "Docker-Upload-UUID": session,
            "Range": _range_header(size),
        }

    def _upload_start(self, request: _Request, match: re.Match[str]) -> _Response:
        name = match["name"]
        algorithm = request.param("digest-algorithm")
        if algorithm is not None and algorithm not in ("sha256", "sha512"):
            raise _HTTPError(400, "DIGEST_INVALID", f"unsupported digest algorithm {algorithm!r}")
        mount = request.param("mount")
        if mount is not None:
            digest = _check_digest(mount)
            source = request.param("from")
            if source is not None:
                _check_name(source)
                with self._lock:
                    origin = self._repos.get(source)
                    data = origin.blobs.get(digest) if origin is not None else None
                    if data is not None:
                        self._repos.setdefault(name, _Repo()).blobs[digest] = data
                if data is not None:
                    return self._blob_created(name, digest)
            # Not mountable: fall through to a fresh session, as the spec asks.
        else:
            digest_param = request.param("digest")
            if digest_param is not None:
                digest = _check_digest(digest_param)
                self._verify_and_store(name, digest, request.body)
                return self._blob_created(name, digest)
            if request.body:
                # Real registries drop such a body silently; refusing it catches the client bug.
                raise _HTTPError(400, "BLOB_UPLOAD_INVALID", "POST without ?digest= must have an empty body")
        session = str(uuid.uuid4())
        with self._lock:
            self._uploads[session] = _Upload(name)
        return _Response(202, headers=self._upload_headers(name, session, 0))

    def _verify_and_store(self, name: str, digest: str, data: bytes) -> None:
        algorithm = digest.split(":", 1)[0]
        actual = _hash(algorithm, data)
        if actual != digest:
            raise _HTTPError(
                400,
                "DIGEST_INVALID",
                f"content hashes to {actual}, not {digest}",
                detail={"expected": digest, "actual": actual},
            )
        with self._lock:
            self._repos.setdefault(name, _Repo()).blobs[digest] = bytes(data)

    def _session(self, match: re.Match[str]) -> _Upload:
        """Caller holds the lock."""
        upload = self._uploads.get(match["session"])
        if upload is None or upload.repo != match["name"]:
            raise _HTTPError(404, "BLOB_UPLOAD_UNKNOWN", f"upload {match['session']} unknown")
        return upload

    def _append_chunk(self, request: _Request, match: re.Match[str], upload: _Upload) -> None:
        """Caller holds the lock. Enforces the in-order rule, which is what chunked clients get wrong."""
        content_range = request.headers.get("content-range")
        if content_range is not None:
            parsed = _CONTENT_RANGE_RE.fullmatch(content_range.strip())
            if parsed is None:
                raise _HTTPError(400, "BLOB_UPLOAD_INVALID", f"malformed Content-Range {content_range!r}")
            start, end = int(parsed[1]), int(parsed[2])
            if start != len(upload.data):
                raise _HTTPError(
                    416,
                    "BLOB_UPLOAD_INVALID",
                    f"chunk starts at {start} but the upload holds {len(upload.data)} bytes",
                    headers=self._upload_headers(match["name"], match["session"], len(upload.data)),
                )
            if end - start + 1 != len(request.body):
                raise _HTTPError(
                    400,
                    "SIZE_INVALID",
                    f"Content-Range {content_range!r} does not match a {len(request.body)}-byte body",
                )
        if len(upload.data) + len(request.body) > self.max_body:
            raise _HTTPError(413, "SIZE_INVALID", f"upload would exceed the {self.max_body}-byte limit")
        upload.data += request.body

    def _upload_status(self, request: _Request, match: re.Match[str]) -> _Response:
        with self._lock:
            size = len(self._session(match).data)
        return _Response(204, headers=self._upload_headers(match["name"], match["session"], size))

    def _upload_patch(self, request: _Request, match: re.Match[str]) -> _Response:
        with self._lock:
            upload = self._session(match)
            self._append_chunk(request, match, upload)
            size = len(upload.data)
        return _Response(202, headers=self._upload_headers(match["name"], match["session"], size))

    def _upload_put(self, request: _Request, match: re.Match[str]) -> _Response:
        name, session = match["name"], match["session"]
        with self._lock:
            upload = self._session(match)
            digest_param = request.param("digest")
            if digest_param is None:
                raise _HTTPError(400, "DIGEST_INVALID", "closing PUT needs ?digest=")
            digest = _check_digest(digest_param)
            if request.body:
                self._append_chunk(request, match, upload)
            data = bytes(upload.data)
            # Whatever happens next the session is over: a failed digest discards it.
            del self._uploads[session]
        self._verify_and_store(name, digest, data)
        return self._blob_created(name, digest)

    def _upload_cancel(self, request: _Request, match: re.Match[str]) -> _Response:
        with self._lock:
            self._session(match)
            del self._uploads[match["session"]]
        return _Response(204)

    # -- manifests ------------------------------------------------------------

    @staticmethod
    def _parse_reference(reference: str) -> tuple[str | None, str | None]:
        """Split a reference into (digest, tag); exactly one is set."""
        if ":" in reference:
            return _check_digest(reference), None
        if not TAG_RE.fullmatch(reference):
            raise _HTTPError(400, "MANIFEST_INVALID", f"invalid tag {reference!r}")
        return None, reference

    def _manifest_get(self, request: _Request, match: re.Match[str]) -> _Response:
        digest, tag = self._parse_reference(match["reference"])
        with self._lock:
            stored = self._repos.get(match["name"])
            if stored is not None and tag is not None:
                digest = stored.tags.get(tag)
            manifest = stored.manifests.get(digest) if stored is not None and digest is not None else None
        if manifest is None or digest is None:
            raise _HTTPError(404, "MANIFEST_UNKNOWN", f"manifest {match['reference']} unknown")
        return _Response(
            200, manifest.data, {"Content-Type": manifest.media_type, "Docker-Content-Digest": digest}
        )

    def _manifest_put(self, request: _Request, match: re.Match[str]) -> _Response:
        name = match["name"]
        ref_digest, tag = self._parse_reference(match["reference"])
        body = request.body
        try:
            doc = json.loads(body)
        except ValueError:
            raise _HTTPError(400, "MANIFEST_INVALID", "manifest is not valid JSON") from None
        if not isinstance(doc, dict):
            raise _HTTPError(400, "MANIFEST_INVALID", "manifest is not a JSON object")
        if doc.get("schemaVersion") != 2 or isinstance(doc.get("schemaVersion"), bool):
            raise _HTTPError(400, "MANIFEST_INVALID", "schemaVersion must be 2")
        media_type = self._manifest_media_type(request, doc)
        if ref_digest is not None:
            digest = _hash(ref_digest.split(":", 1)[0], body)
            if digest != ref_digest:
                raise _HTTPError(
                    400,
                    "DIGEST_INVALID",
                    f"manifest hashes to {digest}, not {ref_digest}",
                    detail={"expected": ref_digest, "actual": digest},
                )
        else:
            digest = _hash("sha256", body)
        blob_refs = _descriptor_list(doc, "layers")
        if "config" in doc:
            blob_refs.insert(0, _descriptor(doc["config"], "config"))
        manifest_refs = _descriptor_list(doc, "manifests")
        if "subject" in doc:
            _descriptor(doc["subject"], "subject")  # must be well-formed, but may point nowhere yet
        record = _manifest_record(body, media_type, doc)
        refs = [(d, s, "blob") for d, s in blob_refs] + [(d, s, "manifest") for d, s in manifest_refs]
        with self._lock:
            stored = self._repos.get(name)
            missing: list[dict[str, Any]] = []
            for ref, size, kind in refs:
                if kind == "blob":
                    content = stored.blobs.get(ref) if stored is not None else None
                else:
                    held = stored.manifests.get(ref) if stored is not None else None
                    content = held.data if held is not None else None
                if content is None:
                    missing.append(
                        {
                            "code": "MANIFEST_BLOB_UNKNOWN",
                            "message": f"{kind} {ref} unknown",
                            "detail": {"digest": ref},
                        }
                    )
                elif len(content) != size:
                    raise _HTTPError(
                        400,
                        "MANIFEST_INVALID",
                        f"descriptor for {ref} says {size} bytes, the stored {kind} has {len(content)}",
                    )
            if missing:
                first, *rest = missing
                raise _HTTPError(400, first["code"], first["message"], detail=first["detail"], more=rest)
            self._store_manifest(name, digest, record, tag)
        headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
        if record.subject is not None and self.referrers_api:
            headers["OCI-Subject"] = record.subject
        return _Response(201, headers=headers)

    @staticmethod
    def _manifest_media_type(request: _Request, doc: dict[str, Any]) -> str:
        header = request.headers.get("content-type", "").split(";", 1)[0].strip()
        declared = doc.get("mediaType")
        if declared is not None and not isinstance(declared, str):
            raise _HTTPError(400, "MANIFEST_INVALID", "mediaType must be a string")
        if header and declared and header != declared:
            # The spec makes matching them the client's duty; catch it here.
            raise _HTTPError(
                400, "MANIFEST_INVALID", f"Content-Type {header!r} differs from mediaType {declared!r}"
            )
        media_type = header or declared
        if not media_type:
            raise _HTTPError(400, "MANIFEST_INVALID", "no Content-Type and no mediaType field")
        return media_type

    def _manifest_delete(self, request: _Request, match: re.Match[str]) -> _Response:
        digest, tag = self._parse_reference(match["reference"])
        with self._lock:
            stored = self._repos.get(match["name"])
            if tag is not None:
                if stored is None or stored.tags.pop(tag, None) is None:
                    raise _HTTPError(404, "MANIFEST_UNKNOWN", f"tag {tag} unknown")
                return _Response(202)
            assert digest is not None  # _parse_reference sets exactly one of the two
            manifest = stored.manifests.pop(digest, None) if stored is not None else None
            if stored is None or manifest is None:
                raise _HTTPError(404, "MANIFEST_UNKNOWN", f"manifest {digest} unknown")
            for stale in [t for t, d in stored.tags.items() if d == digest]:
                del stored.tags[stale]
            if manifest.subject is not None:
                stored.referrers.get(manifest.subject, {}).pop(digest, None)
        return _Response(202)

    # -- discovery --------------------------------------------------------------

    def _tags_list(self, request: _Request, match: re.Match[str]) -> _Response:
        name = match["name"]
        with self._lock:
            stored = self._repos.get(name)
            if stored is None:
                raise _HTTPError(404, "NAME_UNKNOWN", f"repository {name} unknown", detail={"name": name})
            every = sorted(stored.tags)
        last = request.param("last")
        if last is not None:
            every = [t for t in every if t > last]
        count = request.param("n")
        headers = {"Content-Type": "application/json"}
        page = every
        if count is not None:
            if not count.isdigit():
                raise _HTTPError(400, "UNSUPPORTED", f"n must be a non-negative integer, got {count!r}")
            n = int(count)
            page = every[:n]
            if 0 < n < len(every):
                query = urlencode({"n": n, "last": page[-1]})
                headers["Link"] = f'</v2/{name}/tags/list?{query}>; rel="next"'
        return _Response(200, json.dumps({"name": name, "tags": page}).encode(), headers)

    def _referrers(self, request: _Request, match: re.Match[str]) -> _Response:
        subject = _check_digest(match["digest"])
        wanted = request.param("artifactType")
        descriptors: list[dict[str, Any]] = []
        with self._lock:
            stored = self._repos.get(match["name"])
            digests = list(stored.referrers.get(subject, {})) if stored is not None else []
            for digest in digests:
                manifest = stored.manifests.get(digest) if stored is not None else None
                if manifest is None or (wanted is not None and manifest.artifact_type != wanted):
                    continue
                descriptor: dict[str, Any] = {
                    "mediaType": manifest.media_type,
                    "digest": digest,
                    "size": len(manifest.data),
                }
                if manifest.artifact_type is not None:
                    descriptor["artifactType"] = manifest.artifact_type
                if manifest.annotations is not None:
                    descriptor["annotations"] = manifest.annotations
                descriptors.append(descriptor)
        headers = {"Content-Type": OCI_INDEX_MEDIA_TYPE}
        if wanted is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX_MEDIA_TYPE, "manifests": descriptors}
        return _Response(200, json.dumps(index).encode(), headers)
