"""Alpine (and Wolfi/Chainguard) packages from apk's installed database.

The database is one stanza per package of ``X:value`` lines. Dependencies
(``D:``) name packages, shared objects (``so:libc.musl-x86_64.so.1``),
commands or files, resolved through what each package provides (``p:``), so
the dependency graph is the one apk itself solved.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from chaingate.sbom import licenses
from chaingate.sbom.catalogers.base import (
    BytesCataloger,
    CatalogContext,
    Found,
    Package,
    distro_package,
    text,
)

_PATHS = ("lib/apk/db/installed", "usr/lib/apk/db/installed")
_CONSTRAINT = re.compile(r"[<>=~].*$")


#: Pseudo-field under which :func:`stanzas` lists the files a package owns (``F:`` dir + ``R:`` name).
FILES = "/"


def stanzas(data: str) -> Iterator[dict[str, list[str]]]:
    """Each package's fields; repeated letters collect in order, owned files under :data:`FILES`."""
    fields: dict[str, list[str]] = {}
    directory = ""
    for line in data.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, directory = {}, ""
            continue
        if len(line) < 2 or line[1] != ":":
            continue
        key, value = line[0], line[2:]
        if key == "F":
            directory = value.strip("/")
        elif key == "R":
            fields.setdefault(FILES, []).append(f"{directory}/{value}" if directory else value)
        fields.setdefault(key, []).append(value)
    if fields:
        yield fields


def _first(fields: dict[str, list[str]], key: str) -> str:
    values = fields.get(key)
    return values[0].strip() if values else ""


def _provided(token: str) -> str:
    """``so:libc.musl-x86_64.so.1=1`` -> ``so:libc.musl-x86_64.so.1``; ``busybox>=1.36`` -> ``busybox``."""
    return _CONSTRAINT.sub("", token.lstrip("!"))


class ApkCataloger(BytesCataloger):
    name = "apk"
    exact_paths = _PATHS

    def wants(self, path: str) -> bool:
        return path in _PATHS

    def catalog(self, files: Sequence[Found[bytes]], context: CatalogContext) -> list[Package]:
        distro = context.distro
        namespace = distro.id if distro else "alpine"
        distro_qualifier = distro.qualifier(major_minor=True) if distro else None
        packages: list[Package] = []
        records: list[tuple[Package, dict[str, list[str]]]] = []
        for found in files:
            for fields in stanzas(text(found.content)):
                name, version = _first(fields, "P"), _first(fields, "V")
                if not name or not version:
                    continue
                qualifiers = {"arch": _first(fields, "A")}
                if distro_qualifier:
                    qualifiers["distro"] = distro_qualifier
                origin = _first(fields, "o")
                if origin and origin != name:
                    qualifiers["upstream"] = origin
                declared = _first(fields, "L")
                license_value = licenses.normalise(declared) if declared else None
                package = distro_package(
                    "apk",
                    namespace,
                    name,
                    version,
                    qualifiers,
                    found,
                    licenses=(license_value,) if license_value else (),
                )
                packages.append(package)
                records.append((package, fields))
        _link(records)
        return packages


def _link(records: list[tuple[Package, dict[str, list[str]]]]) -> None:
    providers: dict[str, Package] = {}
    for package, fields in records:
        providers.setdefault(package.name, package)
        for token in _first(fields, "p").split():
            providers.setdefault(_provided(token), package)
        for path in fields.get(FILES, ()):
            providers.setdefault("/" + path, package)  # D: may name a file, such as /bin/sh
    for package, fields in records:
        deps: dict[int, Package] = {}
        for token in _first(fields, "D").split():
            if token.startswith("!"):
                continue  # a conflict, not a dependency
            target = providers.get(_provided(token))
            if target is not None and target is not package:
                deps[id(target)] = target
        package.depends_on = list(deps.values())
