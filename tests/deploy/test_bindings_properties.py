"""Hostile bindings manifests: a manifest or one DeployError naming the file and field, never a traceback."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given

from chaingate.deploy.bindings import load_bindings
from chaingate.deploy.interface import DeployError
from support.strategies import deep_json, deep_yaml, mutated, outcome, yaml_values

BASE: dict[str, Any] = {
    "version": 1,
    "env": [
        {"name": "DB_PASSWORD", "secret": "db", "key": "password"},
        {"secret": "api-keys", "prefix": "API_"},
    ],
    "volumes": [
        {"mountPath": "/etc/tls", "secret": "tls-cert"},
        {"mountPath": "/etc/app", "configMap": "app"},
    ],
}


def _load(text: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bindings{suffix}"
        path.write_bytes(text)
        _, error = outcome(lambda: load_bindings(path), DeployError)
        assert error is None or (str(error).startswith(str(path)) and "\n" not in str(error))


@given(yaml_values | mutated(BASE, yaml_values))
def test_any_yaml_manifest(doc: Any) -> None:
    _load(yaml.safe_dump(doc, sort_keys=False).encode(), ".yaml")


@given(deep_yaml())
def test_deep_yaml(text: str) -> None:
    _load(text.encode(), ".yaml")


@given(mutated(BASE).map(lambda d: json.dumps(d).encode()) | deep_json())
def test_any_json_manifest(raw: bytes) -> None:
    _load(raw, ".json")


@pytest.mark.parametrize(
    ("suffix", "text", "problem"),
    [
        (".yaml", "[" * 100_000, r"bindings\.yaml:1: nested deeper than 32 levels; not a bindings manifest"),
        (".json", "[" * 100_000, r"not valid JSON: nested deeper than 128 levels"),
        (".yaml", "version: 1\n1: x\nb: y\n", "1: unknown key"),
        (
            ".yaml",
            "version: 1\nenv: [{secret: 0x" + "f" * 5000 + "}]\n",
            r"env\[0\]\.secret: a int is not a valid secret",
        ),
    ],
    ids=["deep-yaml", "deep-json", "mixed-key-types", "hex-int-name"],
)
def test_the_attacks_that_gave_tracebacks(tmp_path: Path, suffix: str, text: str, problem: str) -> None:
    path = tmp_path / f"bindings{suffix}"
    path.write_text(text)
    with pytest.raises(DeployError, match=problem):
        load_bindings(path)
