"""The offset-reset rules that need no broker: parsing the flags and clamping new offsets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orderdeck.errors import OrderdeckError
from orderdeck.kafka.offset_reset import (
    ResetTarget,
    new_offset,
    parse_datetime_ms,
    parse_iso_duration,
    parse_topic_selection,
    target_from_duration,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT10M", timedelta(minutes=10)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT0.5S", timedelta(seconds=0.5)),
        ("pt1h30m", timedelta(hours=1, minutes=30)),
    ],
)
def test_iso_durations(text: str, expected: timedelta) -> None:
    assert parse_iso_duration(text) == expected


@pytest.mark.parametrize("text", ["10M", "P", "PT", "P1DT", "PT-5M", "soon"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(OrderdeckError, match="ISO-8601 duration"):
        parse_iso_duration(text)


def test_datetimes_without_a_zone_mean_utc() -> None:
    assert parse_datetime_ms("1970-01-01T00:00:01") == 1000
    assert parse_datetime_ms("1970-01-01T01:00:01+01:00") == 1000
    assert parse_datetime_ms("1970-01-01T00:00:01Z") == 1000
    with pytest.raises(OrderdeckError, match="date-time"):
        parse_datetime_ms("yesterday")


def test_a_duration_is_fixed_against_one_instant() -> None:
    assert target_from_duration(timedelta(minutes=10), now_ms=1_000_000) == ResetTarget(
        "duration", 400_000
    )


def test_topic_selection() -> None:
    assert parse_topic_selection(["a", "b:2,0", "b:1", "c:3", "c"]) == {
        "a": None,
        "b": (0, 1, 2),
        "c": None,
    }
    assert parse_topic_selection(["a", "a:1"]) == {"a": None}
    for bad in (":1", "a:x", "a:"):
        with pytest.raises(OrderdeckError):
            parse_topic_selection([bad])


def test_new_offsets_stay_within_the_log() -> None:
    start, end = 10, 20
    assert new_offset(ResetTarget("earliest"), 15, start, end, None) == 10
    assert new_offset(ResetTarget("latest"), 15, start, end, None) == 20
    assert new_offset(ResetTarget("shift", -3), 15, start, end, None) == 12
    assert new_offset(ResetTarget("shift", -30), 15, start, end, None) == 10
    assert new_offset(ResetTarget("shift", 30), 15, start, end, None) == 20
    assert new_offset(ResetTarget("shift", 2), None, start, end, None) == 12
    assert new_offset(ResetTarget("datetime", 5), 15, start, end, 13) == 13
    assert new_offset(ResetTarget("datetime", 5), 15, start, end, None) == 20
    # A commit below the log start (retention deleted it) is moved up to the start.
    assert new_offset(ResetTarget("shift", 0), 3, start, end, None) == 10
