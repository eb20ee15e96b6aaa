"""Credential discovery against real files and real helper executables, never the user's own."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from chaingate.oci.credentials import Credentials, CredentialStore, docker_config_paths
from chaingate.oci.errors import AuthError

SECRET = "s3cr3t-Pa55:with:colons"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


class Env:
    """An isolated environment: a home, a DOCKER_CONFIG directory and a PATH of fake helpers."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.docker_dir = tmp_path / "docker"
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.log = tmp_path / "helper.log"
        self.vars: dict[str, str] = {
            "DOCKER_CONFIG": str(self.docker_dir),
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HELPER_LOG": str(self.log),
        }

    def docker_config(self, doc: Any) -> Path:
        return write_json(self.docker_dir / "config.json", doc)

    def auth_file(self, doc: Any) -> Path:
        path = write_json(self.tmp / "containers" / "auth.json", doc)
        self.vars["REGISTRY_AUTH_FILE"] = str(path)
        return path

    def helper(self, name: str, body: str) -> Path:
        """A docker-credential-<name> shell script; it logs "<arg> <stdin>" to HELPER_LOG."""
        script = self.bin / f"docker-credential-{name}"
        script.write_text(
            '#!/bin/sh\nserver=$(cat)\nprintf "%s %s\\n" "$1" "$server" >> "$HELPER_LOG"\n' + body,
            encoding="utf-8",
        )
        script.chmod(0o755)
        return script

    def answering(self, name: str, username: str, secret: str) -> Path:
        doc = json.dumps({"ServerURL": "ignored", "Username": username, "Secret": secret})
        return self.helper(name, f"cat <<'EOF'\n{doc}\nEOF\n")

    def calls(self) -> list[str]:
        return self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []

    def store(self, **kwargs: Any) -> CredentialStore:
        return CredentialStore(env=self.vars, home=self.home, **kwargs)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


# -- auths -------------------------------------------------------------------------------------


def test_auth_field_is_base64_user_colon_password(env: Env) -> None:
    path = env.docker_config({"auths": {"registry.example.com": {"auth": b64("alice:pw")}}})
    creds = env.store().lookup("registry.example.com")
    assert creds == Credentials("alice", "pw", source=f"{path} (auths: registry.example.com)")


def test_username_and_password_fields(env: Env) -> None:
    env.docker_config({"auths": {"r.example": {"username": "bob", "password": "hunter2"}}})
    creds = env.store().lookup("r.example")
    assert creds is not None
    assert (creds.username, creds.password) == ("bob", "hunter2")


def test_auth_field_wins_over_username_and_password(env: Env) -> None:
    env.docker_config({"auths": {"r.example": {"auth": b64("alice:a"), "username": "bob", "password": "b"}}})
    creds = env.store().lookup("r.example")
    assert creds is not None
    assert (creds.username, creds.password) == ("alice", "a")


def test_password_may_contain_colons(env: Env) -> None:
    env.docker_config({"auths": {"r.example": {"auth": b64(f"alice:{SECRET}")}}})
    creds = env.store().lookup("r.example")
    assert creds is not None
    assert (creds.username, creds.password) == ("alice", SECRET)


def test_identity_and_registry_tokens(env: Env) -> None:
    env.docker_config(
        {
            "auths": {
                "a.example": {"auth": b64("alice:pw"), "identitytoken": "refresh-me"},
                "b.example": {"registrytoken": "bearer-me"},
            }
        }
    )
    store = env.store()
    a, b = store.lookup("a.example"), store.lookup("b.example")
    assert a is not None
    assert a.identity_token == "refresh-me"
    assert a.username == "alice"
    assert b is not None
    assert b.registry_token == "bearer-me"
    assert b.username is None


@pytest.mark.parametrize(
    "key", ["docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"]
)
@pytest.mark.parametrize("asked", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_aliases(env: Env, key: str, asked: str) -> None:
    env.docker_config({"auths": {key: {"auth": b64("hubuser:pw")}}})
    creds = env.store().lookup(asked, "library/alpine")
    assert creds is not None
    assert creds.username == "hubuser"


def test_exact_hub_key_wins_over_an_alias(env: Env) -> None:
    env.docker_config(
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": b64("old:pw")},
                "docker.io": {"auth": b64("new:pw")},
            }
        }
    )
    creds = env.store().lookup("docker.io")
    assert creds is not None
    assert creds.username == "new"


def test_host_and_port_must_both_match(env: Env) -> None:
    env.docker_config({"auths": {"localhost:5000": {"auth": b64("alice:pw")}}})
    store = env.store()
    creds = store.lookup("localhost:5000")
    assert creds is not None
    assert creds.username == "alice"
    assert store.lookup("localhost:5001") is None
    assert store.lookup("localhost") is None


@pytest.mark.parametrize(
    "key",
    [
        "https://r.example:5000/v1/",
        "http://r.example:5000",
        "https://r.example:5000/v2/some/path",
        "R.Example:5000",
    ],
)
def test_url_keys_mean_the_whole_registry(env: Env, key: str) -> None:
    env.docker_config({"auths": {key: {"auth": b64("alice:pw")}}})
    creds = env.store().lookup("r.example:5000", "deep/org/app")
    assert creds is not None
    assert creds.username == "alice"


def test_namespaced_keys_most_specific_wins(env: Env) -> None:
    env.auth_file(
        {
            "auths": {
                "quay.io": {"auth": b64("registry-wide:pw")},
                "quay.io/org": {"auth": b64("org:pw")},
                "quay.io/org/app": {"auth": b64("app:pw")},
            }
        }
    )
    store = env.store()

    def user(repository: str | None) -> str | None:
        creds = store.lookup("quay.io", repository)
        return creds.username if creds else None

    assert user("org/app") == "app"
    assert user("org/app/sub") == "app"
    assert user("org/application") == "org"  # whole path segments only
    assert user("org/other") == "org"
    assert user("organisation/app") == "registry-wide"
    assert user(None) == "registry-wide"


def test_namespaced_key_never_matches_without_its_repository(env: Env) -> None:
    env.auth_file({"auths": {"quay.io/org": {"auth": b64("org:pw")}}})
    store = env.store()
    assert store.lookup("quay.io") is None
    assert store.lookup("quay.io", "other/app") is None


def test_empty_marker_entry_does_not_shadow_a_broader_one(env: Env) -> None:
    env.auth_file({"auths": {"quay.io/org": {}, "quay.io": {"auth": b64("wide:pw")}}})
    creds = env.store().lookup("quay.io", "org/app")
    assert creds is not None
    assert creds.username == "wide"


# -- sources -------------------------------------------------------------------------------------


def test_registry_auth_file_takes_precedence_over_docker_config(env: Env) -> None:
    auth = env.auth_file({"auths": {"r.example": {"auth": b64("podman:pw")}}})
    env.docker_config(
        {"auths": {"r.example": {"auth": b64("docker:pw")}, "only-docker.example": {"auth": b64("d:pw")}}}
    )
    store = env.store()
    first = store.lookup("r.example")
    assert first is not None
    assert first.username == "podman"
    assert str(auth) in first.source
    fallback = store.lookup("only-docker.example")
    assert fallback is not None
    assert fallback.username == "d"


def test_home_docker_config_is_used_without_docker_config(env: Env) -> None:
    del env.vars["DOCKER_CONFIG"]
    write_json(env.home / ".docker" / "config.json", {"auths": {"r.example": {"auth": b64("home:pw")}}})
    creds = env.store().lookup("r.example")
    assert creds is not None
    assert creds.username == "home"


def test_docker_config_paths_order(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert docker_config_paths({}, home) == [home / ".docker" / "config.json"]
    assert docker_config_paths({"DOCKER_CONFIG": "", "REGISTRY_AUTH_FILE": ""}, home) == [
        home / ".docker" / "config.json"
    ]
    assert docker_config_paths({"DOCKER_CONFIG": "/d", "REGISTRY_AUTH_FILE": "/a.json"}, home) == [
        Path("/a.json"),
        Path("/d/config.json"),
    ]
    assert docker_config_paths({"DOCKER_CONFIG": "/d", "REGISTRY_AUTH_FILE": "/d/config.json"}, home) == [
        Path("/d/config.json")
    ]


def test_missing_files_mean_no_credentials(env: Env) -> None:
    env.vars["REGISTRY_AUTH_FILE"] = str(env.tmp / "nope" / "auth.json")
    assert env.store().lookup("r.example") is None


def test_empty_config_file_means_no_credentials(env: Env) -> None:
    (env.docker_dir).mkdir()
    (env.docker_dir / "config.json").write_text("", encoding="utf-8")
    assert env.store().lookup("r.example") is None


def test_results_are_cached_per_registry_and_repository(env: Env) -> None:
    env.answering("counting", "alice", "pw")
    env.docker_config({"credHelpers": {"r.example": "counting"}})
    store = env.store()
    for _ in range(3):
        assert store.lookup("r.example") is not None
    assert len(env.calls()) == 1
    store.lookup("r.example", "org/app")
    assert len(env.calls()) == 2


# -- helpers -------------------------------------------------------------------------------------


def test_cred_helper_gets_the_host_on_stdin(env: Env) -> None:
    env.answering("fake", "alice", "pw")
    path = env.docker_config(
        {"credHelpers": {"r.example:5000": "fake"}, "auths": {"r.example:5000": {"auth": b64("file:pw")}}}
    )
    creds = env.store().lookup("r.example:5000")
    assert creds == Credentials("alice", "pw", source=f"docker-credential-fake (credHelpers in {path})")
    assert env.calls() == ["get r.example:5000"]


def test_docker_hub_helper_gets_dockers_index_url(env: Env) -> None:
    env.answering("fake", "hubuser", "pw")
    env.docker_config({"credHelpers": {"https://index.docker.io/v1/": "fake"}})
    creds = env.store().lookup("registry-1.docker.io", "library/alpine")
    assert creds is not None
    assert creds.username == "hubuser"
    assert env.calls() == ["get https://index.docker.io/v1/"]


def test_creds_store_is_asked_instead_of_auths(env: Env) -> None:
    # docker's nativeStore.Get overwrites the auths entry with the store's answer.
    env.answering("store", "from-store", "pw")
    path = env.docker_config({"credsStore": "store", "auths": {"r.example": {"auth": b64("file:pw")}}})
    creds = env.store().lookup("r.example")
    assert creds is not None
    assert creds.username == "from-store"
    assert creds.source == f"docker-credential-store (credsStore in {path})"


def test_cred_helpers_entry_wins_over_creds_store(env: Env) -> None:
    env.answering("store", "from-store", "pw")
    env.answering("specific", "from-helper", "pw")
    env.docker_config({"credsStore": "store", "credHelpers": {"r.example": "specific"}})
    store = env.store()
    specific, general = store.lookup("r.example"), store.lookup("other.example")
    assert specific is not None
    assert specific.username == "from-helper"
    assert general is not None
    assert general.username == "from-store"


def test_empty_cred_helpers_entry_keeps_a_registry_in_auths(env: Env) -> None:
    env.answering("store", "from-store", "pw")
    env.docker_config(
        {
            "credsStore": "store",
            "credHelpers": {"r.example": ""},
            "auths": {"r.example": {"auth": b64("file:pw")}},
        }
    )
    creds = env.store().lookup("r.example")
    assert creds is not None
    assert creds.username == "file"
    assert env.calls() == []


def test_token_username_means_identity_token(env: Env) -> None:
    env.answering("fake", "<token>", "refresh-token")
    env.docker_config({"credHelpers": {"r.example": "fake"}})
    creds = env.store().lookup("r.example")
    assert creds is not None
    assert (creds.username, creds.password, creds.identity_token) == (None, None, "refresh-token")


def test_helper_not_found_means_none_and_the_next_source_is_asked(env: Env) -> None:
    env.helper("empty", 'echo "credentials not found in native keychain"\nexit 1\n')
    env.auth_file({"credHelpers": {"r.example": "empty"}})
    store = env.store()
    assert store.lookup("r.example") is None
    env.docker_config({"auths": {"other.example": {"auth": b64("docker:pw")}}})
    env.auth_file({"credHelpers": {"other.example": "empty"}})
    creds = env.store().lookup("other.example")
    assert creds is not None
    assert creds.username == "docker"


def test_creds_store_not_found_does_not_fall_back_to_auths(env: Env) -> None:
    env.helper("empty", 'echo "credentials not found in native keychain"\nexit 1\n')
    env.docker_config({"credsStore": "empty", "auths": {"r.example": {"auth": b64("file:pw")}}})
    assert env.store().lookup("r.example") is None


def test_missing_helper_names_helper_and_file(env: Env) -> None:
    path = env.docker_config({"credsStore": "desktop"})
    with pytest.raises(AuthError) as exc:
        env.store().lookup("r.example")
    assert "docker-credential-desktop" in exc.value.message
    assert str(path) in exc.value.message
    assert "credsStore" in exc.value.message


def test_helper_name_cannot_be_a_path(env: Env) -> None:
    env.docker_config({"credHelpers": {"r.example": "../../bin/sh"}})
    with pytest.raises(AuthError, match="not a credential helper name"):
        env.store().lookup("r.example")


def test_helper_timeout(env: Env) -> None:
    env.helper("slow", "sleep 30\n")
    env.docker_config({"credHelpers": {"r.example": "slow"}})
    started = time.monotonic()
    with pytest.raises(AuthError, match=r"docker-credential-slow .*no answer .* within 0\.5s"):
        env.store(helper_timeout=0.5).lookup("r.example")
    assert time.monotonic() - started < 10


def test_helper_failure_quotes_only_status_and_a_short_first_line(env: Env) -> None:
    long_line = "x" * 500
    env.helper("broken", f'echo "{long_line}"\necho "second line {SECRET}" >&2\necho "{SECRET}"\nexit 7\n')
    env.docker_config({"credHelpers": {"r.example": "broken"}})
    with pytest.raises(AuthError) as exc:
        env.store().lookup("r.example")
    message = exc.value.diagnostics()
    assert "exit status 7" in message
    assert "x" * 199 in message
    assert "x" * 200 not in message
    assert SECRET not in message
    assert "\n" not in exc.value.message


def test_helper_answer_that_is_not_json_is_never_quoted(env: Env) -> None:
    env.helper("garbled", f'echo "Username=alice Secret={SECRET}"\n')
    env.docker_config({"credHelpers": {"r.example": "garbled"}})
    with pytest.raises(AuthError, match="not JSON") as exc:
        env.store().lookup("r.example")
    assert SECRET not in exc.value.diagnostics()


# -- broken files --------------------------------------------------------------------------------


def test_malformed_json_names_the_file(env: Env) -> None:
    env.docker_dir.mkdir()
    path = env.docker_dir / "config.json"
    path.write_text('{"auths": {"r.example": {"auth": "' + b64("alice:" + SECRET) + '"}', encoding="utf-8")
    with pytest.raises(AuthError) as exc:
        env.store().lookup("r.example")
    assert str(path) in exc.value.message
    assert "not valid JSON" in exc.value.message
    assert "\n" not in exc.value.message
    assert b64("alice:" + SECRET) not in exc.value.diagnostics()


@pytest.mark.parametrize(
    "doc",
    [[], {"auths": []}, {"credHelpers": {"r.example": 1}}, {"credsStore": 5}, {"auths": {"r.example": "x"}}],
)
def test_wrong_shapes_name_the_file(env: Env, doc: Any) -> None:
    path = env.docker_config(doc)
    with pytest.raises(AuthError, match=r"config\.json") as exc:
        env.store().lookup("r.example")
    assert str(path) in exc.value.message


def test_unreadable_file_names_it(env: Env) -> None:
    directory = env.tmp / "auth-dir"
    directory.mkdir()
    env.vars["REGISTRY_AUTH_FILE"] = str(directory)
    with pytest.raises(AuthError, match="is a directory") as exc:
        env.store().lookup("r.example")
    assert str(directory) in exc.value.message


def test_docker_config_pointing_at_the_file_is_explained(env: Env) -> None:
    path = env.docker_config({})
    env.vars["DOCKER_CONFIG"] = str(path)
    with pytest.raises(AuthError) as exc:
        env.store().lookup("r.example")
    assert exc.value.hint is not None
    assert "DOCKER_CONFIG" in exc.value.hint


@pytest.mark.parametrize(
    ("auth", "problem"),
    [
        ("%%%" + SECRET, "not valid base64"),
        (b64(SECRET.replace(":", "")), "user:password"),
        (b64(":" + SECRET), "user:password"),
        (base64.b64encode(b"\xff\xfe" + SECRET.encode()).decode(), "UTF-8"),
    ],
)
def test_malformed_auth_names_file_and_key_never_the_value(env: Env, auth: str, problem: str) -> None:
    path = env.docker_config({"auths": {"r.example": {"auth": auth}}})
    with pytest.raises(AuthError) as exc:
        env.store().lookup("r.example")
    text = exc.value.diagnostics()
    assert str(path) in text
    assert "'r.example'" in text
    assert problem in text
    assert SECRET not in text
    assert auth not in text
    # No chained exception may carry the decoded bytes into a traceback.
    assert exc.value.__cause__ is None
    assert exc.value.__context__ is None or exc.value.__suppress_context__


def test_a_broken_entry_for_another_registry_does_not_matter(env: Env) -> None:
    env.docker_config({"auths": {"bad.example": {"auth": "!!"}, "r.example": {"auth": b64("alice:pw")}}})
    creds = env.store().lookup("r.example")
    assert creds is not None
    assert creds.username == "alice"


# -- secrecy -------------------------------------------------------------------------------------


def test_repr_and_str_hide_secrets() -> None:
    creds = Credentials("alice", SECRET, "identity-" + SECRET, "registry-" + SECRET, source="/x (auths: r)")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert SECRET not in text
        assert "alice" in text
        assert "/x (auths: r)" in text
