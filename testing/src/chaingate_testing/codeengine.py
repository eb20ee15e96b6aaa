"""A loopback stand-in for IBM Cloud Code Engine v2 and the IAM APIs that deploy and audit use.

Code Engine and IAM cannot run here, so tests talk to this server with the real
clients — ``CodeEngineV2``, ``IamPolicyManagementV1``, ``IamAccessGroupsV2``,
``IamIdentityV1`` and the core SDK's ``IAMAuthenticator`` /
``ContainerAuthenticator`` / ``IAMAssumeAuthenticator``, configured the IBM way
(``CODE_ENGINE_URL``, ``CODE_ENGINE_APIKEY``, ``CODE_ENGINE_AUTH_URL``, ``IAM_*_URL``).

A fake is only as good as its shapes, so none is written by hand and trusted:
every response body is built through the SDK's own model
(``App.from_dict(doc).to_dict()`` and friends) and rejected when the model drops
a key (a misspelt or invented field), misses a required one, or holds a value
outside one of the model's enums. Request bodies are checked the same way against
the prototype/patch models, as the real API rejects unknown fields. A shape
mistake in the fake therefore surfaces as ``model_errors`` (and an HTTP 500),
never as a test that passes against a server that cannot exist.

Behaviour modelled, because the deploy depends on it: ETags and ``If-Match``
(HTTP 412), JSON merge-patch updates, one new revision per change that becomes
ready (or fails with a reason, or stays not ready with a reason) after a number
of polls, job runs that complete or fail, 404 for what does not exist, and
injected faults (5xx, delays).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs

from chaingate_testing._ibm_codeengine import CodeEngineResources
from chaingate_testing._ibm_http import ApiError, Call, Fault, RecordedRequest, Reply, Route, Server
from chaingate_testing._ibm_iam import CODE_ENGINE_ROLES, IAMResources
from chaingate_testing._ibm_models import ModelError, validated, validated_policy

__all__ = [
    "CODE_ENGINE_ROLES",
    "FakeIBMCloud",
    "Fault",
    "ModelError",
    "RecordedRequest",
    "validated",
    "validated_policy",
]


class FakeIBMCloud(CodeEngineResources, IAMResources):
    """Code Engine v2, the IAM token endpoint and the IAM policy / access group / identity APIs, on loopback.

    Seed state with ``add_*``; steer behaviour with the scenario attributes;
    assert on ``requests`` (and ``writes``) and on ``model_errors`` staying empty.
    """

    def __init__(
        self, *, account_id: str = "a1b2c3d4e5f60718293a4b5c6d7e8f90", region: str = "us-south"
    ) -> None:
        super().__init__(account_id=account_id, region=region)
        self.requests: list[RecordedRequest] = []
        self.model_errors: list[str] = []
        self.faults: list[Fault] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], Route]] = [
            ("POST", re.compile(r"/identity/token"), self._token),
            *self._code_engine_routes(),
            *self._iam_routes(),
        ]

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Self:
        server = Server(self)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-ibmcloud", daemon=True
        )
        self._server = server
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def code_engine_url(self) -> str:
        return f"{self.url}/v2"

    def environment(self, apikey: str) -> dict[str, str]:
        """The IBM SDK external configuration that points every client at this fake with ``apikey``."""
        return {
            "CODE_ENGINE_URL": self.code_engine_url,
            "CODE_ENGINE_AUTH_TYPE": "iam",
            "CODE_ENGINE_APIKEY": apikey,
            "CODE_ENGINE_AUTH_URL": self.url,
            "IAM_POLICY_MANAGEMENT_URL": self.url,
            "IAM_ACCESS_GROUPS_URL": self.url,
            "IAM_IDENTITY_URL": self.url,
        }

    @property
    def writes(self) -> list[RecordedRequest]:
        """Requests that change state (token requests excluded): a denied deploy must leave this empty."""
        with self._lock:
            return [r for r in self.requests if r.is_write]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- dispatch ----------------------------------------------------------------------------------

    def _dispatch(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                  raw: bytes) -> Reply:  # fmt: skip
        body: Any = None
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if raw and "json" in content_type:
            try:
                body = json.loads(raw)
            except ValueError:
                body = "<invalid json>"
        elif raw:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        recorded = body
        if path == "/identity/token" and isinstance(body, dict):
            recorded = {
                k: "<redacted>" if k in ("apikey", "cr_token", "access_token") else v for k, v in body.items()
            }
        with self._lock:
            self.requests.append(RecordedRequest(
                method, path, query, {k: v for k, v in headers.items() if k.lower() != "authorization"}, recorded,
            ))  # fmt: skip
            fault = self._fault(method, path)
        if fault is not None:
            self._stopping.wait(fault.delay)
            if fault.status is not None:
                return self._error(ApiError(fault.status, "injected", f"injected HTTP {fault.status}"))
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None or route_method != method:
                continue
            call = Call(method, path, query, headers, body, match)
            try:
                if handler != self._token:
                    call.identity = self._authenticate(headers)
                with self._lock:
                    return handler(call)
            except ApiError as e:
                return self._error(e)
            except ModelError as e:
                with self._lock:
                    self.model_errors.append(str(e))
                return self._error(ApiError(500, "fake_model_error", str(e)))
        return self._error(ApiError(404, "not_found", f"no route for {method} {path}"))

    def _fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if (fault.method in (None, method) and re.search(fault.path, path)
                    and (fault.times is None or fault.hits < fault.times)):  # fmt: skip
                fault.hits += 1
                return fault
        return None

    @staticmethod
    def _error(e: ApiError) -> Reply:
        return Reply(e.status, {"errors": [{"code": e.code, "message": e.message}], "status_code": e.status,
                                 "trace": uuid.uuid4().hex})  # fmt: skip
