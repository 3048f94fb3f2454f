"""Kafka goes away and comes back: the API answers 503 (and means it), the services recover.

Runs its own broker (LocalKafka on free ports under tmp_path) so stopping it cannot disturb
the session broker the other tests share.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from orderdeck.config import Settings
from orderdeck.kafka.local import LocalKafka
from orderdeck.runtime import Runtime
from tests.api.conftest import read_topic, wait_for
from tests.api.serve_process import free_port

pytestmark = pytest.mark.timeout(240)

ACK_TIMEOUT_S = 2.0
ORDERS = "/api/v1/orders"
BACKLOG = 20


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[LocalKafka]:
    kafka = LocalKafka(tmp_path / "broker", port=free_port())
    await asyncio.to_thread(kafka.start)
    try:
        yield kafka
    finally:
        await asyncio.to_thread(kafka.stop)


@pytest.fixture
async def runtime(broker: LocalKafka, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(
        bootstrap_servers=broker.bootstrap_servers, api_port=0, data_dir=tmp_path / "data"
    )
    rt = Runtime(settings, ack_timeout=ACK_TIMEOUT_S)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


def order(customer: str) -> dict[str, object]:
    return {"customerId": customer, "productId": "sku-cable", "quantity": 1}


async def test_kafka_down_is_503_without_an_order_and_the_backlog_finishes_after(
    broker: LocalKafka, runtime: Runtime
) -> None:
    store = runtime.store
    async with httpx.AsyncClient(base_url=runtime.api_url, timeout=30) as client:
        # A backlog in flight: the payment service is paused while orders come in.
        await runtime.supervisor.pause("payment")
        for i in range(BACKLOG):
            assert (await client.post(ORDERS, json=order(f"c-{i}"))).status_code == 201
        await wait_for(
            lambda: store.status_counts() == {"pending": BACKLOG},
            what="the backlog to wait for payment",
        )

        await asyncio.to_thread(broker.stop)
        await runtime.supervisor.resume("payment")

        began = time.monotonic()
        refused = await client.post(ORDERS, json=order("ghost"))
        took = time.monotonic() - began
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert "no order was created" in refused.json()["error"]["message"]
        assert took < ACK_TIMEOUT_S + 1.0, f"503 took {took:.2f} s"
        assert sum(store.status_counts().values()) == BACKLOG

        await asyncio.to_thread(broker.start)
        # Nobody restarts anything: the services reconnect and finish the backlog.
        await wait_for(
            lambda: store.status_counts() == {"confirmed": BACKLOG},
            within=90,
            what="the backlog to be confirmed after Kafka came back",
        )
        after = await client.post(ORDERS, json=order("after"))
        assert after.status_code == 201

        async def drained() -> bool:
            snapshots = await runtime.group_snapshots()
            return all(s.total_lag == 0 for s in snapshots)

        # The refused order's record may still have been delivered late by the producer:
        # once the order service has read everything, it must not have become an order.
        await wait_for(drained, within=60, what="every group to catch up")
        await wait_for(
            lambda: store.status_counts() == {"confirmed": BACKLOG + 1},
            what="the order placed after the outage",
        )
        customers = {o.customerId for o in store.list_orders(limit=100)[0]}
        assert "ghost" not in customers
        # It was there: the idempotent producer never drops a batch, so the refused order's
        # record reached the topic once Kafka was back; the fence is what kept it harmless.
        records = await read_topic(runtime.kafka, runtime.names.orders)
        assert len([r for r in records if b'"ghost"' in r.value]) == 1
