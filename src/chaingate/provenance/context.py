"""The build context: the inputs of a SLSA v1 predicate, whoever gathered them.

It lives with provenance, which consumes it; the CI adapters in
``chaingate.ci`` produce it from an environment, and flags can override it,
so provenance never depends on the CI layer above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chaingate.errors import ChaingateError


class BuildContextError(ChaingateError):
    """The CI environment or the provenance flags describe a build that cannot be recorded."""


@dataclass(frozen=True)
class BuildContext:
    """Who built an image, from which source, and when: the inputs of a SLSA v1 predicate.

    ``external_parameters`` and ``internal_parameters`` are already shaped for
    the ``build_type`` they belong to; ``dependencies`` are resolved
    dependencies the CI knows about besides the source and the base images
    (e.g. a pipeline definition pinned by digest).
    """

    system: str
    build_type: str | None = None
    builder_id: str | None = None
    invocation_id: str | None = None
    #: The source repository as a URL (``https://github.com/org/app``), without ``git+``.
    source_uri: str | None = None
    source_ref: str | None = None
    #: Lowercase hex git commit (SHA-1 or SHA-256 object name).
    source_commit: str | None = None
    started_on: datetime | None = None
    finished_on: datetime | None = None
    external_parameters: Mapping[str, Any] = field(default_factory=dict, hash=False)
    internal_parameters: Mapping[str, Any] = field(default_factory=dict, hash=False)
    dependencies: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
