"""Burrow's verdict rules, one table row per situation."""

from __future__ import annotations

import pytest

from orderdeck.kafka.verdicts import (
    ERR,
    OK,
    REWIND,
    STALL,
    STOP,
    UNKNOWN,
    WARN,
    CommitSample,
    group_verdict,
    partition_verdict,
)


def commits(*rows: tuple[int, int, float]) -> list[CommitSample]:
    return [CommitSample(committed, lag, at) for committed, lag, at in rows]


@pytest.mark.parametrize(
    ("rows", "now", "window", "expected"),
    [
        # caught up at some point: OK even though lag grew afterwards
        (((10, 0, 0.0), (12, 5, 1.0), (14, 9, 2.0)), 2.0, 10.0, OK),
        # moving and the lag goes down
        (((10, 9, 0.0), (20, 5, 1.0), (30, 2, 2.0)), 2.0, 10.0, OK),
        # an offset went backwards
        (((50, 5, 0.0), (10, 45, 1.0), (12, 44, 2.0)), 2.0, 10.0, REWIND),
        # offset unchanged, lag present, within the window: stalled
        (((10, 5, 0.0), (10, 8, 1.0), (10, 9, 2.0)), 2.0, 10.0, STALL),
        # offset unchanged for longer than the window: stopped
        (((10, 5, 0.0), (10, 8, 1.0), (10, 9, 2.0)), 20.0, 10.0, STOP),
        # moving, but the lag never decreases: falling behind
        (((10, 5, 0.0), (12, 6, 1.0), (14, 6, 2.0)), 2.0, 10.0, WARN),
        # one lagging observation: not enough to judge
        (((10, 5, 0.0),), 0.0, 10.0, UNKNOWN),
        ((), 0.0, 10.0, UNKNOWN),
    ],
)
def test_partition_verdict(
    rows: tuple[tuple[int, int, float], ...], now: float, window: float, expected: str
) -> None:
    assert partition_verdict(commits(*rows), now, window) == expected


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ((), OK),
        ((OK, OK), OK),
        ((OK, UNKNOWN), UNKNOWN),
        ((OK, WARN, UNKNOWN), WARN),
        ((OK, WARN, STALL), ERR),
        ((STOP,), ERR),
        ((REWIND, OK), ERR),
    ],
)
def test_group_verdict_is_the_worst_partition(verdicts: tuple[str, ...], expected: str) -> None:
    assert group_verdict(verdicts) == expected
