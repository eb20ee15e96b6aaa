"""Reading layer blobs: compression by media type or magic, and every bound a hostile layer could push."""

from __future__ import annotations

import gzip
import io
import random
import tarfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any, cast

import pytest
import zstandard

from chaingate.oci import media
from chaingate.oci.digest import VerifiedReader, sha256_digest
from chaingate.oci.errors import DigestMismatch
from chaingate.oci.interface import Descriptor
from chaingate.sbom import LayerInput, Limits, SbomError, layers
from chaingate.sbom.catalogers.base import BytesReader
from chaingate.sbom.interface import DEFAULT_LIMITS, MiB
from chaingate.sbom.view import build_view
from chaingate_testing.images import File, RawMember

Make = Callable[..., LayerInput]


class Everything(BytesReader):
    name = "everything"

    def wants(self, path: str) -> bool:
        return True


def read(layers: list[LayerInput], limits: Limits = DEFAULT_LIMITS) -> dict[str, bytes]:
    view = build_view(layers, [Everything(limits)], limits, lambda *a: None)
    return {f.path: f.content for f in view.found(0)}


def tar_of(*files: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def blob_layer(data: bytes, media_type: str, *, digest: str | None = None) -> LayerInput:
    digest = digest or sha256_digest(data)
    return LayerInput(
        Descriptor(media_type, digest, len(data)),
        lambda: VerifiedReader(io.BytesIO(data), digest, len(data), what=f"layer {digest}"),
    )


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_each_compression_by_media_type(layer: Make, compression: str) -> None:
    assert read([layer(File("etc/hello", b"hi"), compression=compression)]) == {"etc/hello": b"hi"}


@pytest.mark.parametrize(
    ("media_type", "encode"),
    [
        (media.DOCKER_LAYER_TAR, gzip.compress),  # docker archives call every layer a tar
        ("application/octet-stream", lambda d: zstandard.ZstdCompressor().compress(d)),
        (media.OCI_LAYER_TAR, lambda d: d),
    ],
)
def test_generic_media_types_are_sniffed(media_type: str, encode: Callable[[bytes], bytes]) -> None:
    data = encode(tar_of(("a", b"1")))
    assert read([blob_layer(data, media_type)]) == {"a": b"1"}


def test_multi_member_gzip_is_read_whole() -> None:
    data = tar_of(("a", b"1"), ("b", b"2"))
    split = gzip.compress(data[:512]) + gzip.compress(data[512:])
    assert read([blob_layer(split, media.OCI_LAYER_GZIP)]) == {"a": b"1", "b": b"2"}


def test_declared_compression_must_match_the_bytes() -> None:
    with pytest.raises(SbomError, match="declared gzip"):
        read([blob_layer(tar_of(("a", b"1")), media.OCI_LAYER_GZIP)])


def test_encrypted_layers_are_refused() -> None:
    with pytest.raises(SbomError, match="encrypted"):
        read([blob_layer(b"x", media.OCI_LAYER_GZIP + "+encrypted")])


def test_non_layer_media_types_are_refused() -> None:
    with pytest.raises(SbomError, match="not a filesystem layer"):
        read([blob_layer(b"{}", "application/vnd.oci.image.config.v1+json")])


def test_decompression_bomb_names_the_layer(layer: Make) -> None:
    bomb = layer(*(File(f"zeros{i}", bytes(MiB // 2)) for i in range(8)))
    with pytest.raises(SbomError, match=bomb.descriptor.digest) as e:
        read([bomb], Limits(max_layer_bytes=2 * MiB))
    assert "decompression bomb" in str(e.value)


def test_expansion_ratio_is_bounded_past_the_floor(layer: Make) -> None:
    bomb = layer(File("zeros", bytes(8 * MiB)), compression="zstd")
    with pytest.raises(SbomError, match="expands more than 100-fold"):
        read([bomb], Limits(max_ratio=100, ratio_floor=1 * MiB))


def test_total_bytes_over_all_layers_are_bounded(layer: Make) -> None:
    layers = [layer(File(f"f{i}", bytes(600 * 1024))) for i in range(3)]
    with pytest.raises(SbomError, match="in all"):
        read(layers, Limits(max_total_bytes=1 * MiB))


def test_member_count_is_bounded(layer: Make) -> None:
    with pytest.raises(SbomError, match="more than 3 tar members"):
        read([layer(*(File(f"f{i}", b"") for i in range(5)))], Limits(max_members=3))


def test_member_size_is_bounded() -> None:
    info = tarfile.TarInfo("big")
    info.size = 4 * MiB
    # The header alone: the declared size is refused before any of its bytes would be inflated.
    data = info.tobuf(tarfile.PAX_FORMAT) + bytes(1024)
    with pytest.raises(SbomError, match="member 'big' declares 4194304 bytes"):
        read([blob_layer(data, media.OCI_LAYER_TAR)], Limits(max_layer_bytes=3 * MiB))


def test_oversized_pax_header_is_refused(layer: Make) -> None:
    info = tarfile.TarInfo("a")
    info.pax_headers = {"comment": "x" * 5000}
    with pytest.raises(SbomError, match="extended tar header"):
        read([layer(RawMember(info, b"1"))], Limits(max_header_bytes=1024))


def test_long_names_within_bounds_are_read(layer: Make) -> None:
    name = "d/" + "n" * 300
    assert read([layer(File(name, b"long"))]) == {name: b"long"}


def test_digest_mismatch_fails_and_nothing_is_used() -> None:
    data = gzip.compress(tar_of(("a", b"1")))
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatch):
        read([blob_layer(data, media.OCI_LAYER_GZIP, digest=wrong)])


def test_data_after_the_end_of_the_archive_is_an_error() -> None:
    data = tar_of(("a", b"1")) + b"\x01" * 1024
    with pytest.raises(SbomError, match="after the end of the tar archive"):
        read([blob_layer(data, media.OCI_LAYER_TAR)])


def test_truncated_gzip_is_an_error_naming_the_layer() -> None:
    data = gzip.compress(tar_of(("a", b"1" * 100_000)))[:-200]
    layer_input = blob_layer(data, media.OCI_LAYER_GZIP)
    with pytest.raises(SbomError, match=layer_input.descriptor.digest):
        read([layer_input])


def test_garbage_is_an_error_naming_the_layer() -> None:
    layer_input = blob_layer(b"\x00not a tar" * 100 + b"x" * 1000, media.OCI_LAYER_TAR)
    with pytest.raises(SbomError, match=layer_input.descriptor.digest):
        read([layer_input])


def test_progress_reports_compressed_bytes(layer: Make) -> None:
    calls: list[tuple[Any, ...]] = []
    layer_input = layer(File("a", b"x" * 1000))
    build_view([layer_input], [Everything()], DEFAULT_LIMITS, lambda *a: calls.append(a))
    assert calls[0] == ("layer 1/1", 0, layer_input.descriptor.size)
    assert calls[-1] == ("layer 1/1", layer_input.descriptor.size, layer_input.descriptor.size)


# -- decompressing the next layers ahead of the parser -------------------------------------------


class _Stream:
    def __init__(self, queued: int = 0) -> None:
        self.queued = queued


def test_readahead_gives_nearer_layers_the_budget_first() -> None:
    ahead = layers.Readahead(8 * MiB)
    current, next_one, after = _Stream(), _Stream(), _Stream()
    ahead.order[:] = [current, next_one, after]  # type: ignore[list-item]
    ahead.held = 3 * MiB
    assert ahead.admits(next_one, 5 * MiB)  # type: ignore[arg-type]
    assert not ahead.admits(next_one, 5 * MiB + 1)  # type: ignore[arg-type]
    assert ahead.admits(after, 1 * MiB)  # type: ignore[arg-type]
    assert not ahead.admits(after, 1 * MiB + 1)  # the layer after next may fill only half
    # The layer being parsed is never held back by the budget, only by its own queue depth.
    ahead.held = 100 * MiB
    assert ahead.admits(current, 64 * MiB)  # type: ignore[arg-type]
    current.queued = layers._PREFETCH_DEPTH
    assert not ahead.admits(current, 1)  # type: ignore[arg-type]


def _noisy_layers(layer: Make, count: int, size: int) -> list[LayerInput]:
    rng = random.Random(7)
    return [layer(*(File(f"l{i}/f{j}", rng.randbytes(size)) for j in range(4))) for i in range(count)]


class _Recording(layers.Readahead):
    peak = 0

    def __setattr__(self, name: str, value: object) -> None:
        if name == "held":
            _Recording.peak = max(_Recording.peak, cast(int, value))
        super().__setattr__(name, value)


class _Patient(Everything):
    """Parses slowly at first: waits (a bounded time) until a lower layer has read ahead."""

    waited = False

    def capture(self, path: str, stream: IO[bytes], size: int) -> bytes | None:
        deadline = time.monotonic() + 5
        while (
            not self.waited
            and self.limits.readahead_bytes
            and not _Recording.peak
            and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        self.waited = True
        return super().capture(path, stream, size)


@pytest.mark.parametrize("budget", [0, 3 * MiB, 64 * MiB])
def test_readahead_changes_nothing_but_stays_within_its_budget(
    layer: Make, budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = _noisy_layers(layer, 4, 512 * 1024)
    expected = read(inputs, Limits(readahead_bytes=0))
    monkeypatch.setattr(layers, "Readahead", _Recording)
    _Recording.peak = 0
    limits = Limits(readahead_bytes=budget)
    view = build_view(inputs, [_Patient(limits)], limits, lambda *a: None)
    assert {f.path: f.content for f in view.found(0)} == expected
    assert 0 < _Recording.peak <= budget if budget else _Recording.peak == 0


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sbom-layer-prefetch"]


@pytest.mark.parametrize("bad", [0, 3])
def test_a_corrupt_layer_stops_every_worker(layer: Make, bad: int) -> None:
    inputs = _noisy_layers(layer, 4, 256 * 1024)
    data = gzip.compress(tar_of(("a", b"1" * 100_000)))[:-200]
    inputs[bad] = blob_layer(data, media.OCI_LAYER_GZIP)
    with pytest.raises(SbomError, match=inputs[bad].descriptor.digest):
        read(inputs)
    assert _prefetch_threads() == []


class _Trickle(io.RawIOBase):
    """A network stream at its worst: one byte per read."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        return self._data.read(1 if n is None or n != 0 else 0)


@pytest.mark.parametrize(
    "encode", [gzip.compress, lambda d: zstandard.ZstdCompressor().compress(d), lambda d: d]
)
def test_short_reads_still_sniff_the_compression(encode: Callable[[bytes], bytes]) -> None:
    data = encode(tar_of(("a", b"1")))
    digest = sha256_digest(data)
    trickle = LayerInput(
        Descriptor(media.DOCKER_LAYER_TAR, digest, len(data)),
        lambda: VerifiedReader(_Trickle(data), digest, len(data), what="layer"),  # type: ignore[arg-type]
    )
    assert read([trickle]) == {"a": b"1"}


class _Counting(Everything):
    """Records how many layers were open when each file was read."""

    def __init__(self, limits: Limits, opens: Any) -> None:
        super().__init__(limits)
        self.opens = opens
        self.seen: list[int] = []

    def capture(self, path: str, stream: IO[bytes], size: int) -> bytes | None:
        self.seen.append(sum(self.opens.counts.values()))
        return super().capture(path, stream, size)


@pytest.mark.parametrize(("budget", "open_at_first_file"), [(0, 1), (MiB, 4)])
def test_without_a_readahead_budget_no_layer_opens_before_its_turn(
    layer: Make, opens: Any, budget: int, open_at_first_file: int
) -> None:
    inputs = [layer(File(f"l{i}", b"x")) for i in range(5)]
    limits = Limits(readahead_bytes=budget)
    reader = _Counting(limits, opens)
    build_view(inputs, [reader], limits, lambda *a: None)
    assert reader.seen[0] == open_at_first_file  # the top layer, plus up to three ahead
    assert reader.seen[-1] == 5
