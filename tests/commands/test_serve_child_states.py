"""``serve --processes``: a service stuck, crashing or silent inside a live child is not green.

The child process stays alive throughout (so watching the process alone would say
``running``); what fails is one service task inside it. Two real faults, both made from this
test process on the store file the child writes to: its write lock held longer than the
store waits for it (the service's batch waits), and the outbox table taken away (the
service's worker crashes, and crashes again on every restart, until it is put back).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from orderdeck.events import TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.producer import EventProducer
from tests.api.conftest import wait_for
from tests.api.serve_process import ServeProcess
from tests.commands.test_serve import _children

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def serve(tmp_path: Path, kafka_bootstrap: str, topic_names: TopicNames) -> Iterator[ServeProcess]:
    """``serve --processes 2``: the API in this process, all four services in one child."""
    proc = ServeProcess(
        tmp_path,
        bootstrap=kafka_bootstrap,
        prefix=topic_names.prefix,
        processes=2,
        log_name="serve-child-states",
    )
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[EventProducer]:
    events = EventProducer(KafkaConnection(kafka_bootstrap))
    await events.start()
    try:
        yield events
    finally:
        await events.stop()


async def test_a_stuck_or_crashing_service_in_a_live_child_shows_in_health(
    serve: ServeProcess, producer: EventProducer, topic_names: TopicNames, tmp_path: Path
) -> None:
    await asyncio.to_thread(serve.wait_serving, 60, 2)
    [child] = _children(serve.proc.pid)
    # Autocommit mode: BEGIN/COMMIT below are this test's own statements.
    database = sqlite3.connect(tmp_path / "orderdeck.db", isolation_level=None, timeout=30)
    seen: list[str] = []

    async with httpx.AsyncClient(base_url=serve.url, timeout=10) as client:

        async def order_state() -> str:
            health = (await client.get("/health")).json()
            state = next(s["state"] for s in health["services"] if s["name"] == "order")
            assert isinstance(state, str)
            if not seen or seen[-1] != state:
                seen.append(state)
            return state

        async def order_is(*states: str) -> bool:
            return await order_state() in states

        async def poison() -> None:
            # A record the order service dead-letters: a write transaction on its store.
            await producer.send_many([(topic_names.orders, b"k", b"{not json", [])])

        await wait_for(lambda: order_is("running"), within=60, what="the order service to run")

        # 1. The database's write lock held by someone else: the batch waits for it.
        database.execute("BEGIN EXCLUSIVE")
        try:
            await poison()
            await wait_for(
                lambda: order_is("waiting"), within=30, what="/health to show the stuck service"
            )
            assert (await client.get("/health")).json()["status"] == "degraded"
        finally:
            database.execute("COMMIT")
        await wait_for(lambda: order_is("running"), within=30, what="the service to go on")

        # 2. The outbox gone: the worker crashes, and again on every restart (before joining).
        database.execute("ALTER TABLE outbox RENAME TO outbox_away")
        try:
            seen.clear()
            await poison()
            await wait_for(
                lambda: order_is("failed"), within=90, what="/health to show the crash loop"
            )
            assert "running" not in seen[1:], seen  # never green between the crashes
            assert seen[-2:] in (["restarting", "failed"], ["starting", "failed"]), seen
        finally:
            database.execute("ALTER TABLE outbox_away RENAME TO outbox")
        await wait_for(lambda: order_is("running"), within=60, what="the service to recover")
        assert (await client.get("/health")).json()["status"] == "ok"
    database.close()
    assert _children(serve.proc.pid) == [child], "the child process itself never exited"
    assert "crashed (OperationalError: no such table: outbox" in serve.log(), serve.log()


async def test_a_child_that_stops_reporting_is_not_shown_running(serve: ServeProcess) -> None:
    """A child that is alive but silent (stopped here with SIGSTOP; a stuck event loop looks
    the same) runs nothing anyone can see: its services read ``unknown``, then ``running``
    again once it reports."""
    await asyncio.to_thread(serve.wait_serving, 60, 2)
    [child] = _children(serve.proc.pid)
    async with httpx.AsyncClient(base_url=serve.url, timeout=10) as client:

        async def states() -> set[str]:
            health = (await client.get("/health")).json()
            return {s["state"] for s in health["services"]}

        async def are(*wanted: str) -> bool:
            return await states() == set(wanted)

        await wait_for(lambda: are("running"), within=60, what="the services to run")
        os.kill(child, signal.SIGSTOP)
        try:
            await wait_for(lambda: are("unknown"), within=30, what="/health to see the silence")
            assert (await client.get("/health")).json()["status"] == "degraded"
        finally:
            os.kill(child, signal.SIGCONT)
        await wait_for(lambda: are("running"), within=60, what="the services to run again")
    assert _children(serve.proc.pid) == [child], "the same child throughout"
