"""parse_seek: every form the Topics seek box takes, and what it says about a mistake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from orderdeck.kafka.seek_target import SeekOffset, SeekParseError, SeekTime, parse_seek

BERLIN_WINTER = timezone(timedelta(hours=1))
#: 2026-12-03 09:30:15.250 in UTC+1 = 08:30:15.250 UTC.
NOW = datetime(2026, 12, 3, 9, 30, 15, 250_000, tzinfo=BERLIN_WINTER)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def parse(text: str) -> SeekOffset | SeekTime:
    return parse_seek(text, NOW, BERLIN_WINTER)


def test_a_number_is_that_offset_in_every_partition() -> None:
    assert parse("500") == SeekOffset(500)
    assert parse(" 0 ") == SeekOffset(0)
    assert parse("500").describe() == "offset 500"
    assert parse("500").short() == "@500"


def test_partition_colon_offset_names_one_partition() -> None:
    target = parse("1:500")
    assert target == SeekOffset(500, partition=1)
    assert target.describe() == "p1 offset 500"
    assert target.short() == "p1@500"
    assert parse("2 : 7") == SeekOffset(7, partition=2)


def test_an_iso_date_time_without_a_zone_is_local_time() -> None:
    expected = ms(datetime(2026, 12, 3, 7, 0, tzinfo=UTC))
    assert parse("2026-12-03T08:00:00") == SeekTime(expected)
    assert parse("2026-12-03 08:00") == SeekTime(expected)
    assert parse("2026-12-03T08:00:00").describe() == "2026-12-03 07:00:00 UTC"
    assert parse("2026-12-03T08:00:00").short() == "07:00:00Z"


def test_an_iso_date_time_with_a_zone_keeps_it() -> None:
    assert parse("2026-12-03T08:00:00Z") == SeekTime(ms(datetime(2026, 12, 3, 8, tzinfo=UTC)))
    assert parse("2026-12-03T08:00:00+03:00") == SeekTime(ms(datetime(2026, 12, 3, 5, tzinfo=UTC)))
    assert parse("2026-12-03T08:00:00.125Z").timestamp_ms % 1000 == 125  # type: ignore[union-attr]


def test_a_date_alone_is_its_local_midnight() -> None:
    assert parse("2026-12-03") == SeekTime(ms(datetime(2026, 12, 2, 23, tzinfo=UTC)))


def test_hh_mm_ss_is_today_in_local_time() -> None:
    target = parse("08:12:00")
    assert target == SeekTime(ms(datetime(2026, 12, 3, 7, 12, tzinfo=UTC)), typed="today 08:12:00")
    assert target.describe() == "today 08:12:00 (2026-12-03 07:12:00 UTC)"
    assert target.short() == "08:12:00"
    assert parse("8:12:00") == SeekTime(target.timestamp_ms, typed="today 8:12:00")  # type: ignore[union-attr]


def test_today_is_the_local_date_not_utcs() -> None:
    # 00:30 local on Dec 4 is still Dec 3 in UTC: "today" is the 4th.
    late = datetime(2026, 12, 4, 0, 30, tzinfo=BERLIN_WINTER)
    target = parse_seek("00:10:00", late, BERLIN_WINTER)
    assert target == SeekTime(ms(datetime(2026, 12, 3, 23, 10, tzinfo=UTC)), typed="today 00:10:00")


@pytest.mark.parametrize(
    ("typed", "seconds"),
    [("-30s", 30), ("-10m", 600), ("-2h", 7200), ("-1d", 86_400), ("-1h30m", 5400), ("-2M", 120)],
)
def test_a_relative_time_is_that_long_before_now(typed: str, seconds: int) -> None:
    target = parse(typed)
    assert isinstance(target, SeekTime)
    assert target.timestamp_ms == ms(NOW) - seconds * 1000
    assert target.short() == typed.lower()


def test_a_relative_time_describes_itself_and_its_instant() -> None:
    assert parse("-10m").describe() == "-10m (2026-12-03 08:20:15 UTC)"


def test_without_local_the_machines_zone_is_used() -> None:
    now = datetime.now(UTC)
    target = parse_seek("-1m", now)
    assert target == SeekTime(ms(now) - 60_000, typed="-1m")
    naive = datetime(2026, 12, 3, 8, 0)
    assert parse_seek("2026-12-03T08:00:00", now) == SeekTime(ms(naive.astimezone()))


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_seek("5", datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "type where to start"),
        ("   ", "type where to start"),
        ("-10", "-10 needs a unit: -10s, -10m, -10h or -10d"),
        ("-5", "offsets are never negative"),
        ("-10x", "unknown unit 'x' in -10x"),
        ("-10 minutes", "unknown unit 'minutes'"),
        ("-m", "is not a time ago"),
        ("-0m", "no time ago"),
        ("a:5", "partition 'a' is not a partition number"),
        ("1:x", "offset 'x' is not an offset"),
        ("1:", "offset '' is not an offset"),
        ("25:00:00", "25:00:00 is not a time of day"),
        ("08:61:00", "is not a time of day"),
        ("2026-13-01", "2026-13-01 is not a date-time: month must be in 1..12"),
        ("2026-12-03T99:00", "is not a date-time"),
        ("2026-12-xx", "write it as 2026-12-03T08:12:00"),
        ("yesterday", "'yesterday' is not one of OFFSET, P:OFFSET"),
        ("1.5", "is not one of"),
        ("08:12:00Z", "is not one of"),
    ],
)
def test_mistakes_say_what_is_wrong(typed: str, says: str) -> None:
    with pytest.raises(SeekParseError) as caught:
        parse(typed)
    assert says in str(caught.value)
