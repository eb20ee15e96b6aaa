"""SLSA Provenance v1 (https://slsa.dev/spec/v1.0/provenance) from a :class:`BuildContext`.

The predicate is assembled as plain JSON in the shape of the spec's schema:
``buildDefinition`` {buildType, externalParameters, internalParameters,
resolvedDependencies} and ``runDetails`` {builder, metadata}. Empty optional
members are left out rather than written empty, as the spec treats unset and
empty alike and smaller statements are easier to review.

Resolved dependencies, in this order:

1. the source: ``git+<source uri>[@<ref>]`` with ``{"gitCommit": <sha>}``;
2. what the CI adds (e.g. Tekton's pipeline definition, named ``pipeline``);
3. base images: ``{"name": <as named>, "uri": "oci://<registry>/<repo>",
   "digest": {"sha256": <hex>}, "annotations": {"chaingate.dev/role": "base-image"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import chaingate
from chaingate.predicate_types import SLSA_PROVENANCE_V1
from chaingate.provenance.context import BuildContext, BuildContextError
from chaingate.provenance.statement import statement, subject
from chaingate.timeutil import format_time

BASE_IMAGE_ROLE = {"chaingate.dev/role": "base-image"}


@dataclass(frozen=True)
class BaseImage:
    """A base image pinned by digest, and where chaingate learnt of it (``label``, ``annotation`` or ``flag``)."""

    #: The name as given (``docker.io/library/debian:12``), or None when only a digest is known.
    name: str | None
    #: ``oci://REGISTRY/REPO`` when the name parses as a registry reference.
    uri: str | None
    digest: str
    source: str

    def descriptor(self) -> dict[str, Any]:
        algorithm, _, hexpart = self.digest.partition(":")
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self.uri:
            out["uri"] = self.uri
        out["digest"] = {algorithm: hexpart}
        out["annotations"] = dict(BASE_IMAGE_ROLE)
        return out


def source_dependency(context: BuildContext) -> dict[str, Any] | None:
    """The source repository at its commit, as a resolved dependency; None when the commit is unknown."""
    if not context.source_uri or not context.source_commit:
        return None
    uri = context.source_uri if context.source_uri.startswith("git+") else f"git+{context.source_uri}"
    if context.source_ref:
        uri += f"@{context.source_ref}"
    return {"uri": uri, "digest": {"gitCommit": context.source_commit}}


def check_context(context: BuildContext) -> None:
    """Refuse a context that cannot make a SLSA predicate, before anything is read from a registry."""
    if not context.build_type:
        raise BuildContextError(
            "no build type: no CI detected and --build-type not given",
            hint="run inside GitHub Actions, Tekton or IBM Toolchain, or pass --build-type and --builder-id",
        )
    if not context.builder_id:
        raise BuildContextError(
            "no builder id: no CI detected and --builder-id not given",
            hint="pass --builder-id URI naming the build platform",
        )
    if context.source_uri and not context.source_commit:
        raise BuildContextError(
            f"source {context.source_uri} has no commit; pass --source-commit SHA",
            hint="provenance names a source only pinned to a commit",
        )


def predicate(
    context: BuildContext,
    base_images: Sequence[BaseImage] = (),
    *,
    generated_at: datetime,
) -> dict[str, Any]:
    """The SLSA v1 predicate; ``generated_at`` stands in for unknown build times (see below).

    No CI tells a step when its run started, and the build is over by the
    time provenance is written, so an unknown ``finishedOn`` is the generation
    time (the build had finished by then) and an unknown ``startedOn`` too (the
    build had started by then). Both bounds are safe for the policy's
    ``maxAge``, which takes the earlier of this claim and the signing time.
    """
    check_context(context)
    dependencies: list[Mapping[str, Any]] = []
    source = source_dependency(context)
    if source is not None:
        dependencies.append(source)
    dependencies.extend(context.dependencies)
    seen: set[tuple[str | None, str]] = set()
    for base in base_images:
        key = (base.uri, base.digest)
        if key not in seen:
            seen.add(key)
            dependencies.append(base.descriptor())

    build_definition: dict[str, Any] = {
        "buildType": context.build_type,
        "externalParameters": dict(context.external_parameters),
    }
    if context.internal_parameters:
        build_definition["internalParameters"] = dict(context.internal_parameters)
    if dependencies:
        build_definition["resolvedDependencies"] = [dict(d) for d in dependencies]

    finished = context.finished_on or generated_at
    started = context.started_on or min(generated_at, finished)
    if started > finished:
        raise BuildContextError(
            f"startedOn {format_time(started, fraction=True)} is after finishedOn {format_time(finished, fraction=True)}",
            hint="check --started-on / --finished-on and the CI's build times",
        )
    metadata: dict[str, Any] = {}
    if context.invocation_id:
        metadata["invocationId"] = context.invocation_id
    metadata["startedOn"] = format_time(started, fraction=True)
    metadata["finishedOn"] = format_time(finished, fraction=True)
    return {
        "buildDefinition": build_definition,
        "runDetails": {
            "builder": {
                "id": context.builder_id,
                # What wrote the provenance: it may affect it, but it did not run the build.
                "builderDependencies": [
                    {"name": "chaingate", "uri": f"pkg:pypi/chaingate@{chaingate.__version__}"}
                ],
            },
            "metadata": metadata,
        },
    }


def provenance_statement(
    name: str,
    digest: str,
    context: BuildContext,
    base_images: Sequence[BaseImage] = (),
    *,
    generated_at: datetime,
) -> dict[str, Any]:
    """An in-toto Statement v1 about the image ``name`` at manifest ``digest`` with a SLSA v1 predicate."""
    return statement(
        [subject(name, digest)],
        SLSA_PROVENANCE_V1,
        predicate(context, base_images, generated_at=generated_at),
    )
