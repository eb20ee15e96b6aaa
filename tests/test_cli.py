"""The CLI maps results to output and errors to exit codes, in one place."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from chaingate import __version__
from chaingate.cli import ProgressPrinter, build_parser, run
from chaingate_testing.ociregistry import OCIRegistry
from chaingate_testing.registry import DockerRegistry


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
@pytest.mark.parametrize("mode", ["anonymous", "htpasswd", "token"])
def test_copy_then_inspect_in_each_auth_mode(
    mode: str,
    docker_registry: DockerRegistry,
    htpasswd_registry: DockerRegistry,
    token_registry: DockerRegistry,
    sample_layout: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = {"anonymous": docker_registry, "htpasswd": htpasswd_registry, "token": token_registry}[mode]
    config = reg.docker_config(tmp_path / "docker") if mode != "anonymous" else tmp_path / "empty"
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    caplog.set_level(logging.DEBUG)
    dest = f"{reg.host}/cli/{mode}:1.0"
    assert run(["-vv", "copy", f"oci:{sample_layout}:latest", dest, "--format", "json"]) == 0
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
    # Nothing secret in any log line or output, even at debug level.
    logged = caplog.text + capsys.readouterr().err
    for secret in reg.users.values():
        assert secret not in logged
    if reg.token_server is not None:
        assert reg.token_server.issued
        assert "Bearer " not in logged


@pytest.mark.registry
def test_inspect_multi_arch(multiarch_layout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["inspect", f"oci:{multiarch_layout}", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [p["platform"] for p in doc["platforms"]] == ["linux/amd64", "linux/arm64/v8"]
    assert run(["inspect", f"oci:{multiarch_layout}", "--platform", "linux/arm64", "--format", "json"]) == 0
    arm = json.loads(capsys.readouterr().out)
    assert arm["digest"] == doc["platforms"][1]["digest"] and arm["platforms"] == []


@pytest.mark.registry
def test_ipv6_loopback_registry(sample_layout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with OCIRegistry(host="::1") as reg:
        assert reg.host.startswith("[::1]:")
        assert run(["copy", f"oci:{sample_layout}", f"{reg.host}/v6/app:1", "--format", "json"]) == 0
        digest = json.loads(capsys.readouterr().out)["digest"]
        assert run(["inspect", f"{reg.host}/v6/app@{digest}", "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["digest"] == digest


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


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command parser, by its command line."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((f"{prefix}{name}", sub))
                found.extend(_commands(sub, f"{prefix}{name} "))
    return found


def test_every_positional_and_format_flag_has_help() -> None:
    commands = _commands(build_parser())
    assert {"inspect", "copy", "verify", "deploy", "audit iam"} <= {name for name, _ in commands}
    missing = [
        f"{name}: {action.metavar or action.dest}"
        for name, sub in commands
        for action in sub._actions
        if (not action.option_strings or "--format" in action.option_strings)
        and not isinstance(action, argparse._SubParsersAction)
        and not action.help
    ]
    assert missing == []


def test_verify_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run(["verify", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    examples = out[out.index("examples:") :]
    # Laid out as written (RawDescriptionHelpFormatter), each a command that parses.
    assert "    --certificate-oidc-issuer https://token.actions.githubusercontent.com" in examples
    commands = [" ".join(c.split()) for c in examples.replace("\\\n", " ").splitlines() if "chaingate " in c]
    assert len(commands) == 3
    for command in commands:
        argv = shlex.split(command)[1:]
        args = build_parser().parse_args(argv)
        assert args.command == "verify" and (args.policy or args.certificate_oidc_issuer)
