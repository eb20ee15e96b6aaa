"""Helpers for the CI integration tests: images in a real registry, the policy a release must pass, and a
loopback stand-in for GitHub's OIDC token service.

The token service is the part of a GitHub runner chaingate talks to for keyless
signing (``$ACTIONS_ID_TOKEN_REQUEST_URL``); it mints tokens from the loopback
Sigstore stack's issuer with GitHub's claims, so the actions sign exactly as in
a workflow run, and the tests can check that every token chaingate fetched was
masked.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from chaingate.cli import run
from chaingate_testing.images import BuiltImage, sample_image, write_layout
from chaingate_testing.registry import DockerRegistry
from chaingate_testing.sigstore import SigstoreStack, github_actions_claims

REPOSITORY = "org/app"
SAN = f"https://github.com/{REPOSITORY}/.github/workflows/release.yml@refs/heads/main"
#: What a private Fulcio configured with a cluster's issuer certifies for a pod's service account.
K8S_SAN = "https://kubernetes.io/namespaces/ci/serviceaccounts/pipeline"


@dataclass
class TokenService:
    """GitHub's ``ACTIONS_ID_TOKEN_REQUEST_URL`` endpoint: a bearer-protected GET that returns ``{"value": jwt}``."""

    url: str
    request_token: str
    issued: list[str] = field(default_factory=list)


@contextmanager
def json_service(answer: Callable[[str, Message], object | None]) -> Iterator[str]:
    """A loopback server answering each GET with ``answer(path, headers)`` as JSON (401 for None); yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            doc = answer(self.path, self.headers)
            if doc is None:
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def token_service(stack: SigstoreStack) -> Iterator[TokenService]:
    request_token = f"runner-request-token-{secrets.token_hex(8)}"
    issued: list[str] = []

    def answer(path: str, headers: Message) -> object | None:
        if headers.get("Authorization") != f"bearer {request_token}":
            return None
        token = stack.mint_token(
            f"repo:{REPOSITORY}:ref:refs/heads/main",
            audience=parse_qs(urlsplit(path).query).get("audience", ["none"])[0],
            extra_claims=github_actions_claims(repository=REPOSITORY),
        )
        issued.append(token)
        return {"value": token}

    with json_service(answer) as url:
        yield TokenService(f"{url}/token?api-version=2.0", request_token, issued)


def push_sample(registry: DockerRegistry, tmp: Path, name: str, image: BuiltImage | None = None) -> str:
    """Push the README's sample image (or ``image``) to ``team/<name>-<random>:v1``; returns the tag reference."""
    layout = write_layout(tmp / f"layout-{uuid.uuid4().hex[:8]}", image or sample_image(), tag="latest")
    ref = f"{registry.host}/team/{name}-{uuid.uuid4().hex[:8]}:v1"
    assert run(["copy", f"oci:{layout}:latest", ref]) == 0
    return ref


def write_policy(
    path: Path, host: str, stack: SigstoreStack, *, signer: str = SAN, builder: str = SAN
) -> Path:
    """The policy a release of org/app must satisfy: signed by ``signer``, with provenance and an SBOM."""
    path.write_text(
        "version: 1\nmode: enforce\n"
        f'registries: ["{host}/team/**"]\n'
        "requireDigest: true\n"
        f"signers:\n  - issuer: {stack.issuer_url}\n    subject: {signer}\n"
        f"provenance: {{required: true, builderIds: [{builder}], "
        f"sourceRepositories: [https://github.com/{REPOSITORY}]}}\n"
        "sbom: {required: true, maxAge: 7d}\n"
    )
    return path


#: What a hostile registry puts in its error body: line breaks of every kind the runner or a terminal
#: honours, each followed by a workflow command, a legacy command mid-line, and ANSI colour.
HOSTILE_ERROR = (
    "access denied\n::error::pwned\r::warning::pwned-cr \x1b[31mred\x1b[0m ##[error]legacy-pwned"
    "\u2028::add-mask::chaingate\x85::set-output name=x::pwned"
)


@contextmanager
def hostile_registry() -> Iterator[str]:
    """A registry (on loopback, plain HTTP) that resolves any tag (HEAD) to a digest, then answers every GET
    with an HTTP 400 whose OCI error JSON carries :data:`HOSTILE_ERROR`; yields its host:port."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            headers = {"Docker-Distribution-API-Version": "registry/2.0"}
            if urlsplit(self.path).path == "/v2/":
                status, body = 200, b"{}"
            elif self.command == "HEAD":
                status, body = 200, b""
                headers["Docker-Content-Digest"] = "sha256:" + "ab" * 32
                headers["Content-Type"] = "application/vnd.oci.image.manifest.v1+json"
            else:
                status = 400
                body = json.dumps({"errors": [{"code": "DENIED", "message": HOSTILE_ERROR}]}).encode()
            self.send_response(status)
            headers.setdefault("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = _answer

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
