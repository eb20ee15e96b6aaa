"""Java archives: jar, war, ear (and Jenkins' jpi/hpi), including archives nested inside them.

Maven writes ``META-INF/maven/<groupId>/<artifactId>/pom.properties`` into
every artifact it builds, and shading or fat-jar plugins keep those files, so
they are the most reliable coordinates there are: each one is a package. An
archive with none falls back to its manifest (``Implementation-*``,
``Bundle-*``) and file name. Web and enterprise archives and Spring Boot jars
carry their dependencies as archives inside the archive; those are opened in
memory, at most ``Limits.max_archive_depth`` levels deep and
``Limits.max_archive_bytes`` inflated bytes per top-level archive, so a zip
bomb costs a bounded amount and is reported, not followed.

Archives are reduced to their coordinates while the layer streams by: a jar is
held in memory only while it is read (up to ``Limits.max_file_bytes``).
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from packageurl import PackageURL

from chaingate.sbom import licenses
from chaingate.sbom.catalogers.base import CatalogContext, Cataloger, Found, Package, Skip, read_all
from chaingate.sbom.interface import MiB

ARCHIVE_SUFFIXES = (".jar", ".war", ".ear", ".jpi", ".hpi")
_POM_PROPERTIES = re.compile(r"^META-INF/maven/[^/]+/[^/]+/pom\.properties$")
_FILENAME = re.compile(r"^(?P<name>.+?)-(?P<version>\d[\w.+-]*?)(?:\.(?:jar|war|ear|jpi|hpi))$")
_SMALL_FILE = 1 * MiB
#: Central directory entries; a real archive rarely holds more than tens of thousands.
_MAX_ENTRIES = 200_000
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    RuntimeError,
    ValueError,
    EOFError,
    OSError,
    zlib.error,
)


@dataclass(frozen=True)
class JavaArtifact:
    #: Path inside the captured file of the archive holding the artifact ("" for the file itself).
    inner: str
    group: str | None
    artifact: str
    version: str | None
    licenses: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArchiveContents:
    artifacts: tuple[JavaArtifact, ...]
    #: Problems met inside the archive (nested archives skipped, unreadable members).
    notes: tuple[str, ...]


def parse_properties(data: bytes) -> dict[str, str]:
    """Java .properties, as far as pom.properties uses them: ``key=value`` or ``key: value``, ``#`` comments."""
    out: dict[str, str] = {}
    for raw in data.decode("latin-1").splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        m = re.match(r"^([^=:\s]+)\s*[=:\s]\s*(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def parse_manifest(data: bytes) -> dict[str, str]:
    """The main section of a JAR manifest; a line starting with one space continues the previous one."""
    out: dict[str, str] = {}
    key: str | None = None
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line:
            break
        if line.startswith(" ") and key is not None:
            out[key] += line[1:]
            continue
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip()
            out[key] = value.strip()
    return out


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit


class _Scanner:
    def __init__(self, max_depth: int, max_member: int, budget: _Budget) -> None:
        self.max_depth = max_depth
        self.max_member = max_member
        self.budget = budget
        self.artifacts: dict[tuple[str, str | None, str, str | None], JavaArtifact] = {}
        self.notes: list[str] = []

    def _read(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes | None:
        if info.file_size > limit or info.file_size > self.budget.left:
            return None
        with archive.open(info) as member:
            data = member.read(limit + 1)
        self.budget.left -= len(data)
        if len(data) > limit or self.budget.left < 0:
            return None
        return data

    def scan(self, data: bytes, filename: str, inner: str, depth: int) -> None:
        where = inner or filename
        if data.count(b"PK\x01\x02") > _MAX_ENTRIES:
            self.notes.append(f"{where}: more than {_MAX_ENTRIES} zip entries; skipped")
            return
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            infos = archive.infolist()
            self._artifacts(archive, infos, filename, inner)
            for info in infos:
                if info.is_dir() or not info.filename.lower().endswith(ARCHIVE_SUFFIXES):
                    continue
                nested_inner = f"{inner}!/{info.filename}" if inner else info.filename
                if depth + 1 > self.max_depth:
                    self.notes.append(
                        f"{nested_inner}: nested deeper than {self.max_depth} archives; skipped"
                    )
                    continue
                nested = self._read(archive, info, self.max_member)
                if nested is None:
                    self.notes.append(f"{nested_inner}: over the size limits for nested archives; skipped")
                    continue
                self.scan(nested, info.filename.rsplit("/", 1)[-1], nested_inner, depth + 1)
        except _ZIP_ERRORS as e:
            if depth == 0:
                raise Skip(f"not a readable Java archive ({e})") from None
            self.notes.append(f"{where}: not a readable Java archive ({e}); skipped")

    def _artifacts(
        self, archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], filename: str, inner: str
    ) -> None:
        manifest_info = next((i for i in infos if i.filename == "META-INF/MANIFEST.MF"), None)
        manifest_data = self._read(archive, manifest_info, _SMALL_FILE) if manifest_info else None
        manifest = parse_manifest(manifest_data) if manifest_data else {}
        declared = manifest.get("Bundle-License", "")
        license_value = licenses.spdx_id(declared.split(",")[0]) if declared else None
        stem = _FILENAME.match(filename)
        found: list[JavaArtifact] = []
        for info in infos:
            if not _POM_PROPERTIES.match(info.filename):
                continue
            data = self._read(archive, info, _SMALL_FILE)
            props = parse_properties(data) if data else {}
            group, artifact, version = props.get("groupId"), props.get("artifactId"), props.get("version")
            if group and artifact:
                found.append(JavaArtifact(inner, group, artifact, version or None))
        if found:
            # The manifest describes the archive's own artifact: the one named like the file, or the only one.
            own = [a for a in found if stem and a.artifact == stem.group("name")] or (
                found if len(found) == 1 else []
            )
            for pom in found:
                if license_value and pom in own:
                    pom = JavaArtifact(pom.inner, pom.group, pom.artifact, pom.version, (license_value,))
                self._add(pom)
            return
        name = (
            (stem.group("name") if stem else None)
            or manifest.get("Implementation-Title")
            or manifest.get("Bundle-SymbolicName", "").split(";")[0].strip()
        )
        version = (
            manifest.get("Implementation-Version")
            or manifest.get("Bundle-Version")
            or (stem.group("version") if stem else None)
        )
        if not name:
            name = filename.rsplit(".", 1)[0]
        group = manifest.get("Implementation-Vendor-Id") or None
        self._add(
            JavaArtifact(inner, group, name, version or None, (license_value,) if license_value else ())
        )

    def _add(self, artifact: JavaArtifact) -> None:
        self.artifacts.setdefault(
            (artifact.inner, artifact.group, artifact.artifact, artifact.version), artifact
        )


class JavaCataloger(Cataloger[ArchiveContents]):
    name = "java"

    def wants(self, path: str) -> bool:
        return path.lower().endswith(ARCHIVE_SUFFIXES)

    def capture(self, path: str, stream: IO[bytes], size: int) -> ArchiveContents | None:
        data = read_all(stream, size, self.max_size)
        scanner = _Scanner(
            self.limits.max_archive_depth, self.limits.max_file_bytes, _Budget(self.limits.max_archive_bytes)
        )
        scanner.scan(data, path.rsplit("/", 1)[-1], "", 0)
        if not scanner.artifacts and not scanner.notes:
            return None
        return ArchiveContents(tuple(scanner.artifacts.values()), tuple(scanner.notes))

    def catalog(self, files: Sequence[Found[ArchiveContents]], context: CatalogContext) -> list[Package]:
        packages: list[Package] = []
        for found in files:
            for note in found.content.notes:
                context.warn(f"{found.path}!/{note}")
            for artifact in found.content.artifacts:
                packages.append(
                    Package(
                        purl=PackageURL(
                            type="maven",
                            namespace=artifact.group,
                            name=artifact.artifact,
                            version=artifact.version,
                        ),
                        name=artifact.artifact,
                        group=artifact.group,
                        version=artifact.version,
                        layer=found.layer,
                        path=f"{found.path}!/{artifact.inner}" if artifact.inner else found.path,
                        licenses=artifact.licenses,
                    )
                )
        return packages
