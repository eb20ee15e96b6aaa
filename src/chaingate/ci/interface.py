"""The build context: what a CI system knows about the build that produced an image.

Provenance must describe the build, not the machine chaingate happens to run
on, so every CI adapter reduces its environment to one :class:`BuildContext`
and nothing downstream reads environment variables again. Adapters are pure
functions of an environment mapping (never ``os.environ`` directly), which
is what lets tests emulate GitHub Actions, Tekton and IBM Toolchain runs by
handing in a dict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from urllib.parse import urlsplit

from chaingate.provenance.context import BuildContext as BuildContext
from chaingate.provenance.context import BuildContextError as BuildContextError
from chaingate.timeutil import format_time as _format_time
from chaingate.timeutil import parse_time as _parse_time

#: The CI systems chaingate recognises, in detection order. IBM Toolchain runs
#: on Tekton, so it is tried before plain Tekton.
SYSTEMS = ("github-actions", "ibm-toolchain", "tekton")
#: Build times any pipeline may export (RFC 3339 or epoch seconds), e.g. from a first step's ``date``.
STARTED_ON_ENV = "CHAINGATE_BUILD_STARTED_ON"
FINISHED_ON_ENV = "CHAINGATE_BUILD_FINISHED_ON"

_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_GIT_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


Adapter = Callable[[Mapping[str, str]], BuildContext | None]


def _adapters() -> dict[str, Adapter]:
    from chaingate.ci import github, ibm_toolchain, tekton

    return {
        "github-actions": github.from_env,
        "ibm-toolchain": ibm_toolchain.from_env,
        "tekton": tekton.from_env,
    }


def detect(env: Mapping[str, str], system: str = "auto") -> BuildContext:
    """The build context of ``env``: the first CI that recognises it, or the one named by ``system``.

    ``system`` is ``auto``, ``none`` (flags only) or one of :data:`SYSTEMS`;
    naming a system whose environment is absent is an error rather than an
    empty provenance, because a step misconfigured that way would otherwise
    sign a statement that claims nothing.
    """
    return _with_env_times(_detect(env, system), env)


def _detect(env: Mapping[str, str], system: str) -> BuildContext:
    if system == "none":
        return BuildContext(system="none")
    adapters = _adapters()
    if system != "auto":
        adapter = adapters.get(system)
        if adapter is None:
            raise BuildContextError(
                f"--ci: unknown CI system {system!r}; expected auto, none or {', '.join(SYSTEMS)}"
            )
        found = adapter(env)
        if found is None:
            raise BuildContextError(f"--ci {system}: the environment is not a {system} run")
        return found
    for name in SYSTEMS:
        found = adapters[name](env)
        if found is not None:
            return found
    return BuildContext(system="none")


def _with_env_times(context: BuildContext, env: Mapping[str, str]) -> BuildContext:
    """Fill build times a pipeline exported itself (no CI exposes its run's start time to steps)."""
    started, finished = context.started_on, context.finished_on
    if started is None and optional(env, STARTED_ON_ENV):
        started = parse_time(env[STARTED_ON_ENV], f"${STARTED_ON_ENV}")
    if finished is None and optional(env, FINISHED_ON_ENV):
        finished = parse_time(env[FINISHED_ON_ENV], f"${FINISHED_ON_ENV}")
    return replace(context, started_on=started, finished_on=finished)


def require(env: Mapping[str, str], name: str, system: str) -> str:
    """An environment variable a CI adapter cannot do without, or an error naming it."""
    value = env.get(name, "").strip()
    if not value:
        raise BuildContextError(
            f"{system} detected but ${name} is not set",
            hint="set it in the step's environment, or pass --ci none and describe the build with flags",
        )
    return value


def optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def check_uri(value: str, what: str) -> str:
    """A URI (RFC 3986 scheme plus something after it), as TypeURI and ResourceURI fields must be."""
    parts = urlsplit(value)
    if not parts.scheme or not _URI_SCHEME.match(parts.scheme) or not (parts.netloc or parts.path):
        raise BuildContextError(f"{what}: {value!r} is not a URI (e.g. https://example.com/path)")
    if value != value.strip() or any(c.isspace() for c in value):
        raise BuildContextError(f"{what}: {value!r} contains white space")
    return value


def check_commit(value: str, what: str) -> str:
    """A git object name: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits, as the gitCommit digest needs."""
    normalised = value.strip().lower()
    if not _GIT_COMMIT.match(normalised):
        raise BuildContextError(f"{what}: {value!r} is not a full git commit hash (40 or 64 hex digits)")
    return normalised


def parse_time(value: str, what: str) -> datetime:
    """An RFC 3339 timestamp with a zone, or ``@EPOCH`` / bare epoch seconds, naming ``what`` when it is not.

    A time without a zone is refused: provenance timestamps feed the policy's
    ``maxAge`` and a guessed zone would shift them by hours.
    """
    try:
        return _parse_time(value, epoch=True)
    except ValueError as e:
        raise BuildContextError(f"{what}: {e}") from None


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with ``Z``, as in-toto's Timestamp field type requires; sub-second digits only when present."""
    return _format_time(moment, fraction=True)
