"""HTTP framing for the OCI registry stand-in: connections, body reading, response writing.

Protocol logic lives in ``OCIRegistry``; this module only turns bytes on a socket
into a ``Request`` for it and its ``Response`` (plus any injected fault) back
into bytes, and lets ``stop()`` end every connection and join every thread.
"""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

from chaingate_testing._oci_model import (
    API_VERSION,
    FaultPlan,
    RecordedRequest,
    RegistryError,
    Request,
    Response,
)

if TYPE_CHECKING:
    from chaingate_testing.ociregistry import OCIRegistry

__all__ = ["Handler", "Server"]


class Server(ThreadingHTTPServer):
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
        super().__init__(address, Handler)

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


class Handler(BaseHTTPRequestHandler):
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
        registry = cast(Server, self.server).registry
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
        except RegistryError as exc:
            # Broken framing: the stream cannot be resynchronised, so it carries no further request.
            body, pending = b"", exc
            self.close_connection = True
        request = Request(self.command, path, query, {k.lower(): v for k, v in raw_headers.items()}, body)
        response, plan = registry._respond(request, pending)
        self._write(response, plan)

    def _read_body(self, limit: int) -> tuple[bytes, RegistryError | None]:
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
            raise RegistryError(400, "SIZE_INVALID", f"bad Content-Length {declared!r}")
        length = int(declared)
        if length > limit:
            self._discard(length)
            return b"", RegistryError(
                413, "SIZE_INVALID", f"body of {length} bytes exceeds the {limit}-byte limit"
            )
        return self._read_exact(length), None

    def _read_chunked(self, limit: int) -> tuple[bytes, RegistryError | None]:
        data = bytearray()
        total = 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise RegistryError(400, "SIZE_INVALID", "malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    continue
                if total > limit:
                    return b"", RegistryError(413, "SIZE_INVALID", f"body exceeds the {limit}-byte limit")
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

    def _write(self, response: Response, plan: FaultPlan) -> None:
        body = response.body
        if plan.corrupt and body:
            mutated = bytearray(body)
            mutated[len(mutated) // 2] ^= 0xFF
            body = bytes(mutated)
        if plan.oversize:
            body += b"\0" * plan.oversize
        self.send_response(response.status)
        headers = {API_VERSION[0]: API_VERSION[1], **response.headers, **plan.headers}
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
        stopping = cast(Server, self.server).registry._stopping
        self.wfile.flush()
        for index in range(len(body)):
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            if stopping.wait(interval):
                self.close_connection = True
                return
