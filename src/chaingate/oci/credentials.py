"""Registry credentials, found where docker, podman and skopeo users already keep them.

chaingate has no login command of its own: a user who can ``docker pull`` or
``skopeo copy`` an image must be able to gate it without configuring anything
again, and must get the *same* credentials those tools would send — a
different account could see a different image behind the same reference.

Where we look, in order; the first source that yields credentials wins:

1. ``$REGISTRY_AUTH_FILE`` — the variable podman, buildah and skopeo honour
   (containers-auth.json(5)).
2. The docker config: ``$DOCKER_CONFIG/config.json`` when ``DOCKER_CONFIG`` is
   set, else ``~/.docker/config.json`` (docker/cli ``cli/config``).

Within one file (docker/cli ``configfile.GetCredentialsStore`` and
``getConfiguredCredentialStore``):

* a ``credHelpers`` entry for the registry runs that helper, and only it
  (an empty entry, ``""``, sends that registry to ``auths`` even when
  ``credsStore`` is set);
* otherwise, when ``credsStore`` is set, docker asks that store, and only it:
  docker's native store overwrites whatever ``auths`` holds for the host with
  the helper's answer (``nativeStore.Get``), so an ``auths`` entry next to a
  ``credsStore`` never supplies credentials — ``docker login`` leaves only an
  empty ``{}`` marker there;
* otherwise the ``auths`` entries.

A helper answering "credentials not found" means this file has none for the
registry, and the next source is consulted (containers/image does the same).

``auths`` keys are matched as both docker and containers/image do: ``host``,
``host:port``, URLs such as ``https://index.docker.io/v1/`` (scheme and path
dropped: a URL always means a whole registry), with ``docker.io``,
``index.docker.io`` and ``registry-1.docker.io`` all meaning Docker Hub. Keys
``host/namespace[/repo]`` are containers-auth.json's namespaced credentials:
they cover the repositories under that path (whole segments only), and the
most specific key wins. As containers/image does, the same extension applies
to the docker config, where docker itself never writes such keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chaingate.oci.errors import AuthError
from chaingate.oci.reference import DOCKER_HUB
from chaingate.text import one_line

log = logging.getLogger(__name__)

_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
#: What docker passes a credential helper for Docker Hub (``registry.IndexServer``),
#: so helpers filled by ``docker login`` answer us too.
_HUB_SERVER_URL = "https://index.docker.io/v1/"
#: The message docker-credential-helpers prints when it holds nothing for a server.
_NOT_FOUND = "credentials not found in native keychain"
_HELPER_PREFIX = "docker-credential-"
#: The Username a helper answers with when Secret is an identity token, not a password.
_TOKEN_USERNAME = "<token>"  # noqa: S105 — a protocol marker, not a credential
#: Far above any real config; bounds what a mistaken REGISTRY_AUTH_FILE=/dev/zero can cost.
_MAX_CONFIG_BYTES = 8 << 20
_MAX_DETAIL = 200


@dataclass(frozen=True)
class Credentials:
    """What to authenticate to one registry with, and where it came from.

    Secrets are left out of ``repr`` (and so of ``str``): a ``Credentials`` may end
    up in a log line, a traceback or an assertion message, never its secrets.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: docker's ``identitytoken``: an OAuth2 refresh token traded for bearer tokens.
    identity_token: str | None = field(default=None, repr=False)
    #: docker's ``registrytoken``: a bearer token sent to the registry as is.
    registry_token: str | None = field(default=None, repr=False)
    #: Where these came from, for messages such as "the registry refused the credentials from ...".
    source: str = ""


@dataclass(frozen=True)
class _ConfigFile:
    path: Path
    auths: Mapping[str, Any]
    cred_helpers: Mapping[str, str]
    creds_store: str | None


def docker_config_paths(env: Mapping[str, str], home: Path) -> list[Path]:
    """Every file consulted for credentials, in the order they are consulted.

    ``$REGISTRY_AUTH_FILE`` comes first, then the docker config; an empty
    variable counts as unset, as it does for docker and podman.
    """
    paths: list[Path] = []
    auth_file = env.get("REGISTRY_AUTH_FILE")
    if auth_file:
        paths.append(Path(auth_file))
    docker_config = env.get("DOCKER_CONFIG")
    docker_file = Path(docker_config) / "config.json" if docker_config else home / ".docker" / "config.json"
    if docker_file not in paths:
        paths.append(docker_file)
    return paths


def _canonical_host(host: str) -> str:
    host = host.strip().lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


def _parse_key(key: str) -> tuple[str, tuple[str, ...]] | None:
    """The registry and namespace path an ``auths``/``credHelpers`` key stands for, if any."""
    text = key.strip()
    path: tuple[str, ...] = ()
    if "://" in text:
        try:
            netloc = urlsplit(text).netloc
        except ValueError:
            return None
        host = netloc.rpartition("@")[2]
    else:
        host, _, rest = text.partition("/")
        path = tuple(part for part in rest.split("/") if part)
    if not host:
        return None
    return _canonical_host(host), path


def _first_line(text: str) -> str:
    """The first non-empty line, neutralised and cut short: all of a helper's output a message may quote."""
    for line in text.splitlines():
        if line.strip():
            return one_line(line, _MAX_DETAIL)
    return ""


class CredentialStore:
    """Finds credentials for a registry as docker and podman would, and remembers the answer.

    Results (including "none") are cached per (registry, repository): a helper
    may prompt, unlock a keychain or call a cloud API, and a copy asks for the
    same registry many times. Errors are not cached, so a fixed config is seen
    on the next call. One lock serialises lookups so concurrent transfers run
    a helper once, not once per thread.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        home: Path | None = None,
        helper_timeout: float = 10.0,
    ) -> None:
        self._env: Mapping[str, str] = dict(os.environ if env is None else env)
        self._home = home if home is not None else Path.home()
        self._helper_timeout = helper_timeout
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str | None], Credentials | None] = {}

    def lookup(self, registry: str, repository: str | None = None) -> Credentials | None:
        """Credentials for ``registry`` (``host[:port]``, ``docker.io`` for Docker Hub), or None.

        ``repository`` (e.g. ``org/app``) lets namespaced ``auths`` keys apply;
        without it only whole-registry entries match.
        """
        host = _canonical_host(registry)
        repo = repository.strip("/") if repository else None
        key = (host, repo or None)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            creds = self._find(host, repo or None)
            self._cache[key] = creds
            return creds

    # -- sources ------------------------------------------------------------------------------

    def _find(self, registry: str, repository: str | None) -> Credentials | None:
        for path in docker_config_paths(self._env, self._home):
            config = self._load(path)
            if config is None:
                continue
            creds = self._from_file(config, registry, repository)
            if creds is not None:
                log.debug("credentials for %s from %s", registry, creds.source)
                return creds
        log.debug("no credentials for %s", registry)
        return None

    def _load(self, path: Path) -> _ConfigFile | None:
        """The parsed file, or None when it does not exist (having no config is normal)."""
        try:
            with path.open("rb") as handle:
                raw = handle.read(_MAX_CONFIG_BYTES + 1)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise AuthError(
                f"{path}: cannot be read (a parent of it is a file, not a directory)",
                hint="DOCKER_CONFIG names the directory holding config.json; REGISTRY_AUTH_FILE names the file",
            ) from None
        except IsADirectoryError:
            raise AuthError(
                f"{path}: is a directory, not a credentials file",
                hint="REGISTRY_AUTH_FILE names the auth.json file itself",
            ) from None
        except OSError as e:
            raise AuthError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
        if len(raw) > _MAX_CONFIG_BYTES:
            raise AuthError(f"{path}: larger than {_MAX_CONFIG_BYTES >> 20} MiB; not a credentials file")
        if not raw.strip():
            # docker treats an empty config as an empty one (LoadFromReader accepts io.EOF).
            return _ConfigFile(path, {}, {}, None)
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as e:
            raise AuthError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
        except RecursionError:
            raise AuthError(f"{path}: not valid JSON (nested too deeply)") from None
        except ValueError:
            raise AuthError(f"{path}: not valid JSON (not UTF-8 text)") from None
        if not isinstance(doc, dict):
            raise AuthError(f"{path}: not a JSON object")
        auths = doc.get("auths")
        if auths is None:
            auths = {}
        if not isinstance(auths, dict):
            raise AuthError(f'{path}: "auths" must be an object')
        helpers = doc.get("credHelpers")
        if helpers is None:
            helpers = {}
        if not isinstance(helpers, dict) or not all(isinstance(v, str) for v in helpers.values()):
            raise AuthError(f'{path}: "credHelpers" must be an object of helper names')
        store = doc.get("credsStore")
        if store is not None and not isinstance(store, str):
            raise AuthError(f'{path}: "credsStore" must be a helper name')
        return _ConfigFile(path, auths, helpers, store or None)

    def _from_file(self, config: _ConfigFile, registry: str, repository: str | None) -> Credentials | None:
        helper = self._helper_for(config, registry)
        if helper:
            return self._run_helper(helper, registry, "credHelpers", config.path)
        # An empty credHelpers entry is docker's way to keep one registry in the
        # file (getConfiguredCredentialStore returns "", so the file store is used).
        if helper is None and config.creds_store:
            return self._run_helper(config.creds_store, registry, "credsStore", config.path)
        return _from_auths(config, registry, repository)

    @staticmethod
    def _helper_for(config: _ConfigFile, registry: str) -> str | None:
        """The ``credHelpers`` entry for the registry: the key as written first, then any alias of it.

        docker keys Docker Hub by ``https://index.docker.io/v1/`` and podman by
        ``docker.io``; both mean the same registry. Helpers never take
        namespaced keys (containers/image refuses them too).
        """
        matches: list[tuple[bool, str]] = []
        for key in config.cred_helpers:
            parsed = _parse_key(key)
            if parsed is not None and parsed == (registry, ()):
                matches.append((key != registry, key))
        if not matches:
            return None
        return config.cred_helpers[min(matches)[1]]

    # -- credential helpers ---------------------------------------------------------------------

    def _run_helper(self, name: str, registry: str, setting: str, path: Path) -> Credentials | None:
        """Ask ``docker-credential-<name> get`` (the docker-credential-helpers protocol).

        Nothing a helper prints may reach a message whole: on success its
        output *is* the secret, and some helpers echo their input or
        environment when they fail. Only the exit status and one short line are
        quoted.
        """
        program = _HELPER_PREFIX + name
        configured_by = f"{setting} in {path}"
        if not name.strip() or "/" in name or os.sep in name or name != name.strip():
            raise AuthError(f"{configured_by}: {name!r} is not a credential helper name")
        executable = shutil.which(program, path=self._env.get("PATH", os.defpath))
        if executable is None:
            raise AuthError(
                f"credential helper {program} is not installed (not found on PATH); {configured_by} names it",
                hint=f"install {program}, or remove it from {setting} in {path}",
            )
        server_url = _HUB_SERVER_URL if registry == DOCKER_HUB else registry
        what = f"credential helper {program} ({configured_by})"
        try:
            proc = subprocess.Popen(
                [executable, "get"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(self._env),
                start_new_session=True,
            )
        except OSError as e:
            raise AuthError(f"{what} could not be started: {e.strerror or type(e).__name__}") from None
        try:
            out, err = proc.communicate(server_url.encode(), timeout=self._helper_timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise AuthError(
                f"{what} gave no answer for {registry} within {self._helper_timeout:g}s",
                hint="a helper may be waiting for a keychain to be unlocked or for a prompt to be answered",
            ) from None
        stdout = out.decode("utf-8", "replace")
        stderr = err.decode("utf-8", "replace")
        if proc.returncode != 0:
            if _NOT_FOUND in stdout or _NOT_FOUND in stderr:
                return None
            status = (
                f"killed by signal {-proc.returncode}"
                if proc.returncode < 0
                else f"exit status {proc.returncode}"
            )
            detail = _first_line(stdout) or _first_line(stderr)
            raise AuthError(f"{what} failed for {registry} ({status})" + (f": {detail}" if detail else ""))
        return _helper_answer(stdout, what, registry, f"{program} ({configured_by})")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill a helper and everything it started, then reap it.

    The helper runs in its own session, so its process group holds whatever it
    spawned (a shell script's ``sleep``, a keychain client); killing only the
    helper would leave those holding our pipes open.
    """
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        # Something escaped the group and still holds a pipe: stop reading, just reap.
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


def _helper_answer(stdout: str, what: str, registry: str, source: str) -> Credentials | None:
    try:
        doc = json.loads(stdout)
    except ValueError:
        raise AuthError(f"{what} answered {registry} with something that is not JSON") from None
    if not isinstance(doc, dict):
        raise AuthError(f"{what} answered {registry} with JSON that is not an object")
    username, secret = doc.get("Username"), doc.get("Secret")
    if not isinstance(username, str | None) or not isinstance(secret, str | None):
        raise AuthError(f"{what} answered {registry} with a non-string Username or Secret")
    if not username and not secret:
        return None
    if username == _TOKEN_USERNAME:
        # docker-credential-helpers' convention: the secret is an identity (refresh) token.
        return Credentials(identity_token=secret or None, source=source)
    return Credentials(username=username or None, password=secret, source=source)


# -- auths entries -----------------------------------------------------------------------------


def _from_auths(config: _ConfigFile, registry: str, repository: str | None) -> Credentials | None:
    """The most specific ``auths`` entry covering ``registry/repository`` that holds credentials.

    Ties between spellings of one registry (``docker.io`` next to
    ``https://index.docker.io/v1/``) go to the key written exactly as the
    registry, as both docker and containers/image prefer exact keys. Entries
    holding nothing — docker's ``{}`` marker for helper-held credentials — are
    passed over rather than shadowing a broader entry.
    """
    repo_parts = tuple(part for part in repository.split("/") if part) if repository else ()
    ranked: list[tuple[int, bool, str]] = []
    for key in config.auths:
        parsed = _parse_key(key)
        if parsed is None:
            continue
        host, namespace = parsed
        if host != registry or repo_parts[: len(namespace)] != namespace:
            continue
        canonical = "/".join((registry, *namespace))
        ranked.append((-len(namespace), key != canonical, key))
    for _, _, key in sorted(ranked):
        creds = _entry_credentials(config.path, key, config.auths[key])
        if creds is not None:
            return creds
    return None


def _entry_credentials(path: Path, key: str, entry: Any) -> Credentials | None:
    where = f"{path}: auths entry {key!r}"
    if not isinstance(entry, dict):
        raise AuthError(f"{where} must be an object")
    fields: dict[str, str | None] = {}
    for name in ("auth", "username", "password", "identitytoken", "registrytoken"):
        value = entry.get(name)
        if value is not None and not isinstance(value, str):
            raise AuthError(f'{where}: "{name}" must be a string')
        fields[name] = value or None
    username, password = fields["username"], fields["password"]
    if fields["auth"] is not None:
        # As docker's LoadFromReader: a non-empty "auth" replaces username/password.
        username, password = _decode_auth(fields["auth"], where)
    if not any((username, password, fields["identitytoken"], fields["registrytoken"])):
        return None
    return Credentials(
        username=username,
        password=password,
        identity_token=fields["identitytoken"],
        registry_token=fields["registrytoken"],
        source=f"{path} (auths: {key})",
    )


def _decode_auth(value: str, where: str) -> tuple[str, str]:
    """``base64("user:password")`` → (user, password); the password may itself contain ':'.

    Errors name the file and key only: the value, even undecodable, is a secret.
    Unlike containers/image, which skips an entry without a colon, this fails as
    docker's ``decodeAuth`` does — silently going anonymous hides a broken login.
    """
    hint = "log in again (docker login / podman login) or fix the entry"
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuthError(f'{where}: "auth" is not valid base64', hint=hint) from None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthError(f'{where}: "auth" does not decode to UTF-8 text', hint=hint) from None
    username, colon, password = text.partition(":")
    if not colon or not username:
        raise AuthError(f'{where}: "auth" does not decode to user:password', hint=hint)
    # docker trims NUL padding some old clients left after the password.
    return username, password.strip("\x00")
