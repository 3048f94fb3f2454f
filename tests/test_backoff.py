"""The one backoff helper gives each retry loop the delays it had before."""

from __future__ import annotations

import pytest

from orderdeck.backoff import Backoff
from orderdeck.service_processes import RESTART_BACKOFF_S


def _take(backoff: Backoff, n: int) -> list[float]:
    return [backoff.next() for _ in range(n)]


def test_doubling_grows_to_its_cap_and_stays_there() -> None:
    # The supervisor's restarts of a crashing worker.
    assert _take(Backoff.doubling(0.5, cap=5.0), 7) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    # A busy database, and a produce that failed with a retriable error.
    assert _take(Backoff.doubling(0.05, cap=2.0), 8) == [
        0.05,
        0.1,
        0.2,
        0.4,
        0.8,
        1.6,
        2.0,
        2.0,
    ]
    assert _take(Backoff.doubling(0.1, cap=2.0), 6) == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]


def test_delay_is_what_next_will_wait() -> None:
    backoff = Backoff.doubling(0.05, cap=2.0)
    assert backoff.delay == 0.05
    backoff.next()
    assert backoff.delay == 0.1


def test_reset_starts_over() -> None:
    backoff = Backoff.doubling(0.5, cap=5.0)
    _take(backoff, 4)
    backoff.reset()
    assert backoff.next() == 0.5


def test_a_schedule_is_followed_then_its_last_delay_repeats() -> None:
    # A services child: each early exit waits longer; one that ran long enough waits 0.5 s.
    backoff = Backoff(RESTART_BACKOFF_S)
    waits = []
    for ran_long in (False, False, False, False, False, True, False):
        if ran_long:
            backoff.reset()
        else:
            backoff.grow()
        waits.append(backoff.delay)
    assert waits == [1.0, 2.0, 5.0, 10.0, 10.0, 0.5, 1.0]


def test_an_empty_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one delay"):
        Backoff(())
