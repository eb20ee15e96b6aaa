"""The CLI maps results to output and errors to exit codes, in one place."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaingate import __version__
from chaingate.cli import ProgressPrinter, run
from chaingate.testing.registry import DockerRegistry


def test_version_and_module_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chaingate", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"chaingate {__version__}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "UPPER/case"], "invalid repository path component 'UPPER'"),
        (["inspect", "oci:/nonexistent/layout"], "not an OCI image layout"),
        (["inspect", "docker-archive:/nonexistent.tar"], "no such file"),
        (["copy", "oci:/nonexistent", "oci:/tmp/x"], "not an OCI image layout"),
        (["inspect", "--platform", "linux", "oci:/x"], "--platform"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        run(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("chaingate: error: ") and "Traceback" not in err


def test_bad_reference_in_a_subprocess_has_no_traceback() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chaingate", "inspect", "a//b"], capture_output=True, text=True
    )
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert lines[0] == "chaingate: error: image reference 'a//b': invalid repository path component ''"
    assert len(lines) == 2 and lines[1].startswith("  hint: ") and "Traceback" not in out.stderr


@pytest.mark.registry
def test_copy_then_inspect(
    docker_registry: DockerRegistry,
    sample_layout: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty-docker-config"))
    dest = f"{docker_registry.host}/cli/sample:1.0"
    assert run(["copy", f"oci:{sample_layout}:latest", dest, "--format", "json"]) == 0
    copied = json.loads(capsys.readouterr().out)
    assert run(["inspect", dest, "--format", "json"]) == 0
    inspected = json.loads(capsys.readouterr().out)
    assert inspected["digest"] == copied["digest"]
    assert inspected["reference"] == dest
    assert run(["inspect", dest]) == 0
    text = capsys.readouterr().out
    assert copied["digest"] in text and "attachments: none" in text
    assert run(["copy", dest, f"docker-archive:{tmp_path / 'x.tar'}"]) == 0
    assert f"digest: {copied['digest']}" in capsys.readouterr().out
    assert run(["inspect", f"docker-archive:{tmp_path / 'x.tar'}", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["digest"] == copied["digest"]


def test_progress_plain_and_interactive() -> None:
    import io

    plain = io.StringIO()
    p = ProgressPrinter(plain, interactive=False)
    for done in range(0, 101, 5):
        p("blob sha256:abc", done, 100)
    lines = plain.getvalue().splitlines()
    assert lines[-1] == "blob sha256:abc: done (100 bytes)"
    assert len(lines) <= 5
    tty = io.StringIO()
    ProgressPrinter(tty, interactive=True)("blob", 100, 100)
    assert "\r" in tty.getvalue() and "100%" in tty.getvalue()
