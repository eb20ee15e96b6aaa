"""The fake is only trusted because the SDK's own models check every body it sends or accepts."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from ibm_code_engine_sdk.code_engine_v2 import App, AppRevision
from ibm_platform_services.iam_policy_management_v1 import V2PolicyCollection

from chaingate_testing.codeengine import FakeIBMCloud, ModelError, validated, validated_policy
from support.cloud import IMAGE, Cloud


def _app(**changes: Any) -> dict[str, Any]:
    fake = FakeIBMCloud()
    doc = fake._app_doc("p-1", "web", {"image_reference": IMAGE})
    doc.update(changes)
    return doc


def test_a_valid_document_round_trips_unchanged() -> None:
    doc = _app()
    assert validated(App, doc) == doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_app(image_refrence="typo"), r"App\.image_refrence: not a field of the model"),
        (_app(status="running"), r"App\.status: 'running' is not one of \['deploying', 'failed', 'ready', 'warning'\]"),
        ({k: v for k, v in _app().items() if k != "entity_tag"}, r"Required property 'entity_tag' not present"),
        (_app(run_env_variables=[{"type": "secret_ref", "reference": "s"}]), r"run_env_variables\[0\]\.type"),
        (_app(run_volume_mounts=[{"type": "secret", "reference": "s", "mount_path": "/x", "name": "n"}]),
         r"run_volume_mounts\[0\]\.name: not a field"),
    ],
)  # fmt: skip
def test_shape_mistakes_are_caught(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        validated(App, doc)


def test_nested_enums_and_polymorphic_policy_parts_are_checked() -> None:
    with pytest.raises(ModelError, match=r"status_details\.reason: 'pulling' is not one of"):
        validated(AppRevision, {"image_reference": IMAGE, "computed_env_variables": [], "run_arguments": [],
                                "run_commands": [], "run_env_variables": [], "run_service_account": "default",
                                "run_volume_mounts": [], "scale_cpu_limit": "1", "scale_ephemeral_storage_limit": "1G",
                                "scale_max_instances": 1, "scale_memory_limit": "1G", "scale_min_instances": 0,
                                "scale_request_timeout": 300, "status_details": {"reason": "pulling"}})  # fmt: skip
    with pytest.raises(ModelError, match=r"Required property 'control' not present"):
        validated(V2PolicyCollection, {"policies": [{"type": "access", "state": "active"}]})
    with pytest.raises(ModelError, match=r"V2Policy\.control\.grants: not a field"):
        validated_policy(
            {"type": "access", "state": "active", "control": {"grant": {"roles": []}, "grants": {}}}
        )


def test_requests_are_checked_too_and_unknown_fields_are_refused(cloud: Cloud) -> None:
    cloud.fake.add_app(cloud.project_id, "web", IMAGE)
    ce = cloud.code_engine()
    token = ce.authenticator.token_manager.get_token()
    url = f"{cloud.fake.code_engine_url}/projects/{cloud.project_id}/apps/web?version=2025-03-29"
    reply = requests.patch(
        url,
        json={"image_reference": IMAGE, "scale_max_instance": 3},
        headers={
            "Authorization": f"Bearer {token}",
            "If-Match": "1",
            "Content-Type": "application/merge-patch+json",
        },
        timeout=5,
    )
    assert reply.status_code == 400 and "scale_max_instance: not a field" in reply.text
    assert requests.get(url, timeout=5).status_code == 401  # no token, no answer
    assert cloud.fake.requests[-1].headers.get("Authorization") is None
