"""Fixtures for the service tests: a producer and running services, on every store engine.

``kafka_bootstrap`` (the session's real broker), ``topic_names`` (fresh prefixed topics with
3 partitions each, DLQs included) and ``store_url``/``store`` (a fresh store per engine, the
test's own view of it: the services open their own connections) come from tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from orderdeck.events import LineItem, OrderPlaced, OrderPlacedPayload, TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.producer import Delivery, EventProducer
from orderdeck.services.supervisor import Supervisor
from orderdeck.store import StoreBackend, StoreURL

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
async def producer(kafka_connection: KafkaConnection) -> AsyncIterator[EventProducer]:
    """A started producer for placing orders and writing raw records."""
    p = EventProducer(kafka_connection, client_suffix="test-services")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def services(
    kafka_connection: KafkaConnection,
    store_url: StoreURL,
    topic_names: TopicNames,
    store: StoreBackend,
) -> AsyncIterator[Supervisor]:
    """All four services running against the test's topics and store."""
    sup = Supervisor(kafka_connection, store_url, topic_names)
    await sup.start()
    try:
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            await sup.wait_joined()
        yield sup
    finally:
        await sup.stop()


Place = Callable[[OrderPlaced], Awaitable[Delivery]]


@pytest.fixture
def place(producer: EventProducer, topic_names: TopicNames, store: StoreBackend) -> Place:
    """Produce an OrderPlaced to order-events and record it like the API does."""

    async def _place(event: OrderPlaced) -> Delivery:
        d = await producer.send_event(event, topic_names.orders)
        store.record_placed(event, d.topic, d.partition, d.offset, d.timestamp_ms)
        return d

    return _place
