"""The long-running tracker, fed synthetic groups snapshots (it is pure: no broker needed)."""

from __future__ import annotations

import pytest

from orderdeck.kafka import lag_time, verdicts
from orderdeck.kafka.admin import GroupSnapshot, PartitionLag
from orderdeck.kafka.lag_tracker import LagTracker, PartitionLagTime


def snapshot(at: float, *parts: tuple[int, int | None, int], group: str = "g") -> GroupSnapshot:
    """A group at ``at`` with (partition, committed, log_end) rows on topic ``t``."""
    rows = tuple(
        PartitionLag(
            "t",
            p,
            committed,
            log_end,
            None if committed is None else log_end - committed,
            None,
            None,
            None,
        )
        for p, committed, log_end in parts
    )
    total = sum(r.lag or 0 for r in rows)
    return GroupSnapshot(group, "Stable", (), rows, total, at)


def feed(tracker: LagTracker, rows: list[tuple[float, int | None, int]]) -> None:
    for at, committed, log_end in rows:
        tracker.observe([snapshot(at, (0, committed, log_end))])


def test_caught_up_is_ok_with_zero_lag_time() -> None:
    tracker = LagTracker(window_seconds=10)
    feed(tracker, [(t, 10 * t, 10 * t) for t in range(5)])
    figures = tracker.partition("g", "t", 0)
    assert figures == PartitionLagTime(0.0, 0.0, lag_time.CAUGHT_UP, verdicts.OK)


def test_draining_backlog_has_lag_seconds_and_an_eta() -> None:
    tracker = LagTracker(window_seconds=30)
    # The log end grows 10/s; the consumer commits 20/s from 100 records behind.
    feed(tracker, [(float(t), 20 * t, 100 + 10 * t) for t in range(6)])
    figures = tracker.partition("g", "t", 0)
    assert figures is not None
    # committed 100 at t=5 was the log end at t=0: 5 s old; lag 50 shrinking 10/s: 5 s to go
    assert figures.lag_seconds == pytest.approx(5.0)
    assert figures.drain_state == lag_time.DRAINING
    assert figures.drain_seconds == pytest.approx(5.0)
    assert figures.verdict == verdicts.OK


def test_falling_behind_warns_and_is_not_draining() -> None:
    tracker = LagTracker(window_seconds=30)
    feed(tracker, [(float(t), 5 * t, 10 + 10 * t) for t in range(6)])
    figures = tracker.partition("g", "t", 0)
    assert figures is not None
    assert figures.verdict == verdicts.WARN
    assert figures.drain_state == lag_time.NOT_DRAINING
    assert figures.drain_seconds is None


def test_unmoving_offset_stalls_then_stops_once_the_window_has_passed() -> None:
    tracker = LagTracker(window_seconds=5)
    feed(tracker, [(float(t), 10, 20 + t) for t in range(4)])
    assert tracker.partition("g", "t", 0).verdict == verdicts.STALL  # type: ignore[union-attr]
    feed(tracker, [(float(t), 10, 20 + t) for t in range(4, 10)])
    stopped = tracker.partition("g", "t", 0)
    assert stopped is not None
    assert stopped.verdict == verdicts.STOP
    assert tracker.group("g").verdict == verdicts.ERR  # type: ignore[union-attr]


def test_unmoving_offset_without_lag_is_not_stopped() -> None:
    tracker = LagTracker(window_seconds=5)
    feed(tracker, [(float(t), 10, 10) for t in range(20)])
    assert tracker.partition("g", "t", 0).verdict == verdicts.OK  # type: ignore[union-attr]


def test_an_offset_going_backwards_is_a_rewind() -> None:
    tracker = LagTracker(window_seconds=30)
    feed(tracker, [(0.0, 50, 60), (1.0, 55, 62), (2.0, 5, 64), (3.0, 8, 66)])
    assert tracker.partition("g", "t", 0).verdict == verdicts.REWIND  # type: ignore[union-attr]


def test_group_takes_the_worst_partition_and_the_oldest_lag() -> None:
    tracker = LagTracker(window_seconds=30)
    for t in range(6):
        tracker.observe([snapshot(float(t), (0, 10 * t, 10 * t), (1, 20 * t, 100 + 10 * t))])
    group = tracker.group("g")
    assert group is not None
    assert group.verdict == verdicts.OK
    assert group.lag_seconds == pytest.approx(5.0)
    assert group.drain_state == lag_time.DRAINING
    assert set(group.partitions) == {("t", 0), ("t", 1)}


def test_history_is_bounded_and_departed_partitions_are_forgotten() -> None:
    tracker = LagTracker(window_seconds=1000, max_samples=8)
    feed(tracker, [(float(t), t, 2 * t) for t in range(100)])
    history = tracker._history["g"][("t", 0)]
    assert len(history.samples.samples) == 8
    assert len(history.commits) == 8
    tracker.observe([snapshot(200.0, (1, 0, 0))])
    assert tracker.partition("g", "t", 0) is None
    assert tracker.partition("g", "t", 1) is not None


def test_unknown_groups_and_too_few_samples() -> None:
    tracker = LagTracker()
    assert tracker.group("nobody") is None
    tracker.observe([snapshot(0.0, (0, 5, 10))])
    figures = tracker.partition("g", "t", 0)
    assert figures is not None
    assert figures.lag_seconds is None
    assert figures.verdict == verdicts.UNKNOWN
