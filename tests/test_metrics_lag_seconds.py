"""``orderdeck_consumer_lag_seconds`` in a scrape, from the lag tracker's figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderdeck.kafka.admin import GroupSnapshot, PartitionLag
from orderdeck.kafka.lag_tracker import LagTracker
from orderdeck.metrics import Metrics, PipelineView, lag_seconds_samples
from orderdeck.store import Store
from tests.metrics_scrape import parse, value


def snapshot(at: float, committed: int, log_end: int, partition: int = 0) -> GroupSnapshot:
    part = PartitionLag("t", partition, committed, log_end, log_end - committed, None, None, None)
    return GroupSnapshot("g", "Stable", (), (part,), log_end - committed, at)


async def test_a_scrape_carries_each_known_partitions_lag_seconds(tmp_path: Path) -> None:
    tracker = LagTracker(window_seconds=30)
    # committed 100 at t=5 is where the log end was at t=0: five seconds old
    tracker.observe(snapshot(float(t), 20 * t, 100 + 10 * t) for t in range(6))
    store = Store(tmp_path / "orderdeck.db")
    try:
        metrics = Metrics(
            store, lambda: PipelineView(True, lag_seconds=lag_seconds_samples(tracker.groups()))
        )
        samples = parse((await metrics.exposition()).decode())
    finally:
        store.close()
    age = value(samples, "orderdeck_consumer_lag_seconds", group="g", topic="t", partition="0")
    assert age == pytest.approx(5.0)


def test_partitions_seen_once_have_no_lag_seconds_yet() -> None:
    tracker = LagTracker()
    tracker.observe([snapshot(0.0, 5, 10)])
    assert lag_seconds_samples(tracker.groups()) == []
