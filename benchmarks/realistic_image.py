"""A realistic container image for the SBOM benchmark and the syft comparison, built from package registries only.

The hand-made fixture images of the test suite prove each rule of the SBOM
engine in isolation; they cannot show that chaingate agrees with another tool
on a real Debian root filesystem, real wheels, a real ``node_modules`` tree,
real shaded jars and a real Go binary, nor how fast it reads a few hundred
MB of layers. This image can, and it is built here rather than pulled because
no registry but PyPI, Debian's and npm's is reachable (by a developer or CI).

Run (as root, from the repository root; needs ``debootstrap``, ``npm``)::

    PYTHONPATH=src .tox/py/bin/python benchmarks/realistic_image.py OUTDIR [--force]

It writes ``OUTDIR/oci`` (OCI layout, tag ``latest``), ``OUTDIR/image.tar``
(docker archive in the docker >= 25 format, the same blobs, so the same
digest) and ``OUTDIR/build.json`` (what went in), and reuses ``OUTDIR`` when
``build.json`` says it holds a complete build of this recipe. The image has
four layers, each what a Dockerfile step would leave behind:

1. ``debootstrap --variant=minbase bookworm`` from the machine's own Debian
   mirror (read from ``/etc/apt/sources.list(.d)``), with apt's lists and
   caches removed as the official ``debian`` images do.
2. ``apt-get install python3 procps && apt-get remove procps`` run *in a
   chroot* (real maintainer scripts, a real dpkg database): procps is left in
   ``Status: deinstall ok config-files``, the state a removed-but-not-purged
   package has, which must not count as installed. The layer is the
   filesystem diff against layer 1, with whiteouts for what was deleted.
3. Application files: pinned wheels unpacked into
   ``/usr/local/lib/python3.11/dist-packages`` the way pip lays them out
   (``tabula-py`` carries a shaded jar with a dozen ``pom.properties``,
   ``py4j`` a jar under ``share/``), an npm app in ``/app`` from ``npm
   install`` (express, esbuild whose ``@esbuild/linux-x64`` package is a Go
   binary, the closure compiler's shaded jar, node-plantuml's jars), and a
   war in ``/opt/webapp`` wrapping the real py4j jar under ``WEB-INF/lib`` with
   a ``pom.properties`` of its own (Maven Central is not reachable, so this one
   archive is assembled here; everything inside it is real).
4. A clean-up step: ``pip uninstall six`` (a per-file whiteout of
   ``six.py`` and one of its dist-info directory), ``rm`` of plantuml's jar
   (per-file whiteout), and ``/opt/webapp`` deleted and recreated with the
   1.0.1 war (an opaque whiteout): none of what it removes may reach an SBOM.

Layers are written with :mod:`chaingate_testing.images` (PAX tars, fixed
mtimes and owners from the files, gzip without timestamps), so the layer
bytes depend only on the files; the files themselves follow Debian's archive
and the registries, which is why nothing may assert on exact package versions
of this image, only on agreement between tools reading the same build.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaingate_testing.images import (
    Dir,
    File,
    Hardlink,
    Layer,
    OpaqueDir,
    Symlink,
    Whiteout,
    build_image,
    write_docker_archive,
    write_layout,
)

#: Bump when the recipe changes, so a cached OUTDIR from an older recipe is rebuilt, not reused.
BUILD_VERSION = 1
SUITE = "bookworm"
APT_INSTALL = ("python3", "procps")
#: Installed and then removed without purge, leaving ``deinstall ok config-files`` in dpkg's status.
APT_REMOVE = ("procps",)
SITE = "usr/local/lib/python3.11/dist-packages"
PREFIX = "usr/local"
#: Pinned so the benchmark image only changes with Debian's point releases, not with PyPI uploads.
PIP_PACKAGES = (
    "requests==2.32.3",
    "urllib3==2.2.3",
    "idna==3.10",
    "certifi==2024.8.30",
    "charset-normalizer==3.4.0",
    "PyYAML==6.0.2",
    "six==1.16.0",
    "attrs==24.2.0",
    "tabula-py==2.10.0",
    "py4j==0.10.9.9",
)
NPM_PACKAGES = (
    "express@4.21.2",
    "esbuild@0.24.2",
    "google-closure-compiler-java@20240317.0.0",
    "node-plantuml@0.9.0",
)
PY4J_JAR = f"{PREFIX}/share/py4j/py4j0.10.9.9.jar"
WEBAPP = "opt/webapp"
PLANTUML_JAR = "app/node_modules/node-plantuml/vendor/plantuml.jar"
CREATED = "2024-06-01T00:00:00Z"
IMAGE_NAME = "chaingate/realistic:latest"
#: Pseudo-filesystems: a container image carries them as empty mount points, never their content.
EMPTY_DIRS = ("dev", "proc", "sys", "run")
CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "DEBIAN_FRONTEND": "noninteractive",
    "LANG": "C.UTF-8",
    "HOME": "/root",
}

Log = Callable[[str], None]
#: The entries this builder writes: all named by path (no RawMember, which only hostile-layer tests need).
Entry = File | Dir | Symlink | Hardlink | Whiteout | OpaqueDir


class BuildError(RuntimeError):
    """A build step failed or a tool is missing; the message says which and what to install."""


@dataclass(frozen=True)
class RealisticImage:
    """A complete build in ``root``: the same image as an OCI layout and as a docker archive."""

    root: Path
    digest: str

    @property
    def layout(self) -> Path:
        return self.root / "oci"

    @property
    def archive(self) -> Path:
        return self.root / "image.tar"

    @property
    def manifest(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.root / "build.json").read_text())
        return doc


def _stderr(message: str) -> None:
    print(f"realistic-image: {message}", file=sys.stderr, flush=True)


def ensure_image(outdir: Path, *, force: bool = False, log: Log = _stderr) -> RealisticImage:
    """The image in ``outdir``, built first unless a complete build of this recipe is already there.

    A lock file serialises concurrent callers (a benchmark and a test run on
    the same cache), so the second one waits and then reuses the first's build.
    """
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    with _locked(outdir / ".lock"):
        if not force:
            cached = complete_image(outdir)
            if cached is not None:
                log(f"reusing {outdir} ({cached.digest})")
                return cached
        return _build(outdir, log)


def complete_image(outdir: Path) -> RealisticImage | None:
    """The build in ``outdir`` if it is complete and of this recipe, else None (never waits for a builder)."""
    marker = outdir / "build.json"
    try:
        doc = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != BUILD_VERSION:
        return None
    image = RealisticImage(outdir, str(doc.get("digest")))
    try:
        index = json.loads((image.layout / "index.json").read_text())
        archive_ok = image.archive.stat().st_size == doc.get("archive_size")
    except (OSError, ValueError):
        return None
    digests = [m.get("digest") for m in index.get("manifests", []) if isinstance(m, dict)]
    return image if archive_ok and image.digest in digests else None


# -- the build ----------------------------------------------------------------------------------------


def _build(outdir: Path, log: Log) -> RealisticImage:
    _check_tools()
    for stale in ("build.json", "image.tar", "oci", "work"):
        path = outdir / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    work = outdir / "work"
    rootfs = work / "rootfs"
    work.mkdir()
    mirror = debian_mirror()

    log(f"debootstrap --variant=minbase {SUITE} from {mirror}")
    _run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror], log)
    _trim_apt(rootfs)
    base = scan(rootfs)
    layer1 = full_layer(rootfs, base)

    log(f"chroot apt-get install {' '.join(APT_INSTALL)}; apt-get remove {' '.join(APT_REMOVE)}")
    _apt_in_chroot(rootfs, log)
    after = scan(rootfs)
    layer2 = diff_layer(rootfs, base, after)

    app = work / "layer3"
    log(f"pip wheels: {' '.join(PIP_PACKAGES)}")
    wheels = _download_wheels(work / "wheels", log)
    for wheel in wheels:
        install_wheel(wheel, app / SITE, app / PREFIX)
    log(f"npm install {' '.join(NPM_PACKAGES)}")
    npm_versions = _npm_app(app / "app", log)
    (app / WEBAPP).mkdir(parents=True)
    py4j = (app / PY4J_JAR).read_bytes()
    (app / WEBAPP / "demo-webapp-1.0.0.war").write_bytes(webapp_war("1.0.0", py4j))
    layer3 = full_layer(app, scan(app))

    layer4 = _cleanup_layer(py4j)
    log("writing layers (gzip)")
    image = build_image(
        [
            Layer(layer1, created_by=f"debootstrap --variant=minbase {SUITE}"),
            Layer(
                layer2,
                created_by=f"RUN apt-get install -y --no-install-recommends {' '.join(APT_INSTALL)}"
                f" && apt-get remove -y {' '.join(APT_REMOVE)} && rm -rf /var/lib/apt/lists/*",
            ),
            Layer(layer3, created_by="COPY dist-packages app opt/webapp /"),
            Layer(layer4, created_by="RUN pip uninstall -y six && rm plantuml.jar && replace /opt/webapp"),
        ],
        env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NODE_ENV=production"),
        entrypoint=("node", "/app/server.js"),
        created=CREATED,
    )
    write_layout(outdir / "oci", image, tag="latest")
    archive = write_docker_archive(outdir / "image.tar", image, repo_tags=(IMAGE_NAME,), oci_layout=True)
    shutil.rmtree(work)
    manifest = {
        "version": BUILD_VERSION,
        "digest": image.digest,
        "mirror": mirror,
        "suite": SUITE,
        "apt_install": list(APT_INSTALL),
        "apt_remove": list(APT_REMOVE),
        "pip": [w.name for w in wheels],
        "npm": npm_versions,
        "layers": [
            {"digest": b.digest, "size": b.descriptor.size, "diff_id": d}
            for b, d in zip(image.layers, image.diff_ids, strict=True)
        ],
        "archive_size": archive.stat().st_size,
    }
    (outdir / "build.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log(f"built {image.digest} in {outdir}")
    return RealisticImage(outdir, image.digest)


def _check_tools() -> None:
    missing = [
        f"{tool} (apt-get install {package})"
        for tool, package in (("debootstrap", "debootstrap"), ("chroot", "coreutils"), ("npm", "npm"))
        if shutil.which(tool) is None
    ]
    if missing:
        raise BuildError(f"missing tools: {', '.join(missing)}")
    if os.geteuid() != 0:
        raise BuildError("debootstrap and chroot need root")


#: The longest any one step may take: a registry that stops answering must fail the build, not hang CI.
STEP_TIMEOUT = 600


def default_cache() -> Path:
    """Where the image is kept between runs on one machine (CI clones are fresh; the machine is not)."""
    base = os.environ.get("CHAINGATE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "chaingate"
    )
    return Path(base) / "realistic-image"


def _run(cmd: Sequence[str], log: Log, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=STEP_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"{' '.join(cmd[:4])} ... did not finish within {STEP_TIMEOUT}s") from None
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise BuildError(f"{' '.join(cmd[:4])} ... exited {result.returncode}:\n{tail}")
    return result.stdout


def debian_mirror(etc: Path = Path("/etc/apt")) -> str:
    """The machine's Debian archive for ``SUITE`` main, from deb822 ``.sources`` or one-line ``.list`` files.

    The machine's mirror is the one this workplace (and CI) can reach; a
    public default might not be. ``REALISTIC_IMAGE_MIRROR`` overrides it.
    """
    override = os.environ.get("REALISTIC_IMAGE_MIRROR")
    if override:
        return override
    files = [etc / "sources.list"]
    if (etc / "sources.list.d").is_dir():
        files += sorted((etc / "sources.list.d").iterdir())
    for path in files:
        if not path.is_file():
            continue
        content = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in content.split("\n\n"):
                fields = _deb822(stanza)
                if (
                    fields.get("enabled", "yes").lower() != "no"
                    and "deb" in fields.get("types", "").split()
                    and SUITE in fields.get("suites", "").split()
                    and "main" in fields.get("components", "").split()
                    and fields.get("uris")
                ):
                    return fields["uris"].split()[0]
        elif path.suffix == ".list" or path.name == "sources.list":
            for line in content.splitlines():
                words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 4 and words[0] == "deb" and words[2] == SUITE and "main" in words[3:]:
                    return words[1]
    raise BuildError(f"no 'deb ... {SUITE} main' source in {etc}; set REALISTIC_IMAGE_MIRROR")


def _deb822(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0] in " \t" and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def _trim_apt(rootfs: Path) -> None:
    """Drop what apt downloaded, as every published Debian image does (and it is not part of the system)."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
        for path in rootfs.glob(pattern):
            if path.is_file() or path.is_symlink():
                path.unlink()
            elif path.is_dir() and path.name != "partial":
                shutil.rmtree(path)


def _apt_in_chroot(rootfs: Path, log: Log) -> None:
    """Real apt and dpkg, maintainer scripts included, so the status database is exactly what apt leaves."""
    resolv = rootfs / "etc/resolv.conf"
    saved = resolv.read_bytes() if resolv.is_file() else None
    shutil.copyfile("/etc/resolv.conf", resolv)
    try:
        base = ["chroot", str(rootfs), "apt-get", "-q", "-y", "-o", "APT::Sandbox::User=root"]
        _run([*base, "update"], log, env=CHROOT_ENV)
        _run([*base, "install", "--no-install-recommends", *APT_INSTALL], log, env=CHROOT_ENV)
        _run([*base, "remove", *APT_REMOVE], log, env=CHROOT_ENV)
        _run([*base, "clean"], log, env=CHROOT_ENV)
    finally:
        if saved is None:
            resolv.unlink(missing_ok=True)
        else:
            resolv.write_bytes(saved)
    _trim_apt(rootfs)


def _download_wheels(dest: Path, log: Log) -> list[Path]:
    """Wheels for Debian bookworm's CPython 3.11 on x86_64, whatever interpreter runs this script."""
    dest.mkdir(parents=True, exist_ok=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--timeout=60",
            "--retries=3",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "--platform",
            "manylinux2014_x86_64",
            "--dest",
            str(dest),
            *PIP_PACKAGES,
        ],
        log,
    )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != len(PIP_PACKAGES):
        raise BuildError(f"expected {len(PIP_PACKAGES)} wheels in {dest}, found {len(wheels)}")
    return wheels


def install_wheel(wheel: Path, site: Path, prefix: Path) -> None:
    """Unpack a wheel as pip would: ``*.data/purelib|platlib`` into ``site``, ``*.data/data`` under ``prefix``.

    No pip runs inside the image (it has no pip, as slim images often have
    none), so this reproduces the on-disk result that catalogers read:
    the ``.dist-info`` directory with pip's ``INSTALLER`` file, and data files
    (py4j's jar) at their install path rather than inside the dist-info.
    """
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = info.filename
            top, _, rest = name.partition("/")
            if top.endswith(".data") and rest:
                scheme, _, inner = rest.partition("/")
                base = {"purelib": site, "platlib": site, "data": prefix, "scripts": prefix / "bin"}.get(
                    scheme
                )
                if base is None:
                    raise BuildError(f"{wheel.name}: unknown wheel scheme {scheme!r}")
                target = base / inner
            else:
                target = site / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
            mode = (info.external_attr >> 16) & 0o777
            target.chmod(mode if mode & 0o400 else 0o644)
        dist_info = next(
            n.split("/", 1)[0] for n in zf.namelist() if n.split("/", 1)[0].endswith(".dist-info")
        )
    (site / dist_info / "INSTALLER").write_text("pip\n")


def _npm_app(app: Path, log: Log) -> dict[str, str]:
    """``npm install`` into a fresh project; install scripts are off, which leaves esbuild's Go binary as is."""
    app.mkdir(parents=True)
    (app / "package.json").write_text(
        json.dumps({"name": "realistic-app", "version": "1.0.0", "private": True, "license": "MIT"}, indent=2)
        + "\n"
    )
    (app / "server.js").write_text("const express = require('express');\nexpress().listen(8080);\n")
    _run(
        [
            "npm",
            "install",
            "--prefix",
            str(app),
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--omit=dev",
            "--save-exact",
            "--loglevel=error",
            "--fetch-timeout=60000",
            "--fetch-retries=3",
            *NPM_PACKAGES,
        ],
        log,
        cwd=app,
    )
    lock = json.loads((app / "package-lock.json").read_text())
    return {
        path.removeprefix("node_modules/"): str(meta.get("version"))
        for path, meta in sorted(lock.get("packages", {}).items())
        if path
    }


def webapp_war(version: str, py4j_jar: bytes) -> bytes:
    """A war as Maven's war plugin lays it out: its own pom.properties, dependencies under WEB-INF/lib."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:

        def add(name: str, data: bytes) -> None:
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 6, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)

        add(
            "META-INF/MANIFEST.MF",
            b"Manifest-Version: 1.0\r\nCreated-By: Maven WAR Plugin 3.4.0\r\nBuild-Jdk-Spec: 17\r\n\r\n",
        )
        add(
            "META-INF/maven/com.example/demo-webapp/pom.properties",
            f"artifactId=demo-webapp\ngroupId=com.example\nversion={version}\n".encode(),
        )
        add("WEB-INF/web.xml", b'<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0"/>\n')
        add("WEB-INF/lib/py4j0.10.9.9.jar", py4j_jar)
    return buf.getvalue()


def _cleanup_layer(py4j_jar: bytes) -> list[Entry]:
    """Layer 4, written by hand because its point is the whiteout forms a diff alone would not choose."""
    six_info = f"{SITE}/six-1.16.0.dist-info"
    return [
        *(Dir(p) for p in _parents(f"{SITE}/x")),
        Whiteout(f"{SITE}/six.py"),
        Whiteout(six_info),
        *(Dir(p) for p in _parents(PLANTUML_JAR)),
        Whiteout(PLANTUML_JAR),
        Dir("opt"),
        Dir(WEBAPP),
        OpaqueDir(WEBAPP),
        File(f"{WEBAPP}/demo-webapp-1.0.1.war", webapp_war("1.0.1", py4j_jar)),
    ]


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


# -- filesystem to layer entries ----------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """What a layer diff compares: a path's type, mode, owner and content (hash or link target)."""

    kind: str  # "dir", "file", "link"
    mode: int
    uid: int
    gid: int
    identity: str  # sha256 of a file, target of a link, "" for a directory
    inode: tuple[int, int] | None = None


def scan(root: Path) -> dict[str, Node]:
    """Every directory, regular file and symlink under ``root`` by relative path, in tar order.

    Device nodes, fifos and sockets are left out, as are the contents of the
    pseudo-filesystem mount points: a container runtime provides those.
    """
    nodes: dict[str, Node] = {}
    for rel in _walk(root, ""):
        st = (root / rel).lstat()
        mode = st.st_mode & 0o7777
        if os.path.islink(root / rel):
            nodes[rel] = Node("link", 0o777, st.st_uid, st.st_gid, os.readlink(root / rel))
        elif (root / rel).is_dir():
            nodes[rel] = Node("dir", mode, st.st_uid, st.st_gid, "")
        elif (root / rel).is_file():
            digest = _file_sha256(root / rel)
            inode = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
            nodes[rel] = Node("file", mode, st.st_uid, st.st_gid, digest, inode)
    return nodes


def _walk(root: Path, rel: str) -> Iterator[str]:
    with os.scandir(root / rel if rel else root) as it:
        children = sorted(it, key=lambda e: e.name)
    for child in children:
        path = f"{rel}/{child.name}" if rel else child.name
        yield path
        if child.is_dir(follow_symlinks=False) and path not in EMPTY_DIRS:
            yield from _walk(root, path)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def full_layer(root: Path, nodes: dict[str, Node]) -> list[Entry]:
    """Every node as a layer entry (the first layer, or a COPY of a whole tree)."""
    return _entries(root, nodes, list(nodes))


def diff_layer(root: Path, before: dict[str, Node], after: dict[str, Node]) -> list[Entry]:
    """What a snapshotter writes for one build step: changed and new paths, their parents, and whiteouts.

    A removed path becomes a whiteout only at the top of what was removed (a
    deleted directory hides its whole subtree), as containerd and buildkit
    write it.
    """
    changed = [p for p, node in after.items() if before.get(p) != _without_inode(node, before.get(p))]
    wanted: set[str] = set(changed)
    for path in changed:
        wanted.update(_parents(path))
    removed = [p for p in before if p not in after]
    removed_set = set(removed)
    tops = [p for p in removed if not any(parent in removed_set for parent in _parents(p))]
    for path in tops:
        wanted.update(_parents(path))
    entries = _entries(root, after, sorted(wanted, key=_tar_order))
    whiteouts: list[Entry] = [Whiteout(p) for p in tops]
    return _merge_ordered(entries, whiteouts)


def _without_inode(node: Node, old: Node | None) -> Node:
    """Compare nodes ignoring the inode number, which changes when dpkg rewrites an unchanged file."""
    if old is None:
        return node
    return Node(node.kind, node.mode, node.uid, node.gid, node.identity, old.inode)


def _tar_order(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def _merge_ordered(entries: list[Entry], whiteouts: list[Entry]) -> list[Entry]:
    """Whiteouts placed among their siblings, so the tar stays in path order with parents first."""
    keyed = [(_tar_order(e.path), i, e) for i, e in enumerate([*entries, *whiteouts])]
    return [e for _, _, e in sorted(keyed, key=lambda k: (k[0], k[1]))]


def _entries(root: Path, nodes: dict[str, Node], paths: Sequence[str]) -> list[Entry]:
    entries: list[Entry] = []
    first_link: dict[tuple[int, int], str] = {}
    for path in paths:
        node = nodes[path]
        if node.kind == "dir":
            entries.append(Dir(path, node.mode))
        elif node.kind == "link":
            entries.append(Symlink(path, node.identity))
        elif node.inode is not None and node.inode in first_link:
            entries.append(Hardlink(path, first_link[node.inode]))
        else:
            if node.inode is not None:
                first_link[node.inode] = path
            content = (root / path).read_bytes()
            entries.append(File(path, content, node.mode, node.uid, node.gid))
    return entries


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("outdir", type=Path, help="where the image is written (and reused from)")
    parser.add_argument("--force", action="store_true", help="rebuild even if OUTDIR holds a complete build")
    args = parser.parse_args(argv)
    try:
        image = ensure_image(args.outdir, force=args.force)
    except BuildError as e:
        print(f"realistic-image: {e}", file=sys.stderr)
        return 2
    print(f"oci:{image.layout}:latest")
    print(f"docker-archive:{image.archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
