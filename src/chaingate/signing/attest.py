"""Keyless attestations: sign an in-toto statement about an image and attach the Sigstore bundle.

Order matters and is the point of this module:

1. everything that can be checked offline is checked first (token, trust
   config, predicate) by the caller, via :func:`prepare_signer`;
2. the image reference is resolved to a digest once, and the statement names
   that digest;
3. the statement is signed (Fulcio certificate, DSSE envelope, Rekor entry)
   by sigstore-python's own signer; if any of that fails nothing has been
   pushed, so there is nothing half-attached;
4. only then is anything written to the store: an oversized SBOM's own
   referrer first, then the bundle's referrer (blobs before manifest). A
   failure here says exactly what already exists where.

The referrer follows the attachment contract of docs/design.md, the shape cosign v3 and
actions/attest write: an OCI image manifest with ``artifactType`` and layer
media type ``application/vnd.dev.sigstore.bundle.v0.3+json``, the empty
config, ``subject`` = the image descriptor, and annotations
``dev.sigstore.bundle.content: dsse-envelope``,
``dev.sigstore.bundle.predicateType: <uri>`` and
``org.opencontainers.image.created``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chaingate.errors import ChaingateError
from chaingate.oci import media
from chaingate.oci.artifact import Artifact, Blob, build_artifact, push_artifact, push_blobs
from chaingate.oci.interface import ImageStore
from chaingate.oci.reference import ArchiveReference, Reference
from chaingate.oci.registry import TagNotRewritable
from chaingate.oci.stores import OpenedImage
from chaingate.predicate_types import COSIGN_SIGN_V1
from chaingate.provenance.image import subject_name
from chaingate.provenance.statement import encode, statement, subject
from chaingate.signing.bundle import summarize
from chaingate.signing.interface import (
    AttachedReferrer,
    AttestationResult,
    IdentityTokenError,
    SigningError,
    TrustConfigError,
)
from chaingate.signing.predicates import CYCLONEDX_MEDIA_TYPE, LoadedPredicate, sbom_reference_predicate
from chaingate.signing.tokens import IdentityToken
from chaingate.text import one_line
from chaingate.timeutil import format_time

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig

log = logging.getLogger(__name__)

BUNDLE_MEDIA_TYPE = media.SIGSTORE_BUNDLE_V03
#: sigstore-python sends its Fulcio, Rekor and TSA requests without a timeout; a stalled service
#: would hang a CI step forever, so chaingate bounds them (connect, read seconds).
SERVICE_TIMEOUT = (10.0, 60.0)


@dataclass(frozen=True)
class PreparedSigner:
    """A token and trust config that sigstore-python accepted, before any network call is made."""

    token: IdentityToken
    #: sigstore's ``IdentityToken`` and ``SigningContext``; typed loosely to keep sigstore a lazy import.
    sigstore_token: Any = field(repr=False)
    context: Any = field(repr=False)
    #: (connect, read) seconds for each Fulcio, Rekor and TSA request.
    timeout: tuple[float, float] = SERVICE_TIMEOUT

    @property
    def fulcio_url(self) -> str:
        return str(getattr(getattr(self.context, "_fulcio", None), "url", "Fulcio"))

    @property
    def rekor_url(self) -> str:
        return str(getattr(getattr(self.context, "_rekor", None), "url", "Rekor"))


def prepare_signer(
    token: IdentityToken, trust: ClientTrustConfig, *, timeout: tuple[float, float] = SERVICE_TIMEOUT
) -> PreparedSigner:
    """Hand the token and config to sigstore-python now, so anything it rejects fails before the registry is touched."""
    from sigstore.oidc import IdentityError
    from sigstore.oidc import IdentityToken as SigstoreToken
    from sigstore.sign import SigningContext

    try:
        sigstore_token = SigstoreToken(token.raw)
    except IdentityError as e:
        raise IdentityTokenError(f"identity token from {token.source}: {one_line(e, 300)}") from None
    try:
        context = SigningContext.from_trust_config(trust)
    except Exception as e:  # no usable CA/log in the signing config, unsupported API versions, …
        raise TrustConfigError(
            f"trust config names no usable signing services ({one_line(e, 300)})"
        ) from None
    return PreparedSigner(token, sigstore_token, context, timeout)


def _bound_sessions(context: Any, bound: tuple[float, float]) -> None:
    """Give sigstore-python's HTTP sessions a default timeout (they have none).

    The sessions are private attributes of sigstore's clients (Fulcio's is
    shared, Rekor's and the TSAs' are per thread, so this runs in the signing
    thread); a session not found where expected is left as it is.
    """
    import requests
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        def send(
            self,
            request: requests.PreparedRequest,
            stream: bool = False,
            timeout: float | tuple[float, float] | tuple[float, None] | None = None,
            verify: bool | str = True,
            cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
            proxies: Mapping[str, str] | None = None,
        ) -> requests.Response:
            return super().send(
                request,
                stream=stream,
                timeout=bound if timeout is None else timeout,
                verify=verify,
                cert=cert,
                proxies=proxies,
            )

    clients = [getattr(context, "_fulcio", None), getattr(context, "_rekor", None)]
    clients.extend(getattr(context, "_tsa_clients", None) or [])
    for client in clients:
        for name in ("session", "_session"):
            session = getattr(client, name, None)
            if isinstance(session, requests.Session):
                adapter = TimeoutAdapter()
                session.mount("http://", adapter)
                session.mount("https://", adapter)


def _http_detail(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    response = getattr(cause, "response", None)
    status = getattr(response, "status_code", None)
    text = one_line(error, 300)
    if status is not None:
        return f"HTTP {status}" + (f": {text}" if text else "")
    return text or type(error).__name__


def sign_statement(signer: PreparedSigner, doc: dict[str, Any]) -> bytes:
    """A Sigstore bundle (v0.3 JSON) over ``doc`` as a DSSE in-toto statement, logged in Rekor."""
    import requests
    from sigstore import dsse
    from sigstore._internal.fulcio.client import FulcioClientError
    from sigstore._internal.rekor import RekorClientError
    from sigstore.errors import Error as SigstoreError
    from sigstore.oidc import ExpiredIdentity

    try:
        signed = dsse.Statement(encode(doc))
    except SigstoreError as e:
        raise SigningError(f"statement rejected by sigstore: {one_line(e, 300)}") from None
    _bound_sessions(signer.context, signer.timeout)
    try:
        with signer.context.signer(signer.sigstore_token) as session:
            bundle = session.sign_dsse(signed)
    except ExpiredIdentity:
        raise IdentityTokenError(
            f"identity token from {signer.token.source} expired before signing"
        ) from None
    except FulcioClientError as e:
        raise SigningError(
            f"Fulcio {signer.fulcio_url} did not issue a signing certificate ({_http_detail(e)}); nothing was pushed"
        ) from None
    except RekorClientError as e:
        raise SigningError(
            f"Rekor {signer.rekor_url} did not log the signature ({_http_detail(e)}); nothing was pushed"
        ) from None
    except requests.RequestException as e:
        url = str(getattr(getattr(e, "request", None), "url", "") or "")
        if url.startswith(signer.fulcio_url):
            service = f"Fulcio {signer.fulcio_url}"
        elif url.startswith(signer.rekor_url):
            service = f"Rekor {signer.rekor_url}"
        else:
            parts = urlsplit(url)
            service = (
                f"Sigstore service {parts.scheme}://{parts.netloc}" if parts.netloc else "a Sigstore service"
            )
        raise SigningError(f"{service} unreachable ({type(e).__name__}); nothing was pushed") from None
    except SigstoreError as e:
        raise SigningError(f"signing failed: {one_line(e, 300)}; nothing was pushed") from None
    data: bytes = bundle.to_json().encode("utf-8")
    return data


def _referrer(artifact: Artifact) -> AttachedReferrer:
    layer = artifact.blobs[-1].descriptor
    return AttachedReferrer(
        artifact.manifest.digest, artifact.manifest.artifact_type or "", layer.digest, layer.size
    )


def _sbom_artifact(
    opened: OpenedImage, subject_descriptor: Any, sbom: bytes, created: str
) -> tuple[Artifact, str | None]:
    artifact = build_artifact(
        subject_descriptor,
        CYCLONEDX_MEDIA_TYPE,
        [Blob(CYCLONEDX_MEDIA_TYPE, sbom)],
        annotations={media.ANNOTATION_CREATED: created},
    )
    uri = None
    if isinstance(opened.reference, Reference):
        uri = f"oci://{opened.reference.name}@{artifact.manifest.digest}"
    return artifact, uri


def _same_image(store: ImageStore, digest: str) -> tuple[str, ...]:
    """Other digests an SBOM may name for the image ``digest``: each platform manifest of an index (an
    SBOM describes one platform, and the gate counts it with ``--platform``). Nothing else: the gate counts
    an SBOM only when it names the verified manifest digest, so attesting one that names the image's config
    (its image ID) would sign a statement the gate then ignores."""
    manifest = store.get_manifest(digest)
    if manifest.is_index:
        return tuple(d.digest for d in manifest.manifests)
    return ()


def attest_image(
    opened: OpenedImage,
    loaded: LoadedPredicate,
    signer: PreparedSigner,
    *,
    now: datetime,
) -> AttestationResult:
    """Sign ``loaded`` about the image ``opened`` names and attach the bundle (see module docs for the order)."""
    if opened.target is None:
        raise SigningError(f"{opened.reference}: no image to attest (name a tag or digest)")
    if isinstance(opened.reference, ArchiveReference):
        # Refused before signing: a Rekor entry for an attestation that can never be attached is litter.
        raise SigningError(
            f"{opened.reference}: a docker archive cannot hold attachments",
            hint="copy the image to a registry or an oci: layout first, and attest it there",
        )
    store = opened.store
    image = str(opened.reference)
    descriptor = store.resolve(opened.target)
    digest = descriptor.digest
    loaded.check_subject(digest, lambda: _same_image(store, digest))
    created = format_time(now)

    predicate = loaded.predicate
    sbom_artifact: Artifact | None = None
    if loaded.sbom is not None:
        sbom_artifact, uri = _sbom_artifact(opened, descriptor, loaded.sbom, created)
        blob = sbom_artifact.blobs[-1].descriptor
        predicate = sbom_reference_predicate(loaded.predicate, blob.digest, blob.size, uri)

    doc = statement([subject(subject_name(opened.reference), digest)], loaded.predicate_type, predicate)
    bundle = sign_statement(signer, doc)
    summary = summarize(bundle)
    assert summary.tlog is not None and summary.identity is not None
    log.info("signed %s for %s: Rekor log index %d", loaded.predicate_type, digest, summary.tlog.log_index)

    artifact = build_artifact(
        descriptor,
        BUNDLE_MEDIA_TYPE,
        [Blob(BUNDLE_MEDIA_TYPE, bundle)],
        annotations={
            media.ANNOTATION_BUNDLE_CONTENT: "dsse-envelope",
            media.ANNOTATION_PREDICATE_TYPE: loaded.predicate_type,
            media.ANNOTATION_CREATED: created,
        },
    )
    attached: list[str] = []
    uploaded: str | None = None
    try:
        if sbom_artifact is not None:
            push_artifact(store, sbom_artifact)
            attached.append(f"the SBOM referrer {sbom_artifact.manifest.digest} (without its attestation)")
        push_blobs(store, artifact)
        uploaded = artifact.blobs[-1].descriptor.digest
        store.attach(artifact.manifest)
    except (ChaingateError, OSError) as e:
        detail = e.message if isinstance(e, ChaingateError) else (e.strerror or str(e))
        state = f"attached to {image}: " + (", ".join(attached) if attached else "nothing")
        if uploaded:
            state += f"; the bundle blob {uploaded} is in {store.display} but no manifest refers to it"
        # Re-running cannot get past a registry that keeps its tags immutable; its error says what to change.
        retry = "re-run the command: the Rekor entry stays, a new signature is attached"
        raise SigningError(
            f"{image}: signed (Rekor log index {summary.tlog.log_index}) but attaching to {store.display} "
            f"failed: {one_line(detail, 600)}; {state}",
            hint=e.hint if isinstance(e, TagNotRewritable) else retry,
        ) from None
    return AttestationResult(
        image=image,
        subject_digest=digest,
        predicate_type=loaded.predicate_type,
        referrer=_referrer(artifact),
        identity=summary.identity,
        tlog=summary.tlog,
        sbom_referrer=_referrer(sbom_artifact) if sbom_artifact is not None else None,
        bundle=bundle,
    )


def sign_predicate() -> LoadedPredicate:
    """What ``chaingate sign`` signs: cosign v3's image signature, an empty predicate of type sign/v1."""
    return LoadedPredicate(COSIGN_SIGN_V1, {}, "chaingate sign")
