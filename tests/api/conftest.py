"""Fixtures for the order API tests: a real store, a real producer, the app over ASGI.

``kafka_bootstrap`` and ``topic_names`` come from tests/conftest.py (the session broker).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from orderdeck.api import create_app
from orderdeck.events import TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.producer import EventProducer
from orderdeck.kafka.tail import TailRecord, TopicTail
from orderdeck.order_desk import OrderDesk
from orderdeck.services.supervisor import Supervisor
from orderdeck.store import StoreBackend, StoreURL, open_store
from tests.api.live_server import live_server

ACK_TIMEOUT_S = 5.0


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    """A fresh store seeded with the committed catalog: SQLite, or every engine in turn for a
    test that uses ``store_url`` (``@pytest.mark.usefixtures("store_url")``)."""
    url = (
        request.getfixturevalue("store_url")
        if "store_url" in request.fixturenames
        else StoreURL.sqlite(tmp_path / "orderdeck.db")
    )
    s = open_store(url)
    yield s
    s.close()


@pytest.fixture
async def producer(kafka_connection: KafkaConnection) -> AsyncIterator[EventProducer]:
    """A started producer on the session broker."""
    p = EventProducer(kafka_connection, client_suffix="test-api")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def desk(
    store: StoreBackend, producer: EventProducer, topic_names: TopicNames
) -> AsyncIterator[OrderDesk]:
    """The order desk the app places orders with (closed before the store)."""
    d = OrderDesk(store, producer, topic_names, ack_timeout=ACK_TIMEOUT_S)
    yield d
    await d.aclose()


@pytest.fixture
async def client(desk: OrderDesk) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the app over ASGI (no socket)."""
    app = create_app(desk)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://orderdeck.test") as c:
        yield c


@pytest.fixture
async def api_url(desk: OrderDesk) -> AsyncIterator[str]:
    """The app served over real TCP on a free port, by the server every orderdeck runs."""
    async with live_server(create_app(desk)) as port:
        yield f"http://127.0.0.1:{port}"


async def wait_for(
    condition: Callable[[], Awaitable[bool] | bool], within: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until it holds; fail the test naming ``what`` at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        outcome = condition()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


async def read_topic(kafka: KafkaConnection, topic: str) -> list[TailRecord]:
    """Every record currently in ``topic`` (group-less, from the beginning)."""
    records: list[TailRecord] = []
    async with TopicTail(kafka, [topic], from_beginning=True) as tail:
        while not await tail.caught_up():
            records.extend(await tail.next_batch(timeout_ms=100))
    return records


@pytest.fixture
async def services(
    kafka_connection: KafkaConnection, store: StoreBackend, topic_names: TopicNames
) -> AsyncIterator[Supervisor]:
    """The four services, in-process, on the test's topics and database."""
    supervisor = Supervisor(kafka_connection, store.url, topic_names)
    await supervisor.start()
    try:
        async with asyncio.timeout(30):
            await supervisor.wait_joined()
        yield supervisor
    finally:
        await supervisor.stop()
