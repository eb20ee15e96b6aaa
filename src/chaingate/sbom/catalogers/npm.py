"""npm packages: installed ``node_modules`` trees, and lock files of projects whose tree was not installed.

An installed tree is the truth: each ``node_modules/<name>/package.json``
(``node_modules/@scope/<name>/package.json`` for scoped packages) is a package
on disk, and its dependencies are resolved the way Node resolves them, from
the nearest ``node_modules`` upwards. A ``package-lock.json`` (lockfile v2/v3,
its ``packages`` map) is used only for a project directory with no
``node_modules`` beside it, such as an image that ships sources and installs
at start-up; development-only entries are left out there, since a production
install would not fetch them.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from typing import Any

from packageurl import PackageURL

from chaingate.sbom import licenses
from chaingate.sbom.catalogers.base import BytesCataloger, CatalogContext, Found, Package

_MODULES = "node_modules"
_LOCK = "package-lock.json"


def _package_dir(path: str) -> str | None:
    """The package directory of a ``node_modules`` package.json, or None for other package.json files."""
    parts = path.split("/")
    if len(parts) < 3 or parts[-1] != "package.json":
        return None
    if parts[-3] == _MODULES and not parts[-2].startswith((".", "@")):
        return "/".join(parts[:-1])
    if len(parts) >= 4 and parts[-4] == _MODULES and parts[-3].startswith("@"):
        return "/".join(parts[:-1])
    return None


def _split_name(name: str) -> tuple[str | None, str]:
    if name.startswith("@") and "/" in name:
        scope, _, rest = name.partition("/")
        return scope, rest
    return None, name


def _licenses(doc: dict[str, Any]) -> tuple[str, ...]:
    """``license`` as an SPDX expression, or the legacy ``{type}`` object and ``licenses`` array."""
    raw: list[Any] = []
    value = doc.get("license")
    raw.append(value.get("type") if isinstance(value, dict) else value)
    legacy = doc.get("licenses")
    if isinstance(legacy, list):
        raw.extend(item.get("type") if isinstance(item, dict) else item for item in legacy)
    found = [licenses.normalise(v) for v in raw if isinstance(v, str)]
    return tuple(dict.fromkeys(v for v in found if v))


def _dependency_names(doc: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for key in ("dependencies", "optionalDependencies"):
        deps = doc.get(key)
        if isinstance(deps, dict):
            names.extend(n for n in deps if isinstance(n, str))
    return names


def _load(content: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(content)
    except (ValueError, RecursionError):  # RecursionError: nesting deep enough to exhaust the stack
        return None
    return doc if isinstance(doc, dict) else None


class NpmCataloger(BytesCataloger):
    name = "npm"

    def wants(self, path: str) -> bool:
        if path.endswith("/" + _LOCK) or path == _LOCK:
            return f"/{_MODULES}/" not in f"/{path}"
        return path.endswith("/package.json") and _package_dir(path) is not None

    def catalog(self, files: Sequence[Found[bytes]], context: CatalogContext) -> list[Package]:
        installed: dict[str, Package] = {}
        manifests: dict[str, dict[str, Any]] = {}
        locks: list[Found[bytes]] = []
        for found in files:
            if found.path.rsplit("/", 1)[-1] == _LOCK:
                locks.append(found)
                continue
            directory = _package_dir(found.path)
            doc = _load(found.content)
            if directory is None or doc is None:
                context.warn(f"{found.path}: not a JSON object; skipped")
                continue
            name, version = doc.get("name"), doc.get("version")
            if not isinstance(name, str) or not name:
                # npm names the directory after the package; trust it when the manifest does not say.
                name = directory.split(f"{_MODULES}/")[-1]
            if not isinstance(version, str) or not version:
                context.warn(f"{found.path}: package.json without a version; skipped")
                continue
            installed[directory] = _package(name, version, found, _licenses(doc))
            manifests[directory] = doc
        _link(installed, manifests)
        packages = list(installed.values())
        for lock in locks:
            project = posixpath.dirname(lock.path)
            tree = posixpath.join(project, _MODULES) + "/"
            if any(d.startswith(tree) for d in installed):
                continue  # installed: the tree on disk has been catalogued and is the truth
            packages.extend(self._from_lock(lock, context))
        return packages

    def _from_lock(self, lock: Found[bytes], context: CatalogContext) -> list[Package]:
        doc = _load(lock.content)
        entries = doc.get("packages") if doc is not None else None
        if not isinstance(entries, dict):
            context.warn(f"{lock.path}: not a lockfile v2/v3 (no 'packages' map); skipped")
            return []
        by_key: dict[str, Package] = {}
        specs: dict[str, dict[str, Any]] = {}
        for key, spec in entries.items():
            if not isinstance(key, str) or f"{_MODULES}/" not in key or not isinstance(spec, dict):
                continue  # "" is the project itself
            if spec.get("link") or spec.get("dev") or spec.get("extraneous"):
                continue
            version = spec.get("version")
            if not isinstance(version, str) or not version:
                continue
            name = spec.get("name")
            if not isinstance(name, str) or not name:
                name = key.rsplit(f"{_MODULES}/", 1)[-1]
            by_key[key] = _package(name, version, lock, _licenses(spec))
            specs[key] = spec
        _link(by_key, specs)
        return list(by_key.values())


def _package(name: str, version: str, found: Found[bytes], license_values: tuple[str, ...]) -> Package:
    scope, bare = _split_name(name)
    return Package(
        purl=PackageURL(type="npm", namespace=scope, name=bare, version=version),
        name=bare,
        group=scope,
        version=version,
        layer=found.layer,
        path=found.path,
        licenses=license_values,
    )


def _resolve(packages: dict[str, Package], directory: str, name: str) -> Package | None:
    """Node's lookup: ``<dir>/node_modules/<name>``, then each ancestor's ``node_modules``."""
    current = directory
    while True:
        candidate = f"{current}/{_MODULES}/{name}" if current else f"{_MODULES}/{name}"
        if candidate in packages:
            return packages[candidate]
        if not current:
            return None
        current = posixpath.dirname(current)


def _link(packages: dict[str, Package], manifests: dict[str, dict[str, Any]]) -> None:
    """Each package's dependencies, resolved from its place in the tree as node's require() does."""
    for where, package in packages.items():
        deps: dict[int, Package] = {}
        for dep_name in _dependency_names(manifests[where]):
            target = _resolve(packages, where, dep_name)
            if target is not None and target is not package:
                deps[id(target)] = target
        package.depends_on = list(deps.values())
