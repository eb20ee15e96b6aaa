"""Python: dist-info and egg-info metadata, PEP 503 names, licenses from the three places they hide."""

from __future__ import annotations

from typing import Any

from chaingate.sbom.catalogers.base import CatalogContext, Found
from chaingate.sbom.catalogers.python import PythonCataloger, canonical_name
from chaingate_testing.images import File

LAYER = "sha256:" + "44" * 32
SITE = "usr/local/lib/python3.12/site-packages"

REQUESTS = b"""\
Metadata-Version: 2.1
Name: requests
Version: 2.31.0
License: Apache 2.0
Classifier: License :: OSI Approved :: Apache Software License
Requires-Dist: charset-normalizer (<4,>=2)
Requires-Dist: urllib3 (<3,>=1.21.1)
Requires-Dist: PySocks (!=1.5.7,>=1.5.6) ; extra == 'socks'
Requires-Dist: certifi>=2017.4.17

Requests is an HTTP library.
"""

URLLIB3 = b"""\
Metadata-Version: 2.4
Name: urllib3
Version: 2.2.1
License-Expression: MIT
"""

CHARSET = b"""\
Metadata-Version: 2.1
Name: Charset_Normalizer
Version: 3.3.2
License: MIT License

        Copyright (c) 2019 TAHRI Ahmed R.
"""

TYPING = b"""\
Metadata-Version: 2.1
Name: typing_extensions
Version: 4.9.0
Classifier: License :: OSI Approved :: Python Software Foundation License
Classifier: License :: OSI Approved :: BSD License
"""

LONG_LICENSE = b"""\
Metadata-Version: 2.1
Name: oddball
Version: 0.1
License: Permission is hereby granted, free of charge, to any person obtaining
        a copy of this software and associated documentation files (the "Software")
"""


def catalog(*files: Found[bytes], notes: list[str] | None = None) -> dict[str, Any]:
    context = CatalogContext(None, (notes if notes is not None else []).append)
    return {p.name: p for p in PythonCataloger().catalog(list(files), context)}


def test_pep_503_names() -> None:
    assert canonical_name("Foo_Bar.baz") == "foo-bar-baz"
    assert canonical_name("zope.interface") == "zope-interface"


def test_wants_metadata_anywhere() -> None:
    wants = PythonCataloger().wants
    assert wants(f"{SITE}/requests-2.31.0.dist-info/METADATA")
    assert wants("app/.venv/lib/python3.12/site-packages/x-1.dist-info/METADATA")
    assert wants("usr/lib/python3/dist-packages/foo.egg-info/PKG-INFO")
    assert wants("usr/lib/python3/dist-packages/distro_info-1.0.egg-info")
    assert not wants(f"{SITE}/requests-2.31.0.dist-info/RECORD")


def test_packages_names_licenses_and_requirements() -> None:
    packages = catalog(
        Found(f"{SITE}/requests-2.31.0.dist-info/METADATA", LAYER, REQUESTS),
        Found(f"{SITE}/urllib3-2.2.1.dist-info/METADATA", LAYER, URLLIB3),
        Found(f"{SITE}/charset_normalizer-3.3.2.dist-info/METADATA", LAYER, CHARSET),
        Found(f"{SITE}/typing_extensions-4.9.0.dist-info/METADATA", LAYER, TYPING),
        Found(f"{SITE}/oddball-0.1.dist-info/METADATA", LAYER, LONG_LICENSE),
        # The same urllib3 in another environment is another installation: never a dependency target here.
        Found(
            "opt/venv/lib/python3.12/site-packages/certifi-2024.2.2.dist-info/METADATA",
            LAYER,
            b"Name: certifi\nVersion: 2024.2.2\n",
        ),
    )
    assert packages["charset-normalizer"].purl.to_string() == "pkg:pypi/charset-normalizer@3.3.2"
    assert packages["requests"].licenses == ("Apache-2.0",)
    assert packages["urllib3"].licenses == ("MIT",)
    assert packages["charset-normalizer"].licenses == ("MIT",)
    assert packages["typing-extensions"].licenses == ("PSF-2.0", "BSD License")
    assert packages["oddball"].licenses == ()  # a pasted license text names nothing
    assert sorted(p.name for p in packages["requests"].depends_on) == ["charset-normalizer", "urllib3"]
    assert packages["urllib3"].depends_on == []


def test_license_expression_wins_over_classifiers() -> None:
    metadata = b"Name: dual\nVersion: 1\nLicense-Expression: MIT OR Apache-2.0\nClassifier: License :: OSI Approved :: MIT License\n"
    assert catalog(Found(f"{SITE}/dual-1.dist-info/METADATA", LAYER, metadata))["dual"].licenses == (
        "MIT OR Apache-2.0",
    )


def test_egg_info_file_and_directory() -> None:
    packages = catalog(
        Found(
            "usr/lib/python3/dist-packages/distro_info-1.5.egg-info",
            LAYER,
            b"Name: distro-info\nVersion: 1.5\nLicense: ISC\n",
        ),
        Found(
            "app/src/mytool.egg-info/PKG-INFO",
            LAYER,
            b"Metadata-Version: 2.1\nName: mytool\nVersion: 0.3.dev0\n",
        ),
    )
    assert packages["distro-info"].licenses == ("ISC",)
    assert packages["distro-info"].depends_on is None  # egg-info keeps requirements elsewhere
    assert packages["mytool"].version == "0.3.dev0"


def test_metadata_without_name_is_warned_about() -> None:
    notes: list[str] = []
    assert catalog(Found(f"{SITE}/x.dist-info/METADATA", LAYER, b"Version: 1\n"), notes=notes) == {}
    assert notes == [f"{SITE}/x.dist-info/METADATA: Python metadata without Name and Version; skipped"]


def test_end_to_end(layer: Any, sbom: Any) -> None:
    doc = sbom(
        layer(
            File(f"{SITE}/requests-2.31.0.dist-info/METADATA", REQUESTS),
            File(f"{SITE}/urllib3-2.2.1.dist-info/METADATA", URLLIB3),
        )
    )
    assert [c["purl"] for c in doc["components"]] == ["pkg:pypi/requests@2.31.0", "pkg:pypi/urllib3@2.2.1"]
    assert doc["components"][0]["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    assert {"ref": "pkg:pypi/requests@2.31.0", "dependsOn": ["pkg:pypi/urllib3@2.2.1"]} in doc["dependencies"]
