"""Run the repository's GitHub composite actions and Tekton Task steps here, as their runners would.

Neither a GitHub runner nor a Tekton controller can run in the test
environment, so these emulate exactly the parts the actions and tasks depend
on, and refuse anything else rather than guess:

GitHub (a composite action):
- the action's inputs, from a dict, with defaults; unknown or missing required inputs are errors;
- ``${{ inputs.x }}``, ``${{ github.action_path }}``, ``${{ steps.<id>.outputs.<o> }}`` in ``env:``
  and ``outputs:`` values (any other expression is an error, and no ``run:`` may hold one);
- each step in ``bash --noprofile --norc -eo pipefail``, as ``shell: bash`` runs it, with a fresh
  ``$GITHUB_OUTPUT`` and ``$GITHUB_STEP_SUMMARY`` and ``$GITHUB_ACTION_PATH``; a failing step stops the
  action;
- the workflow commands the runner reads from both streams, where the runner finds them: ``::command::``
  at the start of a line after leading white space, and the legacy ``##[command]`` anywhere in a line
  (``ActionCommand.TryParseV2``/``TryParse``): ``::add-mask::``, ``::error``/``::warning`` annotations and
  ``::stop-commands::`` (text between the markers is not a command; only ``::TOKEN::`` resumes). Any other
  command is an assertion error: chaingate's actions issue no other, so one in a log was injected.

Tekton (a Task):
- params with defaults (``$(params.x)`` only in ``env`` values, never in a script), results in a temp
  dir (``$(results.x.path)``), workspaces bound or not (``$(workspaces.x.path|bound)``), the run context
  (``$(context.taskRun.name)``…), ``secretKeyRef`` from a dict and ``fieldRef`` annotations from another;
- Tekton's own mounts (``/tekton/home``, ``/tekton/results``) mapped to temp dirs; steps run in order
  through their script's shebang, and a failing step stops the task.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import chaingate

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)
#: Where this test process imports chaingate from; steps import the same (``PYTHONPATH=src`` runs test src).
CHAINGATE_PATH = str(Path(chaingate.__file__).resolve().parents[1])
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_INPUT = re.compile(r"^inputs\.([A-Za-z0-9_-]+)$")
_STEP_OUTPUT = re.compile(r"^steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)$")
_COMMAND = re.compile(r"^::([A-Za-z-]+)(?: ([^:]*))?::(.*)$")
#: The runner's legacy form, ``##[command key=value;key=value]data``, found anywhere in a line.
_LEGACY_COMMAND = re.compile(r"##\[([A-Za-z-]+)(?: ([^\]]*))?\](.*)$")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: Commands the runner registers (legacy parsing ignores any other name).
_RUNNER_COMMANDS = frozenset({
    "add-mask", "add-matcher", "add-path", "debug", "echo", "endgroup", "error", "group", "notice",
    "remove-matcher", "save-state", "set-env", "set-output", "stop-commands", "warning",
})  # fmt: skip
#: Tekton variables (never bash command substitutions such as ``$(dirname "$x")``).
TEKTON_VARIABLE = re.compile(r"\$\((params|results|workspaces|context|tasks|steps)\.([^)\s]*)\)")
STEP_TIMEOUT = 120


def unescape(text: str) -> str:
    return (
        text.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


@dataclass
class Annotation:
    level: str
    title: str
    message: str


@dataclass
class StepRun:
    id: str
    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]


@dataclass
class ActionRun:
    """What a composite action did: its steps, outputs, summary and the runner's view of the log."""

    steps: list[StepRun] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    masks: list[str] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    #: Log lines with workflow commands consumed and masks applied, as the job log would show them.
    log: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.steps[-1].exit_code if self.steps else 0

    @property
    def raw(self) -> str:
        """Everything the steps printed, before the runner consumed commands or applied masks."""
        return "".join(s.stdout + s.stderr for s in self.steps)

    def errors(self) -> list[Annotation]:
        return [a for a in self.annotations if a.level == "error"]

    def step(self, step_id: str) -> StepRun:
        return next(s for s in self.steps if s.id == step_id)


def parse_github_output(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` as the runner parses it: ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            while lines[i] != delimiter:
                value.append(lines[i])
                i += 1
            i += 1
            out[name] = "\n".join(value)
        else:
            name, _, rest = line.partition("=")
            out[name] = rest
    return out


def _parse_command(line: str) -> tuple[str, str, str] | None:
    """``(command, properties, data)`` as the runner would parse ``line``, or None when it is plain text."""
    if match := _COMMAND.match(line.lstrip()):
        command, props, data = match.groups()
        return command.lower(), props or "", data
    if (match := _LEGACY_COMMAND.search(line)) and match.group(1).lower() in _RUNNER_COMMANDS:
        command, props, data = match.groups()
        return command.lower(), (props or "").replace(";", ","), data
    return None


def process_commands(text: str, run: ActionRun, stop_token: list[str]) -> None:
    # The runner reads lines as .NET's ReadLine splits them (at \n, \r\n or a lone \r); other separators
    # (U+2028, NEL…) stay inside a line.
    rows = _LINE_BREAK.split(text)
    if rows and rows[-1] == "":
        rows.pop()
    for line in rows:
        if stop_token:
            if line.strip().lower() == f"::{stop_token[0]}::".lower():
                stop_token.clear()
            else:
                run.log.append(line)
            continue
        parsed = _parse_command(line)
        if parsed is None:
            run.log.append(line)
            continue
        command, props, data = parsed
        if command == "add-mask":
            run.masks.append(unescape(data))
        elif command == "stop-commands":
            stop_token.append(data)
        elif command in ("error", "warning", "notice"):
            title = ""
            for prop in props.split(","):
                key, _, value = prop.partition("=")
                if key == "title":
                    title = unescape(value)
            run.annotations.append(Annotation(command, title, unescape(data)))
        else:
            raise AssertionError(f"unexpected workflow command {command!r}")


def _apply_masks(run: ActionRun) -> None:
    masked = []
    for line in run.log:
        for secret in run.masks:
            if secret:
                line = line.replace(secret, "***")
        masked.append(line)
    run.log = masked


class CompositeAction:
    """One ``action.yml`` loaded for emulation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc: dict[str, Any] = yaml.safe_load(path.read_text())
        assert self.doc["runs"]["using"] == "composite", path

    def _inputs(self, given: Mapping[str, str]) -> dict[str, str]:
        declared: dict[str, Any] = self.doc.get("inputs") or {}
        unknown = set(given) - set(declared)
        assert not unknown, f"{self.path}: no such inputs {sorted(unknown)}"
        values = {}
        for name, spec in declared.items():
            if name in given:
                values[name] = given[name]
            else:
                assert not spec.get("required"), f"{self.path}: input {name!r} is required"
                values[name] = str(spec.get("default", ""))
        return values

    def _evaluate(self, text: str, inputs: Mapping[str, str], steps: Mapping[str, dict[str, str]]) -> str:
        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression == "github.action_path":
                return str(self.path.parent)
            if m := _INPUT.match(expression):
                assert m.group(1) in inputs, f"{self.path}: ${{{{ {expression} }}}} names no input"
                return inputs[m.group(1)]
            if m := _STEP_OUTPUT.match(expression):
                step_id, output = m.groups()
                assert step_id in self._step_ids(), f"{self.path}: ${{{{ {expression} }}}} names no step"
                return steps.get(step_id, {}).get(output, "")
            raise AssertionError(f"{self.path}: the emulator does not evaluate ${{{{ {expression} }}}}")

        return _EXPRESSION.sub(replace, str(text))

    def _step_ids(self) -> list[str]:
        return [s["id"] for s in self.doc["runs"]["steps"] if "id" in s]

    def run(self, inputs: Mapping[str, str], env: Mapping[str, str], tmp: Path) -> ActionRun:
        values = self._inputs(inputs)
        result = ActionRun()
        outputs_by_step: dict[str, dict[str, str]] = {}
        stop_token: list[str] = []
        for index, step in enumerate(self.doc["runs"]["steps"]):
            assert step.get("shell") == "bash" and "run" in step, (
                f"{self.path}: step {index} is not a bash step"
            )
            assert "if" not in step, f"{self.path}: the emulator does not evaluate if:"
            assert not _EXPRESSION.search(step["run"]), f"{self.path}: an expression inside run:"
            step_id = step.get("id", f"step{index}")
            workdir = tmp / f"{step_id}-{index}"
            workdir.mkdir(parents=True)
            output_file, summary_file = workdir / "output", workdir / "summary"
            output_file.touch()
            summary_file.touch()
            script = workdir / "script.sh"
            script.write_text(step["run"])
            step_env = {
                **env,
                "GITHUB_ACTION_PATH": str(self.path.parent),
                "GITHUB_OUTPUT": str(output_file),
                "GITHUB_STEP_SUMMARY": str(summary_file),
            }
            for name, value in (step.get("env") or {}).items():
                step_env[name] = self._evaluate(value, values, outputs_by_step)
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                env=step_env,
                cwd=env.get("GITHUB_WORKSPACE", str(tmp)),
                capture_output=True,
                text=True,
                timeout=STEP_TIMEOUT,
                check=False,
            )
            step_outputs = parse_github_output(output_file.read_text())
            outputs_by_step[step_id] = step_outputs
            result.steps.append(StepRun(step_id, proc.returncode, proc.stdout, proc.stderr, step_outputs))
            result.summary += summary_file.read_text()
            process_commands(proc.stdout, result, stop_token)
            process_commands(proc.stderr, result, stop_token)
            if proc.returncode != 0:
                break
        for name, spec in (self.doc.get("outputs") or {}).items():
            result.outputs[name] = self._evaluate(spec["value"], values, outputs_by_step)
        _apply_masks(result)
        return result


# -- Tekton -----------------------------------------------------------------------------------------


@dataclass
class TaskRun:
    exit_code: int
    results: dict[str, str]
    stdout: str
    stderr: str
    #: The environment each step ran with (after substitution), by step name.
    envs: dict[str, dict[str, str]]


class TektonTask:
    """One Task YAML loaded for emulation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc: dict[str, Any] = yaml.safe_load(path.read_text())
        assert self.doc["apiVersion"] == "tekton.dev/v1" and self.doc["kind"] == "Task", path
        self.spec: dict[str, Any] = self.doc["spec"]

    def _params(self, given: Mapping[str, str]) -> dict[str, str]:
        declared = {p["name"]: p for p in self.spec.get("params") or []}
        unknown = set(given) - set(declared)
        assert not unknown, f"{self.path}: no such params {sorted(unknown)}"
        values = {}
        for name, spec in declared.items():
            if name in given:
                values[name] = given[name]
            else:
                assert "default" in spec, f"{self.path}: param {name!r} has no default and was not given"
                values[name] = str(spec["default"])
        return values

    def run(
        self,
        params: Mapping[str, str],
        *,
        tmp: Path,
        workspaces: Mapping[str, Path],
        secrets: Mapping[tuple[str, str], str] | None = None,
        annotations: Mapping[str, str] | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> TaskRun:
        values = self._params(params)
        declared_ws = {w["name"]: w for w in self.spec.get("workspaces") or []}
        for name, spec in declared_ws.items():
            assert name in workspaces or spec.get("optional"), f"{self.path}: workspace {name!r} is required"
        home, results_dir = tmp / "tekton-home", tmp / "tekton-results"
        home.mkdir(parents=True)
        results_dir.mkdir()
        result_names = {r["name"] for r in self.spec.get("results") or []}

        def substitute(text: str) -> str:
            def replace(match: re.Match[str]) -> str:
                kind, rest = match.groups()
                if kind == "params":
                    assert rest in values, f"{self.path}: $(params.{rest}) names no param"
                    return values[rest]
                if kind == "results":
                    name, _, attr = rest.rpartition(".")
                    assert attr == "path" and name in result_names, f"{self.path}: $(results.{rest})"
                    return str(results_dir / name)
                if kind == "workspaces":
                    name, _, attr = rest.rpartition(".")
                    assert name in declared_ws, f"{self.path}: $(workspaces.{rest}) names no workspace"
                    if attr == "bound":
                        return "true" if name in workspaces else "false"
                    assert attr == "path", f"{self.path}: $(workspaces.{rest})"
                    return str(workspaces[name]) if name in workspaces else ""
                if kind == "context":
                    known = {
                        "taskRun.name": "emulated-taskrun",
                        "taskRun.namespace": "ci",
                        "taskRun.uid": "00000000-0000-4000-8000-000000000001",
                        "task.name": self.doc["metadata"]["name"],
                    }
                    assert rest in known, f"{self.path}: $(context.{rest}) is not a Task context variable"
                    return known[rest]
                raise AssertionError(f"{self.path}: $({kind}.{rest}) cannot appear in a Task")

            out = TEKTON_VARIABLE.sub(replace, text)
            return out.replace("/tekton/home", str(home)).replace("/tekton/results", str(results_dir))

        stdout, stderr, envs, code = "", "", {}, 0
        for step in self.spec["steps"]:
            script = step["script"]
            assert "$(params." not in script, f"{self.path}: $(params.…) inside the script of {step['name']}"
            env = {
                "PATH": f"{VENV_BIN}:/usr/bin:/bin",
                "PYTHONPATH": CHAINGATE_PATH,
                "HOME": str(home),
                "LANG": "C.UTF-8",
                **(base_env or {}),
            }
            for item in step.get("env") or []:
                if "value" in item:
                    env[item["name"]] = substitute(str(item["value"]))
                    continue
                source = item["valueFrom"]
                if "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    key = (substitute(ref["name"]), substitute(ref["key"]))
                    if key in (secrets or {}):
                        env[item["name"]] = (secrets or {})[key]
                    else:
                        assert ref.get("optional"), f"{self.path}: secret {key} missing and not optional"
                elif "fieldRef" in source:
                    match = re.fullmatch(
                        r"metadata\.annotations\['([^']+)'\]", source["fieldRef"]["fieldPath"]
                    )
                    assert match, f"{self.path}: fieldRef {source['fieldRef']['fieldPath']}"
                    env[item["name"]] = (annotations or {}).get(match.group(1), "")
                else:
                    raise AssertionError(f"{self.path}: unsupported valueFrom {source}")
            workdir = tmp / f"step-{step['name']}"
            workdir.mkdir()
            script_path = workdir / "script"
            script_path.write_text(substitute(script))
            script_path.chmod(0o755)
            assert script.startswith("#!"), f"{self.path}: step {step['name']} script has no shebang"
            proc = subprocess.run(
                [str(script_path)],
                env=env,
                cwd=substitute(step.get("workingDir", str(workdir))),
                capture_output=True,
                text=True,
                timeout=STEP_TIMEOUT,
                check=False,
            )
            stdout += proc.stdout
            stderr += proc.stderr
            envs[step["name"]] = env
            code = proc.returncode
            if code != 0:
                break
        results = {p.name: p.read_text() for p in results_dir.iterdir()}
        return TaskRun(code, results, stdout, stderr, envs)


def github_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment a GitHub-hosted runner gives a push build of org/app, plus ``extra``."""
    workspace, runner_temp, home = tmp / "workspace", tmp / "runner-temp", tmp / "home"
    for d in (workspace, runner_temp, home):
        d.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "PYTHONPATH": CHAINGATE_PATH,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "RUNNER_TEMP": str(runner_temp),
        "RUNNER_ENVIRONMENT": "github-hosted",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "org/app",
        "GITHUB_REPOSITORY_ID": "123456789",
        "GITHUB_REPOSITORY_OWNER_ID": "987654321",
        "GITHUB_WORKFLOW_REF": "org/app/.github/workflows/release.yml@refs/heads/main",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_SHA": "a" * 40,
        "GITHUB_RUN_ID": "4242424242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_EVENT_NAME": "push",
        "CHAINGATE_SKIP_INSTALL": "1",
        "DOCKER_CONFIG": str(tmp / "no-docker-config"),
        "IBM_CREDENTIALS_FILE": str(tmp / "no-ibm-credentials.env"),
    }
    env.update(extra)
    return env


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
