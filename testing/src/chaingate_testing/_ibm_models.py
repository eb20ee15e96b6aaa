"""Validation through the IBM SDK's own models, shared by every resource the IBM Cloud stand-in serves.

A hand-written shape is trusted by nobody: every body the fake sends or accepts
goes through these checks, so a field the real API cannot hold fails here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from ibm_platform_services import iam_policy_management_v1 as pm

__all__ = ["TIME", "ModelError", "validated", "validated_policy"]

#: The creation and modification time of every seeded document, so responses are reproducible.
TIME = "2026-01-01T00:00:00Z"


class ModelError(AssertionError):
    """The fake was about to send (or accept) a body the SDK's model says cannot exist."""


# -- validation through the SDK models ---------------------------------------------------------------


def _enum_name(attr: str) -> str:
    return "".join(part.capitalize() for part in attr.split("_")) + "Enum"


def _check_enums(obj: Any, where: str) -> None:
    """Every field that has an ``<Field>Enum`` in its model must hold one of its values."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            _check_enums(item, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_enums(v, f"{where}.{k}")
        return
    if not hasattr(obj, "to_dict") or not hasattr(obj, "__dict__"):
        return
    for attr, value in vars(obj).items():
        kind = getattr(type(obj), _enum_name(attr), None)
        if isinstance(kind, type) and issubclass(kind, enum.Enum) and value is not None:
            allowed = {str(m.value) for m in kind}
            if str(value) not in allowed:
                raise ModelError(f"{where}.{attr}: {value!r} is not one of {sorted(allowed)}")
        _check_enums(value, f"{where}.{attr}")


def _check_kept(sent: Any, kept: Any, where: str) -> None:
    """Every key of ``sent`` survived the model round trip (a dropped key is one the model does not know)."""
    if isinstance(sent, dict):
        if not isinstance(kept, dict):
            raise ModelError(f"{where}: the model does not take an object here")
        for k, v in sent.items():
            if k not in kept:
                raise ModelError(f"{where}.{k}: not a field of the model")
            _check_kept(v, kept[k], f"{where}.{k}")
    elif isinstance(sent, list):
        if not isinstance(kept, list) or len(kept) != len(sent):
            raise ModelError(f"{where}: the model does not keep this list")
        for i, (a, b) in enumerate(zip(sent, kept, strict=True)):
            _check_kept(a, b, f"{where}[{i}]")


def validated(model: Any, doc: Mapping[str, Any], *, where: str | None = None) -> dict[str, Any]:
    """``doc`` as the SDK model serialises it, after checking the model accepts all of it."""
    name = where or model.__name__
    try:
        obj = model.from_dict(dict(doc))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ModelError(f"{name}: {e}") from None
    out: dict[str, Any] = obj.to_dict()
    _check_kept(dict(doc), out, name)
    _check_enums(obj, name)
    return out


def validated_policy(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A v2 policy; its polymorphic ``control`` is checked against the concrete subclass the API sends."""
    out = validated(pm.V2PolicyTemplateMetaData, doc)
    validated(pm.ControlResponseControl, doc["control"], where="V2Policy.control")
    for part in ("subject", "resource"):
        if part in doc:
            validated(pm.V2PolicySubject if part == "subject" else pm.V2PolicyResource, doc[part],
                      where=f"V2Policy.{part}")  # fmt: skip
    return out
