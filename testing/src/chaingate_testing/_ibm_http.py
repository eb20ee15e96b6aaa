"""The HTTP service under the IBM Cloud stand-in: wire types, framing, paging and the shared state.

Code Engine and IAM resources are plain handlers from a ``Call`` to a ``Reply``;
this module is all they share, so neither resource family depends on the other.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

from chaingate_testing._ibm_models import validated

if TYPE_CHECKING:
    from chaingate_testing.codeengine import FakeIBMCloud

__all__ = [
    "ApiError",
    "Call",
    "CloudBase",
    "Fault",
    "Handler",
    "RecordedRequest",
    "Reply",
    "Route",
    "Server",
    "page",
]


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the fake saw it; ``Authorization`` is dropped and form secrets are redacted."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    @property
    def is_write(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE") and self.path != "/identity/token"


@dataclass
class Fault:
    """When ``method`` (None = any) and the regex ``path`` match and ``times`` (None = forever) remain:
    wait ``delay`` seconds, then answer ``status`` (None = handle normally after the delay)."""

    path: str
    method: str | None = None
    times: int | None = 1
    status: int | None = None
    delay: float = 0.0
    hits: int = 0


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[["Call"], Reply]


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    match: re.Match[str]
    identity: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str:
        """Header lookup by any spelling: clients differ (the SDK sends ``content-type``, requests ``If-Match``)."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), "")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeIBMCloud) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) is expected; it is not worth a traceback."""


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-ibmcloud/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: test output is for failures."""

    def _serve(self) -> None:
        fake = cast(Server, self.server).fake
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        reply = fake._dispatch(
            self.command, split.path, parse_qs(split.query), dict(self.headers.items()), raw
        )
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if data:
            self.send_header("Content-Type", "application/json")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


def page(call: Call, items: list[dict[str, Any]], key: str, model: Any, href: str) -> Reply:
    """A Code Engine / IAM v2 page: ``limit`` items from the ``start`` token on, ``next.start`` if more."""
    limit = int(call.param("limit") or 50)
    start = int(call.param("start") or 0)
    doc: dict[str, Any] = {"limit": limit, key: items[start : start + limit],
                               "first": {"href": f"{href}?limit={limit}"}}  # fmt: skip
    if start + limit < len(items):
        token = str(start + limit)
        doc["next"] = {"href": f"{href}?{urlencode({'limit': limit, 'start': token})}", "start": token}
    return Reply(200, validated(model, doc))


class CloudBase:
    """State every resource family reads: the account, the region, the lock, fresh ids and the own URL."""

    def __init__(self, *, account_id: str, region: str) -> None:
        self.account_id = account_id
        self.region = region
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._ids = itertools.count(1)

    def _new_id(self) -> str:
        return str(uuid.UUID(int=next(self._ids)))

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeIBMCloud is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"
