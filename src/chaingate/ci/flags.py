"""Provenance fields given explicitly (``chaingate provenance --source-uri …``): they win over the CI.

Every field a CI adapter fills can also come from a flag, so a pipeline
chaingate does not know, or a local build, can still describe itself; and a
known CI can be corrected where its environment cannot say something (a
reusable GitHub workflow's builder id, a Tekton run's start time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from chaingate.ci.interface import BuildContext, BuildContextError, check_commit, check_uri, parse_time


@dataclass(frozen=True)
class BuildOverrides:
    """Flag values as given; None means "not given", so the CI's value stands."""

    build_type: str | None = None
    builder_id: str | None = None
    invocation_id: str | None = None
    source_uri: str | None = None
    source_ref: str | None = None
    source_commit: str | None = None
    started_on: str | None = None
    finished_on: str | None = None
    #: ``KEY=VALUE`` strings merged into the top level of the parameters.
    external_parameters: Sequence[str] = field(default=(), hash=False)
    internal_parameters: Sequence[str] = field(default=(), hash=False)


def _pairs(items: Sequence[str], flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BuildContextError(f"{flag}: {item!r} is not KEY=VALUE")
        out[key.strip()] = value
    return out


def _time(value: str | None, flag: str, current: datetime | None) -> datetime | None:
    return parse_time(value, flag) if value is not None else current


def apply(context: BuildContext, overrides: BuildOverrides) -> BuildContext:
    """``context`` with every given flag applied and checked (URIs, commit, times)."""
    o = overrides
    external: Mapping[str, Any] = context.external_parameters
    if o.external_parameters:
        external = {**external, **_pairs(o.external_parameters, "--external-parameter")}
    internal: Mapping[str, Any] = context.internal_parameters
    if o.internal_parameters:
        internal = {**internal, **_pairs(o.internal_parameters, "--internal-parameter")}
    return replace(
        context,
        build_type=check_uri(o.build_type, "--build-type")
        if o.build_type is not None
        else context.build_type,
        builder_id=check_uri(o.builder_id, "--builder-id")
        if o.builder_id is not None
        else context.builder_id,
        invocation_id=o.invocation_id if o.invocation_id is not None else context.invocation_id,
        source_uri=check_uri(o.source_uri, "--source-uri")
        if o.source_uri is not None
        else context.source_uri,
        source_ref=o.source_ref if o.source_ref is not None else context.source_ref,
        source_commit=(
            check_commit(o.source_commit, "--source-commit")
            if o.source_commit is not None
            else context.source_commit
        ),
        started_on=_time(o.started_on, "--started-on", context.started_on),
        finished_on=_time(o.finished_on, "--finished-on", context.finished_on),
        external_parameters=external,
        internal_parameters=internal,
    )
