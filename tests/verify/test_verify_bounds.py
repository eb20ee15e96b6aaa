"""The gate's bounds: one deadline for a whole verify, and one byte budget for an image's bundles.

A registry must not be able to hold the gate hostage (a body dripped a byte
at a time never trips a per-read timeout) nor make it hold every bundle in
memory (many referrers naming one big blob, or many big blobs). Past either
bound the gate denies and says which bound it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from chaingate.cli import run
from chaingate.errors import EXIT_DENIED, EXIT_USAGE, ChaingateError
from chaingate.oci import media
from chaingate.oci.artifact import Blob, build_artifact, push_artifact
from chaingate.oci.client import Registries
from chaingate.oci.registries import Deadline, DeadlinePassed, RegistryOptions
from chaingate.signing.bundle import MAX_IMAGE_BUNDLE_BYTES
from chaingate.verify import Decision, verify_image
from chaingate.verify import gate as gate_module
from chaingate.verify.collect import BundleBudgetExceeded, FoundBundle, collect
from chaingate.verify.interface import Attestation, Ignored
from chaingate_testing.ociregistry import Fault, OCIRegistry
from support.gate import SIGN_V1, Gate, Pushed, clause, push_image, statement

pytestmark = [pytest.mark.sigstore, pytest.mark.registry]

#: How much later than its deadline a verify may end: one socket read's hair, the verdict, process noise.
SLACK = 2.0


def referrers_to(pushed: Pushed, blob: bytes, count: int, predicate_type: str = SIGN_V1) -> list[str]:
    """``count`` distinct referrer manifests (their annotations differ) that all name the one bundle ``blob``."""
    digests = []
    for n in range(count):
        artifact = build_artifact(
            pushed.descriptor,
            media.SIGSTORE_BUNDLE_V03,
            [Blob(media.SIGSTORE_BUNDLE_V03, blob)],
            annotations={media.ANNOTATION_PREDICATE_TYPE: predicate_type, "test.copy": str(n)},
        )
        digests.append(push_artifact(pushed.store, artifact).digest)
    return digests


def blob_path(data: bytes) -> str:
    import hashlib

    return f"/blobs/sha256:{hashlib.sha256(data).hexdigest()}$"


def image_reason(decision: Decision) -> str:
    image = clause(decision, "image")
    assert decision.verdict == "deny" and image.result == "fail", decision.clauses
    reason: str = image.reason
    return reason


@pytest.fixture
def pushed(gate: Gate, fresh_oci_registry: OCIRegistry) -> Pushed:
    return push_image(gate.registries, fresh_oci_registry.host)


# -- the deadline ------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["bundle blob", "referrer manifest", "referrers listing"])
def test_a_registry_dripping_a_body_denies_at_the_deadline(
    gate: Gate,
    pushed: Pushed,
    fresh_oci_registry: OCIRegistry,
    make_registries: Callable[..., Registries],
    where: str,
) -> None:
    bundle = gate.ids.good.sign(statement(pushed.digest, SIGN_V1, {}))
    [referrer] = referrers_to(pushed, bundle, 1)
    path = {
        "bundle blob": blob_path(bundle),
        "referrer manifest": f"/manifests/{referrer}$",
        "referrers listing": "/referrers/",
    }[where]
    # Hundreds of bytes at 50 ms each: a minute or more, while every single socket read returns in time.
    drip = fresh_oci_registry.add_fault(Fault(path=path, method="GET", drip=0.05))
    registries = make_registries(deadline=Deadline.after(3.0))
    started = time.monotonic()
    decision = verify_image(
        pushed.ref, gate.policy(pushed.host), registries=registries, trust_config=gate.trust
    )
    elapsed = time.monotonic() - started
    assert drip.hits >= 1
    assert "deadline of 3 s passed while" in image_reason(decision)
    assert elapsed < 3.0 + SLACK, elapsed


def test_the_verify_command_s_timeout_is_the_whole_verify_s_deadline(
    gate: Gate, pushed: Pushed, fresh_oci_registry: OCIRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = gate.ids.good.sign(statement(pushed.digest, SIGN_V1, {}))
    referrers_to(pushed, bundle, 1)
    fresh_oci_registry.add_fault(Fault(path=blob_path(bundle), method="GET", drip=0.05))
    gate.policy(pushed.host)
    argv = [
        "verify",
        pushed.ref,
        "--policy",
        str(gate.tmp / "policy.yaml"),
        "--trust-config",
        str(gate.trust),
    ]
    started = time.monotonic()
    code = run([*argv, "--no-sign", "--timeout", "2"])
    elapsed = time.monotonic() - started
    assert code == EXIT_DENIED
    assert "deadline of 2 s passed while reading blob" in capsys.readouterr().out
    assert elapsed < 2.0 + SLACK, elapsed
    for bad in ("0", "nan", "-5"):
        with pytest.raises(SystemExit) as raised:
            run([*argv, "--timeout", bad])
        assert raised.value.code == EXIT_USAGE
        assert f"--timeout: {float(bad)} is not a number of seconds above 0" in capsys.readouterr().err


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_bundle_verification_starts_after_the_deadline(gate: Gate, pushed: Pushed) -> None:
    referrers_to(pushed, b'{"first": "bundle"}', 1)
    referrers_to(pushed, b'{"second": "bundle"}', 1)
    clock = FakeClock()
    deadline = Deadline.after(10.0, clock=clock)
    verified: list[str] = []

    def slow_verify(found: FoundBundle) -> Ignored:
        verified.append(found.referrer)
        clock.now += 11.0  # this verification ran past the deadline
        return Ignored(found.referrer, "test")

    with pytest.raises(DeadlinePassed, match="deadline of 10 s passed while reading bundle"):
        collect(pushed.store, [pushed.digest], slow_verify, deadline=deadline)
    assert len(verified) == 1


def test_a_read_that_never_returns_is_cut_off_by_the_watchdog(
    gate: Gate, pushed: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the client's checks cannot see (headers dripped, a TUF fetch) still ends at the deadline."""
    import threading

    release = threading.Event()

    def stuck(*args: object, **kwargs: object) -> object:
        release.wait(30)  # bounded, and released at the end of the test
        raise AssertionError("the watchdog should have answered before this returned")

    monkeypatch.setattr(gate_module, "collect", stuck)
    registries = Registries(RegistryOptions(deadline=Deadline.after(1.0)))
    started = time.monotonic()
    try:
        decision = verify_image(
            pushed.ref, gate.policy(pushed.host), registries=registries, trust_config=gate.trust
        )
    finally:
        release.set()
        registries.close()
    assert time.monotonic() - started < 1.0 + gate_module.DEADLINE_GRACE + SLACK
    assert "deadline of 1 s passed while reading and verifying the image" in image_reason(decision)


# -- the byte budget -----------------------------------------------------------------------------------


def blob_gets(registry: OCIRegistry, data: bytes) -> int:
    import re

    pattern = re.compile(blob_path(data))
    return sum(1 for r in registry.requests if r.method == "GET" and pattern.search(r.path))


def test_one_bundle_named_by_24_referrers_is_read_and_verified_once_and_counts_for_each(
    gate: Gate, pushed: Pushed, fresh_oci_registry: OCIRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = gate.ids.good.sign(statement(pushed.digest, SIGN_V1, {}))
    referrers = referrers_to(pushed, bundle, 24)
    calls: list[str] = []
    real = gate_module.verify_bundle

    def counting(trust: object, found: FoundBundle, signers: object) -> Attestation | Ignored:
        calls.append(found.referrer)
        return real(trust, found, signers)  # type: ignore[arg-type]

    monkeypatch.setattr(gate_module, "verify_bundle", counting)
    fresh_oci_registry.clear_requests()
    decision = gate.verify(pushed.ref, gate.policy(pushed.host))
    assert blob_gets(fresh_oci_registry, bundle) == 1
    assert len(calls) == 1
    assert sorted(ref for ref, ptype in decision.inputs if ptype == SIGN_V1) == sorted(referrers)
    assert "24 attestation(s) counted" in clause(decision, "image").reason


def test_a_shared_blob_is_charged_to_the_budget_once(pushed: Pushed, fresh_oci_registry: OCIRegistry) -> None:
    big = b"x" * (12 * 1024 * 1024)
    referrers = referrers_to(pushed, big, 24)
    fresh_oci_registry.clear_requests()
    seen: list[int] = []

    def verify(found: FoundBundle) -> Ignored:
        seen.append(len(found.raw))
        return Ignored(found.referrer, f"{found.source}: not a bundle")

    collected = collect(pushed.store, [pushed.digest], verify, budget=16 * 1024 * 1024)
    assert seen == [len(big)]
    assert blob_gets(fresh_oci_registry, big) == 1
    assert sorted(i.digest for i in collected.verified) == sorted(referrers)
    assert all(
        isinstance(i, Ignored) and i.reason == "referrers-api: not a bundle" for i in collected.verified
    )


def test_bundles_past_the_budget_deny_even_beside_good_attestations(
    gate: Gate, pushed: Pushed, fresh_oci_registry: OCIRegistry
) -> None:
    gate.full(pushed)  # everything the policy asks for, so only the budget can deny
    assert gate.verify(pushed.ref, gate.policy(pushed.host)).verdict == "allow"
    size = MAX_IMAGE_BUNDLE_BYTES // 5 + 1
    for n in range(5):  # distinct junk "bundles" that together exceed the budget
        referrers_to(pushed, bytes([n]) * size, 1)
    decision = gate.verify(pushed.ref, gate.policy(pushed.host))
    assert f"exceed the gate's budget of {MAX_IMAGE_BUNDLE_BYTES} bytes" in image_reason(decision)


def test_the_budget_is_checked_before_a_blob_is_read(pushed: Pushed, fresh_oci_registry: OCIRegistry) -> None:
    first, second = b"a" * 1000, b"b" * 1000
    referrers_to(pushed, first, 1)
    referrers_to(pushed, second, 1)
    fresh_oci_registry.clear_requests()
    with pytest.raises(BundleBudgetExceeded, match="budget of 1500 bytes"):
        collect(pushed.store, [pushed.digest], lambda f: Ignored(f.referrer, "x"), budget=1500)
    assert blob_gets(fresh_oci_registry, first) + blob_gets(fresh_oci_registry, second) == 1


def test_a_deadline_is_a_finite_number_of_seconds_above_zero() -> None:
    """No NaN, infinity, zero or negative sneaks through as "never" or "already"."""
    for bad in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(ChaingateError, match="is not a number of seconds above 0"):
            Deadline.after(bad)
