"""Why ``write_bom`` does its own ordering and checks: it is linear where cyclonedx-python-lib's path is quadratic.

Run from the repository root with the dev virtualenv::

    PYTHONPATH=src .tox/py/bin/python benchmarks/bom_bench.py [--sizes 500 2000 5000 10000] [--rounds 3]

For each size N it builds N synthetic packages, the same ones every run (a
seeded ``random.Random``): deb with ``arch``, ``distro`` and sometimes
``upstream`` qualifiers, npm (some scoped), pypi, maven and golang, each with a
version, one or two SPDX licenses or an expression, a layer digest and a path;
about a third depend on 1 to 5 others of their ecosystem (``depends_on``).
Building them is not timed. It then times, in-process with
``time.perf_counter`` (wall time only, a full collection before each run):

* chaingate: ``chaingate.sbom.bom.write_bom`` of those packages, bytes out;
* naive: the path cyclonedx-python-lib 11.x documents for the same document:
  a ``Component`` per package (purl, bom-ref, licenses, layer and path
  properties), ``bom.components.add``, ``bom.register_dependency`` of the image
  on every component and of each component on its dependencies, then
  ``JsonV1Dot6(bom).output_as_string()``, which runs ``Bom.validate``.

The naive path is skipped at a size where the previous size's median,
projected quadratically, exceeds ``--naive-budget`` seconds (and stops after
one round that alone exceeds it), so a default run stays within a couple of
minutes. Both documents are checked (they parse, they hold N components and the
expected dependency entries); a failed check ends the run with a message.

It prints one row per size (medians over ``--rounds``: both paths' seconds,
their ratio, chaingate's microseconds per component) and the growth exponent
of each path fitted between the smallest and the largest size it ran,
log(t2/t1) / log(n2/n1): about 1 is linear, about 2 quadratic. Nothing asserts
on the figures: they depend on the machine. ``--json FILE`` keeps the raw
figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense, License, LicenseExpression
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from chaingate.sbom.bom import PROPERTY_LAYER, PROPERTY_PATH, write_bom
from chaingate.sbom.catalogers.base import Distro, Package

DEFAULT_SIZES = (500, 2000, 5000, 10000)
SEED = 20261122
IMAGE_NAME = "registry.example/bench/app:latest"
IMAGE_DIGEST = "sha256:" + "ab" * 32
DISTRO = Distro("debian", "12")
TIMESTAMP = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
LAYERS = tuple("sha256:" + f"{i:02x}" * 32 for i in (0x1A, 0x2B, 0x3C, 0x4D, 0x5E))
#: Purl types and their share of an image, roughly a Debian base with application dependencies on top.
ECOSYSTEMS = (("deb", 0.40), ("npm", 0.25), ("pypi", 0.15), ("maven", 0.12), ("golang", 0.08))
LICENSES: tuple[tuple[str, ...], ...] = (
    ("MIT",),
    ("Apache-2.0",),
    ("BSD-3-Clause",),
    ("GPL-2.0-or-later",),
    ("MIT", "Apache-2.0"),
    ("LGPL-2.1-or-later", "GPL-2.0-only"),
    ("MIT OR Apache-2.0",),
    (),
)
WORDS = ("core", "util", "http", "json", "crypto", "log", "xml", "net", "io", "test", "yaml", "cli")


def _version(rng: random.Random, kind: str) -> str:
    major, minor, patch = rng.randrange(0, 12), rng.randrange(0, 30), rng.randrange(0, 20)
    if kind == "deb":
        return f"{major}.{minor}.{patch}-{rng.randrange(1, 6)}+deb12u{rng.randrange(1, 4)}"
    if kind == "golang":
        return f"v{major}.{minor}.{patch}"
    return f"{major}.{minor}.{patch}"


def _package(rng: random.Random, i: int, kind: str) -> Package:
    word = rng.choice(WORDS)
    version = _version(rng, kind)
    layer = rng.choice(LAYERS)
    licenses = rng.choice(LICENSES)
    group: str | None = None
    properties: tuple[tuple[str, str], ...] = ()
    if kind == "deb":
        name = f"lib{word}{i}"
        qualifiers = {"arch": "amd64", "distro": DISTRO.qualifier()}
        if rng.random() < 0.3:
            qualifiers["upstream"] = f"{word}{i}-src"
        purl = PackageURL(type="deb", namespace="debian", name=name, version=version, qualifiers=qualifiers)
        path = f"var/lib/dpkg/status.d/{name}"
    elif kind == "npm":
        name = f"{word}-{i}"
        group = f"@{rng.choice(WORDS)}" if rng.random() < 0.3 else None
        purl = PackageURL(type="npm", namespace=group, name=name, version=version)
        path = f"app/node_modules/{group + '/' if group else ''}{name}/package.json"
    elif kind == "pypi":
        name = f"py{word}{i}"
        purl = PackageURL(type="pypi", name=name, version=version)
        path = f"usr/local/lib/python3.11/dist-packages/{name}-{version}.dist-info/METADATA"
    elif kind == "maven":
        name = f"{word}-{i}"
        group = f"org.example.{rng.choice(WORDS)}"
        purl = PackageURL(type="maven", namespace=group, name=name, version=version)
        path = f"opt/app/lib/{name}-{version}.jar"
    else:
        module = f"github.com/example/{word}{i}"
        namespace, name = module.rsplit("/", 1)
        purl = PackageURL(type="golang", namespace=namespace, name=name, version=version)
        name, path = module, "usr/local/bin/app"
        properties = (("chaingate:go:toolchain", "go1.22.5"),)
    return Package(
        purl=purl,
        name=name,
        version=version,
        layer=layer,
        path=path,
        group=group,
        licenses=licenses,
        properties=properties,
    )


def make_packages(n: int, seed: int = SEED) -> list[Package]:
    """N packages and their dependency graph, the same for the same ``n`` and ``seed``."""
    rng = random.Random(f"{seed}:{n}")
    kinds = [k for k, _ in ECOSYSTEMS]
    weights = [w for _, w in ECOSYSTEMS]
    packages = [_package(rng, i, rng.choices(kinds, weights)[0]) for i in range(n)]
    by_kind: dict[str, list[Package]] = {}
    for package in packages:
        by_kind.setdefault(package.purl.type, []).append(package)
    for package in packages:
        if rng.random() >= 1 / 3:
            continue
        pool = by_kind[package.purl.type]
        if len(pool) < 2:
            pool = packages
        count = min(rng.randint(1, 5), len(pool) - 1)
        package.depends_on = [p for p in rng.sample(pool, count + 1) if p is not package][:count]
    return packages


def run_chaingate(packages: Sequence[Package]) -> bytes:
    return write_bom(
        packages,
        image_name=IMAGE_NAME,
        image_digest=IMAGE_DIGEST,
        platform=None,
        distro=DISTRO,
        timestamp=TIMESTAMP,
    )


def _licenses(values: tuple[str, ...]) -> list[License]:
    if len(values) == 1 and " OR " in values[0]:
        return [LicenseExpression(values[0])]
    return [DisjunctiveLicense(id=v) for v in values]


def run_naive(packages: Sequence[Package]) -> bytes:
    """The same document the way cyclonedx-python-lib's documentation builds one."""
    root = Component(
        type=ComponentType.CONTAINER,
        name=IMAGE_NAME,
        version=IMAGE_DIGEST,
        bom_ref=IMAGE_DIGEST,
        properties=[Property(name="chaingate:distro", value=DISTRO.qualifier())],
    )
    tool = Component(type=ComponentType.APPLICATION, name="chaingate", version="bench")
    bom = Bom(
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, IMAGE_DIGEST),
        metadata=BomMetaData(timestamp=TIMESTAMP, tools=ToolRepository(components=[tool]), component=root),
    )
    component_of: dict[int, Component] = {}
    for package in packages:
        component = Component(
            type=ComponentType.LIBRARY,
            name=package.name,
            group=package.group,
            version=package.version,
            purl=package.purl,
            bom_ref=package.purl.to_string(),
            licenses=_licenses(package.licenses),
            properties=[
                Property(name=PROPERTY_LAYER, value=package.layer),
                Property(name=PROPERTY_PATH, value=package.path),
                *(Property(name=k, value=v) for k, v in package.properties),
            ],
        )
        component_of[id(package)] = component
        bom.components.add(component)
    bom.register_dependency(root, list(component_of.values()))
    for package in packages:
        if package.depends_on is not None:
            deps = [component_of[id(d)] for d in package.depends_on]
            bom.register_dependency(component_of[id(package)], deps)
    with warnings.catch_warnings():
        # validate() is deprecated in 11.x but is still what output_as_string runs.
        warnings.simplefilter("ignore")
        return JsonV1Dot6(bom).output_as_string().encode("utf-8")


def check(label: str, document: bytes, packages: Sequence[Package]) -> None:
    """The document parses and holds every component and dependency entry; SystemExit otherwise."""
    try:
        data = json.loads(document)
    except ValueError as e:
        raise SystemExit(f"{label}: the document is not JSON: {e}") from None
    n = len(packages)
    components = data.get("components", [])
    if len(components) != n:
        raise SystemExit(f"{label}: {len(components)} components for {n} packages")
    # One entry for the image, one per package that states its dependencies; the naive path
    # also writes an empty entry for every other component (validate registers them all).
    with_deps = sum(p.depends_on is not None for p in packages)
    expected = 1 + (n if label == "naive" else with_deps)
    entries = data.get("dependencies", [])
    if len(entries) != expected:
        raise SystemExit(f"{label}: {len(entries)} dependency entries, expected {expected}")
    root = next((e for e in entries if e.get("ref") == IMAGE_DIGEST), None)
    if root is None or len(root.get("dependsOn", [])) != n:
        raise SystemExit(f"{label}: the image does not depend on all {n} components")
    edges = sum(len(e.get("dependsOn", [])) for e in entries if e is not root)
    want = sum(len(p.depends_on or ()) for p in packages)
    if edges != want:
        raise SystemExit(f"{label}: {edges} dependency edges, expected {want}")


def timed(run: Callable[[Sequence[Package]], bytes], packages: Sequence[Package]) -> tuple[float, bytes]:
    gc.collect()
    start = time.perf_counter()
    out = run(packages)
    return time.perf_counter() - start, out


def exponent(points: Sequence[tuple[int, float]]) -> float | None:
    """Growth exponent between the smallest and the largest size measured."""
    if len(points) < 2:
        return None
    (n1, t1), (n2, t2) = min(points), max(points)
    return math.log(t2 / t1) / math.log(n2 / n1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), metavar="N")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--naive-budget",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="skip the naive path where one run is projected to take longer (default 20)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes))
    if not sizes or sizes[0] < 1 or args.rounds < 1:
        parser.error("sizes and rounds must be positive")

    records: list[dict[str, Any]] = []
    previous: tuple[int, float] | None = None  # (N, naive median) of the last size the naive path ran
    for n in sizes:
        packages = make_packages(n)
        record: dict[str, Any] = {"n": n, "chaingate_s": [], "naive_s": [], "naive_skipped": None}
        projected = previous[1] * (n / previous[0]) ** 2 if previous else 0.0
        if projected > args.naive_budget:
            record["naive_skipped"] = projected
        for _ in range(args.rounds):
            seconds, out = timed(run_chaingate, packages)
            check("chaingate", out, packages)
            record["chaingate_s"].append(seconds)
            record["chaingate_bytes"] = len(out)
            if record["naive_skipped"] is None and not any(s > args.naive_budget for s in record["naive_s"]):
                seconds, out = timed(run_naive, packages)
                check("naive", out, packages)
                record["naive_s"].append(seconds)
        if record["naive_s"]:
            previous = (n, statistics.median(record["naive_s"]))
        records.append(record)
        print(f"N={n} done", file=sys.stderr)

    report(records, args)
    if args.json:
        payload = {"rounds": args.rounds, "naive_budget_s": args.naive_budget, "results": records}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


def report(records: Sequence[dict[str, Any]], args: argparse.Namespace) -> None:
    header = ["N", "chaingate s", "naive s", "naive/chaingate", "chaingate µs/component"]
    rows = []
    for r in records:
        ours = statistics.median(r["chaingate_s"])
        if r["naive_s"]:
            naive = statistics.median(r["naive_s"])
            ran = len(r["naive_s"])
            rounds = "" if ran == args.rounds else f" ({ran} round{'s' if ran > 1 else ''})"
            naive_cell, ratio = f"{naive:.3f}{rounds}", f"{naive / ours:.1f}x"
        else:
            naive_cell, ratio = f"skipped (projected {r['naive_skipped']:.0f} s)", ""
        rows.append([str(r["n"]), f"{ours:.3f}", naive_cell, ratio, f"{ours / r['n'] * 1e6:.1f}"])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(f"\nmedian of {args.rounds} rounds, wall seconds in-process\n")
    for i, row in enumerate([header, *rows]):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    for label, key in (("chaingate", "chaingate_s"), ("naive", "naive_s")):
        points = [(r["n"], statistics.median(r[key])) for r in records if r[key]]
        k = exponent(points)
        if k is None:
            print(f"growth exponent, {label}: needs two sizes")
        else:
            lo, hi = min(points)[0], max(points)[0]
            print(f"growth exponent, {label}: {k:.2f} (N {lo} -> {hi}; 1 = linear, 2 = quadratic)")


if __name__ == "__main__":
    sys.exit(main())
