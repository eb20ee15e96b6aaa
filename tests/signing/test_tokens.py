"""Identity token sources, offline checks, and GitHub Actions' ambient token service.

The GitHub token service is played by a loopback HTTP server that answers
the way ``ACTIONS_ID_TOKEN_REQUEST_URL`` does, with a token minted by the
loopback Sigstore stack, so the fetched token is then used for real.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chaingate.cli import run
from chaingate.signing.interface import IdentityTokenError, TrustConfigError
from chaingate.signing.tokens import check_token, github_ambient_token, resolve_token
from chaingate.signing.trust import load_trust_config
from chaingate_testing.sigstore import SigstoreStack
from chaingate_testing.sigstore.oidc import b64url_encode

pytestmark = pytest.mark.sigstore

NOW = 1_700_000_000.0


def _unsigned(claims: Mapping[str, Any]) -> str:
    """A JWT-shaped token with these claims (the checks here never verify signatures)."""
    header = b64url_encode(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    return f"{header}.{b64url_encode(json.dumps(dict(claims)).encode())}.c2ln"


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": "https://issuer.test",
        "sub": "repo:o/r:ref:refs/heads/main",
        "aud": "sigstore",
        "iat": NOW - 10,
        "exp": NOW + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "is empty"),
        ("onlyonepart", "not a JWT"),
        ("a.b.c", "not base64url JSON"),
        (_unsigned(_claims(iss=None)), "claim 'iss' is missing"),
        (_unsigned(_claims(sub="")), "claim 'sub' is missing"),
        (_unsigned(_claims(aud="other")), "for audience 'other', not 'sigstore'"),
        (_unsigned(_claims(aud=["a", "b"])), "for audience 'a', 'b', not 'sigstore'"),
        (_unsigned(_claims(aud=None)), "for audience none, not 'sigstore'"),
        (_unsigned(_claims(exp=NOW)), "expired at 2023-11-14T22:13:20Z"),
        (_unsigned(_claims(exp="soon")), "claim 'exp' is missing or not a number"),
        (_unsigned(_claims(iat=None)), "claim 'iat' is missing or not a number"),
        (_unsigned(_claims(nbf=NOW + 60)), "is not valid before"),
        (_unsigned(_claims(iat=NOW + 60)), "issued in the future"),
    ],
)
def test_bad_tokens_are_refused_without_showing_them(token: str, message: str) -> None:
    with pytest.raises(IdentityTokenError) as exc:
        check_token(token, "--identity-token", now=NOW)
    assert message in exc.value.message
    assert exc.value.exit_code == 2
    assert exc.value.message.startswith("identity token from --identity-token ")
    if len(token) > 8:
        assert token not in exc.value.diagnostics()


def test_a_good_token_and_audience_lists() -> None:
    token = check_token(_unsigned(_claims(aud=["other", "sigstore"])) + "\n", "x", now=NOW)
    assert token.issuer == "https://issuer.test"
    assert token.subject == "repo:o/r:ref:refs/heads/main"
    assert token.raw not in repr(token)


def test_sources_in_order(tmp_path: Path) -> None:
    tokens = {name: _unsigned(_claims(sub=name)) for name in ("flag", "file", "env", "github")}
    path = tmp_path / "token"
    path.write_text(tokens["file"] + "\n")
    env = {"SIGSTORE_ID_TOKEN": tokens["env"]}

    def fetch(url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        return 200, json.dumps({"value": tokens["github"]}).encode()

    github = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": "https://gh.test/t?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "b",
    }
    kwargs: dict[str, Any] = {"fetch": fetch, "now": NOW, "mask_stream": io.StringIO()}
    assert (
        resolve_token(token=tokens["flag"], token_file=path, env={**env, **github}, **kwargs).subject
        == "flag"
    )
    assert resolve_token(token_file=path, env={**env, **github}, **kwargs).subject == "file"
    assert resolve_token(env={**env, **github}, **kwargs).subject == "env"
    assert resolve_token(env=github, **kwargs).subject == "github"
    with pytest.raises(IdentityTokenError, match="no identity token for keyless signing") as exc:
        resolve_token(env={"GITHUB_ACTIONS": "true"}, now=NOW)
    assert "id-token: write" in (exc.value.hint or "")
    with pytest.raises(IdentityTokenError, match=r"--identity-token-file .*missing"):
        resolve_token(token_file=tmp_path / "missing", env={}, now=NOW)
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    with pytest.raises(IdentityTokenError, match="not ASCII text"):
        resolve_token(token_file=tmp_path / "binary", env={}, now=NOW)


def test_github_service_is_bounded_and_retried_only_when_it_may_help() -> None:
    calls: list[str] = []
    waits: list[float] = []

    def flaky(url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        calls.append(url)
        if len(calls) == 1:
            raise ConnectionError("reset")
        if len(calls) == 2:
            return 503, b""
        return 200, b'{"value": "tok"}'

    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": "https://gh.test/t?api-version=2.0&audience=x",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "b",
    }
    assert github_ambient_token(env, fetch=flaky, sleep=waits.append) == "tok"
    assert len(calls) == 3 and waits == [1.0, 2.0]
    assert parse_qs(urlsplit(calls[0]).query) == {"api-version": ["2.0"], "audience": ["sigstore"]}

    def forbidden(url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        calls.append(url)
        return 403, b"{}"

    calls.clear()
    with pytest.raises(IdentityTokenError, match=r"gh.test: could not get an identity token \(HTTP 403\)"):
        github_ambient_token(env, fetch=forbidden, sleep=waits.append)
    assert len(calls) == 1

    def huge(url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        return 200, b"x" * (70 * 1024)

    with pytest.raises(IdentityTokenError, match="response larger than"):
        github_ambient_token(env, fetch=huge)
    with pytest.raises(IdentityTokenError, match="response has no token 'value'"):
        github_ambient_token(env, fetch=lambda u, h: (200, b'{"count": 1}'))
    with pytest.raises(IdentityTokenError, match="is not an http"):
        github_ambient_token({**env, "ACTIONS_ID_TOKEN_REQUEST_URL": "file:///etc/passwd"})


class _TokenService:
    """GitHub's OIDC token endpoint on loopback: checks the bearer, returns a token for the asked audience."""

    def __init__(self, stack: SigstoreStack, subject: str, claims: Mapping[str, object]) -> None:
        self.seen: list[dict[str, Any]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Silent: a test server's access log is noise."""

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                service.seen.append({"query": query, "authorization": self.headers.get("Authorization")})
                if self.headers.get("Authorization") != "bearer request-token":
                    self.send_response(401)
                    self.end_headers()
                    return
                audience = query.get("audience", [""])[0]
                body = json.dumps(
                    {"value": stack.mint_token(subject, audience=audience, extra_claims=claims)}
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/_apis/token?api-version=2.0"

    def __enter__(self) -> _TokenService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github_token_service(signing: Any) -> Iterator[_TokenService]:
    from chaingate_testing.sigstore import github_actions_claims

    claims = github_actions_claims(repository="octo-org/octo-app")
    with _TokenService(signing.stack, "repo:octo-org/octo-app:ref:refs/heads/main", claims) as service:
        yield service


@pytest.mark.registry
def test_github_ambient_token_signs_and_is_masked(
    github_token_service: _TokenService,
    oci_registry: Any,
    registries: Any,
    seed: Any,
    sample_layout: Path,
    signing: Any,
    docker_config_env: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, digest = seed(registries, oci_registry.host, "ambient/app", sample_layout)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", github_token_service.url)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token")
    caplog.set_level(logging.DEBUG)
    argv = [
        "sign",
        f"{oci_registry.host}/ambient/app:v1",
        "--trust-config",
        signing.trust,
        "--format",
        "json",
    ]
    assert run(argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["signer"]["san"] == signing.san
    (request,) = github_token_service.seen
    assert request["query"]["audience"] == ["sigstore"]
    mask = [line for line in err.splitlines() if line.startswith("::add-mask::")]
    assert len(mask) == 1
    token = mask[0].removeprefix("::add-mask::")
    assert token.count(".") == 2
    # The mask command is the only place the token is written; never stdout, never a log record.
    assert token not in out
    assert all(token not in record.getMessage() for record in caplog.records)
    assert json.loads(out)["digest"] == digest


def test_trust_config_errors(tmp_path: Path, sigstore_stack: SigstoreStack) -> None:
    assert load_trust_config(sigstore_stack.trust_config_path).trusted_root is not None
    with pytest.raises(TrustConfigError, match=r"--trust-config .*missing\.json: No such file"):
        load_trust_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(
        TrustConfigError, match=r"--trust-config .*bad.json: not a Sigstore ClientTrustConfig"
    ):
        load_trust_config(bad)
