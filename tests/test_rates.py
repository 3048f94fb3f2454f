"""The one rate meter behind every events/s figure."""

from __future__ import annotations

import pytest

from orderdeck.rates import RateMeter


def test_rate_is_unknown_until_two_samples() -> None:
    meter = RateMeter(5.0)
    assert meter.rate() is None
    meter.add(10.0, 100)
    assert meter.rate() is None
    meter.add(11.0, 150)
    assert meter.rate() == 50.0


def test_rate_covers_only_the_window() -> None:
    meter = RateMeter(5.0)
    for second in range(20):
        # 10/s for the first ten seconds, then 100/s
        total = second * 10 if second <= 10 else 100 + (second - 10) * 100
        meter.add(float(second), total)
    assert meter.rate() == 100.0


def test_sparse_samples_still_give_the_last_interval() -> None:
    meter = RateMeter(1.0)
    meter.add(0.0, 0)
    meter.add(10.0, 50)
    assert meter.rate() == 5.0


def test_stale_or_repeated_samples_are_ignored() -> None:
    meter = RateMeter(5.0)
    meter.add(1.0, 10)
    meter.add(2.0, 20)
    meter.add(2.0, 999)
    meter.add(1.5, 999)
    assert meter.rate() == 10.0


def test_a_total_that_went_back_reads_as_zero_and_clear_starts_over() -> None:
    meter = RateMeter(5.0)
    meter.add(1.0, 500)
    meter.add(2.0, 3)
    assert meter.rate() == 0.0
    meter.clear()
    assert meter.rate() is None


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_s"):
        RateMeter(0)
