"""Bindings manifests: names and keys only, drift against what Code Engine runs, applied in the deploy's update."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaingate.deploy.bindings import audit_bindings, load_bindings
from chaingate.deploy.codeengine import DeployOptions, deploy
from chaingate.deploy.interface import DeployError, Target
from support.cloud import IMAGE, OTHER_DIGEST, REPOSITORY, Cloud

MANIFEST = """\
version: 1
env:
  - {name: DB_PASSWORD, secret: db-credentials, key: password}
  - {name: LOG_LEVEL, configMap: app-config, key: log-level}
  - {secret: api-keys, prefix: API_}
volumes:
  - {mountPath: /etc/tls, secret: tls-cert}
"""
RUNNING_ENV = [
    {"type": "literal", "name": "MODE", "value": "production"},
    {"type": "secret_key_reference", "name": "DB_PASSWORD", "reference": "db-credentials", "key": "password"},
    {"type": "config_map_key_reference", "name": "LOG_LEVEL", "reference": "app-config", "key": "log-level"},
    {"type": "secret_full_reference", "reference": "api-keys", "prefix": "API_"},
]
RUNNING_VOLUMES = [
    {"type": "secret", "reference": "tls-cert", "mount_path": "/etc/tls"},
    {"type": "persistent_data_store", "reference": "uploads", "mount_path": "/data"},
]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "bindings.yaml"
    path.write_text(MANIFEST)
    return path


@pytest.fixture
def objects(cloud: Cloud) -> Cloud:
    """The secrets and config maps the manifest names, with values the audit must never surface."""
    cloud.fake.add_secret(cloud.project_id, "db-credentials", {"password": "hunter2-s3cret", "user": "shop"})
    cloud.fake.add_secret(cloud.project_id, "api-keys", {"STRIPE": "sk_live_value"})
    cloud.fake.add_secret(
        cloud.project_id, "tls-cert", {"tls.crt": "PEM", "tls.key": "KEY"}, format="generic"
    )
    cloud.fake.add_config_map(cloud.project_id, "app-config", {"log-level": "info"})
    return cloud


def _app(cloud: Cloud) -> Target:
    return Target(cloud.project_id, "app", "web")


def test_no_drift_when_code_engine_runs_the_manifest(objects: Cloud, manifest: Path) -> None:
    objects.fake.add_app(
        objects.project_id, "web", IMAGE, run_env_variables=RUNNING_ENV, run_volume_mounts=RUNNING_VOLUMES
    )
    report = audit_bindings(objects.code_engine(), _app(objects), load_bindings(manifest))
    assert report.clean, report.drift
    assert "hunter2" not in str(report.to_dict()) and "sk_live" not in str(report.to_dict())


def test_added_removed_changed_and_dangling_are_reported(objects: Cloud, manifest: Path) -> None:
    env = [
        RUNNING_ENV[0],
        {"type": "secret_key_reference", "name": "DB_PASSWORD", "reference": "db-admin", "key": "password"},
        RUNNING_ENV[3],
        {"type": "secret_full_reference", "reference": "cloud-apikey"},
    ]
    objects.fake.add_app(objects.project_id, "web", IMAGE, run_env_variables=env, run_volume_mounts=[])
    report = audit_bindings(objects.code_engine(), _app(objects), load_bindings(manifest))
    got = {(d.change, d.identity) for d in report.drift}
    assert got == {
        ("changed", "env DB_PASSWORD"),
        ("removed", "env LOG_LEVEL"),
        ("added", "env secret cloud-apikey prefix="),
        ("removed", "volume /etc/tls"),
        ("dangling", "secret db-admin"),
        ("dangling", "secret cloud-apikey"),
    }
    changed = next(d for d in report.drift if d.change == "changed")
    assert changed.expected == "DB_PASSWORD <- secret db-credentials key password"
    assert changed.actual == "DB_PASSWORD <- secret db-admin key password"


def test_a_missing_key_is_dangling(cloud: Cloud, manifest: Path) -> None:
    cloud.fake.add_secret(cloud.project_id, "db-credentials", {"pass": "x"})
    cloud.fake.add_app(cloud.project_id, "web", IMAGE)
    drift = audit_bindings(cloud.code_engine(), _app(cloud), load_bindings(manifest)).drift
    assert ("dangling", "secret db-credentials key password") in {(d.change, d.identity) for d in drift}


def test_deploy_applies_the_manifest_in_the_same_update_and_keeps_literals(
    objects: Cloud, manifest: Path
) -> None:
    objects.fake.add_app(
        objects.project_id,
        "web",
        f"{REPOSITORY}@{OTHER_DIGEST}",
        run_env_variables=[RUNNING_ENV[0], {"type": "secret_full_reference", "reference": "cloud-apikey"}],
        run_volume_mounts=[RUNNING_VOLUMES[1]],
    )
    result = deploy(
        objects.code_engine(), _app(objects), IMAGE, DeployOptions(bindings=load_bindings(manifest))
    )
    assert result.bindings_applied and result.revision == "web-00002"
    (patch,) = objects.fake.writes
    assert patch.body["image_reference"] == IMAGE
    assert patch.body["run_env_variables"][0] == {"type": "literal", "name": "MODE", "value": "production"}
    assert {"type": "secret_full_reference", "reference": "api-keys", "prefix": "API_"} in patch.body[
        "run_env_variables"
    ]
    assert all(e.get("reference") != "cloud-apikey" for e in patch.body["run_env_variables"])
    assert [m["mount_path"] for m in patch.body["run_volume_mounts"]] == ["/data", "/etc/tls"]
    report = audit_bindings(objects.code_engine(), _app(objects), load_bindings(manifest))
    assert report.clean, report.drift


def test_deploy_refuses_a_manifest_naming_a_missing_secret_before_writing(
    cloud: Cloud, manifest: Path
) -> None:
    cloud.fake.add_app(cloud.project_id, "web", f"{REPOSITORY}@{OTHER_DIGEST}")
    with pytest.raises(DeployError, match=r"bindings.yaml: no secret db-credentials in the project"):
        deploy(cloud.code_engine(), _app(cloud), IMAGE, DeployOptions(bindings=load_bindings(manifest)))
    assert cloud.fake.writes == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\nenv: [{name: A, secret: s, key: k, value: hunter2}]\n",
            r"env\[0\]\.value: .*never values",
        ),
        ("version: 1\nenv: [{name: A, secrt: s, key: k}]\n", r"env\[0\]\.secrt: unknown key"),
        ("version: 1\nenv: [{name: A, key: k}]\n", r"env\[0\]: name exactly one of secret or configMap"),
        ("version: 1\nenv: [{secret: s, key: k}]\n", r"env\[0\]\.name: required with key"),
        ("version: 1\nenv: [{secret: Bad_Name}]\n", r"env\[0\]\.secret: 'Bad_Name' is not a valid secret"),
        (
            "version: 1\nvolumes: [{mountPath: relative, secret: s}]\n",
            r"volumes\[0\]\.mountPath: must be an absolute path",
        ),
        ("version: 2\n", r"version: must be 1"),
        ("version: 1\nsecrets: []\n", r"secrets: unknown key"),
        (
            "version: 1\nenv: [{name: A, secret: s, key: k}, {name: A, configMap: c, key: k}]\n",
            r"env: env A is declared twice",
        ),
    ],
)
def test_manifest_errors_are_one_line_and_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bindings.yaml"
    path.write_text(text)
    with pytest.raises(DeployError, match=message) as exc:
        load_bindings(path)
    assert str(exc.value).startswith(str(path)) and "\n" not in str(exc.value)
    assert "hunter2" not in str(exc.value)
