"""A long fuzz run of the property tests: the same properties as CI, with fresh and many more examples.

CI runs each property on a fixed set of 100 examples (the `ci` hypothesis profile in tests/conftest.py);
this runs them under the `fuzz` profile, drawing new examples each run, and prints per target how many ran,
how long they took and how many failed. A failure prints hypothesis' falsifying example: fix the parser it
names and pin the example as a test beside the property.

    PYTHONPATH=src .tox/py/bin/python benchmarks/fuzz.py --examples 20000
    PYTHONPATH=src .tox/py/bin/python benchmarks/fuzz.py --examples 2000 -k policy --seed 7
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROPERTY_FILES = [
    "tests/policy/test_policy_properties.py",
    "tests/oci/test_oci_properties.py",
    "tests/signing/test_bundle_properties.py",
    "tests/signing/test_tokens_properties.py",
    "tests/deploy/test_bindings_properties.py",
    "tests/sbom/test_sbom_tarstream_properties.py",
]


class Tally:
    """A pytest plugin keeping only the property tests and recording examples, failures and time for each."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, int, float, str]] = []
        self._start: dict[str, float] = {}

    def pytest_collection_modifyitems(self, config: Any, items: list[Any]) -> None:
        kept = [i for i in items if getattr(getattr(i, "obj", None), "is_hypothesis_test", False)]
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept

    def pytest_runtest_setup(self, item: Any) -> None:
        self._start[item.nodeid] = time.monotonic()

    def pytest_runtest_makereport(self, item: Any, call: Any) -> None:
        if call.when != "call":
            return
        stats = getattr(item, "hypothesis_statistics", "")
        passing = sum(int(n) for n in re.findall(r"(\d+) passing", stats))
        failing = sum(int(n) for n in re.findall(r"(\d+) failing", stats))
        outcome = "failed" if call.excinfo is not None else "passed"
        seconds = time.monotonic() - self._start.get(item.nodeid, time.monotonic())
        self.rows.append((item.nodeid.split("::", 1)[1], passing, failing, seconds, outcome))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=20_000, help="examples per property (default 20000)")
    parser.add_argument("--seed", type=int, help="hypothesis seed, to repeat a run (default: random)")
    parser.add_argument("-k", dest="keyword", help="only the properties whose name matches (pytest -k)")
    args = parser.parse_args()

    # The profile is chosen when tests/conftest.py is imported, so these must be set first.
    os.environ["CHAINGATE_HYPOTHESIS_PROFILE"] = "fuzz"
    os.environ["CHAINGATE_FUZZ_EXAMPLES"] = str(args.examples)
    os.chdir(ROOT)
    import pytest

    argv = [*PROPERTY_FILES, "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics", "-o", "addopts="]
    if args.seed is not None:
        argv.append(f"--hypothesis-seed={args.seed}")
    if args.keyword:
        argv += ["-k", args.keyword]
    tally = Tally()
    started = time.monotonic()
    code = pytest.main(argv, plugins=[tally])
    total = time.monotonic() - started

    print(f"\n{'property':<72} {'examples':>9} {'failing':>8} {'seconds':>8}")
    for name, passing, failing, seconds, outcome in tally.rows:
        mark = "" if outcome == "passed" else "  FAILED"
        print(f"{name[:72]:<72} {passing + failing:>9} {failing:>8} {seconds:>8.1f}{mark}")
    examples = sum(r[1] + r[2] for r in tally.rows)
    failed = sum(1 for r in tally.rows if r[4] != "passed")
    print(f"{len(tally.rows)} properties, {examples} examples, {failed} failed, {total:.0f} s")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
