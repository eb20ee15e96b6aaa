"""What every image store offers, whatever holds the bytes.

A store is a registry repository, an OCI image layout directory or a docker
archive. Everything above this module (copy, inspect, sbom, attest, verify)
talks to :class:`ImageStore` only, so the whole chain runs the same against a
registry or with no registry at all.

Every method that returns content has verified it against its digest first;
every listing of referrers has fetched and checked each referrer manifest
itself, so no caller ever has to trust an index entry or a server.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

from chaingate import safejson
from chaingate.oci import media
from chaingate.oci.digest import validate_digest

# Explicit re-exports (``as``): cli.py, oci/copy.py and oci/tree.py import these two from here
# until their owners import chaingate.oci.errors; this module raises both itself.
from chaingate.oci.errors import NotFound as NotFound
from chaingate.oci.errors import OCIError as OCIError

#: Progress callback: (what, done, total) — total is None when unknown. The core
#: calls it and never depends on what it does.
Progress = Callable[[str, int, int | None], None]


def no_progress(what: str, done: int, total: int | None) -> None:
    """The default progress callback: reports nothing."""


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise OCIError(f"{where}: annotations must be an object of strings")
    return dict(value)


@dataclass(frozen=True)
class Platform:
    """An image platform, as in ``--platform os/arch[/variant]``."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise OCIError(
                f"--platform: {text!r} is not os/arch[/variant] (e.g. linux/amd64, linux/arm64/v8)"
            )
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_dict(cls, value: Any, where: str) -> Platform:
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("os"), str)
            or not isinstance(value.get("architecture"), str)
        ):
            raise OCIError(f"{where}: platform needs string fields os and architecture")
        variant = value.get("variant")
        os_version = value.get("os.version")
        return cls(
            value["os"],
            value["architecture"],
            variant if isinstance(variant, str) else None,
            os_version if isinstance(os_version, str) else None,
        )

    def to_dict(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        return out

    def matches(self, other: Platform) -> bool:
        """True when ``other`` (from an index) satisfies this request; a request without variant takes any."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        return self.variant is None or self._norm_variant() == other._norm_variant()

    def _norm_variant(self) -> str | None:
        # arm64 images usually omit v8; treat the two spellings as one.
        if self.architecture == "arm64" and self.variant in (None, "v8"):
            return "v8"
        return self.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest or index says about another object."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    platform: Platform | None = None

    @classmethod
    def from_dict(cls, value: Any, where: str) -> Descriptor:
        if not isinstance(value, dict):
            raise OCIError(f"{where}: a descriptor must be an object")
        mt, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
        if not isinstance(mt, str) or not mt:
            raise OCIError(f"{where}: descriptor has no mediaType")
        if not isinstance(digest, str):
            raise OCIError(f"{where}: descriptor has no digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise OCIError(f"{where}: descriptor size must be a non-negative integer")
        artifact_type = value.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise OCIError(f"{where}: artifactType must be a string")
        platform = value.get("platform")
        return cls(
            media_type=mt,
            digest=validate_digest(digest, where=where),
            size=size,
            artifact_type=artifact_type,
            annotations=_str_map(value.get("annotations"), where),
            platform=Platform.from_dict(platform, where) if platform is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = self.platform.to_dict()
        return out

    def with_annotations(self, annotations: Mapping[str, str]) -> Descriptor:
        return Descriptor(
            self.media_type, self.digest, self.size, self.artifact_type, dict(annotations), self.platform
        )

    def bare(self) -> Descriptor:
        """The descriptor without platform and annotations: what identifies the content itself."""
        return Descriptor(self.media_type, self.digest, self.size, self.artifact_type)


@dataclass(frozen=True)
class Manifest:
    """A manifest or index whose bytes have been checked against ``descriptor.digest``.

    ``raw`` is kept verbatim: a manifest is pushed and hashed as the exact bytes
    it was read as, never re-serialised.
    """

    descriptor: Descriptor
    raw: bytes = field(repr=False)
    content: Mapping[str, Any] = field(repr=False, hash=False, compare=False)

    @classmethod
    def parse(cls, raw: bytes, descriptor: Descriptor) -> Manifest:
        """Parse verified bytes; the media type comes from the document when the transport did not say."""
        where = f"manifest {descriptor.digest}"
        try:
            content = safejson.loads(raw)
        except ValueError as e:
            raise OCIError(f"{where}: not valid JSON ({e})") from None
        if not isinstance(content, dict):
            raise OCIError(f"{where}: not a JSON object")
        doc_type = content.get("mediaType")
        media_type = doc_type if isinstance(doc_type, str) and doc_type else descriptor.media_type
        if media_type in media.DOCKER_SCHEMA1 or content.get("schemaVersion") == 1:
            raise OCIError(
                f"{where}: Docker schema 1 manifests are not supported (deprecated and unsigned-digest)"
            )
        if content.get("schemaVersion") != 2:
            raise OCIError(f"{where}: schemaVersion must be 2")
        if media_type not in media.ALL_MANIFESTS:
            # OCI allows omitting mediaType; tell an index from an image by its shape.
            media_type = media.OCI_INDEX if "manifests" in content else media.OCI_MANIFEST
        desc = Descriptor(
            media_type,
            descriptor.digest,
            len(raw),
            descriptor.artifact_type,
            descriptor.annotations,
            descriptor.platform,
        )
        manifest = cls(desc, raw, content)
        manifest._validate()
        return manifest

    def _validate(self) -> None:
        where = f"manifest {self.descriptor.digest}"
        if self.is_index:
            if not isinstance(self.content.get("manifests"), list):
                raise OCIError(f"{where}: an index needs a manifests array")
            for i, m in enumerate(self.content["manifests"]):
                Descriptor.from_dict(m, f"{where} manifests[{i}]")
        else:
            Descriptor.from_dict(self.content.get("config"), f"{where} config")
            layers = self.content.get("layers", [])
            if not isinstance(layers, list):
                raise OCIError(f"{where}: layers must be an array")
            for i, layer in enumerate(layers):
                Descriptor.from_dict(layer, f"{where} layers[{i}]")
        if self.content.get("subject") is not None:
            Descriptor.from_dict(self.content["subject"], f"{where} subject")

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def is_index(self) -> bool:
        return self.descriptor.media_type in media.INDEXES

    @property
    def config(self) -> Descriptor:
        return Descriptor.from_dict(self.content["config"], f"manifest {self.digest} config")

    @property
    def layers(self) -> list[Descriptor]:
        return [
            Descriptor.from_dict(d, f"manifest {self.digest} layers[{i}]")
            for i, d in enumerate(self.content.get("layers", []))
        ]

    @property
    def manifests(self) -> list[Descriptor]:
        return [
            Descriptor.from_dict(d, f"manifest {self.digest} manifests[{i}]")
            for i, d in enumerate(self.content.get("manifests", []))
        ]

    @property
    def subject(self) -> Descriptor | None:
        s = self.content.get("subject")
        return Descriptor.from_dict(s, f"manifest {self.digest} subject") if s is not None else None

    @property
    def annotations(self) -> dict[str, str]:
        return _str_map(self.content.get("annotations"), f"manifest {self.digest}")

    @property
    def artifact_type(self) -> str | None:
        """The artifact type as the manifest itself states it (OCI 1.1 rules: artifactType, else config type)."""
        at = self.content.get("artifactType")
        if isinstance(at, str) and at:
            return at
        if self.is_index:
            return None
        cfg = self.config.media_type
        return None if cfg in (media.OCI_CONFIG, media.DOCKER_CONFIG) else cfg

    def children(self) -> list[Descriptor]:
        """Every object this manifest references, in push order (blobs or child manifests)."""
        if self.is_index:
            return self.manifests
        return [self.config, *self.layers]


@dataclass(frozen=True)
class Referrer:
    """An attachment whose manifest was fetched and checked to name the subject."""

    manifest: Manifest
    #: Where it was found: "referrers-api", "fallback-tag", "layout", or "legacy-tag:<suffix>".
    source: str

    @property
    def descriptor(self) -> Descriptor:
        return self.manifest.descriptor

    @property
    def artifact_type(self) -> str | None:
        return self.manifest.artifact_type


@dataclass(frozen=True)
class RejectedReferrer:
    """A listed attachment that failed its checks: reported, never used."""

    digest: str
    source: str
    reason: str


@dataclass(frozen=True)
class ReferrerListing:
    referrers: tuple[Referrer, ...]
    rejected: tuple[RejectedReferrer, ...]


class ImageStore(ABC):
    """A place that holds images and their attachments (one registry repository, layout or archive).

    Implementations verify every digest they read; ``put_*`` methods verify what
    they are given before it becomes visible.
    """

    #: How the store is named to a user (e.g. ``localhost:5000/app``, ``oci:/tmp/x``).
    display: str
    #: Whether blob streams cross a network. A local file may be left unread for as long as a reader
    #: likes; an HTTP response left unread may be dropped by the server or a proxy in between.
    remote: ClassVar[bool] = False

    @abstractmethod
    def resolve(self, tag_or_digest: str) -> Descriptor:
        """The descriptor of the manifest a tag (or digest) points at, digest-checked."""

    @abstractmethod
    def get_manifest(self, digest: str) -> Manifest:
        """The manifest with this digest, checked against it and bounded in size."""

    @abstractmethod
    def open_blob(self, descriptor: Descriptor) -> IO[bytes]:
        """A stream of the blob that raises if its bytes or size differ from the descriptor."""

    @abstractmethod
    def has_blob(self, descriptor: Descriptor) -> bool: ...

    @abstractmethod
    def put_blob(
        self, descriptor: Descriptor, opener: Callable[[], IO[bytes]], *, progress: Progress = no_progress
    ) -> None:
        """Store a blob read from ``opener()`` (which may be called again to retry), checked against the descriptor."""

    @abstractmethod
    def put_manifest(self, manifest: Manifest, *, tag: str | None = None) -> Descriptor:
        """Store a manifest whose children are already stored; also tag it when ``tag`` is given."""

    @abstractmethod
    def referrers(self, subject: str, artifact_type: str | None = None) -> ReferrerListing:
        """Every attachment of ``subject``, each manifest fetched and checked to name it."""

    @abstractmethod
    def attach(self, referrer: Manifest) -> Descriptor:
        """Store a referrer manifest (its blobs already stored) so ``referrers(subject)`` lists it."""

    @abstractmethod
    def tags(self) -> list[str]: ...

    def mount_blob(self, descriptor: Descriptor, source: ImageStore) -> bool:
        """Make a blob of ``source`` available here without copying bytes, when the two allow it."""
        return False

    def close(self) -> None:  # noqa: B027 — most stores hold nothing to release
        """Release resources and flush pending writes (archives are written on close)."""

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def legacy_attachments(self, subject: str) -> Iterator[tuple[str, Manifest]]:
        """cosign's tag-based attachments (``sha256-<hex>.sig``, ``.att``, ``.sbom``), digest-checked."""
        algo, hexpart = subject.split(":", 1)
        for suffix in ("sig", "att", "sbom"):
            tag = f"{algo}-{hexpart}.{suffix}"
            try:
                desc = self.resolve(tag)
            except NotFound:
                continue
            yield suffix, self.get_manifest(desc.digest)
