"""A squashed, read-only view of an image's final filesystem, read in one streaming pass per layer.

Design: layers are read **top layer first**. Whether a member of layer *i* is
visible in the final filesystem depends only on the layers above it (their
entries, whiteouts and opaque directories) and on later members of layer *i*
itself. Reading from the top down, the upper state is complete before layer *i*
starts, so each member's visibility is decided the moment its header is read,
and a wanted, visible file is handed to its catalogers while it streams by. No
layer is extracted, no file content is kept that a cataloger did not ask for,
and the total work is one decompression of each layer.

What stays in memory: the path index of the visible filesystem (one small
entry per path), each cataloger's reduced captures, and at most one file's
bytes at a time (bounded by ``Limits.max_file_bytes``) when two catalogers want
the same file.

A layer is read a second time only when a link needs content the first pass
had no reason to keep: a hardlink whose target member was not itself wanted or
is hidden, or a well-known path (``FileReader.exact_paths``) that turns out to
be a symlink to a file no reader wanted by its own name. Such layers are
re-streamed once each, capturing just those members by their position in the
stream (digest-verified, so identical on every read).

Safety: member names are normalised lexically, with ``..`` clamped at the root
as container runtimes (containerd) do when they apply a layer, so a file cannot
hide from the SBOM by naming itself ``../../usr/...`` and can never escape the
view either: nothing here touches the host filesystem. Hardlink targets are
clamped the same way and resolved inside the same layer. Symlinks are resolved
only within the view, with the kernel's semantics inside a chroot (which is also
what securejoin gives runc and containerd): an absolute target starts from the
image root, ``..`` never climbs above it, and at most ``Limits.max_link_depth``
links are followed for one path (Linux's MAXSYMLINKS is 40). A link that climbs
"above" the root therefore still leads somewhere in the image, as it does in
the running container; hiding a package database behind one must not hide it
from the SBOM. A wanted path that does not resolve (a dangling link, a loop, too
many links) is a warning in the SBOM, never a silent omission. Devices, fifos
and sockets are ignored.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chaingate.oci.interface import Progress
from chaingate.sbom.catalogers.base import FileReader, Found, Skip
from chaingate.sbom.interface import LayerInput, Limits, SbomError
from chaingate.sbom.layers import Budget, LayerQueue, LayerReader, layer_errors, quick_handoff, short
from chaingate.text import one_line

log = logging.getLogger(__name__)

#: Entry kinds; _OTHER (devices, fifos, sockets) hides what is below it and holds nothing to read.
_DIR, _FILE, _SYMLINK, _HARDLINK, _OTHER = 0, 1, 2, 3, 4
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"

Warn = Callable[[str], None]
#: Longest warning kept, and the most of one image-supplied string (a path, a link target) shown in one.
_WARNING_LENGTH = 1024
_SHOWN_LENGTH = 200
#: Path components walked by all symlink resolutions of one image together. One path may walk about
#: 40 targets of up to 4096 components each; an image whose wanted directory holds many such paths
#: would otherwise cost minutes, while real images walk a few hundred components in all.
_RESOLVE_STEPS = 1_000_000
#: Files of one wanted directory that may fail to resolve, each with its own warning, before the rest
#: are counted in one line.
_DIR_WARNINGS = 10
_EXHAUSTED = "too many symlink steps for one image; stopped"


@dataclass(slots=True)
class _Entry:
    """One path of the final filesystem."""

    layer: int
    kind: int
    #: Position of the member in its layer's stream (-1 for directories implied by their children).
    ordinal: int
    size: int = 0
    mode: int = 0
    #: Symlink target as written, or the normalised path a hardlink names.
    link: str = ""
    #: For a hardlink: the ordinal of the regular member it shares content with, -1 when not in its layer.
    target: int = -1


@dataclass(frozen=True)
class _Fetch:
    """Content the first pass did not keep, to be read from ``layer`` in a second pass."""

    layer: int
    ordinal: int
    reader: int
    path: str
    size: int


def normalise(name: str) -> str | None:
    """A member or link name as a root-relative path; ``..`` never climbs above the root.

    Returns "" for the root itself and None for names with a NUL byte (which no
    filesystem can hold).
    """
    if "\x00" in name:
        return None
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
    return "/".join(parts)


def shown(text: str, limit: int = _SHOWN_LENGTH) -> str:
    """Image-supplied text fit for a one-line warning (see :func:`chaingate.text.one_line`), bounded.

    Names and link targets come from the layer's author, who may put newlines,
    terminal escapes or CI workflow commands in them to forge or hide lines in
    a log or an SBOM; each is bounded on its own so one long name cannot push
    the rest of a warning out.
    """
    return one_line(text, limit)


@dataclass(frozen=True)
class Resolution:
    """Where a path of the view leads through its symlinks."""

    #: The path with no symlink left in it, or None when it does not resolve.
    path: str | None
    #: Symlinks followed on the way.
    links: int = 0
    #: Why it does not resolve, for a warning ("" when it does).
    problem: str = ""


def _parent(path: str) -> str:
    i = path.rfind("/")
    return path[:i] if i >= 0 else ""


class View:
    """The final filesystem's path index, plus what each reader captured from it."""

    def __init__(
        self, layers: Sequence[LayerInput], readers: Sequence[FileReader[Any]], limits: Limits
    ) -> None:
        self.layers = layers
        self.readers = readers
        self.limits = limits
        self.entries: dict[str, _Entry] = {}
        # Upper-layer state: descendants of these paths are hidden from lower layers
        # (opaque directories and anything that is not a directory), and these paths
        # are deleted together with everything below them (whiteouts).
        self._hide_below: set[str] = set()
        self._whiteouts: set[str] = set()
        #: (reader index, path) -> (layer index, captured content)
        self.captured: dict[tuple[int, str], tuple[int, Any]] = {}
        self.warnings: list[str] = []
        self._fetches: list[_Fetch] = []
        self._steps_left = _RESOLVE_STEPS

    # -- building ---------------------------------------------------------------------------

    def build(self, budget: Budget, progress: Progress) -> None:
        total = len(self.layers)
        order = list(reversed(range(total)))
        with quick_handoff():
            with LayerQueue(
                [(self.layers[i], f"layer {i + 1}/{total}") for i in order], budget, progress
            ) as queue:
                for index in order:
                    with queue.take() as reader:
                        self._first_pass(index, reader, progress)
            self._follow_exact_paths()
            by_layer: dict[int, list[_Fetch]] = defaultdict(list)
            for fetch in self._fetches:
                by_layer[fetch.layer].append(fetch)
            for index in sorted(by_layer, reverse=True):
                self._second_pass(
                    index, by_layer[index], budget, progress, f"layer {index + 1}/{total} (links)"
                )

    def warn(self, message: str) -> None:
        message = shown(message, _WARNING_LENGTH)
        log.warning("sbom: %s", message)
        self.warnings.append(message)

    def _hidden(self, path: str) -> bool:
        if path in self.entries or path in self._whiteouts:
            return True
        hide_below, whiteouts = self._hide_below, self._whiteouts
        i = path.rfind("/")
        while i > 0:
            ancestor = path[:i]
            if ancestor in hide_below or ancestor in whiteouts:
                return True
            i = path.rfind("/", 0, i)
        return "" in hide_below

    def _wanting(self, path: str, mode: int) -> list[int]:
        executable = mode & 0o111 != 0
        return [
            i for i, r in enumerate(self.readers) if r.wants(path) or (executable and r.wants_executables)
        ]

    def _first_pass(self, index: int, reader: LayerReader, progress: Progress) -> None:
        layer = self.layers[index]
        digest = layer.descriptor.digest
        limits = self.limits
        local: dict[str, _Entry] = {}
        # Every regular member of this layer, visible or not: hardlinks name them.
        regular: dict[str, tuple[int, int]] = {}
        whiteouts: set[str] = set()
        opaques: set[str] = set()
        # (reader, ordinal) -> content (None when offered but nothing kept), and ordinal -> path.
        captures: dict[tuple[int, int], Any] = {}
        capture_paths: dict[int, str] = {}
        progress(reader.what, 0, layer.descriptor.size)
        with layer_errors(digest):
            for ordinal, info in enumerate(reader.members()):
                path = normalise(info.name)
                if not path:
                    continue
                if len(path) > limits.max_path_length:
                    self.warn(f"layer {short(digest)}: path of {len(path)} characters skipped")
                    continue
                base = path[path.rfind("/") + 1 :]
                if base.startswith(_WHITEOUT):
                    parent = _parent(path)
                    if base == _OPAQUE:
                        opaques.add(parent)
                    elif not base.startswith(_WHITEOUT + _WHITEOUT):  # .wh..wh.* is aufs bookkeeping
                        whiteouts.add(f"{parent}/{base[4:]}" if parent else base[4:])
                    if parent and not self._hidden(parent):
                        self._add_parents(local, index, parent + "/x")
                    continue
                if info.isreg():
                    regular[path] = (ordinal, info.size)
                elif info.islnk():
                    target = normalise(info.linkname)
                    if target and target in regular:
                        regular[path] = regular[target]
                if self._hidden(path):
                    continue
                entry = self._entry(info, index, ordinal, regular)
                local[path] = entry
                self._add_parents(local, index, path)
                if entry.kind == _FILE:
                    wanting = self._wanting(path, entry.mode)
                    if wanting:
                        for r, content in self._capture(wanting, path, entry.size, digest, reader, info):
                            captures[(r, ordinal)] = content
                        capture_paths[ordinal] = path
        self._merge(index, local, whiteouts, opaques, captures, capture_paths)

    def _entry(self, info: Any, index: int, ordinal: int, regular: dict[str, tuple[int, int]]) -> _Entry:
        mode = info.mode & 0o7777
        if info.isreg():
            return _Entry(index, _FILE, ordinal, info.size, mode)
        if info.isdir():
            return _Entry(index, _DIR, ordinal, 0, mode)
        if info.issym():
            return _Entry(index, _SYMLINK, ordinal, 0, mode, info.linkname)
        if info.islnk():
            target = normalise(info.linkname) or ""
            found = regular.get(target)
            if found is not None:
                return _Entry(index, _HARDLINK, ordinal, found[1], mode, target, found[0])
            return _Entry(index, _HARDLINK, ordinal, 0, mode, target, -1)
        return _Entry(index, _OTHER, ordinal, 0, mode)

    def _add_parents(self, local: dict[str, _Entry], index: int, path: str) -> None:
        """A member implies its parent directories exist in its layer, hiding lower non-directories there."""
        i = path.rfind("/")
        while i > 0:
            parent = path[:i]
            if parent in local or parent in self.entries:
                return
            local[parent] = _Entry(index, _DIR, -1)
            i = path.rfind("/", 0, i)

    def _capture(
        self, wanting: list[int], path: str, size: int, digest: str, reader: LayerReader, info: Any
    ) -> list[tuple[int, Any]]:
        """Offer one streaming member to the readers that want it: (reader, content or None) for each."""
        readers = self.readers
        results: list[tuple[int, Any]] = []
        fitting: list[int] = []
        for r in wanting:
            if size > readers[r].max_size:
                self.warn(
                    f"{path} (layer {short(digest)}): {size} bytes, over the {readers[r].max_size}-byte "
                    f"limit of the {readers[r].name} cataloger; skipped"
                )
                results.append((r, None))
            else:
                fitting.append(r)
        if len(fitting) > 1 and size > self.limits.max_file_bytes:
            # Two readers of one stream need its bytes in memory; past that bound only the first reads it.
            for r in fitting[1:]:
                self.warn(f"{path} (layer {short(digest)}): too large to offer to {readers[r].name} as well")
                results.append((r, None))
            fitting = fitting[:1]
        if len(fitting) == 1:
            results.append((fitting[0], self._run_capture(fitting[0], path, reader.read(info), size, digest)))
        elif fitting:
            data = reader.read(info).read(size)
            for r in fitting:
                results.append((r, self._run_capture(r, path, io.BytesIO(data), size, digest)))
        return results

    def _run_capture(self, r: int, path: str, stream: Any, size: int, digest: str) -> Any:
        reader = self.readers[r]
        try:
            return reader.capture(path, stream, size)
        except Skip as e:
            self.warn(f"{path} (layer {short(digest)}): {reader.name}: {e}")
            return None

    def _merge(
        self,
        index: int,
        local: dict[str, _Entry],
        whiteouts: set[str],
        opaques: set[str],
        captures: dict[tuple[int, int], Any],
        capture_paths: dict[int, str],
    ) -> None:
        for (r, ordinal), content in captures.items():
            path = capture_paths[ordinal]
            entry = local.get(path)
            if content is not None and entry is not None and entry.ordinal == ordinal:
                self.captured[(r, path)] = (index, content)
        for path, entry in local.items():
            if entry.kind == _HARDLINK:
                self._hardlink(index, path, entry, local, captures)
            if entry.kind != _DIR:
                self._hide_below.add(path)
        self.entries.update(local)
        self._whiteouts |= whiteouts
        self._hide_below |= opaques

    def _hardlink(
        self,
        index: int,
        path: str,
        entry: _Entry,
        local: dict[str, _Entry],
        captures: dict[tuple[int, int], Any],
    ) -> None:
        """A visible hardlink is catalogued only where the file it shares content with is not."""
        if entry.target < 0:
            return  # resolved against the final view once every layer is known
        shown = local.get(entry.link)
        target_visible = shown is not None and shown.ordinal == entry.target
        for r in self._wanting(path, entry.mode):
            attempted = (r, entry.target) in captures
            if target_visible and attempted:
                continue  # the same inode is visible under its first name and was offered there
            if attempted:
                if captures[(r, entry.target)] is not None:
                    self.captured[(r, path)] = (index, captures[(r, entry.target)])
            else:
                self._fetches.append(_Fetch(index, entry.target, r, path, entry.size))

    # -- links --------------------------------------------------------------------------------

    def resolve(self, path: str) -> Resolution:
        """Where ``path`` leads through the view's symlinks, as the kernel would resolve it in a chroot.

        Relative targets start from the link's directory, absolute ones from the
        image root, and ``..`` at the root stays there, so ``/a/../../../b`` is
        ``/b`` (securejoin does the same for runc and containerd). A link whose
        target is not in the view, more than ``max_link_depth`` links, or a
        target longer than a path may be, leave the path unresolved.
        """
        limits = self.limits
        entries = self.entries
        # Components still to walk; a (link, target) pair marks where a link's target ends, so the
        # target can be checked to exist there.
        pending: deque[str | tuple[str, str]] = deque(path.split("/"))
        here = ""  # the real path walked so far: never a symlink, never longer than a path may be
        links = 0
        while pending:
            self._steps_left -= 1
            if self._steps_left < 0:
                return Resolution(None, links, _EXHAUSTED)
            comp = pending.popleft()
            if isinstance(comp, tuple):
                if here and here not in entries:
                    link, target = comp
                    return Resolution(
                        None, links, f"symlink {shown(link)} -> {shown(target)} leads to nothing in the image"
                    )
                continue
            if comp in ("", "."):
                continue
            if comp == "..":
                here = here[: max(here.rfind("/"), 0)]
                continue
            step = f"{here}/{comp}" if here else comp
            if len(step) > limits.max_path_length:
                # No entry is this long (the view skips such names), and walking on would let a few
                # links build paths ever longer: stop, as the kernel does with ENAMETOOLONG.
                return Resolution(
                    None, links, f"leads to a path of more than {limits.max_path_length} characters"
                )
            entry = entries.get(step)
            if entry is None or entry.kind != _SYMLINK:
                here = step
                continue
            links += 1
            if links > limits.max_link_depth:
                return Resolution(
                    None,
                    links,
                    f"more than {limits.max_link_depth} symlinks to follow (a loop?), at {shown(step)}",
                )
            target = entry.link
            if not target or len(target) > limits.max_path_length or "\x00" in target:
                return Resolution(
                    None, links, f"symlink {shown(step)} has an unusable target of {len(target)} characters"
                )
            if target.startswith("/"):
                here = ""
            pending.appendleft((step, target))
            pending.extendleft(reversed(target.split("/")))
        return Resolution(here, links)

    def _content_of(self, path: str) -> tuple[int, int, int] | None:
        """(layer, ordinal, size) of the regular file at ``path`` in the view, following a hardlink."""
        entry = self.entries.get(path)
        if entry is None:
            return None
        if entry.kind == _FILE:
            return entry.layer, entry.ordinal, entry.size
        if entry.kind == _HARDLINK:
            if entry.target >= 0:
                return entry.layer, entry.target, entry.size
            target = self.entries.get(entry.link)
            if target is not None and target.kind == _FILE:
                return target.layer, target.ordinal, target.size
        return None

    def _follow_exact_paths(self) -> None:
        for r, reader in enumerate(self.readers):
            for path in reader.exact_paths:
                if (r, path) in self.captured:
                    continue
                resolution = self.resolve(path)
                real = resolution.path
                if real is None:
                    # Only a path through a link gets here: a path that simply is not there says nothing.
                    self.warn(f"{shown(path)} ({reader.name}): not read: {resolution.problem}")
                    continue
                if real == path or reader.wants(real):
                    continue  # offered under its real path in the first pass already
                content = self._content_of(real)
                if content is not None:
                    layer, ordinal, size = content
                    self._fetches.append(_Fetch(layer, ordinal, r, path, size))
            for directory in reader.exact_dirs:
                self._follow_exact_dir(r, reader, directory)
        # Hardlinks whose target was not an earlier member of their own layer: the final view decides.
        for path, entry in self.entries.items():
            if entry.kind != _HARDLINK or entry.target >= 0:
                continue
            target = self.entries.get(entry.link)
            if target is None or target.kind != _FILE:
                continue
            offered = self._wanting(entry.link, target.mode)
            for r in self._wanting(path, entry.mode):
                if r not in offered:
                    self._fetches.append(_Fetch(target.layer, target.ordinal, r, path, target.size))

    def _follow_exact_dir(self, r: int, reader: FileReader[Any], directory: str) -> None:
        """The files ``reader`` wants in ``directory``, when a symlink leads there: read under the link's path."""
        resolution = self.resolve(directory)
        real = resolution.path
        if real is None:
            self.warn(f"{shown(directory)} ({reader.name}): not read: {resolution.problem}")
            return
        if real == directory:
            return  # its files were offered by their own paths in the first pass
        prefix = f"{real}/" if real else ""
        start = len(prefix)
        # Only directories behind a link get here, so this walk over the index is rare.
        children = [p[start:] for p in self.entries if p.startswith(prefix) and "/" not in p[start:]]
        failed = 0
        for name in sorted(children):
            path = f"{directory}/{name}"
            if (r, path) in self.captured or not reader.wants(path):
                continue
            child = self.resolve(path)  # the file may be a link itself
            if child.path is None:
                failed += 1
                if failed <= _DIR_WARNINGS:
                    self.warn(f"{shown(path)} ({reader.name}): not read: {child.problem}")
                if child.problem == _EXHAUSTED:
                    break
                continue
            if reader.wants(child.path):
                continue  # offered under its real path in the first pass already
            content = self._content_of(child.path)
            if content is not None:
                layer, ordinal, size = content
                self._fetches.append(_Fetch(layer, ordinal, r, path, size))
        if failed > _DIR_WARNINGS:
            self.warn(f"{shown(directory)} ({reader.name}): {failed - _DIR_WARNINGS} more files not read")

    def _second_pass(
        self, index: int, fetches: list[_Fetch], budget: Budget, progress: Progress, what: str
    ) -> None:
        layer = self.layers[index]
        digest = layer.descriptor.digest
        by_ordinal: dict[int, list[_Fetch]] = defaultdict(list)
        for fetch in fetches:
            by_ordinal[fetch.ordinal].append(fetch)
        found: list[tuple[_Fetch, Any]] = []
        with LayerReader(layer, budget, what=what, progress=progress) as reader, layer_errors(digest):
            for ordinal, info in enumerate(reader.members()):
                wanted = by_ordinal.get(ordinal)
                if not wanted or not info.isreg():
                    continue
                if len(wanted) > 1 and info.size <= self.limits.max_file_bytes:
                    data = reader.read(info).read(info.size)
                    streams: list[Any] = [io.BytesIO(data) for _ in wanted]
                else:
                    wanted, streams = wanted[:1], [reader.read(info)]
                for fetch, stream in zip(wanted, streams, strict=True):
                    limit = self.readers[fetch.reader].max_size
                    if info.size > limit:
                        self.warn(
                            f"{fetch.path} (layer {short(digest)}): {info.size} bytes, over {limit}; skipped"
                        )
                        continue
                    content = self._run_capture(fetch.reader, fetch.path, stream, info.size, digest)
                    if content is not None:
                        found.append((fetch, content))
        # Only once the layer has verified at EOF does anything read from it count.
        for fetch, content in found:
            self.captured[(fetch.reader, fetch.path)] = (index, content)

    # -- results ------------------------------------------------------------------------------

    def found(self, reader: int) -> list[Found[Any]]:
        """What one reader captured, in path order, each with the digest of the layer it came from."""
        items = [
            Found(path, self.layers[layer].descriptor.digest, content)
            for (r, path), (layer, content) in self.captured.items()
            if r == reader
        ]
        items.sort(key=lambda f: f.path)
        return items


def build_view(
    layers: Sequence[LayerInput],
    readers: Sequence[FileReader[Any]],
    limits: Limits,
    progress: Progress,
) -> View:
    """Read every layer (top first) and return the final filesystem with each reader's captures."""
    if len(layers) > 10_000:
        raise SbomError(f"image has {len(layers)} layers; refusing more than 10000")
    view = View(layers, readers, limits)
    view.build(Budget(limits), progress)
    return view
