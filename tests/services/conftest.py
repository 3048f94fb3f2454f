"""Fixtures for the service tests: a store, a producer, running services.

``kafka_bootstrap`` (the session's real broker) and ``topic_names`` (fresh prefixed topics with
3 partitions each, DLQs included) come from tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from orderdeck.events import LineItem, OrderPlaced, OrderPlacedPayload, TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.producer import Delivery, EventProducer
from orderdeck.services.supervisor import Supervisor
from orderdeck.store import Store

JOIN_TIMEOUT_S = 30.0


async def wait_for(
    condition: Callable[[], bool], within: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until it holds; fail the test with ``what`` at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


def order_placed(
    customer: str = "cust-1", items: list[tuple[str, int]] | None = None, order_id: str = ""
) -> OrderPlaced:
    """An OrderPlaced as the API would produce it."""
    oid = order_id or f"ord-{uuid.uuid4().hex[:12]}"
    return OrderPlaced(
        orderId=oid,
        correlationId=oid,
        payload=OrderPlacedPayload(
            customerId=customer,
            items=[LineItem(productId=p, quantity=q) for p, q in (items or [("sku-mouse", 1)])],
        ),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where this test's SQLite database lives."""
    return tmp_path / "orderdeck.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    """The test's view of the shared database (the services open their own connections)."""
    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture
async def producer(kafka_connection: KafkaConnection) -> AsyncIterator[EventProducer]:
    """A started producer for placing orders and writing raw records."""
    p = EventProducer(kafka_connection, client_suffix="test-services")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def services(
    kafka_connection: KafkaConnection, db_path: Path, topic_names: TopicNames, store: Store
) -> AsyncIterator[Supervisor]:
    """All four services running against the test's topics and database."""
    sup = Supervisor(kafka_connection, db_path, topic_names)
    await sup.start()
    try:
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            await sup.wait_joined()
        yield sup
    finally:
        await sup.stop()


Place = Callable[[OrderPlaced], Awaitable[Delivery]]


@pytest.fixture
def place(producer: EventProducer, topic_names: TopicNames, store: Store) -> Place:
    """Produce an OrderPlaced to order-events and record it like the API does."""

    async def _place(event: OrderPlaced) -> Delivery:
        d = await producer.send_event(event, topic_names.orders)
        store.record_placed(event, d.topic, d.partition, d.offset, d.timestamp_ms)
        return d

    return _place
