"""Times as chaingate writes and reads them: one formatter, one strict parser, one lenient payload reader.

Every record chaingate writes (the decision, the VSA, the deployment record,
provenance, token diagnostics) carries RFC 3339 times in UTC with ``Z``:
in-toto's Timestamp field type asks for exactly that, cosign and Go's
``time.Parse`` read it, and records written on machines in different zones
compare as plain strings. Before this module five formatters disagreed, and one
wrote whatever zone it was given followed by ``Z``, which shifts a deployment by hours.

Reading goes two ways on purpose. What a user or a CI hands chaingate
(``--started-on``, ``$CHAINGATE_BUILD_STARTED_ON``) is parsed strictly: a time
without a zone is refused, because it feeds ``maxAge`` and a guessed zone
would move it by hours. What a signed payload claims (``finishedOn``,
``metadata.timestamp``) is read leniently: an unreadable claim is absent, and
the gate then relies on the trusted signing time alone, which is never later.

This module imports nothing from chaingate, so any module may use it.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: RFC 3339 in UTC, whole seconds.
_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
#: The same with the six sub-second digits Python keeps.
_MICROSECONDS = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(moment: datetime, *, fraction: bool = False) -> str:
    """``moment`` as RFC 3339 in UTC with ``Z``, in whole seconds unless ``fraction`` keeps sub-seconds.

    Whole seconds, because that is the resolution of everything the gate
    compares a time with (Rekor's integrated time, JWT claims, ``maxAge`` in
    days) and a record's bytes should not change with the microsecond it was
    written in. ``fraction=True`` is for times chaingate passes on rather than
    makes (a CI's build times in provenance): those keep what they were given.
    A naive ``moment`` is refused: which zone it means cannot be known here.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; chaingate writes times in UTC only")
    moment = moment.astimezone(UTC)
    if fraction and moment.microsecond:
        return moment.strftime(_MICROSECONDS)
    return moment.strftime(_SECONDS)


def format_epoch(seconds: float) -> str:
    """Seconds since 1970 (a JWT claim, a Rekor integrated time) as :func:`format_time` writes them."""
    return format_time(datetime.fromtimestamp(seconds, UTC))


def parse_time(text: str, *, epoch: bool = False) -> datetime:
    """A time given to chaingate: RFC 3339 with a zone (``2024-05-01T12:00:00Z``), returned in UTC.

    With ``epoch``, ``@SECONDS`` and bare seconds are taken too (what ``date +%s``
    prints). Raises :class:`ValueError` with a message that quotes ``text``, for
    the caller to prefix with the flag or variable it came from.
    """
    value = text.strip()
    digits = value[1:] if value.startswith("@") else value
    if epoch and digits.isascii() and digits.isdigit():
        try:
            return datetime.fromtimestamp(int(digits), UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{text!r} is out of range for a time") from None
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        also = " or epoch seconds" if epoch else ""
        raise ValueError(f"{text!r} is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z){also}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z or an offset such as +02:00")
    return moment.astimezone(UTC)


def payload_time(value: object) -> datetime | None:
    """A time a payload claims, or None when it is absent or unreadable; a time without a zone is read as UTC.

    Lenient because the gate's age of an attestation never rests on a claim
    alone: it takes the earlier of the claim and the trusted signing time, so
    an unreadable claim leaves the signing time, the bound trusted anyway.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
