"""The OCI registry stand-in's data: what it stores, what it answers, and the faults it injects.

Kept apart from the HTTP framing and from the routes so each can be read alone:
these are plain values and pure checks, with no socket and no lock in sight.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "API_VERSION",
    "DIGEST_RE",
    "NAME_RE",
    "OCI_INDEX_MEDIA_TYPE",
    "TAG_RE",
    "Fault",
    "FaultPlan",
    "Manifest",
    "RecordedRequest",
    "RegistryError",
    "Repo",
    "Request",
    "Response",
    "Upload",
    "check_digest",
    "check_name",
    "descriptor",
    "descriptor_list",
    "error_response",
    "fault_code",
    "hash_digest",
    "manifest_record",
    "plain_not_found",
    "range_header",
    "verify_digest",
]

#: Repository name grammar from the distribution spec (matched whole).
NAME_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
#: The digests this registry can verify; anything else is rejected as invalid.
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
#: Tag grammar from the distribution spec (matched whole).
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
OCI_INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
NOT_FOUND_TEXT = b"404 page not found\n"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, so tests can assert on the client's wire behaviour.

    ``headers`` keeps the client's spelling of names; the ``Authorization``
    value is replaced by ``"<redacted>"`` so a recorded log can be printed in a
    failing test without leaking the credential it carried.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Fault:
    """When `method` (None = any) and the regex `path` (re.search on the URL path) match, and `times`
    (None = forever) has not run out, the fault acts instead of / on top of normal handling.

    Matching faults are consulted in the order they were added and all of them
    act (delays add up, headers merge, ``corrupt``/``oversize`` combine) until
    one with a ``status`` short-circuits the request; faults after it are not
    consulted and do not count a hit. ``hits`` is updated under the server lock,
    so it is exact even under concurrent clients.

    ``drip`` sends the body one byte every ``drip`` seconds after prompt
    headers: the slow-loris registry whose every socket read returns in time,
    so no per-read timeout ever fires.
    """

    path: str
    method: str | None = None
    times: int | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    corrupt: bool = False
    oversize: int | None = None
    drip: float = 0.0
    hits: int = 0


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names: lookups must not depend on client spelling
    body: bytes

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class FaultPlan:
    delay: float = 0.0
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    corrupt: bool = False
    oversize: int = 0
    drip: float = 0.0


@dataclass
class Manifest:
    data: bytes
    media_type: str
    subject: str | None
    artifact_type: str | None
    annotations: dict[str, Any] | None


@dataclass
class Repo:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, Manifest] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # subject digest -> referrer digests; a dict keeps push order and dedups.
    referrers: dict[str, dict[str, None]] = field(default_factory=dict)


@dataclass
class Upload:
    repo: str
    data: bytearray = field(default_factory=bytearray)


class RegistryError(Exception):
    """Unwinds a route to an OCI error response, so routes read as the happy path."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        detail: Any = None,
        headers: dict[str, str] | None = None,
        more: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        entry: dict[str, Any] = {"code": code, "message": message}
        if detail is not None:
            entry["detail"] = detail
        self.status = status
        self.errors = [entry, *(more or [])]
        self.headers = headers or {}

    def response(self) -> Response:
        return error_response(self.status, self.errors, self.headers)


def error_response(
    status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps({"errors": errors}).encode()
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})


def plain_not_found() -> Response:
    # What Go's default mux answers: registries without a route say exactly this,
    # and clients must treat it as "no such API" rather than parse an OCI error.
    return Response(404, NOT_FOUND_TEXT, {"Content-Type": "text/plain; charset=utf-8"})


def fault_code(status: int, path: str) -> str:
    """Pick the spec error code a real registry would pair with ``status`` on this route.

    Clients branch on the code as well as the status, so an injected 404 on a
    manifest must look like MANIFEST_UNKNOWN, not a generic error.
    """
    fixed = {
        401: "UNAUTHORIZED",
        403: "DENIED",
        405: "UNSUPPORTED",
        413: "SIZE_INVALID",
        416: "BLOB_UPLOAD_INVALID",
        429: "TOOMANYREQUESTS",
    }
    if status in fixed:
        return fixed[status]
    if status == 404:
        if "/manifests/" in path:
            return "MANIFEST_UNKNOWN"
        if "/blobs/uploads/" in path:
            return "BLOB_UPLOAD_UNKNOWN"
        if "/blobs/" in path:
            return "BLOB_UNKNOWN"
        return "NAME_UNKNOWN"
    if status == 400:
        return "MANIFEST_INVALID" if "/manifests/" in path else "BLOB_UPLOAD_INVALID"
    # The spec lists no code for 5xx; "UNKNOWN" is what docker-registry sends.
    return "UNKNOWN" if status >= 500 else "UNSUPPORTED"


def hash_digest(algorithm: str, data: bytes) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def verify_digest(digest: str, data: bytes, what: str) -> None:
    """Refuse ``data`` unless it hashes to ``digest``: a registry must never serve bytes under a false name."""
    actual = hash_digest(digest.split(":", 1)[0], data)
    if actual != digest:
        raise RegistryError(
            400,
            "DIGEST_INVALID",
            f"{what} hashes to {actual}, not {digest}",
            detail={"expected": digest, "actual": actual},
        )


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise RegistryError(400, "NAME_INVALID", f"invalid repository name {name!r}", detail={"name": name})
    return name


def check_digest(digest: str) -> str:
    if not DIGEST_RE.fullmatch(digest):
        raise RegistryError(400, "DIGEST_INVALID", f"invalid or unsupported digest {digest!r}")
    return digest


def range_header(size: int) -> str:
    # docker-registry answers "0-0" for an empty upload too; clients in the wild
    # are written against that, so this mirrors it rather than inventing "0--1".
    return f"0-{max(size - 1, 0)}"


def descriptor(value: Any, where: str) -> tuple[str, int]:
    """Validate a descriptor enough to look up what it points at."""
    if not isinstance(value, dict):
        raise RegistryError(400, "MANIFEST_INVALID", f"{where} is not a descriptor object")
    digest = value.get("digest")
    size = value.get("size")
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise RegistryError(400, "MANIFEST_INVALID", f"{where}.digest is missing or invalid")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(400, "MANIFEST_INVALID", f"{where}.size is missing or invalid")
    return digest, size


def descriptor_list(doc: dict[str, Any], key: str) -> list[tuple[str, int]]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RegistryError(400, "MANIFEST_INVALID", f"{key} is not a list")
    return [descriptor(item, f"{key}[{i}]") for i, item in enumerate(value)]


def manifest_record(data: bytes, media_type: str, doc: dict[str, Any] | None) -> Manifest:
    """Precompute what the referrers listing needs, so listing never re-parses stored bytes."""
    if doc is None:
        return Manifest(data, media_type, None, None, None)
    subject = doc.get("subject")
    subject_digest = subject.get("digest") if isinstance(subject, dict) else None
    artifact_type = doc.get("artifactType")
    if not isinstance(artifact_type, str) or not artifact_type:
        config = doc.get("config")
        config_type = config.get("mediaType") if isinstance(config, dict) else None
        artifact_type = config_type if isinstance(config_type, str) and config_type else None
    annotations = doc.get("annotations")
    return Manifest(
        data=data,
        media_type=media_type,
        subject=subject_digest if isinstance(subject_digest, str) else None,
        artifact_type=artifact_type,
        annotations=annotations if isinstance(annotations, dict) and annotations else None,
    )
