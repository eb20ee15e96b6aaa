"""The client under a command's deadline: no request starts, no retry waits and no body is read past it."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from chaingate.oci.client import Registries
from chaingate.oci.digest import read_bounded
from chaingate.oci.interface import Descriptor
from chaingate.oci.registries import Deadline, DeadlinePassed
from chaingate.oci.registry import RegistryStore
from chaingate_testing.ociregistry import Fault, OCIRegistry

pytestmark = pytest.mark.registry


def test_a_retry_wait_past_the_deadline_ends_the_request_at_once(
    fresh_oci_registry: OCIRegistry, make_registries: Callable[..., Registries], sleeps: list[float]
) -> None:
    fresh_oci_registry.add_fault(Fault(path="/manifests/", status=503, headers={"Retry-After": "20"}))
    registries = make_registries(deadline=Deadline.after(10.0))
    store = RegistryStore(registries.client(fresh_oci_registry.host), "org/app")
    with pytest.raises(DeadlinePassed, match="deadline of 10 s passed while waiting to retry HEAD"):
        store.resolve("v1")
    assert sleeps == []


def test_a_dripped_blob_stops_at_the_deadline_and_without_one_keeps_going(
    fresh_oci_registry: OCIRegistry, make_registries: Callable[..., Registries]
) -> None:
    data = b"0123456789" * 4  # 2 s of drip
    digest = fresh_oci_registry.put_blob_bytes("org/app", data)
    descriptor = Descriptor("application/octet-stream", digest, len(data))
    store = RegistryStore(make_registries().client(fresh_oci_registry.host), "org/app")
    fresh_oci_registry.add_fault(Fault(path=f"/blobs/{descriptor.digest}$", method="GET", drip=0.05))
    bounded = RegistryStore(
        make_registries(deadline=Deadline.after(1.0)).client(fresh_oci_registry.host), "org/app"
    )
    started = time.monotonic()
    with (
        pytest.raises(DeadlinePassed, match=f"deadline of 1 s passed while reading blob {descriptor.digest}"),
        bounded.open_blob(descriptor) as stream,
    ):
        read_bounded(stream, len(data), what="test blob")
    assert time.monotonic() - started < 2.0
    # The same drip, read without a deadline, still arrives whole: the deadline is the only thing that stopped it.
    with store.open_blob(descriptor) as stream:
        assert read_bounded(stream, len(data), what="test blob") == data
