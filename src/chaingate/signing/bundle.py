"""Reading a Sigstore bundle for display: statement, signer, Rekor entry — without verifying it.

``inspect`` and ``attest`` both report what a bundle says. Parsing goes
through sigstore-python's ``Bundle.from_json`` so a bundle chaingate shows is
one sigstore would at least load; but nothing here checks a signature, a
chain or an inclusion proof, and every summary says so. Decisions are made
by the verifier, never from these fields.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from chaingate import safejson
from chaingate.errors import ChaingateError
from chaingate.oci.digest import read_bounded
from chaingate.oci.interface import Descriptor, ImageStore
from chaingate.provenance.statement import PAYLOAD_TYPE
from chaingate.signing.identity import certificate_identity
from chaingate.signing.interface import SignerIdentity, TransparencyLogEntry

#: Bundles are kilobytes; one carrying an inline SBOM of the inline limit is a
#: few MiB once base64-encoded. Nothing legitimate comes near this.
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
#: All the bundle blobs of one image together, each distinct blob counted once: the gate reads no more.
#: A few dozen real bundles are well under a MiB; past this the gate denies rather than judge a part.
MAX_IMAGE_BUNDLE_BYTES = 64 * 1024 * 1024


class BundleReadError(ChaingateError, ValueError):
    """A bundle that sigstore cannot load, or whose payload is not an in-toto statement.

    A :class:`ChaingateError`, so one reaching the CLI is a one-line usage error; still a
    ``ValueError`` for the callers that were written against that.
    """


@dataclass(frozen=True)
class BundleSummary:
    """What a bundle claims. ``verified`` is always False: this is a description, not a check."""

    media_type: str
    content: str
    predicate_type: str | None
    subject_digests: tuple[str, ...]
    identity: SignerIdentity | None
    tlog: TransparencyLogEntry | None
    statement: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    verified: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "note": "informational: read from the bundle without verification",
            "mediaType": self.media_type,
            "content": self.content,
            "predicateType": self.predicate_type,
            "subjectDigests": list(self.subject_digests),
            "signer": self.identity.to_dict() if self.identity else None,
            "rekor": self.tlog.to_dict() if self.tlog else None,
        }


def _tlog(doc: dict[str, Any]) -> TransparencyLogEntry | None:
    entries = (doc.get("verificationMaterial") or {}).get("tlogEntries") or []
    if not entries or not isinstance(entries[0], dict):
        return None
    entry = entries[0]
    try:
        index = int(entry.get("logIndex", ""))
        integrated = int(entry.get("integratedTime", "0"))
    except (TypeError, ValueError):
        return None
    log_id = (entry.get("logId") or {}).get("keyId")
    return TransparencyLogEntry(index, integrated, log_id if isinstance(log_id, str) else None)


def _statement(doc: dict[str, Any]) -> dict[str, Any] | None:
    envelope = doc.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        return None
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise BundleReadError(f"DSSE payload type is {envelope.get('payloadType')!r}, not {PAYLOAD_TYPE}")
    try:
        payload = safejson.loads(base64.b64decode(envelope.get("payload", ""), validate=True))
    except (binascii.Error, ValueError, TypeError):  # TypeError: a payload that is not a string
        raise BundleReadError("DSSE payload is not base64 JSON") from None
    if not isinstance(payload, dict):
        raise BundleReadError("DSSE payload is not a JSON object")
    return payload


def read_bundle_layer(store: ImageStore, layer: Descriptor) -> bytes:
    """A bundle layer's bytes, digest-checked and bounded; the gate and ``inspect`` share this bound.

    Raises :class:`BundleReadError` for an oversized layer and the store's
    :class:`OCIError` for one that cannot be read or does not match its digest.
    """
    if layer.size > MAX_BUNDLE_BYTES:
        raise BundleReadError(f"bundle layer of {layer.size} bytes exceeds the {MAX_BUNDLE_BYTES}-byte bound")
    with store.open_blob(layer) as stream:
        return read_bounded(stream, MAX_BUNDLE_BYTES, what=f"bundle {layer.digest}")


def load_bundle(raw: bytes) -> Any:
    """sigstore-python's ``Bundle`` from JSON, after restoring the proto3 defaults other clients omit.

    A Sigstore bundle is protobuf JSON, and protobuf JSON leaves out fields
    that hold their default value: sigstore-js (what actions/attest uses)
    omits ``logIndex`` 0 of a fresh log and the empty inclusion-proof
    ``hashes`` of a one-entry tree, which sigstore-python's strict model
    requires. Restoring exactly those defaults changes no signed or logged
    byte; the verifier still checks the proof against the signed checkpoint.
    """
    from sigstore.models import Bundle

    try:
        doc = safejson.loads(raw)
    except ValueError as e:
        raise BundleReadError(f"not JSON: {e}") from None
    material = doc.get("verificationMaterial") if isinstance(doc, dict) else None
    entries = material.get("tlogEntries") if isinstance(material, dict) else None
    if isinstance(entries, list):
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            entry.setdefault("logIndex", "0")
            proof = entry.get("inclusionProof")
            if isinstance(proof, dict):
                proof.setdefault("logIndex", "0")
                proof.setdefault("hashes", [])
        raw = json.dumps(doc).encode()
    try:
        return Bundle.from_json(raw)
    except Exception as e:  # sigstore raises InvalidBundle, ValueError, KeyError… for bad input
        raise BundleReadError(" ".join(str(e).split())[:300] or type(e).__name__) from None


def summarize(raw: bytes) -> BundleSummary:
    """Load ``raw`` with sigstore-python and describe it; :class:`BundleReadError` if it does not load."""
    if len(raw) > MAX_BUNDLE_BYTES:
        raise BundleReadError(f"bundle larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        bundle = load_bundle(raw)
    except Exception as e:  # sigstore raises InvalidBundle, ValueError, KeyError… for bad input
        raise BundleReadError(f"not a loadable Sigstore bundle ({' '.join(str(e).split())[:200]})") from None
    doc = safejson.loads(raw)  # load_bundle parsed it already: this cannot fail
    try:
        identity = certificate_identity(bundle.signing_certificate)
    except ValueError as e:  # cryptography parses extensions lazily: a malformed one raises only now
        raise BundleReadError(f"signing certificate: {' '.join(str(e).split())[:200]}") from None
    statement = _statement(doc)
    subjects: list[str] = []
    predicate_type = None
    if statement is not None:
        value = statement.get("predicateType")
        predicate_type = value if isinstance(value, str) else None
        listed = statement.get("subject")
        for entry in listed if isinstance(listed, list) else []:  # a signed payload may say "subject": true
            digest = entry.get("digest") if isinstance(entry, dict) else None
            if isinstance(digest, dict):
                subjects.extend(f"{k}:{v}" for k, v in sorted(digest.items()) if isinstance(v, str))
    return BundleSummary(
        media_type=str(doc.get("mediaType", "")),
        content="dsse-envelope" if statement is not None else "message-signature",
        predicate_type=predicate_type,
        subject_digests=tuple(subjects),
        identity=identity,
        tlog=_tlog(doc),
        statement=statement,
    )
