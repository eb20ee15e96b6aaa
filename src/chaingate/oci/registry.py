"""An :class:`ImageStore` backed by one repository of a distribution registry."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from chaingate.oci import media
from chaingate.oci.digest import verify_bytes
from chaingate.oci.errors import NotFound, OCIError
from chaingate.oci.interface import (
    Descriptor,
    ImageStore,
    Manifest,
    Progress,
    Referrer,
    ReferrerListing,
    RejectedReferrer,
    no_progress,
)
from chaingate.oci.registries import DeadlinePassed
from chaingate.text import one_line

if TYPE_CHECKING:
    from chaingate.oci.client import Refused, RegistryClient

log = logging.getLogger(__name__)

#: Rounds of read-merge-write-verify on the fallback index before giving up.
FALLBACK_MAX_ROUNDS = 16
#: A write must be seen intact this many times in a row, a settle delay apart, to count.
FALLBACK_CONFIRMATIONS = 2
_CACHE_SIZE = 256
#: How registries with immutable tags refuse to rewrite one: a conflict or failed precondition (Harbor), or
#: a 400/403/405 whose answer names the refusal (ECR's TAG_INVALID and ImageTagAlreadyExistsException,
#: Artifactory's and ACR's DENIED, GAR's MANIFEST_INVALID).
_TAG_KEPT_STATUS = frozenset({409, 412})
_TAG_REFUSED_STATUS = frozenset({400, 403, 405})
_TAG_REFUSED_WORDS = (
    "manifest_invalid",
    "tag_invalid",
    "denied",
    "imagetagalreadyexists",
    "immutable",
    "already exists",
    "overwrit",
)
MUTABILITY_ADVICE = "enable tag mutability for sha256-* tags, or use a registry with the OCI referrers API"


class TagNotRewritable(OCIError):
    """The registry would not overwrite the referrers fallback tag: its tags are immutable.

    Re-running cannot help (the next attach must rewrite the same tag), so
    the message says what to configure instead.
    """


def refuses_rewrite(error: Refused) -> bool:
    """Whether ``error``, the answer to overwriting an existing tag, says the tag may not change."""
    if error.status in _TAG_KEPT_STATUS:
        return True
    detail = error.detail.lower()
    return error.status in _TAG_REFUSED_STATUS and any(word in detail for word in _TAG_REFUSED_WORDS)


def fallback_tag(digest: str) -> str:
    """The referrers tag schema of the distribution spec: ``sha256:abc`` → ``sha256-abc``."""
    algo, hexpart = digest.split(":", 1)
    return f"{algo}-{hexpart}"


def index_entry(referrer: Manifest) -> dict[str, Any]:
    """The descriptor a referrers listing carries for ``referrer`` (per the distribution spec)."""
    entry: dict[str, Any] = {
        "mediaType": referrer.media_type,
        "digest": referrer.digest,
        "size": referrer.descriptor.size,
    }
    if referrer.artifact_type:
        entry["artifactType"] = referrer.artifact_type
    if referrer.annotations:
        entry["annotations"] = referrer.annotations
    return entry


def encode_index(entries: list[dict[str, Any]]) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": entries}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


#: Referrers one subject's listing may name before the listing itself is refused (the gate reads at most 500
#: that check out; the rest of this margin is for entries that do not).
MAX_LISTED_REFERRERS = 1000


def check_referrers(
    store: ImageStore,
    subject: str,
    listed: list[tuple[Any, str]],
    artifact_type: str | None,
) -> ReferrerListing:
    """Fetch and check every listed referrer; never trust what the listing itself says.

    ``listed`` holds (index entry, source) pairs. An entry counts when its
    manifest exists, matches its digest, and names ``subject`` in its own
    ``subject`` field; the artifact type filter is applied to the manifest's
    own artifact type, not the index entry's.
    """
    if len(listed) > MAX_LISTED_REFERRERS:
        # Checked before any manifest is fetched: a listing of 50,000 junk entries must not cost 50,000 GETs.
        raise OCIError(
            f"{store.display}@{subject}: {len(listed)} referrers listed, more than the {MAX_LISTED_REFERRERS} "
            "chaingate reads"
        )
    referrers: list[Referrer] = []
    rejected: list[RejectedReferrer] = []
    seen: set[str] = set()
    for entry, source in listed:
        digest = entry.get("digest") if isinstance(entry, dict) else None
        if not isinstance(digest, str):
            rejected.append(RejectedReferrer("?", source, "index entry without a digest"))
            continue
        if digest in seen:
            continue
        seen.add(digest)
        try:
            manifest = store.get_manifest(digest)
        except DeadlinePassed:
            raise  # the command is over, not this referrer: what was not seen cannot be judged
        except OCIError as e:
            rejected.append(RejectedReferrer(digest, source, e.message))
            continue
        named = manifest.subject
        if named is None or named.digest != subject:
            rejected.append(
                RejectedReferrer(
                    digest,
                    source,
                    f"its manifest names subject {named.digest if named else 'none'}, not {subject}",
                )
            )
            continue
        if artifact_type is not None and manifest.artifact_type != artifact_type:
            continue
        referrers.append(Referrer(manifest, source))
    referrers.sort(key=lambda r: (r.artifact_type or "", r.descriptor.digest))
    return ReferrerListing(tuple(referrers), tuple(rejected))


class RegistryStore(ImageStore):
    """One repository of a registry, e.g. ``localhost:5000/team/app``."""

    remote = True

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self.client = client
        self.repository = repository
        self.display = f"{client.host}/{repository}"
        self._cache: OrderedDict[str, Manifest] = OrderedDict()
        self._lock = threading.Lock()
        #: None until a push or listing tells whether the registry has the referrers API.
        self.referrers_api: bool | None = None

    # -- reading ----------------------------------------------------------------------------------

    def resolve(self, tag_or_digest: str) -> Descriptor:
        if tag_or_digest.startswith(("sha256:", "sha512:")):
            return self.get_manifest(tag_or_digest).descriptor
        head = self.client.head_manifest(self.repository, tag_or_digest)
        # HEAD only says what the registry claims; fetch by that digest so the bytes are checked.
        return self.get_manifest(head.digest).descriptor

    def get_manifest(self, digest: str) -> Manifest:
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None:
                self._cache.move_to_end(digest)
                return hit
        raw, media_type = self.client.get_manifest_bytes(self.repository, digest)
        verify_bytes(raw, digest, what=f"manifest {self.display}@{digest}")
        manifest = Manifest.parse(raw, Descriptor(media_type or media.OCI_MANIFEST, digest, len(raw)))
        with self._lock:
            self._cache[digest] = manifest
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return manifest

    def open_blob(self, descriptor: Descriptor) -> IO[bytes]:
        return self.client.open_blob(self.repository, descriptor)  # type: ignore[return-value]

    def has_blob(self, descriptor: Descriptor) -> bool:
        return self.client.blob_exists(self.repository, descriptor, push=True)

    def tags(self) -> list[str]:
        return self.client.list_tags(self.repository)

    def referrers(self, subject: str, artifact_type: str | None = None) -> ReferrerListing:
        listed: list[tuple[Any, str]] = []
        api = self.client.referrers(self.repository, subject, artifact_type)
        if api is not None:
            self.referrers_api = True
            listed.extend((entry, "referrers-api") for entry in api)
        # The fallback tag is read even when the API exists: clients that did not
        # detect the API (or wrote before the registry gained it) leave entries there.
        listed.extend((entry, "fallback-tag") for entry in self._read_fallback(fallback_tag(subject)))
        return check_referrers(self, subject, listed, artifact_type)

    def _read_fallback(self, tag: str) -> list[Any]:
        try:
            desc = self.client.head_manifest(self.repository, tag)
        except NotFound:
            return []
        # Read by digest and check the bytes; the tag is mutable so it is never cached.
        raw, media_type = self.client.get_manifest_bytes(self.repository, desc.digest)
        verify_bytes(raw, desc.digest, what=f"fallback index {self.display}:{tag}")
        index = Manifest.parse(raw, Descriptor(media_type or media.OCI_INDEX, desc.digest, len(raw)))
        if not index.is_index:
            raise OCIError(f"{self.display}:{tag}: the referrers fallback tag does not hold an index")
        return list(index.content["manifests"])

    # -- writing ----------------------------------------------------------------------------------

    def put_blob(
        self, descriptor: Descriptor, opener: Callable[[], IO[bytes]], *, progress: Progress = no_progress
    ) -> None:
        self.client.upload_blob(self.repository, descriptor, opener, progress=progress)

    def mount_blob(self, descriptor: Descriptor, source: ImageStore) -> bool:
        if not isinstance(source, RegistryStore) or source.client.host != self.client.host:
            return False
        if source.repository == self.repository:
            return self.has_blob(descriptor)
        return self.client.mount_blob(self.repository, descriptor, source.repository)

    def put_manifest(self, manifest: Manifest, *, tag: str | None = None) -> Descriptor:
        subject = self.client.put_manifest(
            self.repository, manifest.digest, manifest.raw, manifest.media_type
        )
        if manifest.subject is not None:
            self.referrers_api = subject == manifest.subject.digest
        if tag:
            self.client.put_manifest(self.repository, tag, manifest.raw, manifest.media_type)
        return manifest.descriptor

    def attach(self, referrer: Manifest) -> Descriptor:
        subject = referrer.subject
        if subject is None:
            raise OCIError(f"referrer {referrer.digest} has no subject to attach to")
        oci_subject = self.client.put_manifest(
            self.repository, referrer.digest, referrer.raw, referrer.media_type
        )
        if oci_subject == subject.digest:
            self.referrers_api = True
            return referrer.descriptor
        self.referrers_api = False
        self._add_to_fallback(subject.digest, referrer)
        return referrer.descriptor

    def _write_fallback(
        self, tag: str, entries: list[dict[str, Any]], referrer: Manifest, *, existed: bool
    ) -> None:
        """Put the fallback index; a registry that will not overwrite the tag is named as such."""
        from chaingate.oci.client import Refused

        try:
            self.client.put_manifest(self.repository, tag, encode_index(entries), media.OCI_INDEX)
        except Refused as e:
            if not existed or not refuses_rewrite(e):
                raise
            answer = f"HTTP {e.status}" + (f": {one_line(e.detail, 160)}" if e.detail else "")
            raise TagNotRewritable(
                f"{self.display}: the registry refused to overwrite the referrers fallback tag {tag} "
                f"({answer}); it keeps tags immutable: {MUTABILITY_ADVICE}",
                hint=f"the referrer itself was pushed as {self.display}@{referrer.digest}, but a reader "
                "without the referrers API cannot find it until the tag lists it",
            ) from None

    def _add_to_fallback(self, subject: str, referrer: Manifest) -> None:
        """Read-merge-write the fallback index until our entry has stayed in it.

        Registries ignore ``If-Match``, so parallel pipeline steps attaching to
        one image overwrite each other's index. Each writer therefore merges
        everything it has ever seen in the index, re-reads after writing, and
        only stops once its entry survived several reads a randomised settle
        delay apart; a writer that lost a race simply merges again.
        """
        tag = fallback_tag(subject)
        ours = index_entry(referrer)
        seen: dict[str, dict[str, Any]] = {referrer.digest: ours}
        confirmations = 0
        settle = 0.05
        for _ in range(FALLBACK_MAX_ROUNDS):
            started = time.monotonic()
            current = [
                e
                for e in self._read_fallback(tag)
                if isinstance(e, dict) and isinstance(e.get("digest"), str)
            ]
            present = {e["digest"] for e in current}
            for e in current:
                seen.setdefault(e["digest"], e)
            missing = [seen[d] for d in sorted(seen) if d not in present]
            if not missing:
                confirmations += 1
                if confirmations >= FALLBACK_CONFIRMATIONS:
                    return
            else:
                confirmations = 0
                self._write_fallback(tag, current + missing, referrer, existed=bool(current))
            # Settle for a few times one round trip, so a racing writer's stale write lands before we re-read.
            settle = min(1.0, max(settle, 4 * (time.monotonic() - started)))
            time.sleep(settle * random.uniform(0.5, 1.5))
        raise OCIError(
            f"{self.display}: could not keep {referrer.digest} in the referrers fallback index {tag} "
            f"after {FALLBACK_MAX_ROUNDS} rounds (too many concurrent writers)",
            hint=f"the referrer manifest itself was pushed as {self.display}@{referrer.digest}; attach again to retry",
        )
