"""The gate: resolve once, collect every attachment, verify each, apply the policy, decide.

``verify_image`` is the API ``chaingate verify`` and ``chaingate deploy`` both
call. Its contract is fail-closed: a problem with the image, the registry,
an attachment or the trust root becomes a denial with a reason, never an
exception, so no caller can turn an outage into a deploy by forgetting a
``try``. Only the caller's own mistakes (an unparsable reference, an
unreadable ``--trust-config``) raise, because no verdict about an image can
be made from them.

The reference is resolved to a digest exactly once; every later read is by
that digest, so what was verified is what the decision names.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from chaingate.errors import ChaingateError
from chaingate.oci import media
from chaingate.oci.errors import OCIError
from chaingate.oci.interface import ImageStore, Manifest, Platform, Progress, no_progress
from chaingate.oci.reference import LayoutReference, Reference, parse_image_reference
from chaingate.oci.registries import Deadline
from chaingate.oci.stores import open_image, select_platform
from chaingate.policy.clauses import Attestation, Evaluation, ImageFacts, evaluate
from chaingate.policy.interface import ClauseResult
from chaingate.policy.model import Policy
from chaingate.policy.record import Decision
from chaingate.text import one_line
from chaingate.verify.bundles import TrustRoot, verify_bundle
from chaingate.verify.collect import Verify, collect
from chaingate.verify.interface import Collected, FoundBundle, Ignored

if TYPE_CHECKING:
    from chaingate.oci.registries import Registries

log = logging.getLogger(__name__)
#: Seconds past the deadline the watchdog waits for the reader's own, more precise, deadline error.
DEADLINE_GRACE = 2.0


@dataclass(frozen=True)
class _Read:
    """What reading the image produced: its digests and attachments, or why it could not be read."""

    digest: str | None = None
    platform_digest: str | None = None
    collected: Collected | None = None
    problem: str | None = None
    note: str | None = None
    #: The platform manifests an index lists, when no ``--platform`` narrowed it (quarantine reads them).
    children: tuple[str, ...] = ()


def verify_image(
    reference: str,
    policy: Policy,
    *,
    registries: Registries,
    trust_config: Path | None = None,
    project: str | None = None,
    platform: Platform | None = None,
    now: datetime | None = None,
    progress: Progress = no_progress,
) -> Decision:
    """Verify ``reference`` against ``policy`` and return the decision (see the module docs for the contract).

    ``platform`` selects the platform manifest of a multi-arch index whose
    attachments count beside the index's own; ``now`` is the time ages and
    exception expiries are measured against.
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)  # a naive time is read as UTC, like every time in a payload
    ref = parse_image_reference(reference)  # a usage error: raises
    trust = TrustRoot(trust_config)  # an unreadable --trust-config is a usage error: raises
    repository: str | None = None
    if isinstance(ref, Reference):
        repository, display, pinned = ref.name, ref.name, ref.digest is not None
    elif isinstance(ref, LayoutReference):
        display, pinned = f"oci:{ref.path}", ref.digest is not None
    else:
        display, pinned = str(ref), False
    # Bundles are read and verified one at a time inside collection, under the deadline and byte budget.
    read = _within_deadline(
        registries.options.deadline,
        lambda: _read_image(
            reference, registries, platform, progress, lambda found: _verify_one(trust, found, policy)
        ),
    )
    warnings: list[str] = [read.note] if read.note else []

    attestations: list[Attestation] = []
    ignored: list[Ignored] = list(read.collected.ignored) if read.collected else []
    if read.collected is not None:
        for outcome in read.collected.verified:
            if isinstance(outcome, Ignored):
                ignored.append(outcome)
            else:
                attestations.append(outcome)

    # With --platform, what runs is the platform manifest: the decision, VSA and deploy name it, and the
    # index it was selected from goes beside it (an index digest would deploy whatever the runtime picks).
    verified = read.platform_digest or read.digest
    index = read.digest if read.platform_digest else None
    facts = ImageFacts(str(ref), repository, pinned, verified, index, read.children)
    image = _image_clause(str(ref), read, len(attestations), len(ignored))
    try:
        evaluation = evaluate(policy, facts, attestations, now=now)
    except Exception as e:  # a bug in a clause must deny, not let the caller's deploy proceed on a traceback
        log.debug("evaluating the policy failed", exc_info=True)
        failed = ClauseResult(
            "image", "fail", f"the policy could not be evaluated ({type(e).__name__}: {one_line(e)})"
        )
        evaluation = Evaluation((failed,), ())
    clauses = (image, *evaluation.clauses)
    verdict: Literal["allow", "deny"] = "deny" if any(c.result == "fail" for c in clauses) else "allow"
    provenance = next(c for c in clauses if c.clause == "provenance")
    level = 0
    if provenance.result == "pass" and policy.provenance is not None:
        level = 2 if policy.provenance.builder_ids else 1
    return Decision(
        image=str(ref),
        digest=verified or "",
        repository=display,
        mode=policy.mode_for(project),
        verdict=verdict,
        clauses=clauses,
        ignored=tuple((i.digest, i.reason) for i in ignored),
        warnings=(*warnings, *evaluation.warnings),
        policy_digest=policy.digest,
        policy_path=str(policy.path),
        time=now,
        project=project,
        index_digest=index,
        inputs=tuple(dict.fromkeys((a.referrer, a.predicate_type) for a in attestations)),
        slsa_build_level=level,
    )


def _verify_one(trust: TrustRoot, found: FoundBundle, policy: Policy) -> Attestation | Ignored:
    """One bundle's outcome; an unforeseen error ignores that bundle (it cannot count) instead of raising."""
    try:
        return verify_bundle(trust, found, policy.signers)
    except Exception as e:
        log.debug("verifying %s failed", found.referrer, exc_info=True)
        return Ignored(
            found.referrer, f"{found.source}: verification failed ({type(e).__name__}: {one_line(e)})"
        )


def _within_deadline(deadline: Deadline | None, work: Callable[[], _Read]) -> _Read:
    """``work()``, or a denial reason once ``deadline`` (plus a short grace) has passed without it returning.

    The registry client checks the deadline between requests and body chunks,
    which ends nearly every slow read on time; this watchdog bounds the rest
    (a server dripping its response headers, the public-good trust root's TUF
    fetch): the work goes on in a daemon thread whose result is then ignored,
    and the verdict is a deny, so nothing it could still do reaches a decision.
    """
    if deadline is None:
        return work()
    box: list[_Read] = []

    def run() -> None:
        try:
            box.append(work())
        except BaseException as e:  # _read_image returns its failures; this is the last resort
            box.append(_Read(problem=f"{type(e).__name__}: {one_line(e)}"))

    worker = threading.Thread(target=run, name="chaingate-verify", daemon=True)
    worker.start()
    worker.join(max(deadline.left(), 0.0) + DEADLINE_GRACE)
    if box:
        return box[0]
    return _Read(problem=deadline.error("reading and verifying the image (no answer in time)").message)


def _read_image(
    reference: str, registries: Registries, platform: Platform | None, progress: Progress, verify: Verify
) -> _Read:
    """Resolve once and collect; every failure becomes a reason (the fail-closed half of the contract)."""
    digest: str | None = None
    platform_digest: str | None = None
    note: str | None = None
    children: tuple[str, ...] = ()
    try:
        opened = open_image(reference, registries)
        with opened.store as store:
            if opened.target is None:
                return _Read(problem=f"{reference}: names no image to verify")
            root = store.get_manifest(store.resolve(opened.target).digest)
            digest = root.digest
            subjects = [digest]
            if root.is_index and platform is not None:
                platform_digest = select_platform(store, root, platform).digest
                # What will run must exist and be an image: fetched (digest-checked) before it is named.
                child = store.get_manifest(platform_digest)
                if child.is_index:
                    return _Read(
                        digest, problem=f"--platform {platform}: {platform_digest} is an index, not an image"
                    )
                subjects.append(platform_digest)
            elif root.is_index:
                children = _platform_manifests(store, root)
                note = (
                    f"{reference} is a multi-arch index: only attachments of the index itself were read "
                    "(pass --platform to also read a platform manifest's)"
                )
            elif platform is not None:
                note = f"--platform {platform} ignored: {reference} is a single-platform image"
            collected = collect(
                store, subjects, verify, deadline=registries.options.deadline, progress=progress
            )
    except ChaingateError as e:
        return _Read(digest, platform_digest, problem=e.message, note=note)
    except Exception as e:  # anything unforeseen while reading is still a denial, never a crash or an allow
        log.debug("reading %s failed", reference, exc_info=True)
        return _Read(digest, platform_digest, problem=f"{type(e).__name__}: {one_line(e)}", note=note)
    return _Read(digest, platform_digest, collected, note=note, children=children)


#: How deep nested indexes are followed, and how many manifests they may list, when reading what may run.
MAX_INDEX_DEPTH = 4
MAX_INDEX_ENTRIES = 1000


def _platform_manifests(store: ImageStore, root: Manifest) -> tuple[str, ...]:
    """Every manifest an index lists, through nested indexes (fetched by digest): any of them may run.

    containerd descends into an index inside an index, so a quarantined image
    two levels down runs as surely as one listed directly. Bounded in depth
    and count; past either, the read fails (and the gate denies).
    """
    found: list[str] = []
    pending: list[tuple[Manifest, int]] = [(root, 1)]
    while pending:
        index, depth = pending.pop()
        for entry in index.manifests:
            found.append(entry.digest)
            if len(found) > MAX_INDEX_ENTRIES:
                raise OCIError(f"{index.digest}: more than {MAX_INDEX_ENTRIES} manifests in its indexes")
            if entry.media_type in media.INDEXES:
                if depth >= MAX_INDEX_DEPTH:
                    raise OCIError(f"{index.digest}: indexes nested deeper than {MAX_INDEX_DEPTH}")
                pending.append((store.get_manifest(entry.digest), depth + 1))
    return tuple(dict.fromkeys(found))


def _image_clause(reference: str, read: _Read, counted: int, ignored: int) -> ClauseResult:
    if read.problem is not None:
        what = "could not list its attachments" if read.digest else "could not be read"
        return ClauseResult("image", "fail", f"{reference} {what}: {read.problem}")
    assert read.digest is not None
    where = (
        f"{read.platform_digest} (platform manifest of index {read.digest})"
        if read.platform_digest
        else read.digest
    )
    return ClauseResult(
        "image",
        "pass",
        f"resolved to {where}; {counted} attestation(s) counted, {ignored} attachment(s) ignored",
    )
