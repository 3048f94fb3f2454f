"""The supervisor: pause/resume (lag grows while paused), scaling, crash restarts, clean stop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from orderdeck.errors import OrderdeckError
from orderdeck.events import TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.producer import EventProducer
from orderdeck.services import ServiceStatus
from orderdeck.services.supervisor import FAILED_AFTER, Supervisor
from orderdeck.services.worker import ServiceWorker
from orderdeck.store import StoreBackend, StoreURL
from tests.services.conftest import Place, order_placed, wait_for


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    yield client
    await client.close()


async def _lag(bootstrap: str, admin: AIOKafkaAdminClient, topic: str) -> int:
    committed = await admin.list_consumer_group_offsets(topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return sum(
        end - max(committed[tp].offset, 0) if tp in committed else end for tp, end in ends.items()
    )


async def _group(admin: AIOKafkaAdminClient, group: str) -> tuple[str, list[Any]]:
    """(state, members) of a group from the raw DescribeGroups response."""
    [response] = await admin.describe_consumer_groups([group])
    [described] = response.groups
    return described[2], list(described[5])


def _status(sup: Supervisor, name: str) -> ServiceStatus:
    return next(s for s in sup.statuses() if s.name == name)


def _order_status(store: StoreBackend, order_id: str) -> str | None:
    order = store.get_order(order_id)
    return order.status if order else None


async def test_paused_service_builds_lag_and_catches_up_on_resume(
    kafka_bootstrap: str,
    services: Supervisor,
    store: StoreBackend,
    place: Place,
    topic_names: TopicNames,
    admin: AIOKafkaAdminClient,
) -> None:
    await services.pause("payment")
    assert _status(services, "payment").state == "paused"
    events = [order_placed(f"p-{i}") for i in range(3)]
    for e in events:
        await place(e)
    await wait_for(
        lambda: all(_order_status(store, e.orderId) == "pending" for e in events),
        what="orders priced by the order service",
    )
    lag = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while lag < 3 and loop.time() < deadline:
        lag = await _lag(kafka_bootstrap, admin, topic_names.payments)
        await asyncio.sleep(0.1)
    assert lag == 3
    assert _status(services, "payment").processed == 0
    state, members = await _group(admin, topic_names.payments)
    assert (state, len(members)) == ("Stable", 1)  # paused, still a member

    await services.resume("payment")
    await wait_for(
        lambda: all(_order_status(store, e.orderId) == "confirmed" for e in events),
        what="orders confirmed after resume",
    )
    await wait_for(lambda: _status(services, "payment").rate > 0, what="a payment rate")


async def test_scaling_adds_consumers_to_the_same_group(
    services: Supervisor,
    store: StoreBackend,
    place: Place,
    topic_names: TopicNames,
    admin: AIOKafkaAdminClient,
) -> None:
    await services.scale("order", 3)
    async with asyncio.timeout(30):
        await services.wait_joined()
    assert _status(services, "order").instances == 3
    members: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while len(members) != 3 and loop.time() < deadline:
        _, members = await _group(admin, topic_names.orders)
        await asyncio.sleep(0.1)
    assert len(members) == 3
    events = [order_placed(f"s-{i}") for i in range(20)]
    await asyncio.gather(*(place(e) for e in events))
    await wait_for(
        lambda: all(_order_status(store, e.orderId) == "confirmed" for e in events),
        what="orders confirmed with 3 order consumers",
    )
    await services.scale("order", 1)
    assert _status(services, "order").instances == 1
    with pytest.raises(OrderdeckError):
        await services.scale("order", 4)
    with pytest.raises(OrderdeckError):
        await services.pause("shipping")


async def test_crashing_service_is_restarted_with_backoff(
    kafka_connection: KafkaConnection, tmp_path: Path, topic_names: TopicNames
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the data directory should be")
    sup = Supervisor(kafka_connection, blocker / "orderdeck.db", topic_names, services=["order"])
    await sup.start()
    try:
        await wait_for(lambda: _status(sup, "order").restarts >= 2, what="two restarts")
        status = _status(sup, "order")
        assert status.state in {"restarting", "starting"}
        assert status.last_error is not None
        assert "state" in status.last_error
        blocker.unlink()  # the cause goes away: the next restart succeeds
        await wait_for(lambda: _status(sup, "order").state == "running", what="running again")
    finally:
        await sup.stop()
    assert _status(sup, "order").state == "stopped"


async def test_clean_stop_leaves_the_group(
    kafka_connection: KafkaConnection,
    store_url: StoreURL,
    topic_names: TopicNames,
    admin: AIOKafkaAdminClient,
) -> None:
    sup = Supervisor(kafka_connection, store_url, topic_names, services=["notification"])
    await sup.start()
    async with asyncio.timeout(30):
        await sup.wait_joined()
    state, members = await _group(admin, topic_names.notifications)
    assert (state, len(members)) == ("Stable", 1)
    async with asyncio.timeout(5):
        await sup.stop()
    state, members = await _group(admin, topic_names.notifications)
    assert (state, members) == ("Empty", [])


def _worker(sup: Supervisor, name: str) -> ServiceWorker:
    [worker] = sup.workers(name)
    return worker


async def test_lingering_batches_hold_fetches_only_for_their_linger(
    services: Supervisor, store: StoreBackend, place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[str] = []
    for name in ("order", "payment", "inventory", "notification"):
        worker = _worker(services, name)
        hold = worker._hold_fetches

        def counting_hold(hold: Any = hold, name: str = name) -> None:
            held.append(name)
            hold()

        monkeypatch.setattr(worker, "_hold_fetches", counting_hold)
    # A steady stream (records keep arriving), not one burst: the pacer lingers only then.
    events = [order_placed(f"stream-{i}") for i in range(100)]
    for i in range(0, len(events), 5):
        await asyncio.gather(*(place(e) for e in events[i : i + 5]))
        await asyncio.sleep(0.02)
    await wait_for(
        lambda: all(_order_status(store, e.orderId) == "confirmed" for e in events),
        what="a stream of orders confirmed",
    )
    assert held, "a stream of 250 orders/s for 0.4 s gave no lingering batch"
    # The last batch's linger may still be running when its orders show up as confirmed.
    consumers = [_worker(services, name).consumer for name in held]
    await wait_for(
        lambda: all(c is not None and c.paused() == set() for c in consumers),
        within=2.0,
        what="every held consumer fetching again",
    )

    # A service paused by the user during a linger stays paused when the linger ends.
    worker = _worker(services, "payment")
    consumer = worker.consumer
    assert consumer is not None
    assert consumer.assignment()
    worker._hold_fetches()
    worker.pause()
    worker._release_fetches()
    assert consumer.paused() == consumer.assignment()
    worker.resume()
    assert consumer.paused() == set()


async def test_a_worker_that_crashes_on_every_record_it_fetches_ends_failed(
    kafka_connection: KafkaConnection,
    tmp_path: Path,
    topic_names: TopicNames,
    producer: EventProducer,
) -> None:
    """Each restart joins the group, fetches the same record and crashes on it: joining
    must not count as recovering, or the state would flicker running/restarting forever."""
    db = tmp_path / "orderdeck.db"
    sup = Supervisor(kafka_connection, db, topic_names, services=["order"])
    await sup.start()
    database = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        async with asyncio.timeout(60):
            await sup.wait_joined()
        # The table every handled event is claimed in: gone, the batch fails on its claim.
        database.execute("ALTER TABLE journey RENAME TO journey_away")
        await producer.send_event(order_placed("crash", [("sku-cable", 1)]), topic_names.orders)
        await wait_for(lambda: _status(sup, "order").state == "failed", 120, "failed")
        status = _status(sup, "order")
        assert status.restarts >= FAILED_AFTER
        assert status.last_error is not None
        assert "no such table: journey" in status.last_error
        database.execute("ALTER TABLE journey_away RENAME TO journey")
        await wait_for(lambda: _status(sup, "order").state == "running", 60, "running again")
        await wait_for(lambda: _status(sup, "order").processed >= 1, 30, "the record handled")
    finally:
        database.close()
        await sup.stop()
