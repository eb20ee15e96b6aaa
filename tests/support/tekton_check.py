"""A structural check of Tekton YAML, since there is no official schema to validate against offline.

It checks what a cluster would only reject (or silently mis-run) at run time:
every ``$(params.x)`` / ``$(results.x.path)`` / ``$(workspaces.x.…)`` /
``$(tasks.t.results.r)`` / ``$(context.…)`` resolves; no Tekton variable is
spliced into a script (params reach scripts as environment variables only,
so a param value can never become shell code); steps run pinned images as
non-root; Pipelines pass only params and workspaces their Tasks declare, and
every required one; trigger resources wire up to what exists.

Tasks referenced remotely (by a git resolver, or by name from IBM's catalog)
cannot be loaded offline, so their results and params are listed here, read
from the pinned commits the Pipelines name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaingate.ci.tekton import CHAINS_INPUT_SUFFIX, is_chains_output_hint
from support.ci_emulation import TEKTON_VARIABLE, load_yaml_documents

PINNED_IMAGE = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
TASK_CONTEXT = {"taskRun.name", "taskRun.namespace", "taskRun.uid", "task.name", "task.retry-count"}
PIPELINE_CONTEXT = {
    "pipelineRun.name",
    "pipelineRun.namespace",
    "pipelineRun.uid",
    "pipeline.name",
    "pipelineTask.retries",
}
#: Remote Tasks: (params, required params, results, workspaces, required workspaces), from the pinned sources:
#: tektoncd/catalog@55dd80ef (buildah 0.9), tektoncd-catalog/git-clone@c166e562 (v1.7.0) and
#: open-toolchain/tekton-catalog@c4c77a30 (git-clone-repo, icr-containerize).
REMOTE_TASKS: dict[str, dict[str, set[str]]] = {
    "task/buildah/0.9/buildah.yaml": {
        "params": {"IMAGE", "BUILDER_IMAGE", "STORAGE_DRIVER", "DOCKERFILE", "CONTEXT", "TLSVERIFY", "FORMAT",
                   "BUILD_EXTRA_ARGS", "PUSH_EXTRA_ARGS", "SKIP_PUSH", "BUILD_ARGS"},
        "required": {"IMAGE"},
        "results": {"IMAGE_DIGEST", "IMAGE_URL"},
        "workspaces": {"source", "sslcertdir", "dockerconfig"},
        "required_workspaces": {"source"},
    },
    "task/git-clone/git-clone.yaml": {
        "params": {"url", "revision", "refspec", "submodules", "submodulePaths", "depth", "sslVerify",
                   "crtFileName", "subdirectory", "sparseCheckoutDirectories", "deleteExisting", "httpProxy",
                   "httpsProxy", "noProxy", "verbose", "userFriendlyErrors", "gitInitImage", "userHome"},
        "required": {"url"},
        "results": {"commit", "url", "committer-date"},
        "workspaces": {"output", "ssh-directory", "basic-auth", "ssl-ca-directory"},
        "required_workspaces": {"output"},
    },
    "git-clone-repo": {
        "params": {"ibmcloud-api", "continuous-delivery-context-secret", "ibmcloud-apikey-secret-key",
                   "git-access-token", "resource-group", "repository", "branch", "revision",
                   "fetch-gitoken-step-image", "git-client-image", "git-max-retry", "pr-repository", "pr-branch",
                   "pr-revision", "directory-name", "properties-file", "git-credentials-json-file",
                   "pipeline-debug"},
        "required": {"repository"},
        "results": {"git-repository", "git-branch", "git-commit", "git-user", "clone-directory"},
        "workspaces": {"output"},
        "required_workspaces": {"output"},
    },
    "icr-containerize": {
        "params": {"ibmcloud-api", "continuous-delivery-context-secret", "container-registry-apikey-secret-key",
                   "resource-group", "image-url", "registry-region", "registry-namespace",
                   "registry-create-namespace", "image-name", "path-to-context", "path-to-dockerfile", "dockerfile",
                   "build-args", "buildkit-image", "push-to-registry", "check-step-image",
                   "process-log-step-image", "additional-tags", "additional-tags-script", "properties-file",
                   "pipeline-debug", "disable-caching"},
        "required": set(),
        "results": {"image-repository", "image-tags", "image-digest"},
        "workspaces": {"source"},
        "required_workspaces": {"source"},
    },
}  # fmt: skip


@dataclass
class Found:
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, where: str, message: str) -> None:
        if not ok:
            self.problems.append(f"{where}: {message}")


def strings(node: Any) -> Iterator[str]:
    """Every string value in a YAML tree (keys too: a ``$(…)`` in a key is just as unresolved)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def variables(node: Any) -> Iterator[tuple[str, str]]:
    for text in strings(node):
        for match in TEKTON_VARIABLE.finditer(text):
            yield match.group(1), match.group(2)


def _names(items: list[Mapping[str, Any]] | None) -> list[str]:
    return [str(item["name"]) for item in items or []]


def check_task(doc: Mapping[str, Any], where: str, found: Found) -> None:
    spec = doc["spec"]
    params = {p["name"]: p for p in spec.get("params") or []}
    results = set(_names(spec.get("results")))
    workspaces = set(_names(spec.get("workspaces")))
    volumes = set(_names(spec.get("volumes")))
    found.check(len(params) == len(spec.get("params") or []), where, "duplicate params")
    found.check(bool(spec.get("description")), where, "no description")
    for name, param in params.items():
        found.check(bool(param.get("description")), where, f"param {name} has no description")
    for w in spec.get("workspaces") or []:
        found.check(bool(w.get("description")), where, f"workspace {w['name']} has no description")
    for kind, rest in variables(doc):
        if kind == "params":
            found.check(rest in params, where, f"$(params.{rest}) is not a param")
        elif kind == "results":
            name, _, attr = rest.rpartition(".")
            found.check(attr == "path" and name in results, where, f"$(results.{rest}) is not a result path")
        elif kind == "workspaces":
            name, _, attr = rest.rpartition(".")
            found.check(name in workspaces and attr in ("path", "bound", "claim", "volume"), where,
                        f"$(workspaces.{rest}) is not a workspace variable")  # fmt: skip
        elif kind == "context":
            found.check(rest in TASK_CONTEXT, where, f"$(context.{rest}) is not a Task context variable")
        else:
            found.problems.append(f"{where}: $({kind}.{rest}) cannot appear in a Task")
    used_params = {rest for kind, rest in variables(doc) if kind == "params"}
    for name in params:
        found.check(name in used_params, where, f"param {name} is never used")
    for step in spec["steps"]:
        at = f"{where} step {step['name']}"
        script = step.get("script", "")
        found.check(not TEKTON_VARIABLE.search(script), at,
                    "a Tekton variable inside the script (pass it through env)")  # fmt: skip
        found.check(script.startswith("#!"), at, "script has no shebang")
        image = str(step["image"])
        if image.startswith("$(params."):
            default = str(params.get(image[len("$(params.") : -1], {}).get("default", ""))
            found.check(
                bool(PINNED_IMAGE.match(default)), at, f"image param default {default!r} is not pinned"
            )
        else:
            found.check(bool(PINNED_IMAGE.match(image)), at, f"image {image!r} is not pinned by digest")
        security = step.get("securityContext") or {}
        found.check(security.get("runAsNonRoot") is True, at, "securityContext.runAsNonRoot is not true")
        found.check(security.get("allowPrivilegeEscalation") is False, at, "privilege escalation allowed")
        found.check("ALL" in ((security.get("capabilities") or {}).get("drop") or []), at,
                    "capabilities are not all dropped")  # fmt: skip
        for mount in step.get("volumeMounts") or []:
            found.check(mount["name"] in volumes, at, f"volumeMount {mount['name']} names no volume")
        env_names = {e["name"] for e in step.get("env") or []}
        for name in set(re.findall(r"\$\{?((?:PARAM|WORKSPACE|RESULT)_[A-Z0-9_]+)", script)):
            found.check(name in env_names, at, f"the script reads ${name}, which env does not set")
        written = set(re.findall(r"\$RESULT_([A-Z0-9_]+)_PATH", script))
        for result in results:
            # CHAINS-GIT_URL arrives as $RESULT_CHAINS_GIT_URL_PATH: an environment name has no hyphen.
            found.check(result.replace("-", "_") in written, at, f"result {result} is never written")


def _task_interface(ref: Mapping[str, Any], local: Mapping[str, Mapping[str, Any]], where: str,
                    found: Found) -> dict[str, set[str]] | None:  # fmt: skip
    if "resolver" in ref:
        rparams = {p["name"]: p["value"] for p in ref.get("params") or []}
        found.check(bool(COMMIT.match(str(rparams.get("revision", "")))), where,
                    "a remote Task must be pinned to a full commit")  # fmt: skip
        known = REMOTE_TASKS.get(str(rparams.get("pathInRepo")))
        found.check(known is not None, where, f"unknown remote task {rparams.get('pathInRepo')}")
        return known
    name = str(ref["name"])
    if name in local:
        spec = local[name]["spec"]
        return {
            "params": set(_names(spec.get("params"))),
            "required": {p["name"] for p in spec.get("params") or [] if "default" not in p},
            "results": set(_names(spec.get("results"))),
            "workspaces": set(_names(spec.get("workspaces"))),
            "required_workspaces": {w["name"] for w in spec.get("workspaces") or [] if not w.get("optional")},
        }
    known = REMOTE_TASKS.get(name)
    found.check(
        known is not None, where, f"taskRef {name} is neither in tekton/task nor a known catalog task"
    )
    return known


def check_pipeline(doc: Mapping[str, Any], where: str, local: Mapping[str, Mapping[str, Any]],
                   found: Found) -> None:  # fmt: skip
    spec = doc["spec"]
    params = {p["name"]: p for p in spec.get("params") or []}
    workspaces = {w["name"]: w for w in spec.get("workspaces") or []}
    tasks = {t["name"]: t for t in spec["tasks"]}
    interfaces = {
        name: _task_interface(t["taskRef"], local, f"{where} task {name}", found) for name, t in tasks.items()
    }
    for name, param in params.items():
        found.check(bool(param.get("description")), where, f"param {name} has no description")
        if name.lower().endswith("image") and "default" in param:
            found.check(bool(PINNED_IMAGE.match(str(param["default"]))), where, f"param {name} is not pinned")
    for kind, rest in variables(doc):
        if kind == "params":
            found.check(rest in params, where, f"$(params.{rest}) is not a param")
        elif kind == "tasks":
            task, _, tail = rest.partition(".results.")
            found.check(task in tasks and bool(tail), where, f"$(tasks.{rest}) names no task result")
            interface = interfaces.get(task)
            if interface is not None:
                found.check(
                    tail in interface["results"], where, f"$(tasks.{rest}): {task} has no result {tail}"
                )
        elif kind == "context":
            found.check(
                rest in PIPELINE_CONTEXT, where, f"$(context.{rest}) is not a Pipeline context variable"
            )
        else:
            found.problems.append(f"{where}: $({kind}.{rest}) cannot appear in a Pipeline")
    for name, task in tasks.items():
        at = f"{where} task {name}"
        for after in task.get("runAfter") or []:
            found.check(after in tasks, at, f"runAfter {after} names no task")
        interface = interfaces[name]
        given = set(_names(task.get("params")))
        bound = {w["name"]: w["workspace"] for w in task.get("workspaces") or []}
        for pipeline_ws in bound.values():
            found.check(pipeline_ws in workspaces, at, f"workspace {pipeline_ws} is not a Pipeline workspace")
        if interface is None:
            continue
        found.check(given <= interface["params"], at, f"params {sorted(given - interface['params'])} unknown")
        found.check(
            interface["required"] <= given, at, f"required params {sorted(interface['required'] - given)}"
        )
        found.check(
            set(bound) <= interface["workspaces"],
            at,
            f"workspaces {sorted(set(bound) - interface['workspaces'])} unknown",
        )
        missing = interface["required_workspaces"] - set(bound)
        found.check(not missing, at, f"required workspaces {sorted(missing)} not bound")
    used = {rest for kind, rest in variables(doc) if kind == "params"}
    for name in params:
        found.check(name in used, where, f"param {name} is never used")


@dataclass(frozen=True)
class ChainsHints:
    """What Tekton Chains reads from a Task's or Pipeline's names (its type hints), by category."""

    outputs: tuple[str, ...]
    inputs: tuple[str, ...]


def chains_type_hints(doc: Mapping[str, Any]) -> ChainsHints:
    """The type hints Chains would find, by its own matching rules (``pkg/artifacts/signable.go`` and the
    material extraction): outputs are results only (``IMAGES``, ``*IMAGE_URL``/``*IMAGE_DIGEST``,
    ``*ARTIFACT_URI``/``*ARTIFACT_DIGEST``, ``*ARTIFACT_OUTPUTS``); inputs are params or results named
    ``CHAINS-GIT_URL``/``CHAINS-GIT_COMMIT`` or ``*ARTIFACT_INPUTS``."""
    spec = doc["spec"]
    results = _names(spec.get("results"))
    params = _names(spec.get("params"))
    outputs = tuple(name for name in results if is_chains_output_hint(name))
    inputs = tuple(
        name
        for name in (*params, *results)
        if name in ("CHAINS-GIT_URL", "CHAINS-GIT_COMMIT") or name.endswith(CHAINS_INPUT_SUFFIX)
    )
    return ChainsHints(outputs, inputs)


def check_optional_sources(template: Mapping[str, Any], pipeline: Mapping[str, Any], where: str,
                           found: Found) -> None:  # fmt: skip
    """A PipelineRun workspace the Pipeline declares optional, fed by a ConfigMap or Secret key, must be an
    ``optional`` source: a property left unset would otherwise keep the pod from starting at all."""
    optional = {w["name"] for w in pipeline["spec"].get("workspaces") or [] if w.get("optional")}
    for resource in template["spec"]["resourcetemplates"]:
        for ws in resource["spec"].get("workspaces") or [] if resource["kind"] == "PipelineRun" else []:
            source = ws.get("configMap") or ws.get("secret")
            if ws["name"] in optional and source is not None:
                found.check(source.get("optional") is True, where,
                            f"workspace {ws['name']} is optional in the Pipeline but its source is not")  # fmt: skip


def check_triggers(docs: list[tuple[str, Mapping[str, Any]]], pipelines: Mapping[str, Mapping[str, Any]],
                   found: Found) -> None:  # fmt: skip
    templates = {d["metadata"]["name"]: (w, d) for w, d in docs if d["kind"] == "TriggerTemplate"}
    bindings = {d["metadata"]["name"]: (w, d) for w, d in docs if d["kind"] == "TriggerBinding"}
    for where, template in templates.values():
        tparams = {p["name"]: p for p in template["spec"].get("params") or []}
        for kind, rest in variables(template):
            found.check(
                kind == "params" and rest in tparams, where, f"$({kind}.{rest}) is not a template param"
            )
        for resource in template["spec"]["resourcetemplates"]:
            if resource["kind"] != "PipelineRun":
                continue
            pipeline = pipelines.get(resource["spec"]["pipelineRef"]["name"])
            found.check(pipeline is not None, where, "the PipelineRun names no Pipeline in this directory")
            if pipeline is None:
                continue
            check_optional_sources(template, pipeline, where, found)
            pspec = pipeline["spec"]
            given = set(_names(resource["spec"].get("params")))
            declared = {p["name"]: p for p in pspec.get("params") or []}
            found.check(
                given <= set(declared), where, f"PipelineRun params {sorted(given - set(declared))} unknown"
            )
            required = {n for n, p in declared.items() if "default" not in p}
            found.check(
                required <= given, where, f"PipelineRun misses required params {sorted(required - given)}"
            )
            ws = set(_names(resource["spec"].get("workspaces")))
            required_ws = {w["name"] for w in pspec.get("workspaces") or [] if not w.get("optional")}
            found.check(required_ws <= ws, where, f"PipelineRun misses workspaces {sorted(required_ws - ws)}")
    for where, doc in docs:
        if doc["kind"] != "EventListener":
            continue
        for trigger in doc["spec"]["triggers"]:
            binding, template = trigger["binding"]["name"], trigger["template"]["name"]
            found.check(binding in bindings, where, f"binding {binding} does not exist")
            found.check(template in templates, where, f"template {template} does not exist")
            if binding in bindings and template in templates:
                tparams = set(_names(templates[template][1]["spec"].get("params")))
                bparams = set(_names(bindings[binding][1]["spec"].get("params")))
                found.check(bparams <= tparams, where, f"binding params {sorted(bparams - tparams)} unknown")


def check_tree(root: Path) -> list[str]:
    """All problems in the Tekton YAML under ``root`` (``tekton/``), as ``file: message`` lines."""
    found = Found()
    docs: list[tuple[str, Mapping[str, Any]]] = []
    for path in sorted(root.rglob("*.yaml")):
        if path.name.startswith("."):
            continue
        for index, doc in enumerate(load_yaml_documents(path)):
            docs.append((f"{path.relative_to(root)}#{index}", doc))
    for where, doc in docs:
        found.check(doc.get("apiVersion") == "tekton.dev/v1", where, f"apiVersion {doc.get('apiVersion')}")
        found.check(doc.get("kind") in {"Task", "Pipeline", "TriggerTemplate", "TriggerBinding", "EventListener"},
                    where, f"unexpected kind {doc.get('kind')}")  # fmt: skip
    local = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "Task"}
    for where, doc in docs:
        if doc["kind"] == "Task":
            check_task(doc, where, found)
    by_dir: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for where, doc in docs:
        by_dir.setdefault(where.rsplit("/", 1)[0] if "/" in where else "", []).append((where, doc))
        if doc["kind"] == "Pipeline":
            check_pipeline(doc, where, local, found)
    for group in by_dir.values():
        pipelines = {d["metadata"]["name"]: d for _, d in group if d["kind"] == "Pipeline"}
        if any(d["kind"] in ("TriggerTemplate", "EventListener") for _, d in group):
            check_triggers(group, pipelines, found)
    return found.problems
