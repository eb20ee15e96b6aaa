"""Debian packages: dpkg's status database, and distroless's one-file-per-package ``status.d``.

Only packages whose files are on disk count. dpkg keeps records of removed
packages (``deinstall ok config-files``: configuration left behind, binaries
gone) and of ones selected but never unpacked; listing those would report
vulnerabilities in code the image does not contain.

dpkg records no licenses; Debian policy puts them in
``usr/share/doc/<package>/copyright``, machine-readable (DEP-5) for most
packages today. Its ``License:`` short names are mapped to SPDX identifiers
where Debian's naming maps one to one (``GPL-2+`` is ``GPL-2.0-or-later``), and
older free-text files are credited with the ``/usr/share/common-licenses``
texts they point to.
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

STATUS = "var/lib/dpkg/status"
_STATUS_D = "var/lib/dpkg/status.d/"
#: States whose files are (at least partly) on disk; see dpkg-query(1).
_PRESENT = frozenset(
    {"installed", "half-installed", "unpacked", "half-configured", "triggers-awaited", "triggers-pending"}
)
_ABSENT_WANTS = frozenset({"deinstall", "purge"})
_DEP_NAME = re.compile(r"^\s*([a-z0-9][a-z0-9+.\-]*)(?::[a-z0-9-]+)?")
_DOC = "usr/share/doc/"
_COPYRIGHT = "/copyright"
_GNU = re.compile(r"^(l?gpl|agpl|gfdl)-?(\d(?:\.\d)?)(\+?)$", re.IGNORECASE)
_GNU_IDS = {"gpl": "GPL", "lgpl": "LGPL", "agpl": "AGPL", "gfdl": "GFDL"}
_DEBIAN_NAMES = {"expat": "MIT", "artistic": "Artistic-1.0-Perl", "psf-2": "PSF-2.0", "mpl-2": "MPL-2.0"}
_COMMON_LICENSES = re.compile(r"/usr/share/common-licenses/([A-Za-z0-9.+-]+)")
_LICENSE_LINE = re.compile(r"^License:[ \t]*(\S.*)$", re.MULTILINE)
_LICENSE_SPLIT = re.compile(r"\s+(?:or|and)\s+|\s*[,|]\s*", re.IGNORECASE)


def debian_license(short_name: str) -> str | None:
    """A Debian copyright short name as SPDX (``GPL-2+`` -> ``GPL-2.0-or-later``), else the name itself."""
    name = short_name.strip().rstrip(".")
    if not name:
        return None
    m = _GNU.match(name)
    if m:
        family, version, later = m.groups()
        version = version if "." in version else f"{version}.0"
        return f"{_GNU_IDS[family.lower()]}-{version}-{'or-later' if later else 'only'}"
    return _DEBIAN_NAMES.get(name.lower()) or licenses.spdx_id(name) or name


def copyright_licenses(data: str) -> tuple[str, ...]:
    """Licenses a copyright file names: DEP-5 ``License:`` fields, else common-licenses references."""
    found: list[str] = []
    for field in _LICENSE_LINE.findall(data):
        for part in _LICENSE_SPLIT.split(field.strip()):
            value = debian_license(part.strip("() "))
            if value:
                found.append(value)
    if not found:
        found = [v for v in (debian_license(m) for m in _COMMON_LICENSES.findall(data)) if v]
    return tuple(sorted(set(found)))


def paragraphs(data: str) -> Iterator[dict[str, str]]:
    """RFC 822-style stanzas separated by blank lines; continuation lines start with whitespace."""
    fields: dict[str, str] = {}
    key: str | None = None
    for line in data.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, None
            continue
        if line[0] in " \t":
            if key is not None:
                fields[key] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip()
        fields[key] = value.strip()
    if fields:
        yield fields


def _installed(fields: dict[str, str]) -> bool:
    status = fields.get("Status")
    if status is None:
        return True  # distroless status.d records carry no Status: they describe what was laid down
    words = status.split()
    if len(words) != 3:
        return False
    want, _, state = words
    return want not in _ABSENT_WANTS and state in _PRESENT


def _source(fields: dict[str, str], name: str, version: str) -> str | None:
    """The ``upstream`` qualifier: the source package, with its version when it differs from the binary's."""
    source = fields.get("Source", "").strip()
    if not source:
        return None
    m = re.match(r"^(\S+)(?:\s+\((\S+)\))?$", source)
    if not m:
        return None
    src_name, src_version = m.group(1), m.group(2)
    if src_version and src_version != version:
        return f"{src_name}@{src_version}"
    return None if src_name == name else src_name


def _dependency_names(value: str) -> Iterator[list[str]]:
    """Each ``Depends`` clause as its alternatives' package names."""
    for clause in value.split(","):
        names = []
        for alternative in clause.split("|"):
            m = _DEP_NAME.match(alternative)
            if m:
                names.append(m.group(1))
        if names:
            yield names


class DpkgCataloger(BytesCataloger):
    name = "dpkg"
    exact_paths = (STATUS,)
    exact_dirs = (_STATUS_D.rstrip("/"),)

    def wants(self, path: str) -> bool:
        if path == STATUS:
            return True
        if path.startswith(_DOC) and path.endswith(_COPYRIGHT):
            return path.count("/") == 4  # usr/share/doc/<package>/copyright
        if not path.startswith(_STATUS_D):
            return False
        rest = path[len(_STATUS_D) :]
        return "/" not in rest and not rest.endswith(".md5sums")

    def catalog(self, files: Sequence[Found[bytes]], context: CatalogContext) -> list[Package]:
        distro = context.distro
        namespace = distro.id if distro else "debian"
        distro_qualifier = distro.qualifier() if distro else None
        packages: list[Package] = []
        records: list[tuple[Package, dict[str, str]]] = []
        copyrights = {
            f.path[len(_DOC) : -len(_COPYRIGHT)]: copyright_licenses(text(f.content))
            for f in files
            if f.path.startswith(_DOC)
        }
        for found in files:
            if found.path.startswith(_DOC):
                continue
            for fields in paragraphs(text(found.content)):
                name = fields.get("Package", "").strip()
                version = fields.get("Version", "").strip()
                if not name or not version:
                    if name:
                        context.warn(f"{found.path}: dpkg record {name!r} has no Version; skipped")
                    continue
                if not _installed(fields):
                    continue
                qualifiers = {"arch": fields.get("Architecture", "").strip()}
                if distro_qualifier:
                    qualifiers["distro"] = distro_qualifier
                upstream = _source(fields, name, version)
                if upstream:
                    qualifiers["upstream"] = upstream
                package = distro_package(
                    "deb", namespace, name, version, qualifiers, found, licenses=copyrights.get(name, ())
                )
                packages.append(package)
                records.append((package, fields))
        _link(records)
        return packages


def _link(records: list[tuple[Package, dict[str, str]]]) -> None:
    """Resolve Depends and Pre-Depends to the installed packages that satisfy them (by name or Provides)."""
    providers: dict[str, list[tuple[Package, str]]] = {}
    for package, fields in records:
        arch = fields.get("Architecture", "")
        providers.setdefault(package.name, []).append((package, arch))
        for names in _dependency_names(fields.get("Provides", "")):
            for provided in names:
                providers.setdefault(provided, []).append((package, arch))
    for package, fields in records:
        arch = fields.get("Architecture", "")
        deps: dict[int, Package] = {}
        for field in ("Pre-Depends", "Depends"):
            for alternatives in _dependency_names(fields.get(field, "")):
                for name in alternatives:
                    candidates = providers.get(name)
                    if candidates:
                        # Prefer the dependency built for the same architecture (multi-arch installs).
                        best = next((p for p, a in candidates if a in (arch, "all")), candidates[0][0])
                        if best is not package:
                            deps[id(best)] = best
                        break
        package.depends_on = list(deps.values())
