"""One layer blob as a bounded, streaming sequence of tar members.

A layer is read front to back exactly once per pass: decompressed on the fly
(gzip, zstd or none), never written to disk and never held whole in memory.
Every decompressed byte is counted against the per-layer, per-ratio and
whole-SBOM budgets, so a decompression bomb ends in an :class:`SbomError`
naming the layer rather than in a full disk or an exhausted runner.

After the last member the rest of the stream is drained: the store's reader
only checks the blob digest at EOF, and nothing read from a layer is used
before that check has passed.

Speed comes from keeping both cores busy without giving up those bounds: a
worker thread per open layer reads, hashes and inflates (all of which release
the GIL) while the main thread parses tar headers (:mod:`.tarstream`), and the
next layers start inflating before their turn, holding at most
``Limits.readahead_bytes`` between them (:class:`Readahead`).
"""

from __future__ import annotations

import sys
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import IO, Any, cast

import zstandard

from chaingate.oci import media
from chaingate.oci.interface import Progress
from chaingate.sbom.interface import LayerInput, Limits, MiB, SbomError
from chaingate.sbom.tarstream import Member, MemberContent, TarFormatError, TarLimitError, TarStream

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 * MiB
_GENERIC_TYPES = frozenset(
    {
        media.OCI_LAYER_TAR,
        media.DOCKER_LAYER_TAR,
        "application/octet-stream",
        "application/x-tar",
        "application/tar",
    }
)
#: Extended headers (pax, GNU long names) that may precede one member; real tars use at most two or three.
_MAX_CHAINED_HEADERS = 8


def short(digest: str) -> str:
    """A digest short enough for a progress line, long enough to tell layers apart."""
    return digest[:19]


def compression_of(media_type: str, digest: str) -> str | None:
    """The compression a layer's media type declares: "gzip", "zstd", or None to decide by magic bytes.

    Plain-tar and generic types are sniffed rather than trusted because docker
    archives list layers as tar whatever they hold; a declared compression is
    enforced, so a gzip layer that is not gzip fails instead of being guessed at.
    """
    mt = media_type.lower()
    if "encrypted" in mt:
        raise SbomError(
            f"layer {digest}: encrypted layer ({media_type})",
            hint="decrypt the image (e.g. skopeo copy --decryption-key) before generating its SBOM",
        )
    if mt.endswith(("+gzip", ".gzip")):
        return "gzip"
    if mt.endswith(("+zstd", ".zstd")):
        return "zstd"
    if not mt or mt in _GENERIC_TYPES or mt.endswith((".tar", "+tar")):
        return None
    raise SbomError(f"layer {digest}: media type {media_type!r} is not a filesystem layer")


class _Prefixed:
    """A stream that yields already-peeked bytes before the rest of its source."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._rest.read(n)


class _Compressed:
    """The raw blob stream, counted for the ratio check and for progress reports."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n if n is not None and n >= 0 else _CHUNK)
        self.count += len(data)
        return data


#: Decompressed chunks the worker of the layer being parsed may run ahead of the tar parser.
_PREFETCH_DEPTH = 4
#: Compressed bytes the worker inflates per call, and the most one call may produce. Long calls matter:
#: the worker only runs while it does not hold the GIL, and each time it needs the GIL back it waits for
#: the tar parser to yield it, so many short calls would leave the worker idle most of the time. Each
#: open layer holds up to about twice ``_INFLATE_IN`` plus ``_INFLATE_OUT`` in flight, hence not more.
_INFLATE_IN = 2 * MiB
_INFLATE_OUT = 4 * MiB
#: Layers opened and decompressing beyond the one being parsed.
_LAYERS_AHEAD = 3
#: How long a thread holding the GIL keeps it while another wants it, during a read (CPython's default is
#: 5 ms). Workers need the GIL only for microseconds between long inflate calls, but wait up to this long
#: for the parser to yield it: at 5 ms they idled ~20% of the time; at 0.2 ms they idle ~2%.
_SWITCH_INTERVAL = 0.0002


class _Gunzip:
    """gzip (including multi-member) inflated in large units, for the prefetch worker."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._in_member = False  # the current decompressor has been fed and has not reached its end
        self._done = False

    def read(self, n: int = -1) -> bytes:
        while not self._done:
            if not self._pending:
                self._pending = self._source.read(_INFLATE_IN)
                if not self._pending:
                    if self._in_member:
                        raise EOFError("compressed file ended before the end-of-stream marker was reached")
                    self._done = True
                    return b""
            self._in_member = True
            out = self._d.decompress(self._pending, _INFLATE_OUT)
            self._pending = self._d.unconsumed_tail
            if self._d.eof:
                rest = self._d.unused_data + self._pending
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._in_member = False
                # Another gzip member may follow; trailing zero padding ends the stream, as gzip(1) allows.
                self._pending = b"" if not rest.strip(b"\0") else rest
            if out:
                return out
        return b""


class Readahead:
    """Decompression ahead of the parser, for the layers that will be parsed next.

    Layers are parsed one at a time, top first, and the biggest is often the
    bottom one. With only the parsed layer's worker inflating, one core
    inflates while the other waits for the parser, and vice versa; so the
    workers of the next layers inflate meanwhile and hold their output here,
    within ``Limits.readahead_bytes`` that nearer layers get first: the k-th
    next layer may fill it only up to ``budget / 2**(k-1)``, so the layer
    parsed next is never starved by one parsed later.

    No deadlock: the layer being parsed is limited only by ``_PREFETCH_DEPTH``
    unread chunks, never by the budget, so its worker always progresses while
    the parser reads; the other workers wait only on the budget, which the
    parser frees as it reads their chunks once their layer's turn has come.
    """

    def __init__(self, budget: int) -> None:
        self.cond = threading.Condition()
        self.budget = budget
        #: Bytes queued by workers of layers not yet being parsed.
        self.held = 0
        #: Open streams in parse order; the first is being parsed.
        self.order: list[_Prefetch] = []

    def admits(self, stream: _Prefetch, size: int) -> bool:
        """Whether ``stream`` may queue ``size`` more bytes now (the caller holds ``cond``)."""
        rank = self.order.index(stream)
        if rank == 0:
            return stream.queued < _PREFETCH_DEPTH
        return self.held + size <= self.budget >> (rank - 1)


class _Prefetch:
    """Decompress on a worker thread while the caller parses tar headers.

    zlib, zstd and hashlib release the GIL on large buffers, so reading the
    blob (and verifying its digest), inflating it and parsing the tar overlap
    on two cores instead of taking turns. What the worker may queue is bounded
    by its :class:`Readahead`, and every limit is still enforced by the
    consumer (:class:`_Meter`) as chunks arrive. An exception in the
    worker is re-raised in the caller on its next read.

    Each chunk carries the count of compressed bytes read when it was made, so
    progress is reported by the parser, for what it has parsed, in its thread.
    """

    def __init__(
        self,
        inner: Any,
        compressed: _Compressed,
        readahead: Readahead,
        *,
        meter: Callable[[int, int], None],
        report: Callable[[int], None],
    ) -> None:
        self._inner = inner
        self._compressed = compressed
        self._readahead = readahead
        self._meter = meter
        self._report = report
        #: (chunk or exception, charged to the readahead budget, compressed bytes read so far)
        self._chunks: deque[tuple[bytes | BaseException, bool, int]] = deque()
        self._stopped = False
        self._eof = False
        with readahead.cond:
            readahead.order.append(self)
        self._thread = threading.Thread(target=self._run, name="sbom-layer-prefetch", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return len(self._chunks)

    def _run(self) -> None:
        try:
            while True:
                chunk: bytes = self._inner.read(_CHUNK)
                if not self._put(chunk) or not chunk:
                    return
        except BaseException as e:  # handed to the consumer, which raises it in its own thread
            self._put(e)

    def _put(self, item: bytes | BaseException) -> bool:
        """Queue one item once the readahead admits it; False when the stream was stopped meanwhile."""
        size = len(item) if isinstance(item, bytes) else 0
        readahead = self._readahead
        with readahead.cond:
            while not self._stopped and not readahead.admits(self, size):
                readahead.cond.wait()
            if self._stopped:
                return False
            charged = size > 0 and readahead.order[0] is not self
            readahead.held += size if charged else 0
            self._chunks.append((item, charged, self._compressed.count))
            readahead.cond.notify_all()
            return True

    def _take(self) -> tuple[bytes | BaseException, int]:
        readahead = self._readahead
        with readahead.cond:
            while not self._chunks:
                readahead.cond.wait()
            item, charged, count = self._chunks.popleft()
            if charged:
                readahead.held -= len(cast(bytes, item))
            readahead.cond.notify_all()
        return item, count

    def chunk(self) -> bytes:
        """The next decompressed chunk, b"" at the end; a worker's exception is raised here."""
        if self._eof:
            return b""
        item, count = self._take()
        if isinstance(item, BaseException):
            self._eof = True
            raise item
        if not item:
            self._eof = True
        self._meter(len(item), count)
        self._report(count)
        return item

    def stop(self) -> None:
        """Drop what is queued and leave the readahead; the worker ends at its next chunk boundary."""
        readahead = self._readahead
        with readahead.cond:
            self._stopped = True
            readahead.held -= sum(len(cast(bytes, item)) for item, charged, _ in self._chunks if charged)
            self._chunks.clear()
            if self in readahead.order:
                readahead.order.remove(self)
            readahead.cond.notify_all()

    def join(self) -> None:
        self._thread.join(timeout=10)


class Budget:
    """Decompressed bytes spent over every layer and pass of one SBOM."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.spent = 0


class _Meter:
    """Decompressed layer bytes, refused past the layer, ratio and whole-SBOM limits."""

    def __init__(self, digest: str, budget: Budget) -> None:
        self._digest = digest
        self._budget = budget
        self.count = 0

    def __call__(self, size: int, compressed: int) -> None:
        """Count ``size`` more bytes, made from the first ``compressed`` bytes of the blob."""
        limits = self._budget.limits
        self.count += size
        self._budget.spent += size
        if self.count > limits.max_layer_bytes:
            raise SbomError(
                f"layer {self._digest}: decompresses to more than {limits.max_layer_bytes} bytes "
                "(decompression bomb?)"
            )
        if self.count > limits.ratio_floor and self.count > limits.max_ratio * max(compressed, 1):
            raise SbomError(
                f"layer {self._digest}: expands more than {limits.max_ratio}-fold "
                f"({compressed} -> {self.count} bytes so far; decompression bomb?)"
            )
        if self._budget.spent > limits.max_total_bytes:
            raise SbomError(
                f"layer {self._digest}: the image decompresses to more than {limits.max_total_bytes} bytes in all"
            )


@contextmanager
def layer_errors(digest: str) -> Iterator[None]:
    """Report a corrupt stream as an SbomError naming the layer; digest and store errors pass through."""
    try:
        yield
    except (TarFormatError, zlib.error, EOFError, zstandard.ZstdError) as e:
        raise SbomError(f"layer {digest}: not a readable tar stream ({e})") from None
    except TarLimitError as e:
        raise SbomError(f"layer {digest}: {e}") from None


class LayerReader:
    """One streaming pass over a layer's tar members, in archive order.

    Use as a context manager; iterate :meth:`members`, and call :meth:`read`
    only for the member most recently yielded (a stream cannot go back).
    :meth:`start` may come earlier (see :class:`LayerQueue`): the blob is then
    opened and decompressing ahead, but no tar header is parsed before
    :meth:`members`, since parsing would wait on a worker the readahead may
    hold back.
    """

    def __init__(
        self,
        layer: LayerInput,
        budget: Budget,
        *,
        what: str,
        progress: Progress,
        readahead: Readahead | None = None,
    ) -> None:
        self.layer = layer
        self.digest = layer.descriptor.digest
        self._budget = budget
        self.what = what
        self._progress = progress
        self._readahead = readahead or Readahead(0)
        self._raw: IO[bytes] | None = None
        self._tar: TarStream | None = None
        self._compressed: _Compressed | None = None
        self._prefetch: _Prefetch | None = None
        self._reported = 0

    def __enter__(self) -> LayerReader:
        if self._raw is None:
            self.start()
        return self

    def start(self) -> None:
        """Open the blob and start decompressing it."""
        declared = compression_of(self.layer.descriptor.media_type, self.digest)
        self._raw = self.layer.open()
        try:
            self._open_stream(self._raw, declared)
        except BaseException:
            self.close()
            raise

    def _open_stream(self, raw: IO[bytes], declared: str | None) -> None:
        compressed = _Compressed(raw)
        self._compressed = compressed
        head = b""
        while len(head) < 4 and (more := compressed.read(4 - len(head))):  # a network read may come up short
            head += more
        kind = declared or (
            "gzip" if head.startswith(_GZIP_MAGIC) else "zstd" if head == _ZSTD_MAGIC else "tar"
        )
        if kind == "gzip" and not head.startswith(_GZIP_MAGIC):
            raise SbomError(f"layer {self.digest}: declared gzip, but the blob is not gzip data")
        if kind == "zstd" and head != _ZSTD_MAGIC:
            raise SbomError(f"layer {self.digest}: declared zstd, but the blob is not zstd data")
        # The wrappers implement only read(); the decompressors need nothing else.
        source = cast(IO[bytes], _Prefixed(head, cast(IO[bytes], compressed)))
        inner: Any
        if kind == "gzip":
            inner = _Gunzip(source)
        elif kind == "zstd":
            inner = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
        else:
            inner = source
        meter = _Meter(self.digest, self._budget)
        self._prefetch = _Prefetch(inner, compressed, self._readahead, meter=meter, report=self._report)

    def _report(self, count: int) -> None:
        """Progress of the parse, in compressed bytes, every 8 MiB and at the end."""
        total = self.layer.descriptor.size
        if count - self._reported >= 8 * MiB or count >= total > self._reported:
            self._reported = count
            self._progress(self.what, count, total)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker, then close the blob so a worker blocked reading it wakes up, then wait."""
        if self._prefetch is not None:
            self._prefetch.stop()
        if self._raw is not None:
            self._raw.close()
        if self._prefetch is not None:
            self._prefetch.join()

    def members(self) -> Iterator[Member]:
        """Every member header in order; ends only after the blob has been read to EOF and verified."""
        prefetch = self._prefetch
        assert prefetch is not None, "members() outside the with block"
        limits = self._budget.limits
        tar = self._tar = TarStream(
            prefetch.chunk, max_header_bytes=limits.max_header_bytes, max_chained_headers=_MAX_CHAINED_HEADERS
        )
        count = 0
        while True:
            with layer_errors(self.digest):
                info = tar.next()
            if info is None:
                break
            count += 1
            if count > limits.max_members:
                raise SbomError(f"layer {self.digest}: more than {limits.max_members} tar members")
            if info.size > limits.max_layer_bytes:
                raise SbomError(f"layer {self.digest}: member {info.name!r} declares {info.size} bytes")
            yield info
        self._finish(tar)

    def read(self, info: Member) -> IO[bytes]:
        """The content stream of the member just yielded by :meth:`members`."""
        assert self._tar is not None
        return cast(IO[bytes], _Checked(self._tar.content(info), self.digest))

    def _finish(self, tar: TarStream) -> None:
        with layer_errors(self.digest):
            for chunk in tar.rest():
                if chunk.count(0) != len(chunk):
                    raise SbomError(
                        f"layer {self.digest}: data after the end of the tar archive",
                        hint="the archive is truncated or has a corrupt header; a runtime would refuse it too",
                    )
            # The decompressor may stop at its own end marker; the digest is checked only at the blob's EOF.
            assert self._compressed is not None
            drained = self._compressed.read(_CHUNK)
            while drained:
                drained = self._compressed.read(_CHUNK)
        self._report(self._compressed.count)


class _Checked:
    """A member's content whose read errors (a truncated or corrupt stream) name the layer."""

    def __init__(self, content: MemberContent, digest: str) -> None:
        self._content = content
        self._digest = digest

    def read(self, n: int = -1) -> bytes:
        with layer_errors(self._digest):
            return self._content.read(n)


class LayerQueue:
    """Layer readers handed out in parse order, the next few already decompressing.

    :meth:`take` returns the next layer's reader (for a ``with`` block, which
    closes it) and starts up to ``_LAYERS_AHEAD`` readers after it, which share
    one :class:`Readahead`; with no readahead budget, no layer is opened before
    its turn. Leaving the queue closes whatever it still holds, so an error in
    one layer stops every worker.
    """

    def __init__(self, layers: Sequence[tuple[LayerInput, str]], budget: Budget, progress: Progress) -> None:
        self._pending = deque(layers)
        self._budget = budget
        self._progress = progress
        self._readahead = Readahead(budget.limits.readahead_bytes)
        self._ahead = _LAYERS_AHEAD if budget.limits.readahead_bytes > 0 else 0
        self._open: deque[LayerReader] = deque()

    def __enter__(self) -> LayerQueue:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        while self._open:
            self._open.popleft().close()

    def take(self) -> LayerReader:
        while self._pending and len(self._open) <= self._ahead:
            layer, what = self._pending.popleft()
            reader = LayerReader(
                layer, self._budget, what=what, progress=self._progress, readahead=self._readahead
            )
            reader.start()
            self._open.append(reader)
        if not self._open:
            raise IndexError("no layer left")
        return self._open.popleft()


@contextmanager
def quick_handoff() -> Iterator[None]:
    """Hand the GIL to waiting workers sooner while layers are read; restored afterwards."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, _SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
