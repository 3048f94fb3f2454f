"""The chaos timeline's rules, fed observations by hand: which steps a fault shows, when it
counts as recovered, and what its recovery time is."""

from __future__ import annotations

import asyncio

from orderdeck.fault_timeline import FaultTimeline, Observation, TimelineWatcher

STABLE = {"order-events": ("Stable", frozenset({"m1"}))}


def texts(timeline: FaultTimeline) -> list[str]:
    return [e.text for e in timeline.entries()]


def test_a_killed_broker_recovers_once_it_is_back_lag_is_zero_and_old_orders_are_final() -> None:
    timeline = FaultTimeline()
    timeline.observe(
        Observation(
            at=9.0,
            brokers=frozenset({1, 2, 3}),
            leaders={("order-events", 0): 2, ("order-events", 1): 3},
            under_replicated=0,
            groups=STABLE,
            total_lag=0,
        )
    )
    fault = timeline.fault("kill_broker", "2", "kill -9 broker 2", at=10.0)
    timeline.broker_stopped("2", at=10.5)
    timeline.observe(
        Observation(
            at=12.0,
            brokers=frozenset({1, 3}),
            leaders={("order-events", 0): 1, ("order-events", 1): 3},
            under_replicated=2,
        )
    )
    timeline.observe(Observation(at=12.5, total_lag=40, older_in_flight={fault: 7}))
    timeline.broker_started("2", at=14.0)
    # Lag 0 before the broker is back does not count: the fault is not over yet.
    timeline.observe(Observation(at=15.0, total_lag=0, older_in_flight={fault: 0}))
    assert timeline.summaries()[0].recovered_at is None
    timeline.broker_up("2", at=17.0)
    timeline.observe(Observation(at=18.0, brokers=frozenset({1, 2, 3}), under_replicated=0))
    timeline.observe(Observation(at=19.0, total_lag=0))
    assert timeline.summaries()[0].recovered_at is None  # no orders count since it cleared
    timeline.observe(Observation(at=20.0, older_in_flight={fault: 0}))

    assert texts(timeline) == [
        "kill -9 broker 2",
        "broker 2 process gone",
        "broker 2 gone from the cluster",
        "leader of 1 partition moved off broker 2",
        "ISR shrank (2 under-replicated)",
        "start broker 2 asked",
        "broker 2 process running",
        "broker 2 back",
        "ISR back to full",
        "lag 0",
        "every order from before the fault final",
        "recovered in 10.0 s",
    ]
    (summary,) = timeline.summaries()
    assert summary.recovery_s == 10.0
    assert timeline.open_faults() == []


def test_a_dead_broker_the_metadata_still_lists_is_not_back_until_it_runs_again() -> None:
    timeline = FaultTimeline()
    timeline.fault("kill_broker", "2", "kill -9 broker 2", at=1.0)
    timeline.broker_stopped("2", at=1.1)
    # Until its session times out the controller still lists the dead broker.
    timeline.observe(Observation(at=2.0, brokers=frozenset({1, 2, 3}), under_replicated=0))
    assert "broker 2 back" not in texts(timeline)
    timeline.broker_started("2", at=3.0)
    timeline.observe(Observation(at=4.0, brokers=frozenset({1, 2, 3}), under_replicated=0))
    assert "broker 2 back" not in texts(timeline)  # its start has not returned yet
    timeline.broker_up("2", at=6.0)
    timeline.observe(Observation(at=6.5, brokers=frozenset({1, 2, 3}), under_replicated=0))
    assert texts(timeline)[-2:] == ["broker 2 back", "ISR back to full"]


def test_an_unreachable_single_broker_counts_as_down() -> None:
    timeline = FaultTimeline()
    timeline.fault("stop_broker", "1", "stop broker 1", at=1.0)
    timeline.observe(Observation(at=2.0, kafka_reachable=False))
    timeline.broker_stopped("1", at=3.0)  # a clean stop can outlast the broker's fencing
    timeline.observe(Observation(at=5.0, kafka_reachable=True, brokers=frozenset({1})))
    assert texts(timeline)[1:] == [
        "broker 1 gone from the cluster",
        "broker 1 process gone",
        "broker 1 back",
    ]


def test_a_crash_clears_when_the_service_runs_again_and_the_group_settles() -> None:
    timeline = FaultTimeline()
    timeline.observe(
        Observation(at=0.5, services={"payment": ("running", 0)}, groups=STABLE, total_lag=0)
    )
    fault = timeline.fault("crash", "payment", "crash payment", at=1.0)
    timeline.observe(Observation(at=1.5, services={"payment": ("restarting", 1)}))
    timeline.observe(
        Observation(at=2.0, groups={"order-events": ("PreparingRebalance", frozenset())})
    )
    timeline.observe(Observation(at=2.5, services={"payment": ("running", 1)}))
    timeline.observe(
        Observation(at=3.0, groups={"order-events": ("Stable", frozenset({"m2"}))}, total_lag=0)
    )
    timeline.observe(Observation(at=3.2, older_in_flight={fault: 0}))
    assert texts(timeline) == [
        "crash payment",
        "payment crashed, supervisor restarting it",
        "groups rebalancing",
        "payment running again",
        "every group stable",
        "lag 0",
        "every order from before the fault final",
        "recovered in 2.2 s",
    ]


def test_a_slow_service_recovers_only_after_it_is_restored_and_its_lag_drained() -> None:
    timeline = FaultTimeline()
    fault = timeline.fault("slow", "inventory", "slow inventory by 50 ms/record", at=0.0)
    timeline.observe(Observation(at=2.0, total_lag=120))
    timeline.observe(Observation(at=4.0, total_lag=0, older_in_flight={fault: 0}))
    assert timeline.summaries()[0].recovered_at is None
    timeline.restored("inventory", at=5.0)
    timeline.observe(Observation(at=6.0, total_lag=30, older_in_flight={fault: 3}))
    timeline.observe(Observation(at=8.0, total_lag=0, older_in_flight={fault: 0}))
    assert texts(timeline) == [
        "slow inventory by 50 ms/record",
        "lag building (120)",
        "inventory back to full speed",
        "lag 0",
        "every order from before the fault final",
        "recovered in 8.0 s",
    ]


def test_a_poison_record_clears_when_its_dead_letter_topic_grows() -> None:
    timeline = FaultTimeline()
    timeline.observe(Observation(at=0.0, dead_letters={"x.order-events.dlq": 2}))
    fault = timeline.fault("poison", "x.order-events", "poison record into x.order-events", 1.0)
    timeline.observe(Observation(at=2.0, dead_letters={"x.order-events.dlq": 2}, total_lag=0))
    assert "lag 0" not in texts(timeline)  # not dead-lettered yet: the record may be unread
    timeline.observe(Observation(at=3.0, dead_letters={"x.order-events.dlq": 3}))
    timeline.observe(Observation(at=4.0, total_lag=0, older_in_flight={fault: 0}))
    assert texts(timeline)[1:] == [
        "poison record in x.order-events.dlq (3)",
        "lag 0",
        "every order from before the fault final",
        "recovered in 3.0 s",
    ]


def test_restoring_a_service_that_was_not_slowed_is_a_note_and_steps_never_repeat() -> None:
    timeline = FaultTimeline()
    timeline.restored("order", at=1.0)
    fault = timeline.fault("slow", "order", "slow order", at=2.0)
    for at in (3.0, 4.0, 5.0):
        timeline.observe(Observation(at=at, total_lag=5))
    assert [e.kind for e in timeline.entries()] == ["note", "fault", "step"]
    assert timeline.open_faults() == [(fault, 2.0)]


def test_the_watcher_asks_for_order_counts_only_while_a_fault_is_open() -> None:
    clock = iter([100.0, 130.0, 131.0])
    watcher = TimelineWatcher(clock=lambda: next(clock))
    asked: list[float] = []

    async def count(older_than_s: float) -> int:
        asked.append(older_than_s)
        return 4

    asyncio.run(watcher.orders(count))
    assert asked == []
    fault = watcher.timeline.fault("crash", "order", "crash order", at=100.0)
    asyncio.run(watcher.orders(count))  # the clock says 100: the fault is 0 s old
    asyncio.run(watcher.orders(count))  # 130: orders older than 30 s are from before it
    assert asked == [0.0, 30.0]
    assert watcher.timeline.last_seen().older_in_flight == {fault: 4}


def test_a_fault_whose_action_failed_is_closed_without_a_recovery_time() -> None:
    timeline = FaultTimeline()
    fault = timeline.fault("stop_broker", "1", "stop broker 1", at=1.0)
    timeline.failed(fault, "no broker 1 here", at=1.1)
    timeline.observe(Observation(at=2.0, kafka_reachable=False, total_lag=0))
    assert texts(timeline) == ["stop broker 1", "stop broker 1 failed: no broker 1 here"]
    (summary,) = timeline.summaries()
    assert (summary.failed, summary.recovery_s) == ("no broker 1 here", None)
    assert timeline.open_faults() == []


def test_a_step_after_the_recovery_is_still_recorded_for_a_while() -> None:
    timeline = FaultTimeline()
    fault = timeline.fault("stop_broker", "3", "stop broker 3", at=0.0)
    timeline.broker_stopped("3", at=0.5)
    timeline.observe(Observation(at=1.0, brokers=frozenset({1, 2}), under_replicated=4))
    timeline.observe(Observation(at=5.0, brokers=frozenset({1, 2, 3}), under_replicated=4))
    timeline.observe(Observation(at=6.0, total_lag=0, older_in_flight={fault: 0}))
    assert texts(timeline)[-1] == "recovered in 6.0 s"
    timeline.observe(Observation(at=9.0, under_replicated=0))
    timeline.observe(Observation(at=500.0, under_replicated=0, total_lag=0))
    assert texts(timeline)[-2:] == ["recovered in 6.0 s", "ISR back to full"]
    assert timeline.summaries()[0].recovery_s == 6.0


def test_a_recovered_fault_takes_no_step_that_the_next_fault_caused() -> None:
    timeline = FaultTimeline()
    timeline.observe(Observation(at=0.5, services={"order": ("running", 0)}, groups=STABLE))
    kill = timeline.fault("kill_broker", "1", "kill -9 broker 1", at=1.0)
    timeline.broker_stopped("1", at=1.1)
    timeline.observe(Observation(at=2.0, brokers=frozenset({2, 3}), under_replicated=3))
    timeline.broker_up("1", at=4.0)
    timeline.observe(Observation(at=5.0, brokers=frozenset({1, 2, 3}), under_replicated=0))
    timeline.observe(Observation(at=6.0, total_lag=0, older_in_flight={kill: 0}))
    assert texts(timeline)[-1] == "recovered in 5.0 s"
    crash = timeline.fault("crash", "order", "crash order", at=10.0)
    timeline.observe(Observation(at=10.5, services={"order": ("running", 1)}))
    # The crashed worker came back as a new member: the crash's step, not the kill's.
    timeline.observe(
        Observation(at=11.0, groups={"order-events": ("Stable", frozenset({"m2"}))}, total_lag=0)
    )
    timeline.observe(Observation(at=11.5, older_in_flight={crash: 0}))
    kill_lines = [e.text for e in timeline.entries() if e.fault_id == kill]
    assert kill_lines[-1] == "recovered in 5.0 s"
    crash_lines = [e.text for e in timeline.entries() if e.fault_id == crash]
    assert "every group stable" in crash_lines
    assert crash_lines[-1] == "recovered in 1.5 s"


def test_under_a_steady_load_the_fault_recovers_once_its_backlog_is_consumed() -> None:
    timeline = FaultTimeline()
    fault = timeline.fault("crash", "payment", "crash payment", at=0.0)
    timeline.observe(Observation(at=1.0, services={"payment": ("running", 1)}))

    def offsets(committed: int, end: int) -> Observation:
        return Observation(
            at=float(committed),
            total_lag=end - committed,
            offsets={("payment-events", "payment-events", 0): (committed, end)},
        )

    timeline.observe(offsets(2, 40))  # the log end when the fault cleared: 40
    timeline.observe(offsets(30, 50))  # not past 40 yet
    assert "lag 0" not in " ".join(texts(timeline))
    timeline.observe(offsets(45, 52))  # past 40: what the fault held up is through
    timeline.observe(Observation(at=46.0, older_in_flight={fault: 0}))
    assert texts(timeline)[-3:] == [
        "backlog consumed (lag 7 is newer than the fault)",
        "every order from before the fault final",
        "recovered in 46.0 s",
    ]
