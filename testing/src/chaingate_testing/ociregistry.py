"""A real, in-memory OCI Distribution v1.1 registry for tests.

Debian's docker-registry 2.8 predates the OCI 1.1 referrers API, so without this
server the referrers code path of our client could only be tested against mocks
that agree with whatever the client already believes. This one speaks the wire
protocol for real (uploads, manifests, tags, referrers, basic auth) and is
deliberately strict where the spec lets a registry be, so client bugs surface
here rather than against a production registry. It can also inject the faults a
healthy registry never produces on demand: bad bytes, lying lengths, throttling
storms and stalls.

Stdlib only, so it runs wherever the test-suite runs, with no daemon to install.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

from chaingate_testing._oci_http import Server
from chaingate_testing._oci_model import (
    DIGEST_RE,
    NAME_RE,
    OCI_INDEX_MEDIA_TYPE,
    TAG_RE,
    Fault,
    FaultPlan,
    Manifest,
    RecordedRequest,
    RegistryError,
    Repo,
    Request,
    Response,
    Upload,
    check_digest,
    check_name,
    descriptor,
    descriptor_list,
    error_response,
    fault_code,
    hash_digest,
    manifest_record,
    plain_not_found,
    range_header,
    verify_digest,
)

__all__ = [
    "DIGEST_RE",
    "NAME_RE",
    "OCI_INDEX_MEDIA_TYPE",
    "TAG_RE",
    "Fault",
    "ImmutableTags",
    "OCIRegistry",
    "RecordedRequest",
]


@dataclass(frozen=True)
class ImmutableTags:
    """The fault of a registry with immutable tags (ECR, Harbor, Artifactory, ACR locks, GAR, Docker Hub).

    A tag matching ``pattern`` (``re.fullmatch``) may be created, but moving
    it to another manifest is answered with ``status``/``code``/``message``
    (``{tag}`` in the message is the tag). Unlike a :class:`Fault` it depends
    on state, which is the point: the first attach succeeds, the second does not.
    """

    pattern: str = r"sha256-[0-9a-f]{64}"
    status: int = 400
    code: str = "TAG_INVALID"
    message: str = (
        "The image tag '{tag}' already exists and cannot be overwritten because the repository is immutable."
    )


_REALM = "chaingate-test"
# Spec grammar is ``start-end``; the ``bytes``/total decorations are tolerated
# because some clients send an RFC 9110 Content-Range by habit.
_CONTENT_RANGE_RE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")

_V2_RE = re.compile(r"/v2/?")
# Names may contain any path segment, so every pattern is greedy on the name and
# anchored on a suffix that cannot contain "/"; upload routes are tried before
# blob routes because ".../blobs/uploads" would otherwise read as a blob digest.
_UPLOAD_SESSION_RE = re.compile(r"/v2/(?P<name>.+)/blobs/uploads/(?P<session>[^/]+)")
_UPLOADS_RE = re.compile(r"/v2/(?P<name>.+)/blobs/uploads/?")
_BLOB_RE = re.compile(r"/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)")
_MANIFEST_RE = re.compile(r"/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)")
_TAGS_RE = re.compile(r"/v2/(?P<name>.+)/tags/list")
_REFERRERS_RE = re.compile(r"/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)")

_Route = Callable[[Request, re.Match[str]], Response]


class OCIRegistry:
    """An OCI Distribution v1.1 registry on loopback, with fault injection.

    Usable as a context manager from fixtures or scripts. All state is in memory
    behind one lock; requests are served by daemon threads so a forgotten
    ``stop()`` cannot hang interpreter exit, but ``stop()`` still joins them so
    a test that calls it leaves no thread behind.
    """

    def __init__(
        self,
        *,
        referrers_api: bool = True,
        basic_auth: tuple[str, str] | None = None,
        max_body: int = 64 * 1024 * 1024,
        host: str = "127.0.0.1",
    ) -> None:
        #: Mutable at runtime so one registry can play both a 1.1 and a pre-1.1 server.
        self.referrers_api = referrers_api
        #: Set to refuse moving existing tags, as registries with immutable tags do.
        self.immutable_tags: ImmutableTags | None = None
        self.max_body = max_body
        self.requests: list[RecordedRequest] = []
        self._basic_auth = basic_auth
        self._bind_host = host
        self._lock = threading.Lock()
        self._lifecycle = threading.Lock()
        self._stopping = threading.Event()
        self._repos: dict[str, Repo] = {}
        self._uploads: dict[str, Upload] = {}
        self._faults: list[Fault] = []
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._routes: list[tuple[re.Pattern[str], dict[str, _Route]]] = [
            (_UPLOAD_SESSION_RE, {"GET": self._upload_status, "PATCH": self._upload_patch,
                                  "PUT": self._upload_put, "DELETE": self._upload_cancel}),
            (_UPLOADS_RE, {"POST": self._upload_start}),
            (_BLOB_RE, {"GET": self._blob_get, "HEAD": self._blob_get, "DELETE": self._blob_delete}),
            (_MANIFEST_RE, {"GET": self._manifest_get, "HEAD": self._manifest_get,
                            "PUT": self._manifest_put, "DELETE": self._manifest_delete}),
            (_TAGS_RE, {"GET": self._tags_list}),
            (_REFERRERS_RE, {"GET": self._referrers}),
        ]  # fmt: skip

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Bind an ephemeral loopback port and serve from a daemon thread."""
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError("OCIRegistry is already running")
            self._stopping.clear()
            server = Server((self._bind_host, 0), self)
            self._port = int(server.server_address[1])
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.01},  # bounds how long stop() waits for the accept loop
                name=f"ociregistry-{self._port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and join every thread; calling it again is a no-op."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is None or thread is None:
                return
            self._stopping.set()  # wakes handlers sleeping in an injected delay
            server.shutdown()  # returns once the accept loop has exited
            server.end_connections(timeout=5.0)
            server.server_close()
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """``host:port`` as it goes in an image reference; still answers after stop() for messages."""
        if self._port is None:
            raise RuntimeError("OCIRegistry has not been started")
        bind = f"[{self._bind_host}]" if ":" in self._bind_host else self._bind_host
        return f"{bind}:{self._port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # -- recording and faults ---------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def clear_requests(self) -> None:
        """Empty the log in place, so a reference a test already holds stays live."""
        with self._lock:
            self.requests.clear()

    def add_fault(self, fault: Fault) -> Fault:
        """Arm ``fault`` and hand it back, so a test can read ``hits`` afterwards."""
        re.compile(fault.path)  # a typo in a test's regex should fail here, not silently never match
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _consult_faults(self, method: str, path: str) -> FaultPlan:
        plan = FaultPlan()
        with self._lock:
            for fault in self._faults:
                if fault.method is not None and fault.method.upper() != method:
                    continue
                if not re.search(fault.path, path):
                    continue
                if fault.times is not None and fault.hits >= fault.times:
                    continue
                fault.hits += 1
                plan.delay += fault.delay
                plan.headers.update(fault.headers)
                plan.corrupt = plan.corrupt or fault.corrupt
                plan.oversize += fault.oversize or 0
                plan.drip = max(plan.drip, fault.drip)
                if fault.status is not None:
                    plan.status = fault.status
                    break
        return plan

    # -- direct storage access (no HTTP) ------------------------------------

    def put_blob_bytes(self, repo: str, data: bytes) -> str:
        """Store a blob without HTTP, for arranging a test's starting state; returns its sha256 digest."""
        if not NAME_RE.fullmatch(repo):
            raise ValueError(f"invalid repository name {repo!r}")
        digest = hash_digest("sha256", data)
        with self._lock:
            self._repos.setdefault(repo, Repo()).blobs[digest] = bytes(data)
        return digest

    def put_manifest_bytes(self, repo: str, data: bytes, media_type: str, tag: str | None = None) -> str:
        """Store a manifest without HTTP or validation; returns its sha256 digest.

        Validation is skipped on purpose: tests need to plant content a real push
        would refuse (dangling layers, non-JSON bytes) to see how clients cope.
        A parseable ``subject`` is still indexed, so referrers stay consistent.
        """
        if not NAME_RE.fullmatch(repo):
            raise ValueError(f"invalid repository name {repo!r}")
        if tag is not None and not TAG_RE.fullmatch(tag):
            raise ValueError(f"invalid tag {tag!r}")
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        doc = parsed if isinstance(parsed, dict) else None
        digest = hash_digest("sha256", data)
        with self._lock:
            self._store_manifest(repo, digest, manifest_record(bytes(data), media_type, doc), tag)
        return digest

    def get_stored(self, repo: str, digest: str) -> bytes | None:
        """The stored bytes of a blob or manifest, or None, to check what a client really pushed."""
        with self._lock:
            stored = self._repos.get(repo)
            if stored is None:
                return None
            if digest in stored.blobs:
                return stored.blobs[digest]
            manifest = stored.manifests.get(digest)
            return manifest.data if manifest is not None else None

    def tags(self, repo: str) -> list[str]:
        with self._lock:
            stored = self._repos.get(repo)
            return sorted(stored.tags) if stored is not None else []

    def _store_manifest(self, repo: str, digest: str, manifest: Manifest, tag: str | None) -> None:
        """Caller holds the lock."""
        stored = self._repos.setdefault(repo, Repo())
        stored.manifests[digest] = manifest
        if tag is not None:
            stored.tags[tag] = digest
        if manifest.subject is not None:
            stored.referrers.setdefault(manifest.subject, {})[digest] = None

    # -- request handling ----------------------------------------------------

    def _respond(self, request: Request, pending: RegistryError | None) -> tuple[Response, FaultPlan]:
        """Faults come first: they model the network and gateway in front of a registry."""
        plan = self._consult_faults(request.method, request.path)
        if plan.delay > 0:
            self._stopping.wait(plan.delay)
        if plan.status is not None:
            code = fault_code(plan.status, request.path)
            error = {"code": code, "message": f"injected fault: HTTP {plan.status}"}
            return error_response(plan.status, [error]), plan
        if pending is not None:
            return pending.response(), plan
        try:
            self._authorize(request)
            return self._dispatch(request), plan
        except RegistryError as exc:
            return exc.response(), plan
        except Exception as exc:
            # Answer instead of dropping the connection, so a bug here shows up in
            # the client's test as a readable 500 rather than a hang or reset.
            return error_response(500, [{"code": "UNKNOWN", "message": f"registry bug: {exc!r}"}]), plan

    def _authorize(self, request: Request) -> None:
        if self._basic_auth is None or not request.path.startswith("/v2"):
            return
        user, password = self._basic_auth
        expected = f"{user}:{password}".encode()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = b""
        if scheme.lower() == "basic":
            try:
                given = base64.b64decode(token.strip(), validate=True)
            except (binascii.Error, ValueError):
                given = b""
        if not hmac.compare_digest(given, expected):
            raise RegistryError(
                401,
                "UNAUTHORIZED",
                "authentication required",
                headers={"WWW-Authenticate": f'Basic realm="{_REALM}"'},
            )

    def _dispatch(self, request: Request) -> Response:
        if _V2_RE.fullmatch(request.path):
            if request.method not in ("GET", "HEAD"):
                raise RegistryError(405, "UNSUPPORTED", f"{request.method} not allowed on /v2/")
            return Response(200, b"{}", {"Content-Type": "application/json"})
        for pattern, methods in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if pattern is _REFERRERS_RE and not self.referrers_api:
                return plain_not_found()
            route = methods.get(request.method)
            if route is None:
                raise RegistryError(405, "UNSUPPORTED", f"{request.method} not allowed on {request.path}")
            check_name(match["name"])
            return route(request, match)
        return plain_not_found()

    # -- blobs ----------------------------------------------------------------

    def _blob_get(self, request: Request, match: re.Match[str]) -> Response:
        digest = check_digest(match["digest"])
        with self._lock:
            stored = self._repos.get(match["name"])
            data = stored.blobs.get(digest) if stored is not None else None
        if data is None:
            raise RegistryError(404, "BLOB_UNKNOWN", f"blob {digest} unknown", detail={"digest": digest})
        headers = {
            "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": digest,
            "Accept-Ranges": "bytes",
        }
        wanted = request.headers.get("range")
        if wanted is None:
            return Response(200, data, headers)
        span = self._byte_range(wanted, len(data))
        if span is None:  # multiple or malformed ranges: RFC 9110 lets us ignore the header
            return Response(200, data, headers)
        start, end = span
        if start >= len(data) or start > end:
            raise RegistryError(
                416,
                "SIZE_INVALID",
                "range not satisfiable",
                headers={"Content-Range": f"bytes */{len(data)}"},
            )
        end = min(end, len(data) - 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return Response(206, data[start : end + 1], headers)

    @staticmethod
    def _byte_range(value: str, size: int) -> tuple[int, int] | None:
        match = _RANGE_RE.fullmatch(value.strip())
        if match is None or (not match[1] and not match[2]):
            return None
        if not match[1]:  # suffix form: the last N bytes
            return max(size - int(match[2]), 0), size - 1
        return int(match[1]), int(match[2]) if match[2] else size - 1

    def _blob_delete(self, request: Request, match: re.Match[str]) -> Response:
        digest = check_digest(match["digest"])
        with self._lock:
            stored = self._repos.get(match["name"])
            if stored is None or stored.blobs.pop(digest, None) is None:
                raise RegistryError(404, "BLOB_UNKNOWN", f"blob {digest} unknown", detail={"digest": digest})
        return Response(202)

    # -- uploads --------------------------------------------------------------

    def _blob_created(self, name: str, digest: str) -> Response:
        return Response(
            201, headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
        )

    def _upload_headers(self, name: str, session: str, size: int) -> dict[str, str]:
        # Relative Location, as the spec allows: clients must resolve it against
        # the request URL, and an absolute one would hide a client that does not.
        return {
            "Location": f"/v2/{name}/blobs/uploads/{session}",
            "Docker-Upload-UUID": session,
            "Range": range_header(size),
        }

    def _upload_start(self, request: Request, match: re.Match[str]) -> Response:
        name = match["name"]
        algorithm = request.param("digest-algorithm")
        if algorithm is not None and algorithm not in ("sha256", "sha512"):
            raise RegistryError(400, "DIGEST_INVALID", f"unsupported digest algorithm {algorithm!r}")
        mount = request.param("mount")
        if mount is not None:
            digest = check_digest(mount)
            source = request.param("from")
            if source is not None:
                check_name(source)
                with self._lock:
                    origin = self._repos.get(source)
                    data = origin.blobs.get(digest) if origin is not None else None
                    if data is not None:
                        self._repos.setdefault(name, Repo()).blobs[digest] = data
                if data is not None:
                    return self._blob_created(name, digest)
            # Not mountable: fall through to a fresh session, as the spec asks.
        else:
            digest_param = request.param("digest")
            if digest_param is not None:
                digest = check_digest(digest_param)
                self._verify_and_store(name, digest, request.body)
                return self._blob_created(name, digest)
            if request.body:
                # Real registries drop such a body silently; refusing it catches the client bug.
                raise RegistryError(
                    400, "BLOB_UPLOAD_INVALID", "POST without ?digest= must have an empty body"
                )
        session = str(uuid.uuid4())
        with self._lock:
            self._uploads[session] = Upload(name)
        return Response(202, headers=self._upload_headers(name, session, 0))

    def _verify_and_store(self, name: str, digest: str, data: bytes) -> None:
        verify_digest(digest, data, "content")
        with self._lock:
            self._repos.setdefault(name, Repo()).blobs[digest] = bytes(data)

    def _session(self, match: re.Match[str]) -> Upload:
        """Caller holds the lock."""
        upload = self._uploads.get(match["session"])
        if upload is None or upload.repo != match["name"]:
            raise RegistryError(404, "BLOB_UPLOAD_UNKNOWN", f"upload {match['session']} unknown")
        return upload

    def _append_chunk(self, request: Request, match: re.Match[str], upload: Upload) -> None:
        """Caller holds the lock. Enforces the in-order rule, which is what chunked clients get wrong."""
        content_range = request.headers.get("content-range")
        if content_range is not None:
            parsed = _CONTENT_RANGE_RE.fullmatch(content_range.strip())
            if parsed is None:
                raise RegistryError(400, "BLOB_UPLOAD_INVALID", f"malformed Content-Range {content_range!r}")
            start, end = int(parsed[1]), int(parsed[2])
            if start != len(upload.data):
                raise RegistryError(
                    416,
                    "BLOB_UPLOAD_INVALID",
                    f"chunk starts at {start} but the upload holds {len(upload.data)} bytes",
                    headers=self._upload_headers(match["name"], match["session"], len(upload.data)),
                )
            if end - start + 1 != len(request.body):
                raise RegistryError(
                    400,
                    "SIZE_INVALID",
                    f"Content-Range {content_range!r} does not match a {len(request.body)}-byte body",
                )
        if len(upload.data) + len(request.body) > self.max_body:
            raise RegistryError(413, "SIZE_INVALID", f"upload would exceed the {self.max_body}-byte limit")
        upload.data += request.body

    def _upload_status(self, request: Request, match: re.Match[str]) -> Response:
        with self._lock:
            size = len(self._session(match).data)
        return Response(204, headers=self._upload_headers(match["name"], match["session"], size))

    def _upload_patch(self, request: Request, match: re.Match[str]) -> Response:
        with self._lock:
            upload = self._session(match)
            self._append_chunk(request, match, upload)
            size = len(upload.data)
        return Response(202, headers=self._upload_headers(match["name"], match["session"], size))

    def _upload_put(self, request: Request, match: re.Match[str]) -> Response:
        name, session = match["name"], match["session"]
        with self._lock:
            upload = self._session(match)
            digest_param = request.param("digest")
            if digest_param is None:
                raise RegistryError(400, "DIGEST_INVALID", "closing PUT needs ?digest=")
            digest = check_digest(digest_param)
            if request.body:
                self._append_chunk(request, match, upload)
            data = bytes(upload.data)
            # Whatever happens next the session is over: a failed digest discards it.
            del self._uploads[session]
        self._verify_and_store(name, digest, data)
        return self._blob_created(name, digest)

    def _upload_cancel(self, request: Request, match: re.Match[str]) -> Response:
        with self._lock:
            self._session(match)
            del self._uploads[match["session"]]
        return Response(204)

    # -- manifests ------------------------------------------------------------

    @staticmethod
    def _parse_reference(reference: str) -> tuple[str | None, str | None]:
        """Split a reference into (digest, tag); exactly one is set."""
        if ":" in reference:
            return check_digest(reference), None
        if not TAG_RE.fullmatch(reference):
            raise RegistryError(400, "MANIFEST_INVALID", f"invalid tag {reference!r}")
        return None, reference

    def _manifest_get(self, request: Request, match: re.Match[str]) -> Response:
        digest, tag = self._parse_reference(match["reference"])
        with self._lock:
            stored = self._repos.get(match["name"])
            if stored is not None and tag is not None:
                digest = stored.tags.get(tag)
            manifest = stored.manifests.get(digest) if stored is not None and digest is not None else None
        if manifest is None or digest is None:
            raise RegistryError(404, "MANIFEST_UNKNOWN", f"manifest {match['reference']} unknown")
        return Response(
            200, manifest.data, {"Content-Type": manifest.media_type, "Docker-Content-Digest": digest}
        )

    def _manifest_put(self, request: Request, match: re.Match[str]) -> Response:
        name = match["name"]
        ref_digest, tag = self._parse_reference(match["reference"])
        body = request.body
        try:
            doc = json.loads(body)
        except ValueError:
            raise RegistryError(400, "MANIFEST_INVALID", "manifest is not valid JSON") from None
        if not isinstance(doc, dict):
            raise RegistryError(400, "MANIFEST_INVALID", "manifest is not a JSON object")
        if doc.get("schemaVersion") != 2 or isinstance(doc.get("schemaVersion"), bool):
            raise RegistryError(400, "MANIFEST_INVALID", "schemaVersion must be 2")
        media_type = self._manifest_media_type(request, doc)
        if ref_digest is not None:
            verify_digest(ref_digest, body, "manifest")
            digest = ref_digest
        else:
            digest = hash_digest("sha256", body)
        blob_refs = descriptor_list(doc, "layers")
        if "config" in doc:
            blob_refs.insert(0, descriptor(doc["config"], "config"))
        manifest_refs = descriptor_list(doc, "manifests")
        if "subject" in doc:
            descriptor(doc["subject"], "subject")  # must be well-formed, but may point nowhere yet
        record = manifest_record(body, media_type, doc)
        refs = [(d, s, "blob") for d, s in blob_refs] + [(d, s, "manifest") for d, s in manifest_refs]
        with self._lock:
            stored = self._repos.get(name)
            missing: list[dict[str, Any]] = []
            for ref, size, kind in refs:
                if kind == "blob":
                    content = stored.blobs.get(ref) if stored is not None else None
                else:
                    held = stored.manifests.get(ref) if stored is not None else None
                    content = held.data if held is not None else None
                if content is None:
                    missing.append(
                        {
                            "code": "MANIFEST_BLOB_UNKNOWN",
                            "message": f"{kind} {ref} unknown",
                            "detail": {"digest": ref},
                        }
                    )
                elif len(content) != size:
                    raise RegistryError(
                        400,
                        "MANIFEST_INVALID",
                        f"descriptor for {ref} says {size} bytes, the stored {kind} has {len(content)}",
                    )
            if missing:
                first, *rest = missing
                raise RegistryError(400, first["code"], first["message"], detail=first["detail"], more=rest)
            kept = self.immutable_tags
            if (
                kept is not None
                and tag is not None
                and stored is not None
                and stored.tags.get(tag, digest) != digest
                and re.fullmatch(kept.pattern, tag)
            ):
                raise RegistryError(kept.status, kept.code, kept.message.replace("{tag}", tag))
            self._store_manifest(name, digest, record, tag)
        headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
        if record.subject is not None and self.referrers_api:
            headers["OCI-Subject"] = record.subject
        return Response(201, headers=headers)

    @staticmethod
    def _manifest_media_type(request: Request, doc: dict[str, Any]) -> str:
        header = request.headers.get("content-type", "").split(";", 1)[0].strip()
        declared = doc.get("mediaType")
        if declared is not None and not isinstance(declared, str):
            raise RegistryError(400, "MANIFEST_INVALID", "mediaType must be a string")
        if header and declared and header != declared:
            # The spec makes matching them the client's duty; catch it here.
            raise RegistryError(
                400, "MANIFEST_INVALID", f"Content-Type {header!r} differs from mediaType {declared!r}"
            )
        media_type = header or declared
        if not media_type:
            raise RegistryError(400, "MANIFEST_INVALID", "no Content-Type and no mediaType field")
        return media_type

    def _manifest_delete(self, request: Request, match: re.Match[str]) -> Response:
        digest, tag = self._parse_reference(match["reference"])
        with self._lock:
            stored = self._repos.get(match["name"])
            if tag is not None:
                if stored is None or stored.tags.pop(tag, None) is None:
                    raise RegistryError(404, "MANIFEST_UNKNOWN", f"tag {tag} unknown")
                return Response(202)
            assert digest is not None  # _parse_reference sets exactly one of the two
            manifest = stored.manifests.pop(digest, None) if stored is not None else None
            if stored is None or manifest is None:
                raise RegistryError(404, "MANIFEST_UNKNOWN", f"manifest {digest} unknown")
            for stale in [t for t, d in stored.tags.items() if d == digest]:
                del stored.tags[stale]
            if manifest.subject is not None:
                stored.referrers.get(manifest.subject, {}).pop(digest, None)
        return Response(202)

    # -- discovery --------------------------------------------------------------

    def _tags_list(self, request: Request, match: re.Match[str]) -> Response:
        name = match["name"]
        with self._lock:
            stored = self._repos.get(name)
            if stored is None:
                raise RegistryError(404, "NAME_UNKNOWN", f"repository {name} unknown", detail={"name": name})
            every = sorted(stored.tags)
        last = request.param("last")
        if last is not None:
            every = [t for t in every if t > last]
        count = request.param("n")
        headers = {"Content-Type": "application/json"}
        page = every
        if count is not None:
            if not count.isdigit():
                raise RegistryError(400, "UNSUPPORTED", f"n must be a non-negative integer, got {count!r}")
            n = int(count)
            page = every[:n]
            if 0 < n < len(every):
                query = urlencode({"n": n, "last": page[-1]})
                headers["Link"] = f'</v2/{name}/tags/list?{query}>; rel="next"'
        return Response(200, json.dumps({"name": name, "tags": page}).encode(), headers)

    def _referrers(self, request: Request, match: re.Match[str]) -> Response:
        subject = check_digest(match["digest"])
        wanted = request.param("artifactType")
        descriptors: list[dict[str, Any]] = []
        with self._lock:
            stored = self._repos.get(match["name"])
            digests = list(stored.referrers.get(subject, {})) if stored is not None else []
            for digest in digests:
                manifest = stored.manifests.get(digest) if stored is not None else None
                if manifest is None or (wanted is not None and manifest.artifact_type != wanted):
                    continue
                descriptor: dict[str, Any] = {
                    "mediaType": manifest.media_type,
                    "digest": digest,
                    "size": len(manifest.data),
                }
                if manifest.artifact_type is not None:
                    descriptor["artifactType"] = manifest.artifact_type
                if manifest.annotations is not None:
                    descriptor["annotations"] = manifest.annotations
                descriptors.append(descriptor)
        headers = {"Content-Type": OCI_INDEX_MEDIA_TYPE}
        if wanted is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX_MEDIA_TYPE, "manifests": descriptors}
        return Response(200, json.dumps(index).encode(), headers)
