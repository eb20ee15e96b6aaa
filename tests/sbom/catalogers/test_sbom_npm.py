"""npm: node_modules trees resolved as Node does, scoped names, and lock files with no tree installed."""

from __future__ import annotations

import json
from typing import Any

from chaingate.sbom.catalogers.base import CatalogContext, Found
from chaingate.sbom.catalogers.npm import NpmCataloger
from chaingate_testing.images import File, Whiteout

LAYER = "sha256:" + "55" * 32


def manifest(name: str, version: str, **extra: Any) -> bytes:
    return json.dumps({"name": name, "version": version, **extra}).encode()


def catalog(*files: Found[bytes], notes: list[str] | None = None) -> list[Any]:
    context = CatalogContext(None, (notes if notes is not None else []).append)
    return NpmCataloger().catalog(list(files), context)


def test_wants_package_roots_and_project_lock_files_only() -> None:
    wants = NpmCataloger().wants
    assert wants("app/node_modules/express/package.json")
    assert wants("app/node_modules/@types/node/package.json")
    assert wants("app/node_modules/a/node_modules/b/package.json")
    assert wants("app/package-lock.json")
    assert wants("package-lock.json")
    assert not wants("app/package.json")
    assert not wants("app/node_modules/express/lib/package.json")
    assert not wants("app/node_modules/@types/package.json")
    assert not wants("app/node_modules/express/package-lock.json")


def test_tree_with_nested_versions_and_scopes() -> None:
    root = "app/node_modules"
    packages = catalog(
        Found(
            f"{root}/express/package.json",
            LAYER,
            manifest("express", "4.18.2", license="MIT", dependencies={"debug": "2.6.9", "@types/node": "*"}),
        ),
        Found(f"{root}/debug/package.json", LAYER, manifest("debug", "4.3.4", dependencies={"ms": "2.1.2"})),
        Found(
            f"{root}/express/node_modules/debug/package.json",
            LAYER,
            manifest("debug", "2.6.9", dependencies={"ms": "2.0.0"}),
        ),
        Found(f"{root}/express/node_modules/ms/package.json", LAYER, manifest("ms", "2.0.0")),
        Found(f"{root}/ms/package.json", LAYER, manifest("ms", "2.1.2", license={"type": "MIT"})),
        Found(
            f"{root}/@types/node/package.json",
            LAYER,
            manifest("@types/node", "20.11.5", licenses=[{"type": "MIT"}]),
        ),
    )
    by_path = {p.path: p for p in packages}
    express = by_path[f"{root}/express/package.json"]
    nested_debug = by_path[f"{root}/express/node_modules/debug/package.json"]
    types = by_path[f"{root}/@types/node/package.json"]
    assert types.purl.to_string() == "pkg:npm/%40types/node@20.11.5"
    assert (types.group, types.name, types.licenses) == ("@types", "node", ("MIT",))
    # express finds its own nested debug 2.6.9 first; that debug finds express's nested ms 2.0.0.
    assert [(p.name, p.version) for p in express.depends_on] == [("debug", "2.6.9"), ("node", "20.11.5")]
    assert [(p.name, p.version) for p in nested_debug.depends_on] == [("ms", "2.0.0")]
    assert by_path[f"{root}/ms/package.json"].licenses == ("MIT",)


def test_lock_file_is_used_only_without_an_installed_tree() -> None:
    lock = json.dumps(
        {
            "name": "svc",
            "lockfileVersion": 3,
            "packages": {
                "": {"name": "svc", "version": "1.0.0", "dependencies": {"left-pad": "^1.3.0"}},
                "node_modules/left-pad": {"version": "1.3.0", "license": "WTFPL"},
                "node_modules/@scope/util": {"version": "0.2.0", "dependencies": {"left-pad": "1"}},
                "node_modules/jest": {"version": "29.7.0", "dev": True},
                "node_modules/local": {"resolved": "../local", "link": True},
            },
        }
    ).encode()
    packages = catalog(Found("srv/package-lock.json", LAYER, lock))
    assert sorted(p.purl.to_string() for p in packages) == [
        "pkg:npm/%40scope/util@0.2.0",
        "pkg:npm/left-pad@1.3.0",
    ]
    util = next(p for p in packages if p.name == "util")
    assert [p.name for p in util.depends_on] == ["left-pad"]
    assert all(p.path == "srv/package-lock.json" for p in packages)

    installed = catalog(
        Found("srv/package-lock.json", LAYER, lock),
        Found("srv/node_modules/left-pad/package.json", LAYER, manifest("left-pad", "1.3.0")),
    )
    assert [p.path for p in installed] == ["srv/node_modules/left-pad/package.json"]


def test_lockfile_v1_and_broken_manifests_are_warned_about() -> None:
    notes: list[str] = []
    packages = catalog(
        Found("a/package-lock.json", LAYER, b'{"lockfileVersion": 1, "dependencies": {}}'),
        Found("b/node_modules/x/package.json", LAYER, b"{not json"),
        Found("b/node_modules/y/package.json", LAYER, b'{"name": "y"}'),
        notes=notes,
    )
    assert packages == []
    assert len(notes) == 3


def test_end_to_end_with_a_whited_out_module(layer: Any, sbom: Any) -> None:
    base = layer(
        File("app/node_modules/ms/package.json", manifest("ms", "2.1.3")),
        File("app/node_modules/left-pad/package.json", manifest("left-pad", "1.3.0")),
    )
    prune = layer(Whiteout("app/node_modules/left-pad"))
    doc = sbom(base, prune)
    assert [c["purl"] for c in doc["components"]] == ["pkg:npm/ms@2.1.3"]
