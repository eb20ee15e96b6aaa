"""Static checks of what users run in their CI: the actions, the example workflows, the Tekton YAML, the pins.

zizmor and check-jsonschema run offline (zizmor ``--offline``; check-jsonschema
with the schemas it bundles), so these need no network; Tekton has no
official offline schema, so ``tekton_check`` checks its structure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from support.ci_emulation import REPO, load_yaml_documents
from support.tekton_check import ChainsHints, chains_type_hints, check_tree

ACTIONS = [REPO / "action.yml", *sorted((REPO / "actions").glob("*/action.yml"))]
WORKFLOWS = sorted((REPO / "docs" / "examples" / "github").glob("*.yml"))
STEPS = {"sbom", "provenance", "attest", "sign", "verify", "deploy"}
SECRET_INPUTS = {"identity-token", "api-key"}


def tool(name: str) -> str:
    """A tool from the test environment (installed with the test extra); missing is a failure, not a skip."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: install the test extra (pip install -e '.[test]')"
    return found


def test_layout_has_the_root_action_and_one_action_per_step() -> None:
    assert {p.parent.name for p in ACTIONS[1:]} == STEPS
    assert {p.name for p in (REPO / "tekton" / "task").iterdir()} == {f"chaingate-{s}" for s in STEPS}
    for task in (REPO / "tekton" / "task").iterdir():
        assert (task / "0.1" / f"{task.name}.yaml").is_file() and (task / "0.1" / "README.md").is_file()
    assert WORKFLOWS, "no example workflows"


def test_zizmor_finds_nothing_in_the_actions_and_example_workflows() -> None:
    proc = subprocess.run(
        [tool("zizmor"), "--offline", "--no-progress", *map(str, ACTIONS + WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout
    audited = proc.stderr
    for path in ACTIONS + WORKFLOWS:
        assert f"completed {path.relative_to(REPO)}" in audited or f"completed {path}" in audited, audited


@pytest.mark.parametrize(
    ("schema", "files"),
    [("vendor.github-actions", ACTIONS), ("vendor.github-workflows", WORKFLOWS)],
    ids=["actions", "workflows"],
)
def test_check_jsonschema_with_the_bundled_github_schemas(schema: str, files: list[Path]) -> None:
    proc = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(REPO)))
def test_actions_pass_every_input_through_env_and_mask_secrets(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["runs"]["using"] == "composite"
    declared = set(doc.get("inputs") or {})
    referenced: set[str] = set()
    for step in doc["runs"]["steps"]:
        assert step["shell"] == "bash", step
        assert "${{" not in step["run"], f"{path}: an expression inside run:"
        env = step.get("env") or {}
        for name, value in env.items():
            for expression in re.findall(r"\$\{\{\s*(.*?)\s*\}\}", str(value)):
                assert re.fullmatch(r"inputs\.[a-z-]+|steps\.[a-z-]+\.outputs\.[a-z-]+", expression), (
                    expression
                )
                if expression.startswith("inputs."):
                    referenced.add(expression.removeprefix("inputs."))
                    if expression.removeprefix("inputs.") in SECRET_INPUTS:
                        # Masked first thing in the step that receives it, before any command could echo it.
                        first = step["run"].split("\n")[1]
                        assert first.startswith('"$CHAINGATE_CI" mask ')
                        assert name in first.split(), f"{path}: {name} is not masked first"
    for spec in (doc.get("outputs") or {}).values():
        assert re.fullmatch(r"\$\{\{ steps\.[a-z-]+\.outputs\.[a-z-]+ \}\}", spec["value"]), spec
    assert referenced == declared, f"{path}: inputs never used: {declared - referenced}"
    for name, spec in (doc.get("inputs") or {}).items():
        assert spec.get("description"), f"{path}: input {name} has no description"


def test_example_workflows_grant_least_privilege_and_pin_actions() -> None:
    for path in WORKFLOWS:
        doc = yaml.safe_load(path.read_text())
        assert doc["permissions"] == {}, f"{path}: the workflow must grant nothing by default"
        for name, job in doc["jobs"].items():
            assert "permissions" in job, f"{path}: job {name} has no permissions block"
            for step in job["steps"]:
                if "uses" in step:
                    assert re.search(r"@[0-9a-f]{40}$", step["uses"]), step["uses"]
        if "deploy" not in doc["jobs"]:  # the scheduled mirror: reads upstream, writes the internal registry
            assert all("id-token" not in job["permissions"] for job in doc["jobs"].values()), path
            continue
        deploy = doc["jobs"]["deploy"]
        assert deploy["environment"] == "production"
        build = next(j for n, j in doc["jobs"].items() if n != "deploy")
        assert build["permissions"]["id-token"] == "write" and build["permissions"]["packages"] == "write"
    text = (REPO / "docs" / "examples" / "github" / "release.yml").read_text()
    assert "CODE_ENGINE_APIKEY: ${{ secrets.IBM_CLOUD_API_KEY }}" in text


def test_tekton_yaml_is_structurally_sound() -> None:
    assert check_tree(REPO / "tekton") == []


def test_no_chaingate_task_claims_to_build_what_it_only_reads() -> None:
    """Tekton Chains signs a provenance naming a TaskRun as the builder of every image its results hint at
    (``IMAGE_URL``/``IMAGE_DIGEST``, ``IMAGES``, ``*ARTIFACT_OUTPUTS``…): chaingate's Tasks build nothing, so
    they may hint at inputs only. Only the Pipelines hint at an output: the image their build Task made."""
    hints, tasks = {}, {}
    for path in sorted((REPO / "tekton").rglob("*.yaml")):
        for doc in load_yaml_documents(path):
            if doc.get("kind") in ("Task", "Pipeline"):
                hints[doc["metadata"]["name"]] = chains_type_hints(doc)
            if doc.get("kind") == "Task":
                tasks[doc["metadata"]["name"]] = hints[doc["metadata"]["name"]]
    assert sorted(tasks) == sorted(f"chaingate-{step}" for step in STEPS)
    assert {name: hint.outputs for name, hint in tasks.items() if hint.outputs} == {}
    assert {name: hint.inputs for name, hint in tasks.items()} == {
        "chaingate-attest": ("IMAGE_ARTIFACT_INPUTS", "CHAINS-GIT_URL", "CHAINS-GIT_COMMIT"),
        "chaingate-deploy": ("IMAGE_ARTIFACT_INPUTS",),
        "chaingate-provenance": ("IMAGE_ARTIFACT_INPUTS", "CHAINS-GIT_URL", "CHAINS-GIT_COMMIT"),
        "chaingate-sbom": ("IMAGE_ARTIFACT_INPUTS",),
        "chaingate-sign": ("IMAGE_ARTIFACT_INPUTS",),
        "chaingate-verify": ("IMAGE_ARTIFACT_INPUTS",),
    }
    for pipeline in ("chaingate-release", "chaingate-ibm-release"):
        assert hints[pipeline] == ChainsHints(
            ("IMAGE_URL", "IMAGE_DIGEST"), ("CHAINS-GIT_URL", "CHAINS-GIT_COMMIT")
        )
    for doc in load_yaml_documents(REPO / "tekton/pipeline/chaingate-release/0.1/chaingate-release.yaml"):
        values = {r["name"]: r["value"] for r in doc["spec"]["results"]}
        assert values["IMAGE_DIGEST"] == "$(tasks.build.results.IMAGE_DIGEST)"


def test_the_tekton_check_catches_what_it_claims_to(tmp_path: Path) -> None:
    source = (REPO / "tekton/task/chaingate-verify/0.1/chaingate-verify.yaml").read_text()
    broken = (
        source.replace(
            "        set -euo pipefail\n",
            '        set -euo pipefail\n        echo "$(params.IMAGE_URL)"\n',
            1,
        )
        .replace("runAsNonRoot: true", "runAsNonRoot: false")
        .replace("$(results.VERDICT.path)", "$(results.VERDIKT.path)")
        .replace(
            'default: "ghcr.io/chaingate/chaingate:0.1.0@sha256:',
            'default: "ghcr.io/chaingate/chaingate:0.1.0#',
        )
    )
    (tmp_path / "task.yaml").write_text(broken)
    problems = "\n".join(check_tree(tmp_path))
    assert "Tekton variable inside the script" in problems
    assert "runAsNonRoot is not true" in problems
    assert "$(results.VERDIKT.path) is not a result path" in problems
    assert "is not pinned" in problems


def test_every_chaingate_image_pin_is_the_same_digest() -> None:
    pins = set()
    for path in [*(REPO / "tekton").rglob("*.yaml"), *(REPO / "tekton").rglob(".pipeline-config.yaml")]:
        pins.update(
            re.findall(r"ghcr\.io/chaingate/chaingate:[^\s\"@]+@sha256:[0-9a-f]{64}", path.read_text())
        )
    assert len(pins) == 1, pins
    containerfile = (REPO / "tekton" / "Containerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=\S+@sha256:[0-9a-f]{64}$", containerfile, re.MULTILINE)
    assert "--require-hashes -r /src/actions/requirements.txt" in containerfile
    assert re.search(r"^USER 65532:65532$", containerfile, re.MULTILINE)


def test_devsecops_config_runs_chaingate_stages_from_the_pinned_image() -> None:
    (doc,) = load_yaml_documents(REPO / "tekton" / "ibm-toolchain" / "devsecops" / ".pipeline-config.yaml")
    assert doc["version"] == "1"
    for stage in ("sign-artifact", "deploy"):
        assert re.fullmatch(r"\S+@sha256:[0-9a-f]{64}", doc[stage]["image"])
        assert "chaingate-ci run" in doc[stage]["script"]
        assert "load_artifact app-image digest" in doc[stage]["script"]
    proc = subprocess.run(
        ["bash", "-n"], input=doc["deploy"]["script"], text=True, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def _requirements(path: Path) -> dict[str, list[str]]:
    """``name -> hashes`` of a pip-compile --generate-hashes file; any unhashed or unpinned line is an error."""
    entries: dict[str, list[str]] = {}
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", line)
        assert match, f"{path}: not pinned with hashes: {line}"
        entries[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = re.findall(
            r"sha256:([0-9a-f]{64})", match.group(3)
        )
    return entries


def test_action_requirements_pin_every_runtime_dependency_by_hash() -> None:
    pinned = _requirements(REPO / "actions" / "requirements.txt")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()  # type: ignore[union-attr]
        assert name in pinned, f"{name} (pyproject.toml) is not in actions/requirements.txt: regenerate it"
    for name in ("ibm-code-engine-sdk", "ibm-platform-services", "ibm-cloud-sdk-core", "setuptools", "wheel"):
        assert name in pinned, name
    source = (REPO / "actions" / "requirements.in").read_text()
    for requirement in project["dependencies"]:
        assert requirement in source, f"{requirement} is missing from actions/requirements.in"


def test_the_install_step_fails_clearly_when_it_cannot_install(tmp_path: Path) -> None:
    script = REPO / "actions" / "install.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    output = tmp_path / "output"
    base = {"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(output), "HOME": str(tmp_path)}
    skip = subprocess.run(
        ["bash", str(script)],
        env={**base, "CHAINGATE_SKIP_INSTALL": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert skip.returncode == 2
    assert (
        skip.stdout
        == "::error title=chaingate install::CHAINGATE_SKIP_INSTALL=1 but there is no chaingate on PATH\n"
    )
    outside = subprocess.run(["bash", str(script)], env=base, capture_output=True, text=True, check=False)
    assert outside.returncode == 2 and "RUNNER_TEMP is not set" in outside.stdout
    assert not output.exists() or output.read_text() == ""
