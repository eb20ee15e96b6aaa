"""Fixtures for the CI integration tests (helpers live in ``support.ci``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chaingate_testing.sigstore import SigstoreStack
from support.ci import TokenService, token_service


@pytest.fixture(scope="session")
def github_token_service(sigstore_stack: SigstoreStack) -> Iterator[TokenService]:
    """GitHub's OIDC token service on loopback, minting from the session's Sigstore stack."""
    with token_service(sigstore_stack) as service:
        yield service
