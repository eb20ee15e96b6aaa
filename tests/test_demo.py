"""README command 1 runs the main job; this runs the same job (minus the system bootstrap) in CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.registry
@pytest.mark.sigstore
@pytest.mark.slow
def test_main_job_runs_the_whole_chain(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chaingate_testing.demo", "--output", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    for expected in (
        "attached https://slsa.dev/provenance/v1",
        "attached https://cyclonedx.org/bom",
        "attached https://sigstore.dev/cosign/sign/v1",
        "ALLOW ",
        "deployed ",
        "denied by policy",
        "(exit code 1, as expected)",
        "Code Engine write calls during the denied deploy: 0",
    ):
        assert expected in text, expected
    assert "Traceback" not in text + out.stderr
    for name in ("provenance.json", "sbom.cdx.json", "decision.json", "sample.tar"):
        assert (tmp_path / "demo" / name).is_file()
