"""The squashed view: whiteouts, links and hostile names, seen through a tiny reader of its own."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from typing import IO, Any

import pytest

from chaingate.sbom import LayerInput
from chaingate.sbom import view as view_module
from chaingate.sbom.catalogers.base import BytesReader, Skip
from chaingate.sbom.interface import DEFAULT_LIMITS, Limits
from chaingate.sbom.view import Resolution, View, build_view, normalise
from chaingate_testing.images import Dir, File, Hardlink, OpaqueDir, RawMember, Symlink, Whiteout

Make = Callable[..., LayerInput]


class Wanting(BytesReader):
    """Keeps every file whose name ends with one of ``suffixes``, and the exact paths it is given."""

    name = "test"

    def __init__(
        self,
        *suffixes: str,
        exact: tuple[str, ...] = (),
        dirs: tuple[str, ...] = (),
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(limits)
        self.suffixes = suffixes
        self.exact = exact
        self.dirs = dirs

    @property
    def exact_paths(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.exact

    @property
    def exact_dirs(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.dirs

    def wants(self, path: str) -> bool:
        return path in self.exact or path.endswith(self.suffixes) or path.rpartition("/")[0] in self.dirs


def contents(view: View, reader: int = 0) -> dict[str, bytes]:
    return {f.path: f.content for f in view.found(reader)}


def run(layers: list[LayerInput], *readers: Any, limits: Limits = DEFAULT_LIMITS) -> View:
    return build_view(layers, list(readers) or [Wanting(".txt")], limits, lambda *a: None)


def raw(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    return info


def test_normalise_clamps_dot_dot_at_the_root() -> None:
    assert normalise("./usr/bin/../lib/x") == "usr/lib/x"
    assert normalise("/etc/os-release") == "etc/os-release"
    assert normalise("../../etc/passwd") == "etc/passwd"
    assert normalise("a/../../b") == "b"
    assert normalise("./") == ""


def test_later_layers_win_and_each_layer_is_streamed_once(layer: Make, opens: Any) -> None:
    base = layer(Dir("a"), File("a/x.txt", b"old"), File("a/y.txt", b"kept"))
    top = layer(Dir("a"), File("a/x.txt", b"new"), compression="zstd")
    assert contents(run([base, top])) == {"a/x.txt": b"new", "a/y.txt": b"kept"}
    assert sorted(opens.counts.values()) == [1, 1]


def test_whiteout_hides_a_file_and_a_whole_directory(layer: Make) -> None:
    base = layer(
        File("a/x.txt", b"1"), File("d/sub/y.txt", b"2"), File("d/z.txt", b"3"), File("keep.txt", b"4")
    )
    top = layer(Whiteout("a/x.txt"), Whiteout("d"))
    assert contents(run([base, top])) == {"keep.txt": b"4"}


def test_opaque_directory_hides_lower_children_but_not_its_own(layer: Make) -> None:
    base = layer(File("d/old.txt", b"old"), File("d/deep/old.txt", b"old"), File("other.txt", b"o"))
    top = layer(Dir("d"), OpaqueDir("d"), File("d/new.txt", b"new"))
    assert contents(run([base, top])) == {"d/new.txt": b"new", "other.txt": b"o"}


def test_whiteout_applies_only_to_lower_layers(layer: Make) -> None:
    base = layer(File("f.txt", b"lower"))
    top = layer(Whiteout("f.txt"), File("f.txt", b"recreated"))
    assert contents(run([base, top])) == {"f.txt": b"recreated"}


def test_a_file_replacing_a_directory_hides_its_old_children(layer: Make) -> None:
    base = layer(Dir("lib"), File("lib/a.txt", b"a"))
    top = layer(Symlink("lib", "usr/lib"))
    assert contents(run([base, top])) == {}


def test_duplicate_member_in_one_layer_last_one_wins(layer: Make) -> None:
    base = layer(File("x.txt", b"first"), File("x.txt", b"second"))
    assert contents(run([base])) == {"x.txt": b"second"}


def test_exact_path_through_a_symlink_reads_the_target(layer: Make, opens: Any) -> None:
    reader = Wanting(exact=("etc/os-release",))
    base = layer(
        File("usr/lib/os-release", b"ID=debian\n"), Symlink("etc/os-release", "../usr/lib/os-release")
    )
    view = run([base], reader)
    assert contents(view) == {"etc/os-release": b"ID=debian\n"}
    # The target was not wanted by name, so its layer is read once more, for that member only.
    assert list(opens.counts.values()) == [2]


def test_exact_path_through_a_symlinked_directory_in_a_lower_layer(layer: Make) -> None:
    reader = Wanting(exact=("var/lib/db/status",))
    base = layer(File("usr/share/db/status", b"v1"), Symlink("var/lib/db", "/usr/share/db"))
    top = layer(File("usr/share/db/status", b"v2"))
    assert contents(run([base, top], reader)) == {"var/lib/db/status": b"v2"}


def test_symlink_climbing_above_the_root_stays_at_the_root(layer: Make) -> None:
    """As in the kernel and securejoin, ``..`` at the root is the root: the link leads into the image."""
    reader = Wanting(exact=("etc/os-release",))
    base = layer(
        File("etc-real/os-release", b"ID=x"), Symlink("etc/os-release", "../../../../etc-real/os-release")
    )
    view = run([base], reader)
    assert contents(view) == {"etc/os-release": b"ID=x"}
    assert view.warnings == []


def test_link_climbing_above_the_root_in_the_middle_of_a_path(layer: Make) -> None:
    reader = Wanting(exact=("usr/lib/x/os-release",))
    base = layer(File("etc/os-release", b"ID=y"), Symlink("usr/lib/x", "../../../../../etc"))
    view = run([base], reader)
    assert contents(view) == {"usr/lib/x/os-release": b"ID=y"}
    assert view.resolve("usr/lib/x/os-release").path == "etc/os-release"
    # x leads to etc, whose parent is the root, whose parent is the root.
    assert view.resolve("usr/lib/x/../../../../usr/lib/x/os-release").path == "etc/os-release"


def test_chain_of_directory_links_each_clamped_at_the_root(layer: Make) -> None:
    reader = Wanting(exact=("var/lib/db/status",))
    base = layer(
        File("store/db/status", b"deep"),
        Symlink("var", "../../private/var"),  # relative to the root: clamped to private/var
        Symlink("private/var/lib", "../../../../store"),  # from private/var: up past the root, to store
    )
    top = layer(Dir("private"), Dir("private/var"))
    view = run([base, top], reader)
    assert contents(view) == {"var/lib/db/status": b"deep"}
    assert view.resolve("var/lib/db/status").links == 2


def test_absolute_targets_start_from_the_image_root(layer: Make) -> None:
    reader = Wanting(exact=("var/lib/db/status", "etc/os-release"))
    base = layer(
        File("opt/db/status", b"db"),
        File("usr/lib/os-release", b"os"),
        Symlink("var/lib/db", "/../../opt/./db/"),
        Symlink("etc", "//usr/lib/../lib"),
    )
    view = run([base], reader)
    assert contents(view) == {"var/lib/db/status": b"db", "etc/os-release": b"os"}


def test_symlink_loop_on_a_wanted_path_is_a_warning(layer: Make) -> None:
    reader = Wanting(exact=("var/lib/db/status",))
    base = layer(Symlink("var/lib/a", "b"), Symlink("var/lib/b", "./a"), Symlink("var/lib/db", "a"))
    view = run([base], reader)
    assert contents(view) == {}
    assert len(view.warnings) == 1
    assert view.warnings[0].startswith("var/lib/db/status (test): not read: more than 40 symlinks")


def test_forty_links_are_followed_and_a_forty_first_is_a_warning(layer: Make) -> None:
    """Linux's MAXSYMLINKS: a lookup may follow 40 links; the 41st is ELOOP."""
    chain = [Symlink(f"d{i}", f"d{i + 1}") for i in range(41)]  # d0 -> d1 -> ... -> d41, a directory
    base = layer(File("d41/status", b"end"), *chain)
    view = run([base], Wanting(exact=("d1/status", "d0/status")))
    assert view.resolve("d1/status") == Resolution("d41/status", 40)
    assert contents(view) == {"d1/status": b"end"}
    assert len(view.warnings) == 1 and view.warnings[0].startswith("d0/status (test): not read: more than 40")


def test_dangling_link_on_a_wanted_path_is_a_warning_and_a_missing_file_is_not(layer: Make) -> None:
    """rpm looks for three database names under var/lib/rpm (a link on Fedora): absent ones say nothing."""
    reader = Wanting(
        exact=("var/lib/db/status", "var/lib/db/other", "var/lib/rpm/Packages", "var/lib/rpm/rpmdb")
    )
    base = layer(
        Symlink("var/lib/db", "../../../../nowhere"),
        File("elsewhere/status", b"x"),
        File("usr/lib/sysimage/rpm/rpmdb", b"db"),
        Symlink("var/lib/rpm", "../../usr/lib/sysimage/rpm"),
    )
    view = run([base], reader)
    assert contents(view) == {"var/lib/rpm/rpmdb": b"db"}
    assert view.warnings == [
        f"var/lib/db/{name} (test): not read: symlink var/lib/db -> ../../../../nowhere leads to nothing "
        "in the image"
        for name in ("status", "other")
    ]


def test_a_path_links_make_longer_than_any_path_ends_the_walk(layer: Make) -> None:
    """Links may not build ever longer paths (ENAMETOOLONG): each step is bounded by the longest name."""
    deep = "/".join("d" * 10)
    reader = Wanting(exact=(f"{deep}/x/status",), limits=Limits(max_path_length=64))
    target = "/".join(["aaaa"] * 9)  # a directory of exactly 64 characters, beside the link
    base = layer(Dir(f"{deep}/{target}"), Symlink(f"{deep}/x", target))
    view = run([base], reader, limits=Limits(max_path_length=64))
    assert view.warnings == [f"{deep}/x/status (test): not read: leads to a path of more than 64 characters"]


def test_files_of_a_wanted_directory_behind_a_link_are_read_under_its_path(layer: Make) -> None:
    bad = [Symlink(f"real/bad{i:02d}", f"/gone{i}") for i in range(15)]
    base = layer(File("real/good", b"ok"), File("real/sub/deeper", b"no"), *bad, Symlink("db", "../../real"))
    view = run([base], Wanting(dirs=("db",)))
    assert contents(view) == {"db/good": b"ok"}
    assert view.warnings == [
        *(
            f"db/bad{i:02d} (test): not read: symlink real/bad{i:02d} -> /gone{i} leads to nothing in the image"
            for i in range(10)
        ),
        "db (test): 5 more files not read",
    ]


def test_symlink_walking_is_bounded_for_the_whole_image(layer: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(view_module, "_RESOLVE_STEPS", 100)
    chains = [Symlink(f"real/f{i:02d}", f"{'./' * 20}../real/g{i:02d}") for i in range(20)]
    base = layer(*chains, *(File(f"real/g{i:02d}", b"x") for i in range(20)), Symlink("db", "real"))
    view = run([base], Wanting(dirs=("db",)))
    assert 0 < len(contents(view)) < 20
    assert view.warnings[-1].endswith("not read: too many symlink steps for one image; stopped")
    assert len(view.warnings) == 1


def test_hostile_link_targets_make_one_bounded_warning_line(layer: Make) -> None:
    reader = Wanting(exact=("var/lib/db/status",))
    target = "../x\n\x1b[31m##[set-output name=ok]\u2028" + "y" * 3000
    view = run([layer(Symlink("var/lib/db", target))], reader)
    (warning,) = view.warnings
    assert warning.isprintable() and len(warning) < 600
    assert "-> ../x \\x1b[31m#\\x23[set-output name=ok] yyy" in warning
    assert warning.endswith("\u2026 leads to nothing in the image")


def test_symlink_loops_are_bounded(layer: Make) -> None:
    reader = Wanting(exact=("a",))
    base = layer(Symlink("a", "b"), Symlink("b", "a"))
    view = run([base], reader, limits=Limits(max_link_depth=5))
    assert contents(view) == {}


def test_hardlink_to_a_visible_file_is_catalogued_once(layer: Make) -> None:
    base = layer(File("a.txt", b"same"), Hardlink("b.txt", "a.txt"))
    assert contents(run([base])) == {"a.txt": b"same"}


def test_hardlink_whose_target_was_deleted_above_still_has_its_content(layer: Make, opens: Any) -> None:
    base = layer(File("data.bin", b"payload"), Hardlink("copy.txt", "data.bin"))
    top = layer(Whiteout("data.bin"))
    assert contents(run([base, top])) == {"copy.txt": b"payload"}
    assert sorted(opens.counts.values()) == [1, 2]  # the hidden target is fetched in a second pass


def test_hardlink_outside_the_root_is_clamped_into_the_view(layer: Make) -> None:
    hostile = RawMember(raw("evil.txt", tarfile.LNKTYPE, linkname="../../../../etc/hostname"))
    base = layer(File("etc/hostname", b"inside-the-image"), hostile)
    # The link names a path inside the image after clamping; the host's /etc is never read.
    assert contents(run([base])) == {"evil.txt": b"inside-the-image"}


def test_hardlink_to_nothing_is_ignored(layer: Make) -> None:
    base = layer(RawMember(raw("dangling.txt", tarfile.LNKTYPE, linkname="../../../etc/shadow")))
    assert contents(run([base])) == {}


def test_path_traversal_names_land_inside_the_view(layer: Make) -> None:
    base = layer(RawMember(raw("../../../escape.txt"), b"x"), RawMember(raw("/abs/ok.txt"), b"y"))
    assert contents(run([base])) == {"escape.txt": b"x", "abs/ok.txt": b"y"}


def test_devices_and_fifos_are_not_read_but_hide_what_is_below(layer: Make) -> None:
    base = layer(File("pipe.txt", b"lower"), File("dev/null.txt", b"lower"))
    top = layer(RawMember(raw("pipe.txt", tarfile.FIFOTYPE)), RawMember(raw("dev/null.txt", tarfile.CHRTYPE)))
    assert contents(run([base, top])) == {}


def test_executables_are_offered_to_readers_that_ask(layer: Make) -> None:
    class Binaries(Wanting):
        wants_executables = True

    base = layer(File("app/server", b"\x7fELF", mode=0o755), File("app/data", b"no", mode=0o644))
    assert contents(run([base], Binaries())) == {"app/server": b"\x7fELF"}


def test_oversized_files_are_skipped_with_a_warning(layer: Make) -> None:
    small = Limits(max_file_bytes=10)
    view = run([layer(File("big.txt", b"x" * 11), File("ok.txt", b"fine"))], Wanting(".txt", limits=small))
    assert contents(view) == {"ok.txt": b"fine"}
    assert any("big.txt" in w and "over the 10-byte limit" in w for w in view.warnings)


def test_skip_from_a_reader_becomes_a_warning(layer: Make) -> None:
    class Picky(Wanting):
        def capture(self, path: str, stream: IO[bytes], size: int) -> bytes | None:
            raise Skip("not my kind of file")

    view = run([layer(File("a.txt", b"1"))], Picky(".txt"))
    assert contents(view) == {}
    assert view.warnings == [
        "a.txt (layer sha256:" + view.layers[0].descriptor.digest[7:19] + "): test: not my kind of file"
    ]


def test_two_readers_of_one_file_both_get_it(layer: Make) -> None:
    view = run([layer(File("a.txt", b"both"))], Wanting(".txt"), Wanting("a.txt"))
    assert contents(view, 0) == contents(view, 1) == {"a.txt": b"both"}


def test_found_names_the_layer_the_content_came_from(layer: Make) -> None:
    base, top = layer(File("a.txt", b"1")), layer(File("b.txt", b"2"))
    layers = {f.path: f.layer for f in run([base, top]).found(0)}
    assert layers == {"a.txt": base.descriptor.digest, "b.txt": top.descriptor.digest}
