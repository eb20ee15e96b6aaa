"""Credentials, endpoints and calls for the IBM Cloud APIs the deploy and the audits use.

Authentication is entirely the official ``ibm-cloud-sdk-core``'s: flags choose an
authenticator explicitly, otherwise the SDK's own external configuration decides
(``CODE_ENGINE_AUTH_TYPE``, ``CODE_ENGINE_APIKEY``, ``CODE_ENGINE_AUTH_URL``,
``CODE_ENGINE_URL``, an ``ibm-credentials.env`` file…), exactly as any IBM tool
configured for the same service would. Re-implementing token exchange would be one
more place for a credential to leak or a refresh to go wrong.

Every API call goes through :class:`ApiCaller`, which owns the one retry policy
(transient HTTP statuses and connection errors, bounded by attempts) and turns
SDK exceptions into one-line :class:`DeployError` messages. Server messages are
quoted (bounded); request bodies and headers never are, so no API key, token or
secret value can reach an error or a log line.
"""

from __future__ import annotations

import base64
import functools
import http.client
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import requests
from ibm_cloud_sdk_core import ApiException, BaseService, DetailedResponse
from ibm_cloud_sdk_core.authenticators import (
    Authenticator,
    ContainerAuthenticator,
    IAMAssumeAuthenticator,
    IAMAuthenticator,
)
from ibm_cloud_sdk_core.get_authenticator import get_authenticator_from_environment
from ibm_cloud_sdk_core.utils import read_external_sources

from chaingate.deploy.interface import DeployError
from chaingate.text import one_line

log = logging.getLogger(__name__)

#: The Code Engine API behaviour chaingate is written against; pinned so a server-side default
#: change cannot silently alter what an update does. Any date the SDK documents as valid works.
CODE_ENGINE_API_VERSION = "2025-03-29"
CODE_ENGINE_SERVICE = "code_engine"
#: The core SDK's logger (see :func:`hold_sdk_wire_log`).
SDK_LOGGER = "ibm-cloud-sdk-core"
_REGION_RE = re.compile(r"[a-z]{2}-[a-z]+")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_MESSAGE = 200
#: Where a service ID's API key is read from when ``--auth apikey`` gives no file.
APIKEY_ENV = "IBMCLOUD_API_KEY"

AuthMethod = Literal["apikey", "container", "assume"]


@dataclass(frozen=True)
class AuthOptions:
    """How to authenticate when flags say so; ``method=None`` defers to the SDK's external configuration.

    The API key is only ever read from a file or the environment: a key on the
    command line would be visible to every process on the machine.
    """

    method: AuthMethod | None = None
    apikey_file: Path | None = None
    profile_id: str | None = None
    profile_name: str | None = None
    cr_token_file: Path | None = None
    iam_url: str | None = None
    account_id: str | None = None


def code_engine_url(region: str) -> str:
    """The regional Code Engine v2 endpoint; the region is validated so it cannot redirect the host."""
    if not _REGION_RE.fullmatch(region):
        raise DeployError(f"--region: {region!r} is not an IBM Cloud region (e.g. us-south, eu-de)")
    return f"https://api.{region}.codeengine.cloud.ibm.com/v2"


def _read_apikey(options: AuthOptions, env: Mapping[str, str]) -> str:
    if options.apikey_file is not None:
        try:
            key = options.apikey_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise DeployError(f"--apikey-file: {options.apikey_file}: {e.strerror or e}") from None
        if not key:
            raise DeployError(f"--apikey-file: {options.apikey_file} is empty")
        return key
    key = env.get(APIKEY_ENV, "").strip()
    if not key:
        raise DeployError(
            f"--auth {options.method}: no API key",
            hint=f"pass --apikey-file FILE or set {APIKEY_ENV} (a service ID's API key)",
        )
    return key


def _profile(options: AuthOptions) -> dict[str, str | None]:
    if bool(options.profile_id) == bool(options.profile_name):
        raise DeployError(
            f"--auth {options.method}: name the trusted profile with --profile-id or --profile-name"
        )
    return {"iam_profile_id": options.profile_id, "iam_profile_name": options.profile_name}


def build_authenticator(
    options: AuthOptions, service_name: str = CODE_ENGINE_SERVICE, *, env: Mapping[str, str] | None = None
) -> Authenticator:
    """The authenticator the flags ask for, else the one the SDK's external configuration describes.

    ``ValueError`` from the SDK constructors names a setting (never its value),
    so it is passed on as the message.
    """
    env = os.environ if env is None else env
    hold_sdk_wire_log()  # before any SDK service exists: the SDK decides on wire logging when constructed
    try:
        if options.method is None:
            auth = get_authenticator_from_environment(service_name)
            if auth is None:
                prefix = service_name.upper()
                raise DeployError(
                    f"no IBM Cloud credentials for {service_name}",
                    hint=f"set {prefix}_APIKEY (a service ID's API key) or {prefix}_AUTH_TYPE=container with "
                    f"{prefix}_IAM_PROFILE_ID, or pass --auth apikey|container|assume",
                )
            return auth
        if options.method == "apikey":
            return IAMAuthenticator(_read_apikey(options, env), url=options.iam_url)
        if options.method == "assume":
            return IAMAssumeAuthenticator(
                _read_apikey(options, env),
                url=options.iam_url,
                iam_account_id=options.account_id,
                **_profile(options),
            )
        return ContainerAuthenticator(
            cr_token_filename=str(options.cr_token_file) if options.cr_token_file else None,
            url=options.iam_url,
            **_profile(options),
        )
    except ValueError as e:
        where = f"--auth {options.method}" if options.method else f"{service_name.upper()}_* configuration"
        raise DeployError(f"{where}: {one_line(str(e), _MAX_MESSAGE)}") from None


def hold_sdk_wire_log() -> None:
    """Keep the core SDK's HTTP wire log off, whatever ``-vv`` asked for.

    At DEBUG the SDK switches ``http.client`` to print every request line and
    body (process-wide) and only redacts fields whose *names* look secret: the
    literal env values a merge patch must re-send, and registry traffic in the
    same process, would be logged. chaingate's own debug lines say what it does
    without them.
    """
    sdk = logging.getLogger(SDK_LOGGER)
    if sdk.getEffectiveLevel() < logging.INFO:
        sdk.setLevel(logging.INFO)
    http.client.HTTPConnection.debuglevel = 0


def configure(service: BaseService, service_name: str, *, url: str | None, timeout: float) -> None:
    """Point ``service`` at ``url`` (flags win), else at its external configuration (``<SERVICE>_URL``)."""
    try:
        service.configure_service(service_name)
    except ValueError as e:
        raise DeployError(
            f"{service_name.upper()}_* configuration: {one_line(str(e), _MAX_MESSAGE)}"
        ) from None
    if url is not None:
        service.set_service_url(url)
    # The SDK's own retries would re-send non-idempotent creates blindly; ApiCaller decides instead.
    service.set_http_config({"timeout": (min(timeout, 10.0), timeout)})


def external_url(service_name: str) -> str | None:
    """``<SERVICE>_URL`` (or the credentials file's URL) when the external configuration sets one."""
    url = read_external_sources(service_name).get("URL")
    return url if isinstance(url, str) and url else None


def token_claims(authenticator: Authenticator) -> dict[str, Any]:
    """The claims of the IAM access token the authenticator holds (already fetched), for the deployer identity.

    The payload is only read to say who deployed; it is not a security decision, so
    no signature check is needed, and the token itself is never returned or logged.
    """
    manager = getattr(authenticator, "token_manager", None)
    token = getattr(manager, "access_token", None)
    if not isinstance(token, str) or token.count(".") != 2:
        return {}
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


class NotFoundError(DeployError):
    """HTTP 404 from an IBM Cloud API: callers that expect absence catch this one."""


class PreconditionFailed(DeployError):
    """HTTP 412: the ETag sent in If-Match is no longer current."""


class Conflict(DeployError):
    """HTTP 409: e.g. a create raced with another create of the same name."""


@dataclass
class ApiCaller:
    """Runs SDK calls with bounded retries and maps their failures to one-line errors.

    ``sleep`` is injected so tests exercise backoff without waiting.
    """

    max_attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    sleep: Callable[[float], None] = time.sleep

    def call(self, what: str, fn: Callable[[], DetailedResponse]) -> DetailedResponse:
        """``fn()`` until it succeeds, fails for good, or the attempts run out."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except ApiException as e:
                status = int(e.status_code or 0)
                if status in _RETRY_STATUS and attempt < self.max_attempts:
                    delay = self._delay(attempt, e)
                    log.info(
                        "%s: HTTP %s, retrying in %.1fs (%d/%d)",
                        what,
                        status,
                        delay,
                        attempt,
                        self.max_attempts,
                    )
                    self.sleep(delay)
                    continue
                raise self._error(what, status, e) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
                if attempt < self.max_attempts:
                    delay = self._delay(attempt, None)
                    log.info("%s: %s, retrying in %.1fs", what, type(e).__name__, delay)
                    self.sleep(delay)
                    continue
                raise DeployError(
                    f"{what}: the API could not be reached after {attempt} attempts ({type(e).__name__})",
                    hint="check --region / the service URL and the network",
                ) from None
            except requests.exceptions.RequestException as e:
                # A malformed URL or similar: retrying cannot help, and the configuration is what to fix.
                raise DeployError(f"{what}: {type(e).__name__}: {one_line(str(e), _MAX_MESSAGE)}") from None

    def _delay(self, attempt: int, e: ApiException | None) -> float:
        if e is not None and e.http_response is not None:
            after = str(e.http_response.headers.get("Retry-After", ""))
            if after.strip().isdigit():
                return min(float(after), self.max_backoff)
        return min(self.backoff * 2.0 ** (attempt - 1), self.max_backoff)

    @staticmethod
    def _error(what: str, status: int, e: ApiException) -> DeployError:
        message = one_line(e.message or "", _MAX_MESSAGE)
        text = f"{what}: HTTP {status}" + (f": {message}" if message else "")
        if status == 404:
            return NotFoundError(text)
        if status == 412:
            return PreconditionFailed(text)
        if status == 409:
            return Conflict(text)
        if status in (401, 403):
            return DeployError(
                text,
                hint="the identity needs the IAM roles described in docs/code-engine.md; check its API key or "
                "trusted profile",
            )
        if status == 0:
            return DeployError(f"{what}: {message or 'IAM authentication failed'}")
        return DeployError(text)


def result(response: DetailedResponse, what: str) -> dict[str, Any]:
    """The JSON object a call returned; anything else is a protocol error, not a crash."""
    body = response.get_result()
    if not isinstance(body, dict):
        raise DeployError(f"{what}: the API returned no JSON object")
    return body


#: Bounds every listing, so a misbehaving server cannot keep a command paging forever.
MAX_PAGES = 200


def pages_by_start(
    caller: ApiCaller, what: str, fetch: Callable[[str | None], DetailedResponse], key: str
) -> Iterator[dict[str, Any]]:
    """Items of a listing paged with ``next.start`` tokens (Code Engine, IAM v2 policies)."""
    start: str | None = None
    for _ in range(MAX_PAGES):
        page = result(caller.call(what, functools.partial(fetch, start)), what)
        yield from (item for item in page.get(key) or [] if isinstance(item, dict))
        nxt = page.get("next")
        start = nxt.get("start") if isinstance(nxt, dict) else None
        if not start:
            return
    raise DeployError(f"{what}: more than {MAX_PAGES} pages")


def next_param(page: Mapping[str, Any], param: str) -> str | None:
    """A paging parameter from a ``next`` link (IAM identity: a URL string; access groups: ``{href}``)."""
    nxt = page.get("next")
    href = nxt.get("href") if isinstance(nxt, dict) else nxt
    if not isinstance(href, str) or not href:
        return None
    values = parse_qs(urlsplit(href).query).get(param)
    return values[0] if values else None
