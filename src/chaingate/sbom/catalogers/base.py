"""The one interface every cataloger implements, and the package record they all produce.

A cataloger never sees a layer: it declares which paths it wants (and how big
they may be), gets each wanted file of the image's *final* filesystem once,
and turns those files into packages. That split is what lets the engine read
each layer in a single streaming pass whatever the number of catalogers, and
keeps every cataloger testable with plain bytes.

Reading happens in two steps on purpose. ``capture`` runs while the layer
streams by and must reduce a file to what the cataloger needs (a jar to its
pom.properties, a Go binary to its build-info blob), so what stays in memory is
small; ``catalog`` runs once the whole image has been read and verified.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, ClassVar, Generic, Literal, TypeVar

from packageurl import PackageURL

from chaingate.sbom.interface import DEFAULT_LIMITS, Limits

T = TypeVar("T")


class Skip(Exception):
    """Raised by :meth:`FileReader.capture` to pass on a file for a reason worth a warning in the SBOM."""


@dataclass(frozen=True)
class Found(Generic[T]):
    """A file of the final filesystem as one cataloger captured it."""

    #: Where the file is, relative to the image root (the link's own path when reached through a symlink).
    path: str
    #: Digest of the layer the content came from.
    layer: str
    content: T


@dataclass(frozen=True)
class Distro:
    """The operating system an image says it is (``etc/os-release``)."""

    id: str
    version_id: str | None = None
    codename: str | None = None
    #: What the rest of os-release says, for the SBOM's operating-system component.
    pretty_name: str | None = None
    id_like: tuple[str, ...] = ()
    #: Where os-release was found (path in the image, layer digest).
    path: str | None = None
    layer: str | None = None

    def qualifier(self, *, major_minor: bool = False) -> str:
        """The purl ``distro`` qualifier: ``debian-12``, ``rhel-9.3``, or ``alpine-3.19`` when ``major_minor``.

        Alpine point releases share one package repository, so apk advisories
        are keyed by major.minor while dpkg and rpm ones use the full VERSION_ID.
        """
        version = self.version_id or self.codename
        if not version:
            return self.id
        if major_minor:
            m = re.match(r"^(\d+\.\d+)\.\d+", version)
            if m:
                version = m.group(1)
        return f"{self.id}-{version}"


@dataclass(frozen=True)
class CatalogContext:
    """What a cataloger may know beyond its own files."""

    distro: Distro | None
    #: Records a problem in the SBOM's metadata (a skipped or malformed file) without failing the run.
    warn: Callable[[str], None]


@dataclass(eq=False)
class Package:
    """One component of the SBOM; compared by identity so dependency lists can point at packages."""

    purl: PackageURL
    name: str
    version: str | None
    layer: str
    path: str
    group: str | None = None
    #: SPDX identifiers or expressions where recognisable, otherwise the license name as the package states it.
    licenses: tuple[str, ...] = ()
    component_type: Literal["library", "application"] = "library"
    #: Packages this one depends on, as its database states; None when the database states nothing.
    depends_on: list[Package] | None = None
    properties: tuple[tuple[str, str], ...] = field(default=())


def distro_package(
    kind: str,
    namespace: str | None,
    name: str,
    version: str,
    qualifiers: Mapping[str, str | None],
    found: Found[T],
    *,
    licenses: tuple[str, ...] = (),
    shown_version: str | None = None,
) -> Package:
    """A package of a distribution's database (deb, apk, rpm), its purl keeping only qualifiers with a value.

    ``shown_version`` is the version as the distribution writes it when the
    purl spells it differently (rpm's epoch goes into a qualifier, not the version).
    """
    return Package(
        purl=PackageURL(
            type=kind,
            namespace=namespace,
            name=name,
            version=version,
            qualifiers={k: v for k, v in qualifiers.items() if v},
        ),
        name=name,
        version=shown_version or version,
        layer=found.layer,
        path=found.path,
        licenses=licenses,
    )


class FileReader(ABC, Generic[T]):
    """Something that wants certain files of the image, and keeps a reduced form of each."""

    #: Short name used in warnings.
    name: ClassVar[str]
    #: Well-known single files (package databases, os-release): these are also found when the path
    #: leads through symlinks (``etc/os-release`` -> ``../usr/lib/os-release``), unlike pattern matches,
    #: which are catalogued once, at their real path, so no file is counted twice.
    exact_paths: ClassVar[tuple[str, ...]] = ()
    #: Well-known directories whose files (those :meth:`wants` picks) are found the same way when the
    #: directory is reached through symlinks: distroless keeps one dpkg record per package in one.
    exact_dirs: ClassVar[tuple[str, ...]] = ()
    #: Also offered every regular file with an execute bit, whatever its path (binaries live anywhere).
    wants_executables: ClassVar[bool] = False

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits

    @property
    def max_size(self) -> int:
        """Largest file this reader is offered; bigger ones are skipped with a warning."""
        return self.limits.max_file_bytes

    @abstractmethod
    def wants(self, path: str) -> bool:
        """Whether the file at ``path`` (relative, normalised, no leading slash) is one to read."""

    @abstractmethod
    def capture(self, path: str, stream: IO[bytes], size: int) -> T | None:
        """Reduce one file to what :meth:`catalog` needs, or None when it holds nothing of interest.

        Called while the layer streams by, possibly for files a later layer
        will hide; raise :class:`Skip` to record why a file was passed over.
        """


class BytesReader(FileReader[bytes]):
    """A reader that keeps small files whole (package databases, manifests)."""

    def capture(self, path: str, stream: IO[bytes], size: int) -> bytes | None:
        return read_all(stream, size, self.max_size)


class Cataloger(FileReader[T]):
    """A reader that turns its files into packages."""

    @abstractmethod
    def catalog(self, files: Sequence[Found[T]], context: CatalogContext) -> list[Package]:
        """The packages the files describe; malformed files are warned about and skipped, never fatal."""


class BytesCataloger(Cataloger[bytes]):
    """A cataloger over whole small files."""

    def capture(self, path: str, stream: IO[bytes], size: int) -> bytes | None:
        return read_all(stream, size, self.max_size)


def read_all(stream: IO[bytes], size: int, limit: int) -> bytes:
    """The whole stream, which the tar header says is ``size`` bytes, refusing more than ``limit``."""
    if size > limit:
        raise Skip(f"{size} bytes, over the limit of {limit}")
    return stream.read(limit)


def text(data: bytes) -> str:
    """Package metadata is UTF-8 by every ecosystem's rules; anything else is replaced, never fatal."""
    return data.decode("utf-8", errors="replace")
