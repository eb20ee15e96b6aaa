"""Registry settings and the per-host clients of one command, without the HTTP stack until a registry is used.

Commands that only touch OCI layouts and docker archives (the SBOM of a local
build, a copy into an archive) never talk to a registry, and importing
requests and urllib3 was a third of their start-up: :class:`Registries`
imports the client module only when the first registry host is asked for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import chaingate
from chaingate.oci.credentials import CredentialStore

if TYPE_CHECKING:
    from chaingate.oci.client import RegistryClient


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
