"""Import order: what each command loads, and which package may import which.

Start-up is most of a short command's time (the SBOM of a small image, a copy
into an archive, ``verify`` in a pipeline), and a module-level import of the
HTTP stack, sigstore or cyclonedx-python-lib where none is needed costs a third
of it. As sigstore-python does for its own CLI, each case runs in a fresh
interpreter (the test process has imported everything already) and reads
``sys.modules`` after the command has finished.

The layers are checked statically, from the source: a module may import its
own floor or a lower one, never a higher one, whether the import is at module
level, inside a function or under ``TYPE_CHECKING``. A violation names the
module, the line and the import. The few known exceptions are listed in
:data:`KNOWN_UPWARD` with their reason, and an entry that no longer matches an
import fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import chaingate

SRC = Path(chaingate.__file__).parent

#: The floors, lowest first. Leaf helpers import nothing above them; ``testing`` holds the stand-ins
#: the tests start and sits above everything, so no product module may import it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "leaf helpers",
        (
            "chaingate",
            "chaingate.errors",
            "chaingate.text",
            "chaingate.safejson",
            "chaingate.safeyaml",
            "chaingate.timeutil",
            "chaingate.predicate_types",
            "chaingate.userfiles",
        ),
    ),
    ("oci", ("chaingate.oci",)),
    ("image features", ("chaingate.sbom", "chaingate.provenance", "chaingate.signing", "chaingate.inspect")),
    ("policy", ("chaingate.policy",)),
    ("verify", ("chaingate.verify",)),
    ("deploy", ("chaingate.deploy",)),
    ("ci", ("chaingate.ci",)),
    ("cli", ("chaingate.cli", "chaingate.__main__")),
    ("stand-ins", ("chaingate_testing",)),
)

#: (importer, imported) pairs allowed to go up a floor, each with its reason.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    #: "module", "function" (lazy) or "type-checking".
    kind: str

    def __str__(self) -> str:
        path = self.importer.replace(".", "/")
        return f"{path}.py:{self.line}: {self.importer} imports {self.imported} ({self.kind} level)"


def floor_of(module: str) -> int:
    best: tuple[int, int] | None = None
    for floor, (_, members) in enumerate(LAYERS):
        for member in members:
            exact = module == member
            inside = member != "chaingate" and module.startswith(member + ".")
            if (exact or inside) and (best is None or len(member) > best[1]):
                best = (floor, len(member))
    if best is None:
        raise AssertionError(f"{module} is on no floor: add it (or its package) to LAYERS in {__file__}")
    return best[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> Iterator[str]:
    base = node.module or ""
    if node.level:
        package = importer if is_package else importer.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    for alias in node.names:
        # ``from chaingate.oci import media`` imports the module chaingate.oci.media.
        candidate = f"{base}.{alias.name}"
        is_module = (SRC.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
            SRC.parent / candidate.replace(".", "/") / "__init__.py"
        ).exists()
        yield candidate if is_module else base


def imports_of(path: Path) -> Iterator[Import]:
    importer = module_name(path)
    is_package = path.name == "__init__.py"

    def walk(node: ast.AST, kind: str) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from walk(child, "function")
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from walk(child, "type-checking" if kind == "module" else kind)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "chaingate":
                        yield Import(importer, alias.name, child.lineno, kind)
            elif isinstance(child, ast.ImportFrom):
                for target in _resolve(importer, is_package, child):
                    if target.split(".")[0] == "chaingate":
                        yield Import(importer, target, child.lineno, kind)
            else:
                yield from walk(child, kind)

    yield from walk(ast.parse(path.read_text(encoding="utf-8"), str(path)), "module")


def all_imports() -> list[Import]:
    # One entry per import statement and target (``from m import a, b`` of one module counts once).
    return list(dict.fromkeys(found for path in sorted(SRC.rglob("*.py")) for found in imports_of(path)))


def test_every_module_is_on_a_floor() -> None:
    for path in SRC.rglob("*.py"):
        floor_of(module_name(path))


def test_no_module_imports_a_higher_floor() -> None:
    upward = [
        found
        for found in all_imports()
        if floor_of(found.imported) > floor_of(found.importer)
        and (found.importer, found.imported) not in KNOWN_UPWARD
    ]
    names = {floor: name for floor, (name, _) in enumerate(LAYERS)}
    assert not upward, "imports of a higher floor:\n" + "\n".join(
        f"{found}: {names[floor_of(found.importer)]} is below {names[floor_of(found.imported)]}"
        for found in upward
    )


def test_known_upward_imports_are_still_needed() -> None:
    present = {(found.importer, found.imported) for found in all_imports()}
    stale = [pair for pair in KNOWN_UPWARD if pair not in present]
    assert not stale, f"no longer imported, remove from KNOWN_UPWARD: {stale}"


def test_the_checker_sees_every_kind_of_import() -> None:
    """The static check would pass vacuously if it missed imports; this holds it to each form."""
    found = {(i.imported, i.kind) for i in all_imports() if i.importer == "chaingate.sbom"}
    assert ("chaingate.sbom.interface", "module") in found
    assert ("chaingate.sbom.engine", "type-checking") in found
    assert ("chaingate.sbom.engine", "function") in found
    lazy = {(i.importer, i.imported) for i in all_imports() if i.kind == "function"}
    assert ("chaingate.oci.registries", "chaingate.oci.client") in lazy


# -- what a fresh interpreter loads --------------------------------------------------------------------

#: Third-party packages too heavy to load where they are not used.
HTTP = frozenset({"requests", "urllib3"})
HEAVY = HTTP | {"sigstore", "cyclonedx"}

_PROBE = """
import json, runpy, sys
out, kind, target = sys.argv[1], sys.argv[2], sys.argv[3:]
code = 0
if kind == "cli":
    sys.argv = ["chaingate", *target]
    try:
        runpy.run_module("chaingate", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code
else:
    __import__(target[0])
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


@dataclass(frozen=True)
class Loaded:
    code: object
    modules: frozenset[str]
    stdout: str

    def top_level(self) -> frozenset[str]:
        return frozenset(m.split(".")[0] for m in self.modules)


def probe(tmp_path: Path, kind: str, *target: str) -> Loaded:
    out = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), kind, *target],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.exists(), f"the probe did not finish:\n{run.stderr}"
    doc = json.loads(out.read_text())
    return Loaded(doc["code"], frozenset(doc["modules"]), run.stdout)


def test_version_loads_no_http_sigstore_or_cyclonedx(tmp_path: Path) -> None:
    loaded = probe(tmp_path, "cli", "--version")
    assert loaded.code in (0, None)
    assert chaingate.__version__ in loaded.stdout
    assert not loaded.top_level() & HEAVY


@pytest.mark.parametrize("destination", ["oci:{tmp}/copy", "docker-archive:{tmp}/copy.tar"])
def test_copy_between_local_stores_loads_no_http_sigstore_or_cyclonedx(
    tmp_path: Path, sample_layout: Path, destination: str
) -> None:
    loaded = probe(tmp_path, "cli", "copy", f"oci:{sample_layout}", destination.format(tmp=tmp_path))
    assert loaded.code in (0, None)
    assert "chaingate.oci.copy" in loaded.modules  # the command ran, not just the parser
    assert not loaded.top_level() & HEAVY, sorted(loaded.top_level() & HEAVY)


def test_inspect_of_a_layout_loads_no_http_sigstore_or_cyclonedx(tmp_path: Path, sample_layout: Path) -> None:
    loaded = probe(tmp_path, "cli", "inspect", f"oci:{sample_layout}", "--format", "json")
    assert loaded.code in (0, None)
    assert json.loads(loaded.stdout)["digest"].startswith("sha256:")
    assert not loaded.top_level() & HEAVY, sorted(loaded.top_level() & HEAVY)


def test_sbom_of_a_layout_loads_cyclonedx_and_nothing_for_registries_or_signing(
    tmp_path: Path, sample_layout: Path
) -> None:
    loaded = probe(tmp_path, "cli", "sbom", f"oci:{sample_layout}", "-o", str(tmp_path / "sbom.json"))
    assert loaded.code in (0, None)
    assert "cyclonedx" in loaded.top_level()  # what writing the SBOM genuinely needs
    assert not loaded.top_level() & (HTTP | {"sigstore"}), sorted(loaded.top_level() & HEAVY)


@pytest.mark.parametrize(
    ("module", "unneeded"),
    [
        ("chaingate.sbom", {"cyclonedx"}),
        ("chaingate.oci.stores", HEAVY),
        ("chaingate.verify", HTTP),
        ("chaingate.deploy.record", HTTP),
    ],
)
def test_importing_a_package_loads_only_what_it_uses(tmp_path: Path, module: str, unneeded: set[str]) -> None:
    loaded = probe(tmp_path, "import", module)
    assert module in loaded.modules
    assert not loaded.top_level() & unneeded, sorted(loaded.top_level() & unneeded)


def test_the_product_wheel_ships_no_stand_in() -> None:
    """The loopback CA, token issuer and fake clouds are the ``chaingate-testing`` distribution's, not the product's."""
    from setuptools import find_packages

    repo = Path(__file__).resolve().parents[1]
    packages = find_packages(where=str(repo / "src"))  # what the product wheel's find directive collects
    assert packages and all(p == "chaingate" or p.startswith("chaingate.") for p in packages), packages
    assert not [p for p in packages if "testing" in p.split(".")], packages
    stand_ins = repo / "testing" / "src" / "chaingate_testing"
    assert (stand_ins / "sigstore" / "fulcio.py").is_file()
