"""Fixtures shared by the whole suite: real registries on loopback, started once per session.

Services are never skipped: the README test command installs what they need,
and a missing binary is a failure that says which package to install.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from chaingate.oci.client import Registries, RegistryOptions
from chaingate.oci.credentials import CredentialStore
from chaingate_testing.ociregistry import OCIRegistry
from chaingate_testing.registry import DockerRegistry
from chaingate_testing.sigstore import SigstoreStack
from support.netguard import forbid_non_loopback

# Property tests (tests/**/test_*_properties.py). `ci`, the default, runs the same bounded examples on
# every run, so a red CI is reproducible; `fuzz` (benchmarks/fuzz.py) draws fresh ones, as many as
# $CHAINGATE_FUZZ_EXAMPLES says. The deadline bounds each example: a parser that takes seconds on a
# small hostile input is a finding too.
settings.register_profile("ci", max_examples=100, derandomize=True, database=None, deadline=2000)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("CHAINGATE_FUZZ_EXAMPLES", "20000")),
    derandomize=False,
    database=None,
    deadline=5000,
)
settings.load_profile(os.environ.get("CHAINGATE_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _loopback_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches a real service (public Sigstore's TUF, IBM Cloud, GitHub): only loopback is allowed."""
    forbid_non_loopback(monkeypatch, request.node.nodeid)


@pytest.fixture(scope="session")
def docker_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    """Debian's docker-registry 2.8, anonymous: no referrers API, so the tag fallback is exercised."""
    with DockerRegistry("anonymous", workdir=tmp_path_factory.mktemp("registry-anon")) as reg:
        yield reg


@pytest.fixture(scope="session")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    with DockerRegistry("htpasswd", workdir=tmp_path_factory.mktemp("registry-basic")) as reg:
        yield reg


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    with DockerRegistry("token", workdir=tmp_path_factory.mktemp("registry-token")) as reg:
        yield reg


@pytest.fixture(scope="session")
def oci_registry() -> Iterator[OCIRegistry]:
    """The in-repo registry with the OCI 1.1 referrers API (and fault injection)."""
    with OCIRegistry(referrers_api=True) as reg:
        yield reg


@pytest.fixture
def fresh_oci_registry() -> Iterator[OCIRegistry]:
    """A registry of one's own, for tests that inject faults or stop it."""
    with OCIRegistry(referrers_api=True) as reg:
        yield reg


@pytest.fixture
def sleeps() -> list[float]:
    """Retry waits recorded instead of slept, so backoff tests cost no wall time."""
    return []


@pytest.fixture
def make_registries(tmp_path: Path, sleeps: list[float]) -> Iterator[Callable[..., Registries]]:
    """Build a :class:`Registries` whose credentials come only from a docker config in ``tmp_path``."""
    made: list[Registries] = []

    def make(docker_config: Path | None = None, **overrides: object) -> Registries:
        env = {"DOCKER_CONFIG": str(docker_config or tmp_path / "no-docker-config"), "PATH": "/usr/bin:/bin"}
        options: dict[str, object] = {
            "credentials": CredentialStore(env=env, home=tmp_path),
            "sleep": sleeps.append,
            "max_attempts": 4,
            "retry_budget": 30.0,
        }
        options.update(overrides)
        registries = Registries(RegistryOptions(**options))  # type: ignore[arg-type]
        made.append(registries)
        return registries

    yield make
    for r in made:
        r.close()


@pytest.fixture
def registries(make_registries: Callable[..., Registries]) -> Registries:
    return make_registries()


@pytest.fixture
def sample_layout(tmp_path: Path) -> Path:
    """A small single-platform image in an OCI layout, tagged ``latest``."""
    from chaingate_testing.images import File, Layer, build_image, write_layout

    image = build_image(
        [
            Layer(
                [File("etc/os-release", b"ID=debian\nVERSION_ID=12\n"), File("app/main.py", b"print('hi')\n")]
            ),
            Layer([File("app/VERSION", b"1.0\n")], compression="none"),
        ]
    )
    return write_layout(tmp_path / "sample-layout", image, tag="latest")


@pytest.fixture
def multiarch_layout(tmp_path: Path) -> Path:
    from chaingate.oci.interface import Platform
    from chaingate_testing.images import File, Layer, build_image, build_index, write_layout

    images = [
        build_image([Layer([File("etc/arch", arch.encode())])], platform=Platform("linux", arch, variant))
        for arch, variant in (("amd64", None), ("arm64", "v8"))
    ]
    return write_layout(tmp_path / "multiarch-layout", build_index(images), tag="latest")


@pytest.fixture(scope="session")
def sigstore_stack() -> Iterator[SigstoreStack]:
    """The loopback OIDC issuer, Fulcio and Rekor, with a trust config naming them (one per session)."""
    with SigstoreStack() as stack:
        yield stack
