"""Registry settings and the per-host clients of one command, without the HTTP stack until a registry is used.

Commands that only touch OCI layouts and docker archives (the SBOM of a local
build, a copy into an archive) never talk to a registry, and importing
requests and urllib3 was a third of their start-up: :class:`Registries`
imports the client module only when the first registry host is asked for.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import chaingate
from chaingate.errors import ChaingateError
from chaingate.oci.credentials import CredentialStore
from chaingate.oci.errors import RegistryUnavailable

if TYPE_CHECKING:
    from chaingate.oci.client import RegistryClient


class DeadlinePassed(RegistryUnavailable):
    """The command's whole deadline passed: no further request may start, no further byte may be read."""


@dataclass(frozen=True)
class Deadline:
    """One point on the monotonic clock past which a whole command (a ``verify``) stops reading.

    A socket read timeout bounds one ``recv``, so a registry that answers a byte
    every few seconds never trips it; only a deadline for the whole command,
    checked between requests and between the chunks of every body, bounds
    what a registry can make the gate wait.
    """

    at: float
    #: The budget as given, for messages ("deadline of 300 s").
    seconds: float
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    @classmethod
    def after(
        cls, seconds: float, *, name: str = "timeout", clock: Callable[[], float] = time.monotonic
    ) -> Deadline:
        """``seconds`` from now; ``name`` is what the user called it, for the message when it is not usable."""
        if not math.isfinite(seconds) or seconds <= 0:
            raise ChaingateError(f"{name}: {seconds} is not a number of seconds above 0")
        return cls(clock() + seconds, seconds, clock)

    def left(self) -> float:
        return self.at - self.clock()

    def passed(self) -> bool:
        return self.left() <= 0

    def check(self, doing: str) -> None:
        """Raise :class:`DeadlinePassed` naming what was being done when the deadline has passed."""
        if self.passed():
            raise self.error(doing)

    def error(self, doing: str) -> DeadlinePassed:
        return DeadlinePassed(
            f"deadline of {self.seconds:g} s passed while {doing}",
            hint="a registry too slow to answer within --timeout denies; raise --timeout if it is only slow",
        )

    def clamp(self, timeout: float, doing: str) -> float:
        """``timeout`` shortened to the time left (raises once none is left), for one socket operation.

        A hair is added so a socket timeout that fires at the deadline finds it passed.
        """
        left = self.left()
        if left <= 0:
            raise self.error(doing)
        return min(timeout, left + 0.01)


@dataclass(frozen=True)
class RegistryOptions:
    """How chaingate talks to registries; one instance serves a whole command."""

    insecure_registries: frozenset[str] = frozenset()
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 6
    #: Total time one request may spend waiting between retries.
    retry_budget: float = 60.0
    backoff_base: float = 0.5
    max_backoff: float = 20.0
    #: Blobs up to this size are uploaded in one request; larger ones in chunks.
    monolithic_limit: int = 64 * 1024 * 1024
    chunk_size: int = 16 * 1024 * 1024
    user_agent: str = f"chaingate/{chaingate.__version__}"
    credentials: CredentialStore | None = field(default=None, compare=False)
    #: Injected in tests so retry waits cost no wall time.
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    #: When set, the whole command's deadline: every request, retry wait and body read ends by it.
    deadline: Deadline | None = field(default=None, compare=False)


class Registries:
    """One client per registry host for a whole command, so tokens and connections are reused."""

    def __init__(self, options: RegistryOptions | None = None) -> None:
        self.options = options or RegistryOptions()
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()

    def client(self, host: str) -> RegistryClient:
        from chaingate.oci.client import RegistryClient

        with self._lock:
            if host not in self._clients:
                self._clients[host] = RegistryClient(host, self.options)
            return self._clients[host]

    def close(self) -> None:
        with self._lock:
            for c in self._clients.values():
                c.close()
            self._clients.clear()
