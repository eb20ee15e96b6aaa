"""Fixtures for keyless signing tests: GitHub-shaped identities, seeded images, bundle checks.

Every signing test uses the loopback Sigstore stack through an explicit
``--trust-config``; the guard below turns any attempt to reach a non-loopback
host (public Sigstore, TUF) into a failure instead of a hang or a leak.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sigstore.models import Bundle
from sigstore.verify.policy import Identity

from chaingate.oci import media
from chaingate.oci.client import Registries
from chaingate.oci.copy import copy_image
from chaingate.oci.interface import ImageStore
from chaingate.oci.layout import LayoutStore
from chaingate.oci.registry import RegistryStore
from chaingate_testing.sigstore import SigstoreStack, github_actions_claims

REPOSITORY = "octo-org/octo-app"
WORKFLOW_SAN = f"https://github.com/{REPOSITORY}/.github/workflows/release.yml@refs/heads/main"
GITHUB_SUBJECT = f"repo:{REPOSITORY}:ref:refs/heads/main"


@dataclass(frozen=True)
class Signing:
    """What a test needs to sign as the emulated GitHub workflow and check the result."""

    stack: SigstoreStack
    token: str
    san: str = WORKFLOW_SAN

    @property
    def trust(self) -> str:
        return str(self.stack.trust_config_path)

    def flags(self) -> list[str]:
        return ["--trust-config", self.trust, "--identity-token", self.token]

    def policy(self) -> Identity:
        return Identity(identity=self.san, issuer=self.stack.issuer_url)

    @staticmethod
    def bundles(store: ImageStore, digest: str) -> dict[str, bytes]:
        """Bundle bytes attached to ``digest``, by referrer manifest digest (digest-checked by the store)."""
        out: dict[str, bytes] = {}
        for ref in store.referrers(digest, media.SIGSTORE_BUNDLE_V03).referrers:
            layer = ref.manifest.layers[0]
            with store.open_blob(layer) as stream:
                out[ref.descriptor.digest] = stream.read()
        return out

    def verify(self, bundle: bytes, digest: str) -> dict[str, Any]:
        """Verify with sigstore-python's own Verifier (offline) and check the subject names ``digest``."""
        payload_type, payload = self.stack.verifier().verify_dsse(Bundle.from_json(bundle), self.policy())
        assert payload_type == "application/vnd.in-toto+json"
        statement: dict[str, Any] = json.loads(payload)
        hexes = [s["digest"].get("sha256") for s in statement["subject"]]
        assert digest.removeprefix("sha256:") in hexes, (hexes, digest)
        return statement


@pytest.fixture
def signing(sigstore_stack: SigstoreStack) -> Signing:
    token = sigstore_stack.mint_token(
        GITHUB_SUBJECT, extra_claims=github_actions_claims(repository=REPOSITORY)
    )
    return Signing(sigstore_stack, token)


Seed = Callable[[Registries, str, str, Path], tuple[RegistryStore, str]]


@pytest.fixture
def seed() -> Seed:
    """Copy a layout's ``latest`` into ``host/repo:v1``; returns the store and the manifest digest."""

    def put(registries: Registries, host: str, repo: str, layout: Path) -> tuple[RegistryStore, str]:
        store = RegistryStore(registries.client(host), repo)
        result = copy_image(LayoutStore.open_directory(layout), "latest", store, tag="v1")
        return store, result.digest

    return put


@pytest.fixture
def docker_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], Path]:
    """Point the CLI's credential lookup at an empty docker config, or at one a registry writes."""
    empty = tmp_path / "empty-docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))
    for name in (
        "SIGSTORE_ID_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "GITHUB_ACTIONS",
    ):
        monkeypatch.delenv(name, raising=False)

    def use(directory: Path) -> Path:
        monkeypatch.setenv("DOCKER_CONFIG", str(directory))
        return directory

    return use
