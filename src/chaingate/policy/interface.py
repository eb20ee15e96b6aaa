"""What the policy package promises its callers: the error type and the shape of one clause's result.

A policy mistake must be fixable from the message alone, in a CI log, without
re-running anything: so every :class:`PolicyError` names the file, the line
and the key at fault. Clause results are plain frozen values because they end
up in a signed decision record: nothing about them may change after the
verdict has been computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chaingate.errors import EXIT_USAGE, ChaingateError

#: What one clause of the policy decided.
Result = Literal["pass", "fail", "waived", "skipped"]
#: How a failing decision is acted upon: ``warn`` reports and exits 0.
Mode = Literal["enforce", "warn"]

#: Clause names, in the order they are evaluated and reported. ``image`` is not a
#: policy key: it reports whether the image and its attachments could be read at all.
CLAUSES: tuple[str, ...] = (
    "image",
    "registries",
    "requireDigest",
    "quarantine",
    "signers",
    "provenance",
    "sbom",
    "vulnerabilities",
)
#: Clauses an exception may waive. ``signers`` is absent on purpose (docs/design.md: an
#: unsigned image is denied whatever else the policy says), and so is ``image``:
#: an image that could not be read has not been verified.
WAIVABLE_CLAUSES: tuple[str, ...] = (
    "registries",
    "requireDigest",
    "quarantine",
    "provenance",
    "sbom",
    "vulnerabilities",
)


class PolicyError(ChaingateError):
    """A policy file that cannot be used as written (exit 2), located as ``file:line: key: problem``."""

    exit_code = EXIT_USAGE

    def __init__(
        self, file: str, line: int | None, key: str | None, problem: str, *, hint: str | None = None
    ) -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}", hint=hint)
        self.file = file
        self.line = line
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class ClauseResult:
    """One clause's outcome, as the decision record reports it.

    ``evidence`` holds the digests of the attachments (referrer manifests) the
    result rests on, so an auditor can fetch exactly what was looked at;
    ``exception_id`` names the exception(s) that waived a failure.
    """

    clause: str
    result: Result
    reason: str
    evidence: tuple[str, ...] = ()
    exception_id: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "clause": self.clause,
            "result": self.result,
            "reason": self.reason,
            "evidence": list(self.evidence),
            "exceptionId": self.exception_id,
        }
