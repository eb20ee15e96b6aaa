"""``chaingate.timeutil``: the one formatter, the strict parser for given times, the lenient payload reader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chaingate.timeutil import format_epoch, format_time, parse_time, payload_time

PLUS_TWO = timezone(timedelta(hours=2))


def test_format_time_writes_utc_with_z_in_whole_seconds() -> None:
    assert format_time(datetime(2024, 5, 1, 12, tzinfo=UTC)) == "2024-05-01T12:00:00Z"
    # Converted, not relabelled: 14:00 at +02:00 is 12:00Z (deploy/record.py wrote "14:00:00Z").
    assert format_time(datetime(2024, 5, 1, 14, tzinfo=PLUS_TWO)) == "2024-05-01T12:00:00Z"
    assert format_time(datetime(2024, 5, 1, 12, 0, 0, 999_999, tzinfo=UTC)) == "2024-05-01T12:00:00Z"


def test_format_time_keeps_sub_seconds_only_when_asked_and_present() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, 500_000, tzinfo=UTC)
    assert format_time(moment, fraction=True) == "2024-05-01T12:00:00.500000Z"
    assert format_time(moment.replace(microsecond=0), fraction=True) == "2024-05-01T12:00:00Z"


def test_format_time_refuses_a_time_without_zone() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        format_time(datetime(2024, 5, 1, 12))


def test_format_epoch() -> None:
    assert format_epoch(0) == "1970-01-01T00:00:00Z"
    assert format_epoch(1_714_564_800.75) == "2024-05-01T12:00:00Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01t12:00:00z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        (" 2024-05-01T14:00:00+02:00 ", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.250Z", datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_parse_time_reads_rfc3339_into_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2024-05-01T12:00:00", "has no time zone"),
        ("yesterday", "is not an RFC 3339 time"),
        ("", "is not an RFC 3339 time"),
        ("1714564800", "is not an RFC 3339 time"),  # epoch seconds only when the caller takes them
    ],
)
def test_parse_time_is_strict(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time(text)


def test_parse_time_takes_epoch_seconds_when_asked() -> None:
    assert parse_time("@0", epoch=True) == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_time("1714564800", epoch=True) == datetime(2024, 5, 1, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="or epoch seconds"):
        parse_time("@-1", epoch=True)
    # Out of range and non-ASCII digits are a ValueError like any bad input, never an OverflowError.
    with pytest.raises(ValueError, match="out of range"):
        parse_time("@" + "9" * 30, epoch=True)
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        parse_time("\u0663\u0663", epoch=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),  # a naive claim is read as UTC
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("not a time", None),
        ("", None),
        (None, None),
        (1714564800, None),
        (["2024-05-01T12:00:00Z"], None),
    ],
)
def test_payload_time_reads_what_it_can_and_nothing_else(value: object, expected: datetime | None) -> None:
    assert payload_time(value) == expected
