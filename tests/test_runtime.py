"""The Runtime that ``serve`` and ``launch`` run: start-up steps, real HTTP, status, clean stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from orderdeck.config import Settings
from orderdeck.errors import OrderdeckError
from orderdeck.events import TopicNames, dlq_topic
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.producer import EventProducer
from orderdeck.orders import OrderRequest, OrderValidationError
from orderdeck.runtime import Runtime, StartupStep
from tests.api.conftest import wait_for


class Records(logging.Handler):
    """Keeps what the runtime logged (the TUI's log panel in miniature)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


def settings_for(kafka_bootstrap: str, topic_names: TopicNames, data_dir: Path) -> Settings:
    return Settings(
        bootstrap_servers=kafka_bootstrap,
        api_port=0,
        data_dir=data_dir,
        topic_prefix=topic_names.prefix,
    )


@pytest.fixture
async def started(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, list[StartupStep], Records]]:
    steps: list[StartupStep] = []
    logs = Records()
    runtime = Runtime(
        settings_for(kafka_bootstrap, topic_names, tmp_path),
        log_handler=logs,
        on_progress=steps.append,
    )
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    await runtime.start()
    # The host (serve, the TUI) keeps its signal handlers: uvicorn installed none.
    assert handlers == {sig: signal.getsignal(sig) for sig in handlers}
    try:
        yield runtime, steps, logs
    finally:
        await runtime.stop()


async def test_start_reports_every_step_then_serves_orders_over_http(
    started: tuple[Runtime, list[StartupStep], Records], capsys: pytest.CaptureFixture[str]
) -> None:
    runtime, steps, logs = started
    for name in ("kafka", "topics", "api", "services"):
        states = [s.state for s in steps if s.name == name]
        assert states == ["running", "done"], (name, steps)
    assert [s.name for s in steps if s.state == "done"] == ["kafka", "topics", "api", "services"]

    async with httpx.AsyncClient(base_url=runtime.api_url) as client:
        created = await client.post(
            "/api/v1/orders", json={"customerId": "c-1", "productId": "sku-mouse", "quantity": 1}
        )
        assert created.status_code == 201
        location = created.headers["location"]

        async def confirmed() -> bool:
            return bool((await client.get(location)).json()["status"] == "confirmed")

        await wait_for(confirmed, what="the order to be confirmed")
        assert len((await client.get(location)).json()["journey"]) == 4

        async def healthy() -> bool:
            response = await client.get("/health")
            body = response.json()
            return (
                response.status_code == 200 and body["totalLag"] == 0 and bool(body["deadLetters"])
            )

        await wait_for(healthy, what="/health to report ok with no lag")
        report = (await client.get("/health")).json()
        assert report["kafka"]["reachable"] is True
        # Dead letters come from the DLQ topics' offsets: all four, none of them holding any.
        assert report["deadLetters"] == {dlq_topic(t): 0 for t in runtime.names.pipeline()}, report
        assert report["totalDeadLetters"] == 0
        assert report["stuckOrders"] == 0  # the one order was confirmed within the 30 s
        assert {s["name"] for s in report["services"]} == {
            "order",
            "payment",
            "inventory",
            "notification",
        }

    # uvicorn's logs went to our handler and nothing was printed over the terminal.
    assert any("Uvicorn running" in m for m in logs.messages())
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ""


async def test_submit_order_takes_the_api_path(
    started: tuple[Runtime, list[StartupStep], Records],
) -> None:
    runtime, _, _ = started
    submitted = await runtime.submit_order(OrderRequest.single("c-2", "sku-cable", 2))
    assert submitted.response.status == "placed"
    assert submitted.delivery is not None
    assert submitted.delivery.topic == runtime.names.orders
    await wait_for(
        lambda: (
            (o := runtime.store.get_order(submitted.order_id)) is not None
            and o.status == "confirmed"
        ),
        what="the submitted order to be confirmed",
    )
    with pytest.raises(OrderValidationError) as refused:
        await runtime.submit_order(OrderRequest.single("c-2", "sku-unknown", 1))
    assert refused.value.fields[0].field == "productId"


async def test_the_form_and_the_api_share_the_runtimes_order_desk(
    started: tuple[Runtime, list[StartupStep], Records],
) -> None:
    runtime, _, _ = started
    request = OrderRequest.single("c-3", "sku-cable", 1)
    first = await runtime.submit_order(request, idempotency_key="desk-key")
    async with httpx.AsyncClient(base_url=runtime.api_url) as client:
        again = await client.post(
            "/api/v1/orders",
            json={"customerId": "c-3", "productId": "sku-cable", "quantity": 1},
            headers={"Idempotency-Key": "desk-key"},
        )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["event"]["id"] == first.order_id
    # An order the API accepted without a key is readable at once through the same desk.
    quick = await runtime.submit_order(OrderRequest.single("c-4", "sku-cable", 1))
    assert await runtime.desk.find_order(quick.order_id) is not None


async def test_status_shows_rate_lag_and_groups(
    started: tuple[Runtime, list[StartupStep], Records],
) -> None:
    runtime, _, _ = started
    for i in range(30):
        await runtime.submit_order(OrderRequest.single(f"c-{i}", "sku-cable", 1))
    await wait_for(
        lambda: runtime.status().status_counts.get("confirmed", 0) == 30,
        what="30 confirmed orders in the cached status",
    )
    status = runtime.status()
    assert status.kafka == "running"
    assert status.api == "running"
    assert status.orders_per_s > 0
    assert {s.name for s in status.services} == {"order", "payment", "inventory", "notification"}
    snapshots = await runtime.group_snapshots()
    assert [s.group for s in snapshots] == list(runtime.names.pipeline())
    assert all(len(s.members) == 1 for s in snapshots)
    await wait_for(lambda: runtime.status().total_lag == 0, what="the lag to drain")
    await runtime.group_snapshots()  # the tracker is fed by every poll
    for group in runtime.names.pipeline():
        figures = runtime.lag_tracker.group(group)
        assert figures is not None
        assert figures.partitions
        assert figures.lag_seconds == 0.0  # caught up: no record is waiting
    tail = runtime.open_tail([runtime.names.notifications], from_beginning=True)
    await tail.start()
    try:
        records = []
        while len(records) < 30:
            records += await tail.next_batch()
        assert {r.event_type for r in records} == {"OrderConfirmed"}
    finally:
        await tail.stop()


async def test_stop_leaves_no_task_behind(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    before = asyncio.all_tasks()
    runtime = Runtime(settings_for(kafka_bootstrap, topic_names, tmp_path))
    await runtime.start()
    await runtime.group_snapshots()
    await runtime.stop()
    await runtime.stop()  # twice is fine
    await asyncio.sleep(0)
    left = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert left == set()
    assert runtime.status().api == "stopped"


async def test_port_in_use_fails_start_with_a_clear_error(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    before = asyncio.all_tasks()
    steps: list[StartupStep] = []
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = settings_for(kafka_bootstrap, topic_names, tmp_path).model_copy(
            update={"api_port": port}
        )
        runtime = Runtime(settings, on_progress=steps.append, log_handler=Records())
        with pytest.raises(OrderdeckError, match=f"{port}"):
            await runtime.start()
    assert steps[-1].name == "api"
    assert steps[-1].state == "failed"
    await asyncio.sleep(0)
    assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()


@pytest.mark.timeout(180)
async def test_stop_with_kafka_unreachable_is_quick_and_clean(tmp_path: Path) -> None:
    """Kafka vanished with a send in flight: stopping is bounded and leaves no task."""
    from aiokafka.errors import KafkaError

    from orderdeck.kafka.local import LocalKafka
    from orderdeck.kafka.producer import STOP_TIMEOUT_S, EventProducer
    from tests.api.serve_process import free_port
    from tests.services.conftest import order_placed

    broker = LocalKafka(tmp_path / "broker", port=free_port())
    await asyncio.to_thread(broker.start)
    try:
        before = asyncio.all_tasks()
        settings = Settings(
            bootstrap_servers=broker.bootstrap_servers, api_port=0, data_dir=tmp_path / "data"
        )
        runtime = Runtime(settings, ack_timeout=1.0)
        await runtime.start()
        producer = EventProducer(
            KafkaConnection(broker.bootstrap_servers), client_suffix="outage-test"
        )
        await producer.start()
        await producer.send_event(order_placed("before"), runtime.names.orders, timeout=10)
        submitted = await runtime.submit_order(OrderRequest.single("c", "sku-cable", 1))
        assert submitted.delivery is not None

        await asyncio.to_thread(broker.stop)
        pending = asyncio.create_task(
            producer.send_event(order_placed("during"), runtime.names.orders)
        )
        await asyncio.sleep(0.5)
        assert not pending.done()  # the idempotent producer keeps trying

        loop = asyncio.get_running_loop()
        began = loop.time()
        await producer.stop()
        assert loop.time() - began < STOP_TIMEOUT_S + 2.5
        with pytest.raises(KafkaError):
            await pending

        began = loop.time()
        await runtime.stop()
        took = loop.time() - began
        assert took < 15, f"runtime.stop() took {took:.1f} s with Kafka down"
        await asyncio.sleep(0)
        left = {t for t in asyncio.all_tasks() - before if not t.done()}
        # Named by their coroutines (e.g. AIOKafkaClient._md_synchronizer) when one is left.
        assert left == set(), sorted(getattr(t.get_coro(), "__qualname__", "?") for t in left)
    finally:
        await asyncio.to_thread(broker.stop)


async def test_dead_letters_are_the_depth_of_each_dlq_topic(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    """Records an earlier run (or another process) dead-lettered count: the DLQ column is
    the topic's log-end minus log-start offset, not what this runtime's services did."""
    producer = EventProducer(KafkaConnection(kafka_bootstrap), client_suffix="test-dlq")
    await producer.start()
    try:
        for i in range(3):
            await producer.send_record(dlq_topic(topic_names.payments), f"k{i}".encode(), b"{}")
    finally:
        await producer.stop()
    runtime = Runtime(settings_for(kafka_bootstrap, topic_names, tmp_path))
    await runtime.start()
    try:

        def dead_letters() -> dict[str, int]:
            return {s.name: s.dead_letters for s in runtime.status().services}

        await wait_for(
            lambda: dead_letters() == {"order": 0, "payment": 3, "inventory": 0, "notification": 0},
            within=20,
            what="the DLQ depths from Kafka",
        )
        assert {s.name: s.dead_letters for s in runtime.supervisor.statuses()}["payment"] == 0
    finally:
        await runtime.stop()
