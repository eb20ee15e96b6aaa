"""Secret and config-map bindings: the manifest a team declares, and its drift from what Code Engine runs.

A gate over the image is undermined if someone can quietly re-point the app at
another secret or config map, so the bindings are declared in the repository
(names and keys only — a manifest with values would be a secret in git) and
audited, and ``deploy --bindings`` applies them in the same update as the image
so one revision carries both.

Manifest, version 1 (YAML or JSON)::

    version: 1
    env:
      - {name: DB_PASSWORD, secret: db-credentials, key: password}   # one key as one variable
      - {name: LOG_LEVEL, configMap: app-config, key: log-level}
      - {secret: api-keys, prefix: API_}                             # every key, optionally prefixed
    volumes:
      - {mountPath: /etc/tls, secret: tls-cert}
      - {mountPath: /etc/app, configMap: app-config}

Literal environment variables and persistent data store mounts are not bindings:
they are neither declared here nor touched when a manifest is applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from chaingate import safejson
from chaingate.deploy.interface import (
    BindingDrift,
    BindingsManifest,
    BindingsReport,
    DeployError,
    EnvBinding,
    Target,
    VolumeBinding,
    dict_list,
)
from chaingate.safeyaml import YAMLShapeError, check_shape

if TYPE_CHECKING:
    from chaingate.deploy.codeengine import CodeEngine

_MAX_MANIFEST = 1024 * 1024
#: A manifest nests three levels; the bound keeps PyYAML's recursive composer far from the stack's end.
_MAX_DEPTH = 32
#: Kubernetes rules, which Code Engine applies: env names (C_IDENTIFIER-ish), object names (DNS subdomain), keys.
_ENV_NAME_RE = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_OBJECT_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_KEY_RE = re.compile(r"[-._a-zA-Z0-9]{1,253}")
_ENV_KEYS = frozenset({"name", "secret", "configMap", "key", "prefix"})
_VOLUME_KEYS = frozenset({"mountPath", "secret", "configMap", "subPath"})
_VALUE_KEYS = frozenset({"value", "values", "data", "stringData"})

Source = Literal["secret", "config_map"]


def load_bindings(path: Path) -> BindingsManifest:
    """Read and check a manifest file; every error names the file and the field."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DeployError(f"{path}: {e.strerror or e}") from None
    if len(raw) > _MAX_MANIFEST:
        raise DeployError(f"{path}: larger than {_MAX_MANIFEST} bytes")
    try:
        if path.suffix == ".json":
            doc = safejson.loads(raw)
        else:
            check_shape(raw, max_depth=_MAX_DEPTH, what="a bindings manifest")
            doc = yaml.safe_load(raw)
    except YAMLShapeError as e:
        raise DeployError(f"{path}:{e.line}: {e.message}; not a bindings manifest") from None
    except RecursionError:  # PyYAML's constructor recurses once per nesting level
        raise DeployError(f"{path}: nested too deeply to be a bindings manifest") from None
    except (ValueError, yaml.YAMLError) as e:
        raise DeployError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
            f"{' '.join(str(e).split())[:200]}"
        ) from None
    return parse_bindings(doc, str(path))


def parse_bindings(doc: Any, source: str) -> BindingsManifest:
    if not isinstance(doc, dict):
        raise DeployError(f"{source}: a bindings manifest is a mapping with version, env and volumes")
    # Keys as text: YAML keys may be numbers, dates or null, which do not sort with strings.
    unknown = sorted(str(key) for key in doc if key not in ("version", "env", "volumes"))
    if unknown:
        raise DeployError(f"{source}: {unknown[0]}: unknown key (allowed: version, env, volumes)")
    if doc.get("version") != 1:
        raise DeployError(f"{source}: version: must be 1")
    env = tuple(_env(item, f"{source}: env[{i}]") for i, item in enumerate(_list(doc, "env", source)))
    volumes = tuple(
        _volume(item, f"{source}: volumes[{i}]") for i, item in enumerate(_list(doc, "volumes", source))
    )
    _no_duplicates([b.identity for b in env], source, "env")
    _no_duplicates([b.identity for b in volumes], source, "volumes")
    return BindingsManifest(env, volumes, source)


def _list(doc: Mapping[str, Any], key: str, source: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DeployError(f"{source}: {key}: must be a list")
    return value


def _no_duplicates(identities: Sequence[str], source: str, where: str) -> None:
    seen: set[str] = set()
    for identity in identities:
        if identity in seen:
            raise DeployError(f"{source}: {where}: {identity} is declared twice")
        seen.add(identity)


def _check_keys(item: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise DeployError(f"{where}: must be a mapping")
    for key in item:
        if key in _VALUE_KEYS:
            raise DeployError(
                f"{where}.{key}: a bindings manifest holds secret and config-map names and keys, never values"
            )
        if key not in allowed:
            raise DeployError(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
    return item


def _string(item: Mapping[str, Any], key: str, where: str, pattern: re.Pattern[str]) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        # Never the repr of a non-string: a YAML int of 5,000 hex digits has no decimal repr.
        shown = repr(value[:100]) if isinstance(value, str) else f"a {type(value).__name__}"
        raise DeployError(f"{where}.{key}: {shown} is not a valid {key}")
    return value


def _source(item: Mapping[str, Any], where: str) -> tuple[Source, str]:
    secret = _string(item, "secret", where, _OBJECT_RE)
    config_map = _string(item, "configMap", where, _OBJECT_RE)
    if (secret is None) == (config_map is None):
        raise DeployError(f"{where}: name exactly one of secret or configMap")
    return ("secret", secret) if secret is not None else ("config_map", config_map or "")


def _env(item: Any, where: str) -> EnvBinding:
    item = _check_keys(item, _ENV_KEYS, where)
    source, reference = _source(item, where)
    key = _string(item, "key", where, _KEY_RE)
    name = _string(item, "name", where, _ENV_NAME_RE)
    prefix = _string(item, "prefix", where, _ENV_NAME_RE)
    if key is not None:
        if name is None:
            raise DeployError(f"{where}.name: required with key (the variable that receives it)")
        if prefix is not None:
            raise DeployError(f"{where}.prefix: only for a whole {source.replace('_', '-')} (without key)")
    elif name is not None:
        raise DeployError(f"{where}.name: only with key; a whole {source.replace('_', '-')} takes prefix")
    return EnvBinding(source, reference, key, name, prefix)


def _volume(item: Any, where: str) -> VolumeBinding:
    item = _check_keys(item, _VOLUME_KEYS, where)
    source, reference = _source(item, where)
    mount = item.get("mountPath")
    if not isinstance(mount, str) or not mount.startswith("/") or "\x00" in mount:
        raise DeployError(f"{where}.mountPath: must be an absolute path")
    sub = item.get("subPath")
    if sub is not None and (not isinstance(sub, str) or not sub or sub.startswith("/")):
        raise DeployError(f"{where}.subPath: must be a relative path")
    return VolumeBinding(source, reference, mount, sub)


# -- what Code Engine runs ---------------------------------------------------------------------------

_ENV_TYPES: dict[str, tuple[Source, bool]] = {
    "secret_key_reference": ("secret", True),
    "secret_full_reference": ("secret", False),
    "config_map_key_reference": ("config_map", True),
    "config_map_full_reference": ("config_map", False),
}


def running_env(env_vars: Iterable[Mapping[str, Any]]) -> list[EnvBinding]:
    """The bindings among a workload's ``run_env_variables`` (literals are not bindings)."""
    out = []
    for var in env_vars:
        kind = _ENV_TYPES.get(str(var.get("type")))
        if kind is None:
            continue
        source, by_key = kind
        out.append(
            EnvBinding(
                source,
                str(var.get("reference") or ""),
                str(var.get("key") or "") if by_key else None,
                str(var.get("name") or "") if by_key else None,
                None if by_key else (var.get("prefix") or None),
            )
        )
    return out


def running_volumes(mounts: Iterable[Mapping[str, Any]]) -> list[VolumeBinding]:
    out = []
    for mount in mounts:
        kind = mount.get("type")
        if kind not in ("secret", "config_map"):
            continue
        out.append(
            VolumeBinding(
                "secret" if kind == "secret" else "config_map",
                str(mount.get("reference") or ""),
                str(mount.get("mount_path") or ""),
                mount.get("sub_path") or None,
            )
        )
    return out


def drift(manifest: BindingsManifest, workload: Mapping[str, Any]) -> list[BindingDrift]:
    """How the workload's bindings differ from the manifest, in manifest order then the extras."""
    out: list[BindingDrift] = []
    pairs: list[tuple[Sequence[EnvBinding | VolumeBinding], Sequence[EnvBinding | VolumeBinding]]] = [
        (manifest.env, running_env(dict_list(workload.get("run_env_variables")))),
        (manifest.volumes, running_volumes(dict_list(workload.get("run_volume_mounts")))),
    ]
    for expected, actual in pairs:
        running = {b.identity: b for b in actual}
        declared = {b.identity for b in expected}
        for want in expected:
            have = running.get(want.identity)
            if have is None:
                out.append(BindingDrift("removed", want.identity, want.describe(), None))
            elif have != want:
                out.append(BindingDrift("changed", want.identity, want.describe(), have.describe()))
        out.extend(
            BindingDrift("added", have.identity, None, have.describe())
            for have in actual
            if have.identity not in declared
        )
    return out


def merged_env(current: Iterable[Mapping[str, Any]], manifest: BindingsManifest) -> list[dict[str, Any]]:
    """The env list to send: the workload's literals as they are, then exactly the manifest's bindings.

    A merge patch replaces arrays whole, so literals must be re-sent to survive.
    """
    keep = [prototype(var) for var in current if var.get("type") not in _ENV_TYPES]
    return keep + [b.to_code_engine() for b in manifest.env]


def merged_volumes(current: Iterable[Mapping[str, Any]], manifest: BindingsManifest) -> list[dict[str, Any]]:
    """The mounts to send: persistent data store mounts as they are, then exactly the manifest's."""
    keep = [prototype(m) for m in current if m.get("type") not in ("secret", "config_map")]
    return keep + [b.to_code_engine() for b in manifest.volumes]


_PROTOTYPE_FIELDS = (
    "type",
    "name",
    "value",
    "key",
    "reference",
    "prefix",
    "mount_path",
    "sub_path",
    "read_only",
)


def prototype(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An env var or mount as read, reduced to the fields a request may carry (responses add read-only ones)."""
    return {k: entry[k] for k in _PROTOTYPE_FIELDS if entry.get(k) is not None}


def referenced(bindings: Iterable[EnvBinding | VolumeBinding]) -> list[tuple[Source, str, str | None]]:
    """Each (source, name, key) the bindings need to exist, once."""
    out: dict[tuple[Source, str, str | None], None] = {}
    for b in bindings:
        key = b.key if isinstance(b, EnvBinding) else None
        out[(b.source, b.reference, key)] = None
    return list(out)


def dangling(
    ce: CodeEngine, project_id: str, bindings: Iterable[EnvBinding | VolumeBinding]
) -> list[BindingDrift]:
    """Bindings to a secret or config map (or key) the project does not have: the revision could not start."""
    needed = referenced(bindings)
    if not needed:
        return []
    keys: dict[tuple[Source, str], frozenset[str]] = {}
    if any(source == "secret" for source, _, _ in needed):
        keys.update({("secret", name): k for name, k in ce.secret_keys(project_id).items()})
    if any(source == "config_map" for source, _, _ in needed):
        keys.update({("config_map", name): k for name, k in ce.config_map_keys(project_id).items()})
    out = []
    for source, name, key in needed:
        label = f"{source.replace('_', '-')} {name}"
        have = keys.get((source, name))
        if have is None:
            out.append(BindingDrift("dangling", label, f"{label} exists", f"no {label} in the project"))
        elif key is not None and key not in have:
            out.append(
                BindingDrift(
                    "dangling", f"{label} key {key}", f"key {key} in {label}", f"{label} has no key {key}"
                )
            )
    return out


def audit_bindings(ce: CodeEngine, target: Target, manifest: BindingsManifest) -> BindingsReport:
    """Drift between the manifest and the workload, plus references to objects or keys that do not exist."""
    workload = ce.get_workload(target)
    if workload is None:
        raise DeployError(f"{target}: not found")
    found = drift(manifest, workload[0])
    running = running_env(dict_list(workload[0].get("run_env_variables"))) + running_volumes(
        dict_list(workload[0].get("run_volume_mounts"))
    )
    found += dangling(ce, target.project_id, [*manifest.env, *manifest.volumes, *running])
    return BindingsReport(target, tuple(found))
