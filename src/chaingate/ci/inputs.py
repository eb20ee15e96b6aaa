"""Action inputs that have two names: chaingate's own and the one actions/attest gave the same thing.

A workflow moving from ``actions/attest`` keeps its ``subject-name``,
``subject-digest`` and ``predicate-path``; chaingate's ``image``, ``digest``
and ``predicate`` keep working. When both names are given they must agree:
silently preferring one would sign or attach something other than what one
of the two lines of the workflow says, so a disagreement is a usage error
(exit 2) naming both inputs. Pure functions, so the rules are tested here and
the composite actions only pass the values through (``chaingate-ci input``,
``chaingate-ci subject``).
"""

from __future__ import annotations

from collections.abc import Sequence

from chaingate.errors import EXIT_USAGE, ChaingateError
from chaingate.oci.digest import is_digest


class InputError(ChaingateError):
    """Two inputs that mean the same thing disagree, or a required one is missing (exit 2)."""

    exit_code = EXIT_USAGE


def one_of(pairs: Sequence[tuple[str, str]]) -> str:
    """The value of the inputs ``(name, value)`` that were given (non-empty); all given ones must be equal.

    Returns "" when none was given, so the caller's default still applies.
    """
    given = [(name, value) for name, value in pairs if value != ""]
    if not given:
        return ""
    first_name, first = given[0]
    for name, value in given[1:]:
        if value != first:
            raise InputError(
                f"inputs {first_name} ({first!r}) and {name} ({value!r}) name the same thing but differ; "
                "give one of them"
            )
    return first


def subject_reference(image: str, subject_name: str, digest: str) -> str:
    """The image to work on, from ``image`` or actions/attest's ``subject-name``, pinned to ``digest`` if given.

    ``digest`` (``subject-digest``, or the all-in-one's ``digest``) must be a
    sha256 digest; a reference that already carries another digest
    contradicts it.
    """
    if image and subject_name and image != subject_name:
        raise InputError(
            f"inputs image ({image!r}) and subject-name ({subject_name!r}) differ; give one of them"
        )
    base = image or subject_name
    if not base:
        raise InputError("no image: give the image input (or subject-name with subject-digest)")
    if not digest:
        return base
    if not (digest.startswith("sha256:") and is_digest(digest)):
        raise InputError(f"subject-digest {digest!r} is not a sha256 digest (sha256: and 64 hex digits)")
    name, at, pinned = base.partition("@")
    if at and pinned != digest:
        raise InputError(f"subject-digest {digest} contradicts the digest in the image {base!r}")
    return f"{name}@{digest}"
