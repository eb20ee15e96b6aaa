"""Image references: ``REGISTRY/REPO[:TAG][@DIGEST]``, ``oci:DIR[:TAG|@DIGEST]``, ``docker-archive:FILE``.

Parsing follows the grammar of distribution's reference package and docker's
normalisation (``alpine`` is ``docker.io/library/alpine:latest``) so that a
reference means here exactly what it means to ``docker pull`` — a mismatch
would let a policy glob match a different repository than the one deployed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from pathlib import Path

from chaingate.oci.digest import validate_digest
from chaingate.oci.errors import InvalidReference, OCIError

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
#: Where Docker Hub's distribution API actually lives.
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# \Z, not $: $ also matches before a final newline, and "alpine\n:latest" must not name a repository.
_COMPONENT_RE = re.compile(rf"^{_COMPONENT}\Z")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_HOST_LABEL = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN_RE = re.compile(rf"^(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?\Z")
_MAX_NAME = 255


def _is_loopback_host(host: str) -> bool:
    name = host
    if name.startswith("["):
        name, bracket, _ = name[1:].partition("]")
        if not bracket:  # "[::1" is no host at all, so not a loopback one
            return False
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Reference:
    """A registry image reference, normalised (``registry`` is ``docker.io`` for Docker Hub)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def name(self) -> str:
        """``REGISTRY/REPO`` — what ``registries`` globs in a policy match."""
        return f"{self.registry}/{self.repository}"

    @property
    def target(self) -> str:
        """What to resolve: the digest when there is one (it wins over the tag), else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def api_host(self) -> str:
        """The host[:port] that serves the distribution API."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def is_loopback(self) -> bool:
        return _is_loopback_host(self.registry)

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=validate_digest(digest))

    def by_digest(self, digest: str) -> Reference:
        """The same repository, pinned to ``digest`` with no tag: what is deployed."""
        return Reference(self.registry, self.repository, None, validate_digest(digest))


@dataclass(frozen=True)
class LayoutReference:
    """``oci:DIR[:TAG|@DIGEST]``: an OCI image layout directory."""

    path: Path
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        out = f"oci:{self.path}"
        if self.digest:
            return f"{out}@{self.digest}"
        return f"{out}:{self.tag}" if self.tag else out


@dataclass(frozen=True)
class ArchiveReference:
    """``docker-archive:FILE``: a ``docker save`` tarball."""

    path: Path

    def __str__(self) -> str:
        return f"docker-archive:{self.path}"


ImageReference = Reference | LayoutReference | ArchiveReference


def parse_reference(text: str) -> Reference:
    """Parse a registry reference, normalising Docker Hub short names as docker does."""
    original = text
    if not text or text != text.strip():
        raise InvalidReference(f"image reference {original!r}: empty or surrounded by white space")
    if "://" in text:
        raise InvalidReference(
            f"image reference {original!r}: no URL scheme allowed", hint="write REGISTRY/REPO[:TAG][@DIGEST]"
        )
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        _check_digest(digest, original)
    # A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
    tag: str | None = None
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash and not (text.startswith("[") and last_slash == -1):
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"image reference {original!r}: invalid tag {tag!r}")
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = first, rest
        if not _DOMAIN_RE.match(registry):
            raise InvalidReference(f"image reference {original!r}: invalid registry host {registry!r}")
        if registry.startswith("["):
            host = registry[1 : registry.index("]")]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise InvalidReference(
                    f"image reference {original!r}: invalid IPv6 address {host!r}"
                ) from None
        if registry.lower() in _HUB_ALIASES:
            registry = DOCKER_HUB
    else:
        registry, path = DOCKER_HUB, text
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not path:
        raise InvalidReference(f"image reference {original!r}: no repository name")
    for component in path.split("/"):
        if not _COMPONENT_RE.match(component):
            raise InvalidReference(
                f"image reference {original!r}: invalid repository path component {component!r}",
                hint="repository names are lowercase letters, digits and separators (. _ __ -)",
            )
    if len(path) > _MAX_NAME:
        raise InvalidReference(
            f"image reference {original!r}: repository name longer than {_MAX_NAME} characters"
        )
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, path, tag, digest)


def parse_image_reference(text: str) -> ImageReference:
    """Parse any image reference chaingate accepts (registry, ``oci:`` layout, ``docker-archive:``)."""
    if text.startswith("oci:"):
        return _parse_layout(text)
    if text.startswith("docker-archive:"):
        path = text[len("docker-archive:") :]
        if not path:
            raise InvalidReference(f"image reference {text!r}: docker-archive: needs a file path")
        return ArchiveReference(Path(path))
    if text.startswith("docker://"):
        return parse_reference(text[len("docker://") :])
    return parse_reference(text)


def _parse_layout(text: str) -> LayoutReference:
    body = text[len("oci:") :]
    if not body:
        raise InvalidReference(f"image reference {text!r}: oci: needs a directory")
    if "@" in body:
        path, digest = body.rsplit("@", 1)
        return LayoutReference(Path(path), None, _check_digest(digest, text))
    path, sep, tag = body.rpartition(":")
    # A ':' inside the last path segment separates a tag; one followed by '/' belongs to the path.
    if sep and path and "/" not in tag:
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"image reference {text!r}: invalid tag {tag!r}")
        return LayoutReference(Path(path), tag)
    return LayoutReference(Path(body))


def _check_digest(digest: str, original: str) -> str:
    try:
        return validate_digest(digest, where=f"image reference {original!r}")
    except OCIError as e:
        raise InvalidReference(e.message) from None


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (with or without a port): plain HTTP is allowed there."""
    return _is_loopback_host(host)
