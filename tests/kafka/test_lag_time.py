"""Lag as time from log-end samples: interpolation, extrapolation, caught up, unknown, drain."""

from __future__ import annotations

import pytest

from orderdeck.kafka.lag_time import (
    CAUGHT_UP,
    DRAINING,
    NOT_DRAINING,
    UNKNOWN,
    OffsetSample,
    PartitionSamples,
    drain,
    lag_seconds,
    offset_time,
)


def samples(*rows: tuple[int, int | None, float]) -> tuple[OffsetSample, ...]:
    return tuple(OffsetSample(log_end, committed, at) for log_end, committed, at in rows)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (100, 10.0),  # exactly a sample
        (150, 15.0),  # halfway between the first two samples
        (250, 25.0),  # between the second and third
        (50, 5.0),  # before the window: extrapolated back at the window's rate
        (400, 40.0),  # past the newest sample: extrapolated forward
    ],
)
def test_offset_time_interpolates_and_extrapolates(offset: int, expected: float) -> None:
    table = samples((100, 0, 10.0), (200, 0, 20.0), (300, 0, 30.0))
    assert offset_time(table, offset) == pytest.approx(expected)


def test_offset_time_skips_flat_stretches() -> None:
    table = samples((100, 0, 10.0), (100, 0, 20.0), (200, 0, 30.0))
    assert offset_time(table, 150) == pytest.approx(25.0)


def test_offset_time_is_unknown_without_two_samples_or_movement() -> None:
    assert offset_time(samples((100, 0, 10.0)), 50) is None
    assert offset_time(samples((100, 0, 10.0), (100, 0, 20.0)), 50) is None


def test_lag_seconds_is_age_of_committed_offset() -> None:
    table = samples((100, 50, 10.0), (200, 100, 20.0), (300, 150, 30.0))
    assert lag_seconds(table) == pytest.approx(30.0 - 15.0)


def test_lag_seconds_zero_when_caught_up_even_with_one_sample() -> None:
    assert lag_seconds(samples((300, 300, 30.0))) == 0.0


def test_lag_seconds_unknown_cases() -> None:
    assert lag_seconds(()) is None
    assert lag_seconds(samples((300, 100, 30.0))) is None  # one sample, lagging
    assert lag_seconds(samples((100, 0, 10.0), (200, None, 20.0))) is None  # nothing committed


@pytest.mark.parametrize(
    ("rows", "expected_seconds", "expected_state"),
    [
        # lag 100 → 50 in 10 s: 5/s net, 50 left → 10 s
        (((100, 0, 0.0), (200, 150, 10.0)), 10.0, DRAINING),
        # lag 100 → 150: falling behind
        (((100, 0, 0.0), (200, 50, 10.0)), None, NOT_DRAINING),
        # lag unchanged: no progress, not draining
        (((100, 0, 0.0), (100, 0, 10.0)), None, NOT_DRAINING),
        (((200, 200, 10.0),), 0.0, CAUGHT_UP),
        (((200, 100, 10.0),), None, UNKNOWN),
    ],
)
def test_drain(
    rows: tuple[tuple[int, int | None, float], ...],
    expected_seconds: float | None,
    expected_state: str,
) -> None:
    seconds, state = drain(samples(*rows))
    assert state == expected_state
    assert seconds == (None if expected_seconds is None else pytest.approx(expected_seconds))


def test_partition_samples_are_bounded_and_monotonic() -> None:
    table = PartitionSamples(max_samples=3)
    for i in range(10):
        table.add(log_end=100 * i, committed=100 * i - 50, at=float(i))
    table.add(log_end=5, committed=0, at=1.0)  # out of order: ignored
    assert [s.at for s in table.samples] == [7.0, 8.0, 9.0]
    assert table.lag_seconds() == pytest.approx(0.5)
    assert table.drain() == (None, NOT_DRAINING)  # lag constant at 50


def test_partition_samples_needs_room_for_two() -> None:
    with pytest.raises(ValueError, match="two samples"):
        PartitionSamples(max_samples=1)
