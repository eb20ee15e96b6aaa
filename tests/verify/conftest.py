"""Fixtures for the gate tests (helpers live in ``support.gate``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sigstore.oidc import IdentityToken

from chaingate.oci.client import Registries
from chaingate_testing.sigstore import SigstoreStack
from support.gate import Gate, Identities, Identity, github_identity


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
