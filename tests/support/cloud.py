"""Helpers for the deploy tests: constants, a fake clock, and the configured fake cloud.

Clients are the official SDKs, configured only through the SDK's external
configuration (``CODE_ENGINE_URL``, ``CODE_ENGINE_APIKEY``…) exactly as a
pipeline would configure them; waits run on a fake clock so no test sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaingate.deploy.codeengine import CodeEngine
from chaingate.deploy.iam import IamClients
from chaingate.deploy.ibmcloud import ApiCaller
from chaingate_testing.codeengine import FakeIBMCloud

APIKEY = "test-apikey-0123456789-do-not-log"
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
REPOSITORY = "us.icr.io/team/app"
IMAGE = f"{REPOSITORY}@{DIGEST}"


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Cloud:
    """The fake with one project, the pipeline's service ID (holding the API key) and the SDK env pointing at it."""

    fake: FakeIBMCloud
    project: dict[str, Any]
    deployer: str
    clock: FakeClock
    retry_sleeps: list[float] = field(default_factory=list)

    @property
    def project_id(self) -> str:
        return str(self.project["id"])

    def code_engine(self, *, request_timeout: float = 10.0, attempts: int = 3) -> CodeEngine:
        ce = CodeEngine.connect(
            request_timeout=request_timeout,
            caller=ApiCaller(max_attempts=attempts, sleep=self.retry_sleeps.append),
        )
        ce.sleep, ce.clock = self.clock.sleep, self.clock
        return ce

    def iam(self) -> IamClients:
        return IamClients.connect(caller=ApiCaller(max_attempts=2, sleep=self.retry_sleeps.append))
