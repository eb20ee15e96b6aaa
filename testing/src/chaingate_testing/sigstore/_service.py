"""The HTTP plumbing the loopback Sigstore services share.

Each service binds its socket when constructed, so its URL is known before it
serves: the stack can wire Fulcio to the issuer's URL and write the trust
config before any thread runs. Servers listen on 127.0.0.1 only; nothing here
can be reached from, or reach, another host.
"""

from __future__ import annotations

import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_log = logging.getLogger(__name__)

#: Requests larger than this are refused: every legitimate Sigstore request is a
#: few kilobytes, and a test fixture must not be made to buffer unbounded input.
MAX_REQUEST_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    """What a handler needs of an HTTP request, detached from the socket."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; a malformed body is the client's fault, so it is a 400."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HTTPError(400, f"request body is not valid JSON: {exc}") from exc


@dataclass(frozen=True)
class Response:
    """A complete answer; services build these instead of writing to sockets."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: object) -> Response:
        """Serialise ``payload`` the way the real services do (compact JSON)."""
        return cls(status, json.dumps(payload, separators=(",", ":")).encode())


class HTTPError(Exception):
    """Raised inside a handler to answer with an error status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Server(ThreadingHTTPServer):
    """Carries the owning service so the per-request handler can reach it."""

    daemon_threads = True
    service: LoopbackService


class _Handler(BaseHTTPRequestHandler):
    # Without TCP_NODELAY, a small response after a write stalls ~40 ms on delayed ACKs (Nagle).
    disable_nagle_algorithm = True
    """Turns raw HTTP into a :class:`Request` and writes back a :class:`Response`."""

    server: _Server
    # One request per connection: a keep-alive connection would outlive
    # stop() in its handler thread and keep answering for a stopped service.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines go to debug logging, never stderr: test output stays
        # readable, and headers (which carry bearer tokens) are never logged.
        _log.debug("%s: %s", self.server.service.name, format % args)

    def _dispatch(self) -> None:
        service = self.server.service
        try:
            request = self._read_request()
            response = service.respond(request)
        except HTTPError as exc:
            response = service.error_response(exc.status, exc.message)
        except Exception:
            # A bug in the fake must look like a server fault to the client
            # (as it would with the real service), and must be visible to the
            # developer in the log rather than silently dropping the socket.
            _log.exception("%s: unhandled error", service.name)
            response = service.error_response(500, "internal error in the loopback service")
        self._write(response)

    def _read_request(self) -> Request:
        length_header = self.headers.get("Content-Length", "0")
        try:
            length = int(length_header)
        except ValueError as exc:
            raise HTTPError(400, "invalid Content-Length") from exc
        if length < 0 or length > MAX_REQUEST_BYTES:
            raise HTTPError(413, "request body too large")
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        return Request(self.command, parts.path, parts.query, headers, body)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)


class LoopbackService(ABC):
    """An HTTP service on an ephemeral 127.0.0.1 port, served from a daemon thread.

    Subclasses implement :meth:`handle`. Setting :attr:`down` makes every
    request answer 503, which is how failure tests simulate an outage without
    racing a real shutdown.
    """

    #: Short name used in logs and in the 503 message.
    name = "service"

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.service = self
        self._thread: threading.Thread | None = None
        self.down = False

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash, as sigstore-python expects."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"chaingate-{self.name}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    @contextmanager
    def outage(self) -> Iterator[None]:
        """Answer 503 for the duration of the block, then recover."""
        self.down = True
        try:
            yield
        finally:
            self.down = False

    def respond(self, request: Request) -> Response:
        if self.down:
            return self.error_response(503, f"{self.name} is down (simulated outage)")
        return self.handle(request)

    @abstractmethod
    def handle(self, request: Request) -> Response:
        """Answer one request; raise :class:`HTTPError` for client errors."""

    def error_response(self, status: int, message: str) -> Response:
        """Rekor's error shape (``{"code", "message"}``); overridden where a service differs."""
        return Response.json(status, {"code": status, "message": message})
