"""The docker-registry launcher against the real distribution 2.8 binary.

Raw ``requests`` only, so a bug in our OCI client cannot hide a bug here (or the
other way round). Where distribution's behaviour is something a client must
cope with, the assertion pins the exact status and challenge we observed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from chaingate_testing import registry as registry_module
from chaingate_testing.registry import DEFAULT_USERS, Access, DockerRegistry, TokenServer

pytestmark = pytest.mark.registry

ALICE = ("alice", DEFAULT_USERS["alice"])
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
KID_RE = re.compile(r"[A-Z2-7]{4}(?::[A-Z2-7]{4}){11}")


# -- helpers -------------------------------------------------------------------------


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(url: str, repo: str, data: bytes, headers: dict[str, str]) -> str:
    """The two-request "monolithic" upload: POST for a session, one PUT with all bytes."""
    digest = digest_of(data)
    started = requests.post(f"{url}/v2/{repo}/blobs/uploads/", headers=headers, timeout=5)
    assert started.status_code == 202, started.text
    location = urljoin(url, started.headers["Location"])
    done = requests.put(
        location,
        params={"digest": digest},
        data=data,
        headers={**headers, "Content-Type": "application/octet-stream"},
        timeout=5,
    )
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == digest
    return digest


def push_image(url: str, repo: str, tag: str, headers: dict[str, str]) -> tuple[bytes, bytes]:
    """Push a one-layer OCI image by tag; returns (manifest bytes, layer bytes)."""
    layer = f"layer of {repo}".encode()
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    layer_digest = push_blob(url, repo, layer, headers)
    config_digest = push_blob(url, repo, config, headers)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
        }
    ).encode()
    put = requests.put(
        f"{url}/v2/{repo}/manifests/{tag}",
        data=manifest,
        headers={**headers, "Content-Type": OCI_MANIFEST},
        timeout=5,
    )
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == digest_of(manifest)
    return manifest, layer


def pull_image(url: str, repo: str, tag: str, headers: dict[str, str]) -> tuple[bytes, bytes]:
    got = requests.get(
        f"{url}/v2/{repo}/manifests/{tag}", headers={**headers, "Accept": OCI_MANIFEST}, timeout=5
    )
    assert got.status_code == 200, got.text
    layer_digest = got.json()["layers"][0]["digest"]
    blob = requests.get(f"{url}/v2/{repo}/blobs/{layer_digest}", headers=headers, timeout=5)
    assert blob.status_code == 200, blob.text
    return got.content, blob.content


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.partition(" ")
    return scheme, dict(re.findall(r'(\w+)="([^"]*)"', params))


def get_token(
    registry: DockerRegistry, scopes: list[str], auth: tuple[str, str] | None = None
) -> dict[str, Any]:
    assert registry.token_server is not None
    response = requests.get(
        registry.token_server.url,
        params={"service": registry.TOKEN_SERVICE, "scope": scopes},
        auth=auth,
        timeout=5,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    def decode(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    header, claims, signature = token.split(".")
    return (
        json.loads(decode(header)),
        json.loads(decode(claims)),
        decode(signature),
        f"{header}.{claims}".encode(),
    )


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anonymous() -> Iterator[DockerRegistry]:
    with DockerRegistry("anonymous") as registry:
        yield registry


@pytest.fixture(scope="module")
def htpasswd() -> Iterator[DockerRegistry]:
    with DockerRegistry("htpasswd") as registry:
        yield registry


@pytest.fixture(scope="module")
def token() -> Iterator[DockerRegistry]:
    with DockerRegistry("token") as registry:
        yield registry


# -- anonymous ---------------------------------------------------------------------------


def test_anonymous_push_and_pull_round_trip(anonymous: DockerRegistry) -> None:
    manifest, layer = push_image(anonymous.url, "demo/app", "v1", {})
    assert pull_image(anonymous.url, "demo/app", "v1", {}) == (manifest, layer)
    assert (anonymous.storage / "docker/registry/v2/repositories/demo/app/_manifests/tags/v1").is_dir()


def test_anonymous_single_post_upload_is_not_supported(anonymous: DockerRegistry) -> None:
    """Distribution 2.8 ignores a body on POST ?digest=: it only opens a session (202).

    A client must therefore always follow up with PUT; asserting it here keeps
    that fact from being rediscovered in production.
    """
    data = b"single-post"
    response = requests.post(
        f"{anonymous.url}/v2/demo/single/blobs/uploads/",
        params={"digest": digest_of(data)},
        data=data,
        timeout=5,
    )
    assert response.status_code == 202
    assert "/blobs/uploads/" in response.headers["Location"]
    head = requests.head(f"{anonymous.url}/v2/demo/single/blobs/{digest_of(data)}", timeout=5)
    assert head.status_code == 404


# -- htpasswd ------------------------------------------------------------------------------


def test_htpasswd_challenges_without_credentials(htpasswd: DockerRegistry) -> None:
    response = requests.get(f"{htpasswd.url}/v2/", timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Basic realm="{DockerRegistry.REALM}"'
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_htpasswd_accepts_alice_over_plain_http(htpasswd: DockerRegistry) -> None:
    """Distribution 2.8 does not insist on TLS for Basic auth on loopback."""
    assert requests.get(f"{htpasswd.url}/v2/", auth=ALICE, timeout=5).status_code == 200
    headers = {"Authorization": "Basic " + base64.b64encode(":".join(ALICE).encode()).decode()}
    manifest, layer = push_image(htpasswd.url, "team/app", "v1", headers)
    assert pull_image(htpasswd.url, "team/app", "v1", headers) == (manifest, layer)


def test_htpasswd_rejects_a_wrong_password(htpasswd: DockerRegistry) -> None:
    response = requests.get(f"{htpasswd.url}/v2/", auth=("alice", "not-her-password"), timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_docker_config_holds_usable_credentials(htpasswd: DockerRegistry, tmp_path: Path) -> None:
    directory = htpasswd.docker_config(tmp_path / "docker", user="bob")
    config = json.loads((directory / "config.json").read_text())
    auth = config["auths"][htpasswd.host]["auth"]
    assert base64.b64decode(auth).decode() == f"bob:{DEFAULT_USERS['bob']}"
    assert (directory / "config.json").stat().st_mode & 0o777 == 0o600
    response = requests.get(f"{htpasswd.url}/v2/", headers={"Authorization": f"Basic {auth}"}, timeout=5)
    assert response.status_code == 200
    with pytest.raises(ValueError, match="unknown user"):
        htpasswd.docker_config(tmp_path, user="mallory")


# -- token ---------------------------------------------------------------------------------


def test_token_challenge_names_realm_service_and_scope(token: DockerRegistry) -> None:
    assert token.token_server is not None
    response = requests.get(f"{token.url}/v2/x/manifests/latest", timeout=5)
    assert response.status_code == 401
    scheme, params = parse_challenge(response.headers["WWW-Authenticate"])
    assert scheme == "Bearer"
    assert params == {
        "realm": token.token_server.url,
        "service": DockerRegistry.TOKEN_SERVICE,
        "scope": "repository:x:pull",
    }
    root = requests.get(f"{token.url}/v2/", timeout=5)
    assert root.status_code == 401
    assert "scope=" not in root.headers["WWW-Authenticate"]


def test_token_with_push_scope_pushes_and_pulls(token: DockerRegistry) -> None:
    body = get_token(token, ["repository:team/app:pull,push"], auth=ALICE)
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["issued_at"])
    headers = bearer(body["token"])
    assert requests.get(f"{token.url}/v2/", headers=headers, timeout=5).status_code == 200
    manifest, layer = push_image(token.url, "team/app", "v1", headers)
    assert pull_image(token.url, "team/app", "v1", headers) == (manifest, layer)


def test_pull_only_token_is_refused_for_push_with_insufficient_scope(token: DockerRegistry) -> None:
    """Distribution answers 401 (not 403) and re-challenges for ``pull,push`` with error="insufficient_scope"."""
    assert token.token_server is not None
    body = get_token(token, ["repository:team/app:pull"], auth=ALICE)
    response = requests.post(
        f"{token.url}/v2/team/app/blobs/uploads/", headers=bearer(body["token"]), timeout=5
    )
    assert response.status_code == 401
    scheme, params = parse_challenge(response.headers["WWW-Authenticate"])
    assert scheme == "Bearer"
    # Distribution joins the actions in Go map order, so "pull,push" and "push,pull" both occur.
    scope = params.pop("scope")
    assert scope.rsplit(":", 1)[0] == "repository:team/app"
    assert set(scope.rsplit(":", 1)[1].split(",")) == {"pull", "push"}
    assert params == {
        "realm": token.token_server.url,
        "service": DockerRegistry.TOKEN_SERVICE,
        "error": "insufficient_scope",
    }
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_anonymous_token_pulls_public_but_not_private(token: DockerRegistry) -> None:
    assert token.token_server is not None
    pushed = get_token(
        token, ["repository:public/base:pull,push", "repository:private/app:pull,push"], auth=ALICE
    )
    public = push_image(token.url, "public/base", "v1", bearer(pushed["token"]))
    push_image(token.url, "private/app", "v1", bearer(pushed["token"]))

    token.token_server.clear()
    anonymous = get_token(token, ["repository:public/base:pull,push", "repository:private/app:pull"])
    assert token.token_server.issued[-1].account is None
    assert token.token_server.issued[-1].access == (
        Access("repository", "public/base", ("pull",)),
        Access("repository", "private/app", ()),
    )
    headers = bearer(anonymous["token"])
    assert pull_image(token.url, "public/base", "v1", headers) == public

    refused = requests.get(
        f"{token.url}/v2/private/app/manifests/v1", headers={**headers, "Accept": OCI_MANIFEST}, timeout=5
    )
    assert refused.status_code == 401
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    upload = requests.post(f"{token.url}/v2/public/base/blobs/uploads/", headers=headers, timeout=5)
    assert upload.status_code == 401


def test_token_endpoint_rejects_a_wrong_password_and_a_foreign_service(token: DockerRegistry) -> None:
    assert token.token_server is not None
    wrong = requests.get(
        token.token_server.url,
        params={"service": token.TOKEN_SERVICE, "scope": "repository:x:pull"},
        auth=("alice", "guess"),
        timeout=5,
    )
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Basic ")
    assert requests.get(token.token_server.url, auth=("mallory", "x"), timeout=5).status_code == 401
    foreign = requests.get(token.token_server.url, params={"service": "elsewhere"}, auth=ALICE, timeout=5)
    assert foreign.status_code == 400


def test_oauth2_password_and_refresh_grants(token: DockerRegistry) -> None:
    assert token.token_server is not None
    realm = token.token_server.url
    headers = bearer(get_token(token, ["repository:oauth/app:pull,push"], auth=ALICE)["token"])
    manifest, _ = push_image(token.url, "oauth/app", "v1", headers)

    first = requests.post(
        realm,
        data={
            "grant_type": "password",
            "username": "alice",
            "password": DEFAULT_USERS["alice"],
            "service": token.TOKEN_SERVICE,
            "client_id": "chaingate-tests",
            "access_type": "offline",
            "scope": "repository:oauth/app:pull repository:public/x:pull",
        },
        timeout=5,
    )
    assert first.status_code == 200, first.text
    assert first.headers["Cache-Control"] == "no-store"
    refresh = first.json()["refresh_token"]

    token.token_server.clear()
    second = requests.post(
        realm,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": token.TOKEN_SERVICE,
            "client_id": "chaingate-tests",
            "scope": "repository:oauth/app:pull",
        },
        timeout=5,
    )
    assert second.status_code == 200, second.text
    issued = token.token_server.issued
    assert [(i.account, i.grant, i.scopes) for i in issued] == [
        ("alice", "refresh_token", ("repository:oauth/app:pull",))
    ]
    pulled = requests.get(
        f"{token.url}/v2/oauth/app/manifests/v1",
        headers={**bearer(second.json()["access_token"]), "Accept": OCI_MANIFEST},
        timeout=5,
    )
    assert pulled.status_code == 200
    assert pulled.content == manifest

    online = requests.post(
        realm,
        data={"grant_type": "password", "username": "alice", "password": DEFAULT_USERS["alice"]},
        timeout=5,
    )
    assert online.status_code == 200
    assert "refresh_token" not in online.json()
    bad_password = requests.post(
        realm, data={"grant_type": "password", "username": "alice", "password": "guess"}, timeout=5
    )
    assert (bad_password.status_code, bad_password.json()["error"]) == (400, "invalid_grant")
    bad_refresh = requests.post(
        realm, data={"grant_type": "refresh_token", "refresh_token": "forged"}, timeout=5
    )
    assert (bad_refresh.status_code, bad_refresh.json()["error"]) == (400, "invalid_grant")
    odd_grant = requests.post(realm, data={"grant_type": "client_credentials"}, timeout=5)
    assert (odd_grant.status_code, odd_grant.json()["error"]) == (400, "unsupported_grant_type")


def test_issued_records_requested_scopes_and_grants(token: DockerRegistry) -> None:
    assert token.token_server is not None
    token.token_server.clear()
    get_token(
        token,
        ["repository:a/b:pull,push,delete", "repository:localhost:5000/c:pull", "registry:catalog:*"],
        auth=ALICE,
    )
    (issued,) = token.token_server.issued
    assert issued.account == "alice"
    assert issued.grant == "get"
    assert issued.scopes == (
        "repository:a/b:pull,push,delete",
        "repository:localhost:5000/c:pull",
        "registry:catalog:*",
    )
    assert issued.access == (
        Access("repository", "a/b", ("pull", "push")),
        Access("repository", "localhost:5000/c", ("pull",)),
        Access("registry", "catalog", ()),
    )


def test_jwt_is_what_distribution_verifies(token: DockerRegistry) -> None:
    assert token.token_server is not None
    body = get_token(token, ["repository:team/app:pull"], auth=ALICE)
    header, claims, signature, signing_input = jwt_parts(body["token"])

    assert header["typ"] == "JWT"
    assert header["alg"] == "ES256"
    assert KID_RE.fullmatch(header["kid"])
    cert = x509.load_pem_x509_certificate(token.token_server.cert_pem_path.read_bytes())
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fingerprint = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode()
    assert header["kid"] == ":".join(fingerprint[i : i + 4] for i in range(0, 48, 4))

    assert len(signature) == 64
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public_key.verify(der, signing_input + b"x", ec.ECDSA(hashes.SHA256()))

    assert claims["iss"] == DockerRegistry.TOKEN_ISSUER
    assert claims["aud"] == DockerRegistry.TOKEN_SERVICE
    assert claims["sub"] == "alice"
    assert claims["nbf"] <= claims["iat"] < claims["exp"] == claims["iat"] + 300
    assert claims["jti"]
    assert claims["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull"]}]


def test_token_server_never_logs_secrets(token: DockerRegistry, caplog: pytest.LogCaptureFixture) -> None:
    assert token.token_server is not None
    with caplog.at_level(logging.DEBUG, logger="chaingate_testing.registry"):
        body = get_token(token, ["repository:x:pull"], auth=ALICE)
        requests.post(
            token.token_server.url,
            data={"grant_type": "password", "username": "alice", "password": DEFAULT_USERS["alice"]},
            timeout=5,
        )
    assert caplog.records, "the token server should log requests at debug level"
    assert DEFAULT_USERS["alice"] not in caplog.text
    assert body["token"] not in caplog.text
    assert DEFAULT_USERS["alice"] not in token.log_path.read_text()


# -- token server policy, without a registry ------------------------------------------------


def test_acl_grants_the_intersection_of_request_and_rules() -> None:
    server = TokenServer(
        service="svc",
        issuer="iss",
        users={"bob": "pw"},
        acl={"bob": {"team/*": ["pull"], "team/tools": ["push"], "own/*": ["*"]}},
        anonymous_pull=["public/*"],
    )
    assert server.grant("bob", ["repository:team/app:pull,push"]) == (
        Access("repository", "team/app", ("pull",)),
    )
    assert server.grant("bob", ["repository:team/tools:push,pull,push"]) == (
        Access("repository", "team/tools", ("push", "pull")),
    )
    assert server.grant("bob", ["repository:own/x:delete", "repository:team/app:*"]) == (
        Access("repository", "own/x", ("delete",)),
        Access("repository", "team/app", ("pull",)),
    )
    assert server.grant("bob", ["repository:other:pull", "nonsense"]) == (Access("repository", "other", ()),)
    assert server.grant(None, ["repository:public/a:pull,push"]) == (
        Access("repository", "public/a", ("pull",)),
    )
    assert server.grant("carol", ["repository:public/a:pull"]) == (Access("repository", "public/a", ()),)


# -- lifecycle ---------------------------------------------------------------------------------


def test_stop_leaves_no_process_and_is_idempotent() -> None:
    registry = DockerRegistry("token").start()
    assert registry.token_server is not None
    pid, workdir = registry.pid, registry.workdir
    token_port = int(registry.token_server.url.rsplit(":", 1)[1].split("/")[0])
    assert pid is not None
    os.kill(pid, 0)
    registry.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    registry.stop()
    assert not registry.running
    assert not workdir.exists()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", token_port))


def test_kept_workdir_survives_a_restart(tmp_path: Path) -> None:
    with DockerRegistry("anonymous", workdir=tmp_path) as registry:
        push_image(registry.url, "keep/me", "v1", {})
    assert (tmp_path / "registry.log").exists()
    with DockerRegistry("anonymous", workdir=tmp_path) as registry:
        pull_image(registry.url, "keep/me", "v1", {})


def test_a_lost_port_race_is_retried_on_another_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = registry_module._free_port
        monkeypatch.setattr(registry_module, "_free_port", lambda: next(ports, None) or real_free_port())
        with DockerRegistry("anonymous") as registry:
            assert registry.host != f"127.0.0.1:{taken}"
            assert requests.get(f"{registry.url}/v2/", timeout=5).status_code == 200


def test_a_registry_that_never_answers_times_out_and_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "silent-registry"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(0o755)
    registry = DockerRegistry(binary=str(script), workdir=tmp_path / "work")
    with pytest.raises(RuntimeError, match="timed out"):
        registry.start(timeout=0.5)
    assert registry.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(registry.pid, 0)


def test_missing_binary_says_how_to_install() -> None:
    registry = DockerRegistry(binary="/nonexistent/docker-registry")
    with pytest.raises(RuntimeError, match="apt-get install docker-registry"):
        registry.start()
    registry.stop()


def test_failed_start_reports_the_log_tail(tmp_path: Path) -> None:
    script = tmp_path / "fake-registry"
    script.write_text("#!/bin/sh\necho 'configuration error: nothing works' >&2\nexit 3\n")
    script.chmod(0o755)
    registry = DockerRegistry("htpasswd", binary=str(script), workdir=tmp_path / "work")
    with pytest.raises(RuntimeError, match=r"exited(.|\n)*configuration error: nothing works"):
        registry.start(timeout=5)
    assert not registry.running


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown registry mode"):
        DockerRegistry("kerberos")  # type: ignore[arg-type]
