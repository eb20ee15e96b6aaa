"""Fixtures for the gate tests (helpers live in ``verify_support``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sigstore.oidc import IdentityToken
from verify_support import Gate, Identities, Identity, github_identity

from chaingate.oci.client import Registries
from chaingate.testing.sigstore import SigstoreStack
from netguard import forbid_non_loopback


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Public Sigstore (TUF) and any other host must never be reached by the gate's tests."""
    forbid_non_loopback(monkeypatch, "gate")


@pytest.fixture(scope="session")
def identities(sigstore_stack: SigstoreStack) -> Iterator[Identities]:
    with SigstoreStack() as foreign_stack, ExitStack() as exits:
        email_token = sigstore_stack.mint_token("user-1", email="mallory@example.test")
        yield Identities(
            good=github_identity(sigstore_stack, exits),
            lookalike=github_identity(sigstore_stack, exits, repository="org/app-evil"),
            other_workflow=github_identity(sigstore_stack, exits, workflow=".github/workflows/other.yml"),
            email=Identity(
                sigstore_stack,
                exits.enter_context(sigstore_stack.signing_context().signer(IdentityToken(email_token))),
            ),
            foreign=github_identity(foreign_stack, exits),
        )


@pytest.fixture
def gate(
    sigstore_stack: SigstoreStack,
    identities: Identities,
    make_registries: Callable[..., Registries],
    tmp_path: Path,
) -> Gate:
    return Gate(sigstore_stack, identities, make_registries(), tmp_path)
