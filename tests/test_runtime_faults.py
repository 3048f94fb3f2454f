"""Faults caused through the real runtime (real Kafka, real store), and their recovery as
the chaos timeline records it: a crashed service is restarted, a slowed one falls behind and
catches up, a poison record is dead-lettered while its partition moves on, and a stopped or
killed broker comes back with every order final."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orderdeck.config import Settings
from orderdeck.errors import OrderdeckError
from orderdeck.events import FINAL_STATUSES, TopicNames, dlq_topic
from orderdeck.fault_timeline import FaultSummary
from orderdeck.faults import local_broker_control
from orderdeck.kafka.local import LocalKafka
from orderdeck.orders import OrderRequest
from orderdeck.runtime import Runtime
from tests.api.conftest import wait_for
from tests.test_runtime import settings_for

RECOVERY_S = 60.0


@pytest.fixture
async def runtime(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings_for(kafka_bootstrap, topic_names, tmp_path), with_api=False)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def place(runtime: Runtime, count: int) -> list[str]:
    request = OrderRequest.single("c-chaos", "sku-mouse", 1)
    return [(await runtime.submit_order(request)).order_id for _ in range(count)]


def texts(runtime: Runtime) -> list[str]:
    return [e.text for e in runtime.faults.timeline().entries]


def last_fault(runtime: Runtime) -> FaultSummary:
    return runtime.faults.timeline().faults[-1]


async def recovered(runtime: Runtime, what: str, within: float = RECOVERY_S) -> FaultSummary:
    await wait_for(lambda: last_fault(runtime).recovered_at is not None, within, what)
    return last_fault(runtime)


async def all_final(runtime: Runtime, order_ids: list[str]) -> bool:
    statuses = await runtime.store.run(runtime.store.order_statuses, order_ids)
    return len(statuses) == len(order_ids) and set(statuses.values()) <= FINAL_STATUSES


async def test_a_crashed_service_is_restarted_and_its_recovery_timed(runtime: Runtime) -> None:
    before = await place(runtime, 5)
    runtime.faults.crash_service("payment")
    after = await place(runtime, 5)

    summary = await recovered(runtime, "the crash's recovery")
    (payment,) = [s for s in runtime.supervisor.statuses() if s.name == "payment"]
    assert payment.restarts >= 1
    assert payment.last_error is not None
    assert "FaultInjected" in payment.last_error
    assert payment.state == "running"
    steps = texts(runtime)
    for step in ("crash payment", "payment running again", "lag 0", "recovered in"):
        assert any(t.startswith(step) for t in steps), (step, steps)
    assert summary.recovery_s is not None
    assert 0 < summary.recovery_s < RECOVERY_S
    await wait_for(lambda: all_final(runtime, before + after), 30, "every order final")


async def test_a_slowed_service_builds_lag_that_drains_once_restored(runtime: Runtime) -> None:
    runtime.faults.slow_service("payment", 300)
    assert runtime.faults.slowed() == {"payment": 300}
    orders = await place(runtime, 20)
    await wait_for(
        lambda: any(t.startswith("lag building") for t in texts(runtime)), 30, "lag to build"
    )
    assert last_fault(runtime).recovered_at is None

    runtime.faults.unslow_service("payment")
    assert runtime.faults.slowed() == {}
    summary = await recovered(runtime, "the lag to drain")
    steps = texts(runtime)
    assert steps.index("payment back to full speed") < steps.index("lag 0")
    assert summary.recovery_s is not None
    assert summary.recovery_s > 0
    assert await all_final(runtime, orders)


async def test_a_poison_record_is_dead_lettered_and_its_partition_moves_on(
    runtime: Runtime,
) -> None:
    topic = runtime.names.orders
    await runtime.faults.inject_poison(topic)
    summary = await recovered(runtime, "the poison record to be dead-lettered")

    assert f"poison record in {dlq_topic(topic)} (1)" in texts(runtime)
    health = await runtime.health()
    assert health.deadLetters[dlq_topic(topic)] == 1
    (group,) = [s for s in await runtime.group_snapshots() if s.group == topic]
    assert group.total_lag == 0  # committed past the poison record on every partition
    assert summary.recovery_s is not None
    orders = await place(runtime, 3)
    await wait_for(lambda: all_final(runtime, orders), 30, "orders after the poison final")


async def test_the_local_broker_stopped_and_killed_comes_back_with_every_order_final(
    extra_kafka: LocalKafka, tmp_path: Path
) -> None:
    settings = Settings(
        bootstrap_servers=extra_kafka.bootstrap_servers,
        api_port=0,
        data_dir=tmp_path / "data",
        topic_prefix="chaos-",
    )
    runtime = Runtime(settings, with_api=False, broker_control=local_broker_control(extra_kafka))
    await runtime.start()
    try:
        (broker,) = await runtime.faults.brokers()
        assert (broker.id, broker.running) == (1, True)
        for fault in ("stop", "kill"):
            orders = await place(runtime, 10)
            if fault == "stop":
                await runtime.faults.stop_broker(1)
            else:
                await runtime.faults.kill_broker(1)
            assert [b.running for b in await runtime.faults.brokers()] == [False]
            await wait_for(lambda: runtime.status().kafka == "unreachable", 15, "Kafka gone")
            await runtime.faults.start_broker(1)
            summary = await recovered(runtime, f"recovery after the broker's {fault}", 90)
            assert summary.recovery_s is not None
            assert summary.recovery_s > 0
            assert await all_final(runtime, orders)
        steps = texts(runtime)
        for step in (
            "stop broker 1",
            "kill -9 broker 1",
            "broker 1 process gone",
            "start broker 1 asked",
            "broker 1 back",
            "every order from before the fault final",
        ):
            assert step in steps, (step, steps)
        assert sum(t.startswith("recovered in") for t in steps) == 2
    finally:
        await runtime.stop()


async def test_faults_that_cannot_be_caused_are_refused_or_marked_failed(
    runtime: Runtime,
) -> None:
    with pytest.raises(OrderdeckError, match="does not run in this process"):
        runtime.faults.crash_service("shipping")
    assert await runtime.faults.brokers() == []  # an external cluster: nothing to control
    with pytest.raises(OrderdeckError, match="no local Kafka"):
        await runtime.faults.stop_broker(1)
    with pytest.raises(OrderdeckError, match="not one of the pipeline's topics"):
        await runtime.faults.inject_poison("__consumer_offsets")
    assert runtime.faults.timeline().faults == ()
