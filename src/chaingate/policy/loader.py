"""Loading a policy file (version 1) with a location for every mistake.

The file is parsed with ``yaml.compose`` rather than ``yaml.safe_load``:
composing keeps a node, and so a line number, for every key and value, which
is what lets each error say ``policy.yaml:14: signers[0].subjectRegExp: …``.
Scalars are then constructed one at a time with PyYAML's safe constructor,
so a value means exactly what YAML says it means (``on`` is a bool, a bare
``2026-12-31`` a date) and nothing can instantiate an object.

Strictness is the point: an unknown key is an error, not something ignored,
because a misspelt ``requireDigest`` that silently does nothing is a hole in
the gate that nobody sees.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from chaingate.oci.digest import is_sha256_digest, validate_digest
from chaingate.oci.errors import OCIError
from chaingate.oci.reference import parse_reference
from chaingate.policy.interface import WAIVABLE_CLAUSES, Mode, PolicyError
from chaingate.policy.model import (
    SEVERITIES,
    SIGNER_CLAIMS,
    Glob,
    ImagePattern,
    Policy,
    PolicyException,
    ProjectOverride,
    ProvenanceRule,
    QuarantineEntry,
    RegexpProblem,
    SbomRule,
    Signer,
    VulnerabilityRule,
    compile_anchored,
    github_signer,
    glob_problem,
    parse_duration,
)
from chaingate.safeyaml import YAMLShapeError, check_shape

#: A policy is a page of YAML; a file far larger is a mistake (or an attack on the parser).
MAX_POLICY_BYTES = 1024 * 1024
#: Quarantine lists can be long (incident response), but not unbounded.
MAX_QUARANTINE_FILE_BYTES = 16 * 1024 * 1024
#: A policy nests four or five levels; the bound keeps PyYAML's recursive composer far from the stack's end.
MAX_POLICY_DEPTH = 64
#: The only scalar types a policy holds; anything else (``!!python/…``, ``!!binary``) is refused.
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "bool", "null", "float", "timestamp")
)
_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}\Z")
_GITHUB_WORKFLOW = re.compile(r"^\.github/workflows/[A-Za-z0-9._/-]{1,200}\.ya?ml\Z")
_GITHUB_REF = re.compile(r"^refs/(?:heads|tags)/[A-Za-z0-9._/+-]{1,255}\Z")

_TOP_KEYS = (
    "version",
    "mode",
    "registries",
    "requireDigest",
    "signers",
    "provenance",
    "sbom",
    "vulnerabilities",
    "quarantine",
    "exceptions",
    "projects",
)
_EXCEPTION_KEYS = ("id", "clause", "image", "ids", "owner", "justification", "issue", "expires")

T = TypeVar("T")


def load_policy(path: Path, *, today: date | None = None) -> Policy:
    """Read and check the policy at ``path``; ``today`` (UTC by default) bounds exception expiry dates.

    Raises :class:`PolicyError` (exit 2) naming file, line and key for anything
    that is not a valid version 1 policy.
    """
    file = str(path)
    raw = _read(path, MAX_POLICY_BYTES, file, "policy")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicyError(file, _line_of_offset(raw, e.start), None, "not UTF-8 text") from None
    try:
        # Aliases are refused before composing: a shared node visited once per alias
        # is how a small file becomes an exponential amount of work. Nesting is bounded
        # here too, because the composer recurses once per level and a page of `[`
        # would exhaust the interpreter's stack.
        check_shape(text, max_depth=MAX_POLICY_DEPTH, what="a policy")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except YAMLShapeError as e:
        raise PolicyError(file, e.line, None, e.message) from None
    except RecursionError:  # a nesting the token count above did not see: still the file's fault
        raise PolicyError(file, None, None, f"nested deeper than {MAX_POLICY_DEPTH} levels") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(e.problem or e.context or "syntax error").split())
        raise PolicyError(file, line, None, f"not valid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise PolicyError(file, None, None, f"not valid YAML: {' '.join(str(e).split())}") from None
    if root is None:
        raise PolicyError(file, 1, None, "the policy file is empty", hint="start with `version: 1`")
    reader = _Reader(file, path.parent, today or datetime.now(UTC).date())
    return reader.policy(root, "sha256:" + hashlib.sha256(raw).hexdigest())


def _read(path: Path, limit: int, file: str, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as e:
        raise PolicyError(file, None, None, f"cannot read the {what} file: {e.strerror or e}") from None
    if len(raw) > limit:
        raise PolicyError(file, None, None, f"larger than {limit} bytes; not a {what} file")
    return raw


def _line_of_offset(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


class _Reader:
    """Walks the composed document; every check raises with the node's line and the key path."""

    def __init__(self, file: str, directory: Path, today: date) -> None:
        self.file = file
        self.directory = directory
        self.today = today
        self._constructor = SafeConstructor()

    # -- primitives ---------------------------------------------------------------------------------

    def error(self, node: Node, key: str, problem: str, hint: str | None = None) -> PolicyError:
        return PolicyError(self.file, node.start_mark.line + 1, key, problem, hint=hint)

    def scalar(self, node: Node, key: str) -> Any:
        if not isinstance(node, ScalarNode):
            raise self.error(node, key, f"expected a single value, not {_kind(node)}")
        if node.tag not in _SCALAR_TAGS:
            raise self.error(node, key, f"unsupported YAML tag {node.tag}")
        try:
            value = self._constructor.construct_object(node, deep=True)
        except (ConstructorError, ValueError, OverflowError) as e:
            raise self.error(node, key, f"cannot read the value ({' '.join(str(e).split())})") from None
        # 0x followed by a page of digits is a valid YAML int that no message can print
        # (str() refuses ints of more than 4300 digits) and no field of a policy needs.
        if isinstance(value, int) and value.bit_length() > 64:
            raise self.error(node, key, f"the number {node.value[:40]}... is too large")
        return value

    def mapping(
        self, node: Node, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, tuple[Node, Node]]:
        """The entries of a mapping by key name; unknown, duplicate and missing keys are errors."""
        if not isinstance(node, MappingNode):
            raise self.error(node, key, f"expected a mapping, not {_kind(node)}")
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            name = self.scalar(key_node, key or "(top level)")
            if not isinstance(name, str):
                raise self.error(key_node, key or "(top level)", f"keys must be strings, not {name!r}")
            path = f"{key}.{name}" if key else name
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                raise self.error(
                    key_node,
                    path,
                    "unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""),
                    hint=f"allowed here: {', '.join(allowed)}",
                )
            if name in out:
                raise self.error(key_node, path, "duplicate key")
            out[name] = (key_node, value_node)
        for name in required:
            if name not in out:
                raise self.error(node, f"{key}.{name}" if key else name, "required key is missing")
        return out

    def sequence(self, node: Node, key: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.error(node, key, f"expected a list, not {_kind(node)}")
        return list(node.value)

    def string(self, node: Node, key: str) -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str):
            raise self.error(node, key, f"expected a string, not {_describe(value)}")
        if not value.strip():
            raise self.error(node, key, "must not be empty")
        return value

    def boolean(self, node: Node, key: str) -> bool:
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            raise self.error(node, key, f"expected true or false, not {_describe(value)}")
        return value

    def strings(self, node: Node, key: str) -> list[str]:
        return self.each(node, key, lambda value, item, where: value)

    def each(self, node: Node, key: str, check: Callable[[str, Node, str], T]) -> list[T]:
        """A list of distinct non-empty strings, each passed through ``check`` (which raises on a bad one)."""
        out: list[T] = []
        seen: set[str] = set()
        for i, item in enumerate(self.sequence(node, key)):
            where = f"{key}[{i}]"
            value = self.string(item, where)
            if value in seen:
                raise self.error(item, where, f"{value!r} is listed twice")
            seen.add(value)
            out.append(check(value, item, where))
        return out

    def duration(self, node: Node, key: str) -> timedelta:
        value = self.scalar(node, key)
        parsed = parse_duration(value) if isinstance(value, str) else None
        if parsed is None:
            raise self.error(
                node,
                key,
                f"{_describe(value)} is not a duration",
                hint="write a number and a unit: 90m, 12h, 30d, 1w",
            )
        return parsed

    def mode(self, node: Node, key: str) -> Mode:
        value = self.string(node, key)
        if value == "enforce":
            return "enforce"
        if value == "warn":
            return "warn"
        raise self.error(node, key, f"{value!r} is not a mode (enforce or warn)")

    # -- the document -------------------------------------------------------------------------------

    def policy(self, root: Node, digest: str) -> Policy:
        top = self.mapping(root, "", _TOP_KEYS, ("version", "signers"))
        version_node = top["version"][1]
        version = self.scalar(version_node, "version")
        if version != 1 or isinstance(version, bool):
            raise self.error(
                version_node, "version", f"unsupported policy version {version!r} (this chaingate reads 1)"
            )
        mode: Mode = self.mode(top["mode"][1], "mode") if "mode" in top else "enforce"
        registries = None
        if "registries" in top:
            registries = tuple(self.each(top["registries"][1], "registries", self.glob))
        require_digest = (
            self.boolean(top["requireDigest"][1], "requireDigest") if "requireDigest" in top else False
        )
        signers_node = top["signers"][1]
        signers = tuple(
            self.signer(item, f"signers[{i}]")
            for i, item in enumerate(self.sequence(signers_node, "signers"))
        )
        if not signers:
            raise self.error(
                signers_node,
                "signers",
                "at least one signer is required",
                hint="an unsigned image is always denied",
            )
        quarantine: list[QuarantineEntry] = []
        files: list[tuple[str, str]] = []
        if "quarantine" in top:
            for i, item in enumerate(self.sequence(top["quarantine"][1], "quarantine")):
                quarantine.extend(self.quarantine(item, f"quarantine[{i}]", files))
        exceptions: list[PolicyException] = []
        if "exceptions" in top:
            ids: set[str] = set()
            for i, item in enumerate(self.sequence(top["exceptions"][1], "exceptions")):
                exception = self.exception(item, f"exceptions[{i}]")
                if exception.id in ids:
                    raise self.error(
                        item, f"exceptions[{i}].id", f"exception id {exception.id!r} is used twice"
                    )
                ids.add(exception.id)
                exceptions.append(exception)
        return Policy(
            path=Path(self.file),
            digest=digest,
            mode=mode,
            signers=signers,
            registries=registries,
            require_digest=require_digest,
            provenance=self.provenance(top["provenance"][1]) if "provenance" in top else None,
            sbom=self.sbom(top["sbom"][1]) if "sbom" in top else None,
            vulnerabilities=self.vulnerabilities(top["vulnerabilities"][1])
            if "vulnerabilities" in top
            else None,
            quarantine=tuple(quarantine),
            exceptions=tuple(exceptions),
            projects=self.projects(top["projects"][1]) if "projects" in top else {},
            files=tuple(files),
        )

    def glob(self, value: str, node: Node, key: str) -> Glob:
        problem = glob_problem(value)
        if problem is not None:
            raise self.error(node, key, problem, hint="e.g. us.icr.io/team/* or us.icr.io/team/**")
        return Glob(value)

    def signer(self, node: Node, key: str) -> Signer:
        if isinstance(node, MappingNode) and any(
            isinstance(k, ScalarNode) and k.value == "github" for k, _ in node.value
        ):
            return self.github_signer(node, key)
        allowed = ("issuer", "subject", "subjectRegExp", *SIGNER_CLAIMS)
        entries = self.mapping(node, key, allowed, ("issuer",))
        issuer = self.string(entries["issuer"][1], f"{key}.issuer")
        if ("subject" in entries) == ("subjectRegExp" in entries):
            raise self.error(node, key, "give exactly one of subject and subjectRegExp")
        subject = self.string(entries["subject"][1], f"{key}.subject") if "subject" in entries else None
        regexp = None
        if "subjectRegExp" in entries:
            regexp = self.regexp(entries["subjectRegExp"][1], f"{key}.subjectRegExp")
        claims = {
            name: self.string(entries[name][1], f"{key}.{name}") for name in SIGNER_CLAIMS if name in entries
        }
        return Signer(issuer, subject, regexp, claims, node.start_mark.line + 1)

    def github_signer(self, node: Node, key: str) -> Signer:
        """The typed form: one GitHub Actions workflow, matched on the certificate's CI extensions only.

        It expands to GitHub's issuer, the workflow's exact SAN (the build
        signer URI) and the source repository and ref extensions, each of
        which must be present and equal: there is no regular expression to get
        wrong, and a certificate without Fulcio's CI extensions never matches.
        """
        self.mapping(node, key, ("github",), ("github",))
        value = node.value[0][1]
        where = f"{key}.github"
        entries = self.mapping(
            value, where, ("repository", "workflow", "ref"), ("repository", "workflow", "ref")
        )
        repository = self.string(entries["repository"][1], f"{where}.repository")
        workflow = self.string(entries["workflow"][1], f"{where}.workflow")
        ref = self.string(entries["ref"][1], f"{where}.ref")
        if not _GITHUB_REPOSITORY.match(repository):
            raise self.error(
                entries["repository"][1], f"{where}.repository", f"{repository!r} is not OWNER/REPO"
            )
        if not _GITHUB_WORKFLOW.match(workflow):
            raise self.error(
                entries["workflow"][1],
                f"{where}.workflow",
                f"{workflow!r} is not a workflow file path",
                hint="e.g. .github/workflows/release.yml",
            )
        if not _GITHUB_REF.match(ref):
            raise self.error(
                entries["ref"][1],
                f"{where}.ref",
                f"{ref!r} is not a full git ref",
                hint="e.g. refs/heads/main",
            )
        return github_signer(repository, workflow, ref, node.start_mark.line + 1)

    def regexp(self, node: Node, key: str) -> re.Pattern[str]:
        text = self.string(node, key)
        try:
            return compile_anchored(text)
        except RegexpProblem as e:
            raise self.error(node, key, e.message, hint=e.hint) from None

    def provenance(self, node: Node) -> ProvenanceRule:
        entries = self.mapping(node, "provenance", ("required", "builderIds", "sourceRepositories", "maxAge"))
        return ProvenanceRule(
            required=self.boolean(entries["required"][1], "provenance.required")
            if "required" in entries
            else True,
            builder_ids=tuple(self.strings(entries["builderIds"][1], "provenance.builderIds"))
            if "builderIds" in entries
            else (),
            source_repositories=tuple(
                self.each(
                    entries["sourceRepositories"][1], "provenance.sourceRepositories", self.repository_url
                )
            )
            if "sourceRepositories" in entries
            else (),
            max_age=self.duration(entries["maxAge"][1], "provenance.maxAge") if "maxAge" in entries else None,
        )

    def repository_url(self, value: str, node: Node, key: str) -> str:
        if "://" not in value or any(c.isspace() for c in value):
            raise self.error(
                node, key, f"{value!r} is not a repository URL", hint="e.g. https://github.com/org/app"
            )
        return value

    def sbom(self, node: Node) -> SbomRule:
        entries = self.mapping(node, "sbom", ("required", "maxAge"))
        return SbomRule(
            required=self.boolean(entries["required"][1], "sbom.required") if "required" in entries else True,
            max_age=self.duration(entries["maxAge"][1], "sbom.maxAge") if "maxAge" in entries else None,
        )

    def vulnerabilities(self, node: Node) -> VulnerabilityRule:
        entries = self.mapping(node, "vulnerabilities", ("required", "maxAge", "deny", "denyIds"))
        deny: list[str] = []
        if "deny" in entries:
            deny = self.each(entries["deny"][1], "vulnerabilities.deny", self.severity)
        return VulnerabilityRule(
            required=self.boolean(entries["required"][1], "vulnerabilities.required")
            if "required" in entries
            else True,
            max_age=self.duration(entries["maxAge"][1], "vulnerabilities.maxAge")
            if "maxAge" in entries
            else None,
            deny=frozenset(deny),
            deny_ids=frozenset(
                i.upper() for i in self.strings(entries["denyIds"][1], "vulnerabilities.denyIds")
            )
            if "denyIds" in entries
            else frozenset(),
        )

    def severity(self, value: str, node: Node, key: str) -> str:
        if value.lower() not in SEVERITIES:
            raise self.error(node, key, f"{value!r} is not a severity ({', '.join(SEVERITIES)})")
        return value.lower()

    def digest(self, node: Node, key: str) -> str:
        value = self.string(node, key)
        if not is_sha256_digest(value):
            raise self.error(
                node, key, f"{value!r} is not a digest", hint="write sha256: and 64 lowercase hex digits"
            )
        return value

    def quarantine(self, node: Node, key: str, files: list[tuple[str, str]]) -> list[QuarantineEntry]:
        entries = self.mapping(node, key, ("digest", "reason", "file"))
        if ("digest" in entries) == ("file" in entries):
            raise self.error(node, key, "give exactly one of digest (with a reason) and file")
        if "digest" in entries:
            if "reason" not in entries:
                raise self.error(
                    node, f"{key}.reason", "required key is missing", hint="say why the image is quarantined"
                )
            return [
                QuarantineEntry(
                    self.digest(entries["digest"][1], f"{key}.digest"),
                    self.string(entries["reason"][1], f"{key}.reason"),
                    f"{self.file}:{node.start_mark.line + 1}",
                )
            ]
        name = self.string(entries["file"][1], f"{key}.file")
        default_reason = self.string(entries["reason"][1], f"{key}.reason") if "reason" in entries else None
        path = Path(name) if Path(name).is_absolute() else self.directory / name
        try:
            raw = _read(path, MAX_QUARANTINE_FILE_BYTES, str(path), "quarantine list")
        except PolicyError as e:
            raise self.error(entries["file"][1], f"{key}.file", e.problem) from None
        files.append((str(path), "sha256:" + hashlib.sha256(raw).hexdigest()))
        out: list[QuarantineEntry] = []
        for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            digest, _, reason = text.partition(" ")
            if not is_sha256_digest(digest):
                raise PolicyError(
                    str(path),
                    number,
                    f"{key}.file",
                    f"{digest!r} is not a digest",
                    hint="one sha256:<64 hex> per line, optionally followed by a reason; # starts a comment",
                )
            out.append(
                QuarantineEntry(
                    digest, reason.strip() or default_reason or f"listed in {path}", f"{path}:{number}"
                )
            )
        return out

    def exception(self, node: Node, key: str) -> PolicyException:
        required = tuple(k for k in _EXCEPTION_KEYS if k != "ids")
        entries = self.mapping(node, key, _EXCEPTION_KEYS, required)
        ident = self.string(entries["id"][1], f"{key}.id")
        clause_node = entries["clause"][1]
        clause = self.string(clause_node, f"{key}.clause")
        if clause not in WAIVABLE_CLAUSES:
            hint = (
                "an unsigned image is denied whatever else the policy says"
                if clause == "signers"
                else f"waivable clauses: {', '.join(WAIVABLE_CLAUSES)}"
            )
            raise self.error(clause_node, f"{key}.clause", f"{clause!r} cannot be waived", hint=hint)
        ids: frozenset[str] = frozenset()
        if "ids" in entries:
            if clause != "vulnerabilities":
                raise self.error(
                    entries["ids"][0], f"{key}.ids", "ids only narrow a vulnerabilities exception"
                )
            ids = frozenset(i.upper() for i in self.strings(entries["ids"][1], f"{key}.ids"))
        expires_node = entries["expires"][1]
        expires = self.expiry(expires_node, f"{key}.expires")
        limit = _one_year_after(self.today)
        if expires > limit:
            raise self.error(
                expires_node,
                f"{key}.expires",
                f"{expires.isoformat()} is more than a year away (latest allowed: {limit.isoformat()})",
                hint="exceptions are never forever: renew it when it runs out",
            )
        return PolicyException(
            id=ident,
            clause=clause,
            image=self.image_pattern(entries["image"][1], f"{key}.image"),
            ids=ids,
            owner=self.string(entries["owner"][1], f"{key}.owner"),
            justification=self.string(entries["justification"][1], f"{key}.justification"),
            issue=self.string(entries["issue"][1], f"{key}.issue"),
            expires=expires,
            line=node.start_mark.line + 1,
        )

    def expiry(self, node: Node, key: str) -> date:
        value = self.scalar(node, key)
        if isinstance(value, datetime):
            raise self.error(node, key, "expected a date (YYYY-MM-DD), not a time")
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(node, key, f"{_describe(value)} is not a date (YYYY-MM-DD)")

    def image_pattern(self, node: Node, key: str) -> ImagePattern:
        value = self.string(node, key)
        hint = "name REGISTRY/REPO@sha256:<hex> or a REGISTRY/REPO glob"
        repository, at, digest = value.partition("@")
        if at:
            try:
                validate_digest(digest, where=key)
            except OCIError:
                raise self.error(node, key, f"{digest!r} is not a digest", hint=hint) from None
        elif ":" in repository.rsplit("/", 1)[-1] and "/" in repository:
            raise self.error(
                node, key, f"{value!r} names a tag; tags move, so exceptions never name one", hint=hint
            )
        problem = glob_problem(repository)
        if problem is not None:
            raise self.error(node, key, problem, hint=hint)
        if "*" not in repository:
            # An exact name is normalised as docker would (alpine is docker.io/library/alpine), so
            # the exception names the repository the gate will see.
            try:
                repository = parse_reference(repository).name
            except OCIError as e:
                raise self.error(node, key, e.message, hint=hint) from None
        return ImagePattern(value, Glob(repository), digest if at else None)

    def projects(self, node: Node) -> dict[str, ProjectOverride]:
        if not isinstance(node, MappingNode):
            raise self.error(
                node, "projects", f"expected a mapping of project id to settings, not {_kind(node)}"
            )
        out: dict[str, ProjectOverride] = {}
        for key_node, value_node in node.value:
            project = self.scalar(key_node, "projects")
            if not isinstance(project, str | int) or isinstance(project, bool) or not str(project).strip():
                raise self.error(key_node, "projects", f"project ids are strings, not {_describe(project)}")
            if isinstance(project, int) and key_node.value != str(project):
                # YAML 1.1 reads 0755 as octal 493, 0x1f as 31 and 1_000 as 1000: the id
                # someone wrote would silently become another one.
                raise self.error(
                    key_node,
                    "projects",
                    f"project id {key_node.value} reads as the number {project} in YAML",
                    hint=f"quote it: '{key_node.value}'",
                )
            name = str(project)
            if name in out:
                raise self.error(key_node, f"projects.{name}", "duplicate project")
            entries = self.mapping(value_node, f"projects.{name}", ("mode",), ("mode",))
            out[name] = ProjectOverride(self.mode(entries["mode"][1], f"projects.{name}.mode"))
        return out


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return f"the value {node.value!r}" if isinstance(node, ScalarNode) else "this node"


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"{value!r}"
    return f"a {type(value).__name__}"
