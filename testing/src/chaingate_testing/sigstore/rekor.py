"""A loopback Rekor (v1 API): the transparency log sigstore-python submits to.

It is a real RFC 6962 log, not a recorder: entries are validated like Rekor
validates them (the signature must verify against the submitted
certificate), canonicalised into the bodies Rekor stores, hashed into a
Merkle tree, and returned with an inclusion proof, a signed checkpoint and a
signed entry timestamp. sigstore-python's verifier recomputes all three, so a
mistake here fails verification rather than passing silently.

Supported kinds are those sigstore-python 4.x writes to a v1 log:
``hashedrekord`` 0.0.1 (blobs) and ``dsse`` 0.0.1 (DSSE envelopes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from chaingate_testing.sigstore._service import HTTPError, LoopbackService, Request, Response

API = "/api/v1/log"
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
_HEX = re.compile(r"^[0-9a-f]+$")

LogPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def canonical_json(value: object) -> bytes:
    """RFC 8785 canonical JSON for the values Rekor stores (objects, strings, integers).

    Sorted keys and no insignificant whitespace are all RFC 8785 asks of such
    documents; the keys are ASCII, so code-point and UTF-16 order agree.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (RFC 6962 section 2.1)."""
    return 1 << ((n - 1).bit_length() - 1)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes; the empty tree hashes the empty string."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 audit path for ``index``, ordered from the leaf's sibling upwards."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_path(index, leaves[:k]), merkle_root(leaves[k:])]
    return [*inclusion_path(index - k, leaves[k:]), merkle_root(leaves[:k])]


def _b64decode(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise HTTPError(400, f"{what} must be a non-empty base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        # DSSE allows URL-safe base64 as well as the standard alphabet.
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise HTTPError(400, f"{what} is not valid base64: {exc}") from exc


def _field(obj: object, *path: str) -> object:
    for name in path:
        if not isinstance(obj, dict):
            raise HTTPError(400, f"missing field {'.'.join(path)}")
        obj = obj.get(name)
    return obj


def _load_verifier(b64_pem: object, what: str) -> tuple[LogPublicKey, bytes]:
    """The key in a submitted certificate or PEM public key, and its canonical PEM.

    Rekor re-encodes what it stores, so the canonical PEM (not the submitted
    bytes) is what the entry body records.
    """
    pem = _b64decode(b64_pem, what)
    key: object
    cert: x509.Certificate | None
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        cert = None
    if cert is not None:
        key = cert.public_key()
    else:
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise HTTPError(400, f"{what} is neither a PEM certificate nor a PEM public key") from exc
    if not isinstance(key, LogPublicKey):
        raise HTTPError(400, f"{what}: unsupported key type {type(key).__name__}")
    if cert is not None:
        return key, cert.public_bytes(serialization.Encoding.PEM)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return key, key.public_bytes(serialization.Encoding.PEM, spki)


def _verify(
    key: LogPublicKey, signature: bytes, data: bytes, digest: hashes.HashAlgorithm | Prehashed
) -> bool:
    """Rekor's signature check, with the key's natural padding and ``data`` hashed by ``digest``."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(digest))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), digest)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _ec_digest(key: LogPublicKey) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}.get(
            key.curve.name, hashes.SHA256()
        )
    return hashes.SHA256()


def _pae(payload_type: str, payload: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(payload_type.encode()), payload_type.encode(), len(payload), payload)


def canonicalize_hashedrekord(spec: object) -> dict[str, object]:
    """Validate a hashedrekord 0.0.1 spec and return the body Rekor would store."""
    algorithm = _field(spec, "data", "hash", "algorithm")
    value = _field(spec, "data", "hash", "value")
    if not isinstance(algorithm, str) or algorithm not in _HASHES:
        raise HTTPError(400, f"unsupported hash algorithm {algorithm!r}")
    digest_alg = _HASHES[algorithm]
    if not isinstance(value, str) or not _HEX.match(value) or len(value) != 2 * digest_alg.digest_size:
        raise HTTPError(400, f"hash value must be {2 * digest_alg.digest_size} lowercase hex digits")
    signature = _b64decode(_field(spec, "signature", "content"), "signature.content")
    key, pem = _load_verifier(_field(spec, "signature", "publicKey", "content"), "signature.publicKey")
    if isinstance(key, ed25519.Ed25519PublicKey):
        raise HTTPError(400, "hashedrekord cannot be verified with an Ed25519 key (no prehash)")
    if not _verify(key, signature, bytes.fromhex(value), Prehashed(digest_alg)):
        raise HTTPError(400, "signature does not verify against the supplied public key and digest")
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": value}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": base64.b64encode(pem).decode()},
            },
        },
    }


def canonicalize_dsse(spec: object) -> dict[str, object]:
    """Validate a dsse 0.0.1 proposal and return the body Rekor would store."""
    envelope_text = _field(spec, "proposedContent", "envelope")
    verifiers = _field(spec, "proposedContent", "verifiers")
    if not isinstance(envelope_text, str) or not envelope_text:
        raise HTTPError(400, "proposedContent.envelope must be the envelope's JSON text")
    if not isinstance(verifiers, list) or not verifiers:
        raise HTTPError(400, "proposedContent.verifiers must list at least one key or certificate")
    try:
        envelope = json.loads(envelope_text)
    except json.JSONDecodeError as exc:
        raise HTTPError(400, f"envelope is not JSON: {exc}") from exc
    payload_type = _field(envelope, "payloadType")
    if not isinstance(payload_type, str):
        raise HTTPError(400, "envelope.payloadType must be a string")
    payload = _b64decode(_field(envelope, "payload"), "envelope.payload")
    signatures = _field(envelope, "signatures")
    if not isinstance(signatures, list) or not signatures:
        raise HTTPError(400, "envelope must carry at least one signature")
    keys = [_load_verifier(v, "proposedContent.verifiers[]") for v in verifiers]
    pae = _pae(payload_type, payload)
    recorded: list[dict[str, str]] = []
    for entry in signatures:
        signature = _b64decode(_field(entry, "sig"), "envelope.signatures[].sig")
        for key, pem in keys:
            if isinstance(key, ed25519.Ed25519PublicKey):
                try:
                    key.verify(signature, pae)
                except InvalidSignature:
                    continue
            elif not _verify(key, signature, pae, _ec_digest(key)):
                continue
            recorded.append(
                {
                    "signature": base64.b64encode(signature).decode(),
                    "verifier": base64.b64encode(pem).decode(),
                }
            )
            break
        else:
            raise HTTPError(400, "an envelope signature does not verify against any supplied verifier")
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": hashlib.sha256(envelope_text.encode()).hexdigest(),
            },
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": recorded,
        },
    }


def canonicalize_entry(proposed: object) -> bytes:
    """The canonical body for a proposed entry, or a 400 saying why it is refused."""
    if not isinstance(proposed, dict):
        raise HTTPError(400, "proposed entry must be a JSON object")
    kind = proposed.get("kind")
    version = proposed.get("apiVersion")
    if kind == "hashedrekord" and version == "0.0.1":
        return canonical_json(canonicalize_hashedrekord(proposed.get("spec")))
    if kind == "dsse" and version == "0.0.1":
        return canonical_json(canonicalize_dsse(proposed.get("spec")))
    raise HTTPError(400, f"unsupported entry kind/version: {kind!r} {version!r}")


@dataclass(frozen=True)
class LogEntry:
    index: int
    body: bytes
    integrated_time: int
    leaf: bytes

    @property
    def uuid(self) -> str:
        return self.leaf.hex()


class RekorLog(LoopbackService):
    """One Rekor shard: log key, tree, entries and the v1 REST endpoints."""

    name = "rekor"

    def __init__(self) -> None:
        super().__init__()
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = self._key.public_key()
        self.log_id = hashlib.sha256(self.public_key_der()).digest()
        # Rekor tree ids are positive 63-bit Trillian ids.
        self.tree_id = secrets.randbits(62) + (1 << 62)
        self._entries: list[LogEntry] = []
        self._leaves: list[bytes] = []
        self._by_leaf: dict[bytes, LogEntry] = {}
        self._lock = threading.Lock()

    def public_key_der(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def hostname(self) -> str:
        """The checkpoint signer name (Rekor uses its host name)."""
        return f"127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.hostname} - {self.tree_id}"

    @property
    def entry_id_prefix(self) -> str:
        """Rekor prefixes entry UUIDs with the 16-hex-digit tree id to make them global."""
        return f"{self.tree_id:016x}"

    @property
    def tree_size(self) -> int:
        """Entries integrated so far (not ``__len__``: an empty log must not be falsy)."""
        with self._lock:
            return len(self._entries)

    def _sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    def checkpoint(self, size: int, root: bytes) -> str:
        """A signed note over (origin, size, root), the form sigstore-python parses."""
        note = f"{self.origin}\n{size}\n{base64.b64encode(root).decode()}\n"
        signature = base64.b64encode(self.log_id[:4] + self._sign(note.encode())).decode()
        return f"{note}\n\u2014 {self.hostname} {signature}\n"

    def signed_entry_timestamp(self, entry: LogEntry) -> bytes:
        """The SET: the log's promise, binding body, time and position, to include the entry."""
        payload = {
            "body": base64.b64encode(entry.body).decode(),
            "integratedTime": entry.integrated_time,
            "logID": self.log_id.hex(),
            "logIndex": entry.index,
        }
        return self._sign(canonical_json(payload))

    def _entry_json(self, entry: LogEntry, leaves: Sequence[bytes]) -> dict[str, object]:
        """Rekor's LogEntry JSON, with a proof against the tree of ``leaves``."""
        size = len(leaves)
        root = merkle_root(leaves)
        return {
            f"{self.entry_id_prefix}{entry.uuid}": {
                "body": base64.b64encode(entry.body).decode(),
                "integratedTime": entry.integrated_time,
                "logID": self.log_id.hex(),
                "logIndex": entry.index,
                "verification": {
                    "inclusionProof": {
                        "checkpoint": self.checkpoint(size, root),
                        "hashes": [h.hex() for h in inclusion_path(entry.index, leaves)],
                        "logIndex": entry.index,
                        "rootHash": root.hex(),
                        "treeSize": size,
                    },
                    "signedEntryTimestamp": base64.b64encode(self.signed_entry_timestamp(entry)).decode(),
                },
            }
        }

    def append(self, proposed: object) -> tuple[int, dict[str, object]]:
        """Validate and integrate ``proposed``; returns (HTTP status, LogEntry JSON)."""
        body = canonicalize_entry(proposed)
        leaf = leaf_hash(body)
        with self._lock:
            if leaf in self._by_leaf:
                existing = self._by_leaf[leaf]
                raise HTTPError(
                    409,
                    "an equivalent entry already exists in the transparency log with UUID "
                    f"{self.entry_id_prefix}{existing.uuid}",
                )
            entry = LogEntry(len(self._entries), body, int(time.time()), leaf)
            self._entries.append(entry)
            self._leaves.append(leaf)
            self._by_leaf[leaf] = entry
            return 201, self._entry_json(entry, list(self._leaves))

    def _lookup_uuid(self, uuid: str) -> LogEntry | None:
        uuid = uuid.lower()
        if len(uuid) == 80 and uuid.startswith(self.entry_id_prefix):
            uuid = uuid[16:]
        if len(uuid) != 64 or not _HEX.match(uuid):
            raise HTTPError(400, f"malformed entry UUID: {uuid}")
        return self._by_leaf.get(bytes.fromhex(uuid))

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == API and request.method == "GET":
            return self._log_info()
        if path == f"{API}/publicKey" and request.method == "GET":
            pem = self.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return Response(200, pem, content_type="application/x-pem-file")
        if path == f"{API}/entries" and request.method == "POST":
            status, created = self.append(request.json())
            uuid = next(iter(created))
            return Response(
                status,
                json.dumps(created, separators=(",", ":")).encode(),
                headers={"Location": f"{API}/entries/{uuid}", "ETag": uuid},
            )
        if path == f"{API}/entries" and request.method == "GET":
            return self._get_by_index(request.query)
        if path == f"{API}/entries/retrieve" and request.method == "POST":
            return self._retrieve(request.json())
        if path.startswith(f"{API}/entries/") and request.method == "GET":
            with self._lock:
                entry = self._lookup_uuid(path.rsplit("/", 1)[1])
                if entry is None:
                    raise HTTPError(404, "entry not found")
                return Response.json(200, self._entry_json(entry, list(self._leaves)))
        raise HTTPError(
            404 if request.method in ("GET", "POST") else 405, f"no such endpoint: {request.path}"
        )

    def _log_info(self) -> Response:
        with self._lock:
            leaves = list(self._leaves)
        root = merkle_root(leaves)
        return Response.json(
            200,
            {
                "rootHash": root.hex(),
                "treeSize": len(leaves),
                "signedTreeHead": self.checkpoint(len(leaves), root),
                "treeID": str(self.tree_id),
                "inactiveShards": [],
            },
        )

    def _get_by_index(self, query: str) -> Response:
        values = parse_qs(query).get("logIndex", [])
        if len(values) != 1 or not values[0].isdigit():
            raise HTTPError(400, "logIndex query parameter must be a non-negative integer")
        index = int(values[0])
        with self._lock:
            if index >= len(self._entries):
                raise HTTPError(404, f"no entry at index {index}")
            return Response.json(200, self._entry_json(self._entries[index], list(self._leaves)))

    def _retrieve(self, query: object) -> Response:
        """Search by UUIDs, log indexes or proposed entries, as ``/entries/retrieve`` does."""
        if not isinstance(query, Mapping):
            raise HTTPError(400, "search query must be a JSON object")
        proposed = query.get("entries") or []
        uuids = query.get("entryUUIDs") or []
        indexes = query.get("logIndexes") or []
        if not all(isinstance(x, list) for x in (proposed, uuids, indexes)):
            raise HTTPError(400, "entries, entryUUIDs and logIndexes must be lists")
        wanted_leaves = [leaf_hash(canonicalize_entry(p)) for p in proposed]
        results: list[dict[str, object]] = []
        with self._lock:
            leaves = list(self._leaves)
            found: list[LogEntry | None] = [self._by_leaf.get(leaf) for leaf in wanted_leaves]
            found += [self._lookup_uuid(str(u)) for u in uuids]
            for index in indexes:
                if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                    raise HTTPError(400, "logIndexes must be non-negative integers")
                found.append(self._entries[index] if index < len(self._entries) else None)
            results = [self._entry_json(entry, leaves) for entry in found if entry is not None]
        return Response.json(200, results)

    def entries(self) -> list[LogEntry]:
        """A snapshot of the log, for tests that inspect what was recorded."""
        with self._lock:
            return list(self._entries)
