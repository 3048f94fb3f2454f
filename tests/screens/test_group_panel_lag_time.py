"""The Groups panel's LAG-TIME/ETA columns and verdict badge, from the tracker's figures."""

from __future__ import annotations

import pytest

from orderdeck.kafka import verdicts
from orderdeck.kafka.admin import GroupSnapshot, PartitionLag
from orderdeck.kafka.lag_tracker import LagTracker
from orderdeck.widgets.group_panel import describe_rows, verdict_badge


def snapshot(at: float, committed: int, log_end: int) -> GroupSnapshot:
    part = PartitionLag("t", 0, committed, log_end, log_end - committed, "m", "client-1", "/h")
    return GroupSnapshot("g", "Stable", (), (part,), log_end - committed, at)


def draining() -> tuple[GroupSnapshot, LagTracker]:
    tracker = LagTracker(window_seconds=30)
    snaps = [snapshot(float(t), 20 * t, 100 + 10 * t) for t in range(6)]
    tracker.observe(snaps)
    return snaps[-1], tracker


@pytest.mark.parametrize("width", [34, 56, 96])
def test_every_line_fits_and_lag_time_and_eta_always_stay(width: int) -> None:
    snap, tracker = draining()
    lines = describe_rows(snap, width, tracker.group("g")).plain.splitlines()
    assert all(len(line) <= width for line in lines)
    assert "LAG-TIME" in lines[0]
    assert "ETA" in lines[0]
    # committed 100 was the log end 5 s ago; 50 left, shrinking 10/s: 5 s to go
    assert lines[1].split().count("5.0s") == 2  # LAG-TIME and ETA


def test_narrow_panels_drop_committed_before_log_end() -> None:
    snap, tracker = draining()
    narrow = describe_rows(snap, 34, tracker.group("g")).plain.splitlines()[0]
    wide = describe_rows(snap, 56, tracker.group("g")).plain.splitlines()[0]
    assert "COMMITTED" not in narrow
    assert "LOG-END" in narrow
    assert "COMMITTED" in wide


def test_falling_behind_shows_never_and_a_warning_badge() -> None:
    tracker = LagTracker(window_seconds=30)
    snaps = [snapshot(float(t), 5 * t, 10 + 10 * t) for t in range(6)]
    tracker.observe(snaps)
    figures = tracker.group("g")
    assert figures is not None
    assert figures.verdict == verdicts.WARN
    assert "never" in describe_rows(snaps[-1], 56, figures).plain
    assert verdict_badge(figures.verdict).plain == " WARN "


def test_without_figures_the_columns_say_unknown() -> None:
    snap, _ = draining()
    row = describe_rows(snap, 56).plain.splitlines()[1]
    assert row.split()[-3:-1] == ["-", "-"]
    assert verdict_badge(verdicts.UNKNOWN).plain == " ? "
