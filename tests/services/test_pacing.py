"""The pacer's linger follows the load: none for a trickle or a backlog, capped under load."""

from __future__ import annotations

import pytest

from orderdeck.services.pacing import MAX_LINGER_S, TARGET_RECORDS, Pacer


def _steady(pacer: Pacer, rate: float, batches: int = 40, size: int = 1) -> float:
    """Feed ``batches`` batches of ``size`` records arriving at ``rate`` records/s; the last
    linger."""
    now, linger = 1000.0, 0.0
    for _ in range(batches):
        linger = pacer.linger(size, now)
        now += size / rate
    return linger


def test_a_trickle_is_never_held_back() -> None:
    pacer = Pacer(full=500)
    assert _steady(pacer, rate=10.0) == 0.0
    assert pacer.rate == pytest.approx(10.0, rel=0.25)


def test_the_two_events_of_one_order_are_no_load() -> None:
    pacer = Pacer(full=500)
    now, linger = 1000.0, 0.0
    for _ in range(20):  # 20 orders/s, each giving two records 2 ms apart
        linger = max(linger, pacer.linger(1, now), pacer.linger(1, now + 0.002))
        now += 0.05
    assert linger == 0.0


def test_a_steady_load_lingers_no_longer_than_the_cap() -> None:
    assert _steady(Pacer(full=500), rate=150.0) == MAX_LINGER_S


def test_a_higher_rate_lingers_only_for_the_target_batch() -> None:
    linger = _steady(Pacer(full=500), rate=4000.0, size=50)
    assert linger == pytest.approx(TARGET_RECORDS / 4000.0, rel=0.05)


def test_a_full_batch_is_followed_at_once() -> None:
    pacer = Pacer(full=500)
    _steady(pacer, rate=4000.0, size=50)
    assert pacer.linger(500, 1000.0 + 10.0) == 0.0


def test_a_pause_in_the_load_ends_the_linger() -> None:
    pacer = Pacer(full=500)
    _steady(pacer, rate=200.0)
    now = 1000.0 + 40 / 200.0
    for _ in range(5):  # single records, two seconds apart
        now += 2.0
        last = pacer.linger(1, now)
    assert last == 0.0
