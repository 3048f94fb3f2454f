"""``orderdeck serve`` as a real process: clean stop, crash recovery, partitions shared.

These run the real command line against the session broker (with a private topic prefix),
so what they prove holds for the deployed process: signals, SQLite shared between
processes, consumer groups split between processes, and recovery after ``kill -9``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderdeck.events import TopicNames
from orderdeck.kafka.admin import GroupInspector
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.process_tuning import SERVICES_NICENESS
from orderdeck.store import Store
from tests.api.conftest import wait_for
from tests.api.serve_process import ServeProcess

pytestmark = pytest.mark.timeout(240)

ORDERS = "/api/v1/orders"


Spawn = Callable[..., ServeProcess]


@pytest.fixture
def spawn(tmp_path: Path, kafka_bootstrap: str, topic_names: TopicNames) -> Iterator[Spawn]:
    """Start serve processes on this test's topics and data dir; all are killed at the end."""
    started: list[ServeProcess] = []

    def _spawn(**kwargs: Any) -> ServeProcess:
        proc = ServeProcess(
            tmp_path, bootstrap=kafka_bootstrap, prefix=topic_names.prefix, **kwargs
        )
        started.append(proc)
        return proc

    yield _spawn
    for proc in started:
        proc.close()


async def _place_and_confirm(
    client: httpx.AsyncClient,
    customer: str,
    *,
    what: str,
    within: float = 20.0,
    hops: int | None = None,
) -> None:
    """POST one order (201 expected) and wait until it is ``confirmed`` (with ``hops``
    events in its journey, when given)."""
    created = await client.post(
        ORDERS, json={"customerId": customer, "productId": "sku-mouse", "quantity": 1}
    )
    assert created.status_code == 201
    location = created.headers["location"]

    async def confirmed() -> bool:
        order = (await client.get(location)).json()
        return bool(
            order["status"] == "confirmed" and (hops is None or len(order["journey"]) == hops)
        )

    await wait_for(confirmed, within=within, what=what)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_serve_stops_cleanly_within_5_s(spawn: Spawn, sig: int) -> None:
    serve = spawn()
    await asyncio.to_thread(serve.wait_serving)
    async with httpx.AsyncClient(base_url=serve.url) as client:
        await _place_and_confirm(client, "c-1", what="the order to be confirmed")
    began = time.monotonic()
    serve.signal(sig)
    code = await asyncio.to_thread(serve.wait, 10)
    took = time.monotonic() - began
    assert code == 0, serve.log()
    assert took < 5.0, f"stop took {took:.1f} s:\n{serve.log()}"
    log = serve.log()
    assert "Traceback" not in log, log
    assert log.rstrip().endswith("stopped"), log


async def test_two_serve_processes_split_the_partitions(
    spawn: Spawn, kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    first, second = spawn(log_name="serve-a"), spawn(log_name="serve-b")
    await asyncio.gather(
        asyncio.to_thread(first.wait_serving), asyncio.to_thread(second.wait_serving)
    )
    groups = list(topic_names.pipeline())
    async with GroupInspector(KafkaConnection(kafka_bootstrap)) as inspector:

        async def split() -> bool:
            for snap in await inspector.describe(groups):
                owners = [len(m.assignments) for m in snap.members]
                if sorted(owners) != [1, 2]:
                    return False
            return True

        await wait_for(split, within=60, what="every group to have 2 members sharing 3 partitions")
        snapshots = await inspector.describe(groups)
    for snap in snapshots:
        assert len({m.member_id for m in snap.members}) == 2
        assert sorted(p for m in snap.members for _, p in m.assignments) == [0, 1, 2]

    # Both APIs write the one store; every order ends confirmed whichever process handled it.
    async with httpx.AsyncClient() as client:
        posts = [
            client.post(
                f"{serve.url}{ORDERS}",
                json={"customerId": f"c-{i}", "productId": "sku-cable", "quantity": 1},
            )
            for i in range(20)
            for serve in (first, second)
        ]
        assert {r.status_code for r in await asyncio.gather(*posts)} == {201}
    store = Store(tmp_path / "orderdeck.db")
    try:
        await wait_for(
            lambda: store.status_counts() == {"confirmed": 40}, what="40 confirmed orders"
        )
    finally:
        store.close()
    for serve in (first, second):
        serve.signal(signal.SIGTERM)
    for serve in (first, second):
        assert await asyncio.to_thread(serve.wait, 10) == 0, serve.log()


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, parent pid, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = _stat(entry.name)
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _niceness(pid: int) -> int:
    return int(_stat(pid)[16])


def _alive(pid: int) -> bool:
    try:
        state = _stat(pid)[0]
    except OSError:
        return False
    return state != "Z"


async def test_processes_run_the_services_in_children_and_stop_together(spawn: Spawn) -> None:
    serve = spawn(processes=3, log_name="serve-p3")
    await asyncio.to_thread(serve.wait_serving, 60, 3)
    children = _children(serve.proc.pid)
    assert len(children) == 2, serve.log()
    # The services yield the CPU to the API's process (nice is field 19 of /proc/PID/stat).
    expected = min(19, _niceness(serve.proc.pid) + SERVICES_NICENESS)
    assert [_niceness(pid) for pid in children] == [expected] * 2
    log = serve.log()
    assert "services order,payment: process" in log, log
    assert "services inventory,notification: process" in log, log
    async with httpx.AsyncClient(base_url=serve.url) as client:
        await _place_and_confirm(
            client, "c-p", hops=4, what="the order to be confirmed by the child processes"
        )
        health = (await client.get("/health")).json()
    assert health["status"] == "ok", health
    assert sorted((s["name"], s["state"]) for s in health["services"]) == [
        ("inventory", "running"),
        ("notification", "running"),
        ("order", "running"),
        ("payment", "running"),
    ]
    began = time.monotonic()
    serve.signal(signal.SIGTERM)
    assert await asyncio.to_thread(serve.wait, 10) == 0, serve.log()
    assert time.monotonic() - began < 5.0, serve.log()
    assert not [pid for pid in children if _alive(pid)], serve.log()
    assert "Traceback" not in serve.log(), serve.log()


async def test_children_stop_when_their_parent_is_killed(spawn: Spawn) -> None:
    serve = spawn(processes=2, log_name="serve-p2")
    await asyncio.to_thread(serve.wait_serving, 60, 2)
    [child] = _children(serve.proc.pid)
    serve.proc.kill()  # kill -9: the parent cannot stop its children itself
    await asyncio.to_thread(serve.wait, 10)
    await wait_for(lambda: not _alive(child), within=15, what="the orphaned child to stop")
    assert "the parent process is gone; stopping" in serve.log(), serve.log()


async def test_a_killed_child_is_started_again(spawn: Spawn) -> None:
    serve = spawn(processes=2, log_name="serve-restart")
    await asyncio.to_thread(serve.wait_serving, 60, 2)
    [child] = _children(serve.proc.pid)
    async with httpx.AsyncClient(base_url=serve.url) as client:

        async def states() -> set[str]:
            health = (await client.get("/health")).json()
            return {s["state"] for s in health["services"]}

        await wait_for(
            lambda: _is(states(), {"running"}), within=30, what="the child's services to run"
        )
        os.kill(child, signal.SIGKILL)
        # At once, and until the new child has started: not "running".
        seen: set[str] = set()

        async def not_running() -> bool:
            current = await states()
            seen.update(current)
            return "running" not in current

        await wait_for(not_running, within=5, what="/health to show the dead child")
        assert seen & {"restarting", "starting"}, seen
        assert (await client.get("/health")).json()["status"] == "degraded"
        await wait_for(
            lambda: [pid for pid in _children(serve.proc.pid) if pid != child] != [],
            within=15,
            what="a new services process",
        )
        await wait_for(
            lambda: _is(states(), {"running"}), within=60, what="the new child's services to run"
        )
    await asyncio.to_thread(serve.wait_serving, 60, 3)
    assert "process exited with -9" in serve.log(), serve.log()
    async with httpx.AsyncClient(base_url=serve.url) as client:
        await _place_and_confirm(
            client, "c-r", within=40, what="the restarted child to confirm an order"
        )
    serve.signal(signal.SIGTERM)
    assert await asyncio.to_thread(serve.wait, 10) == 0, serve.log()


async def _is(value: Any, expected: object) -> bool:
    return bool(await value == expected)


def order_body(i: int) -> dict[str, object]:
    """The crash run's mix: 50 declined, 10 dock orders for a stock of 5, the rest fine."""
    if i % 10 == 0:
        return {"customerId": f"declined-{i}", "productId": "sku-cable", "quantity": 1}
    if i % 50 == 5:
        return {"customerId": f"c-{i}", "productId": "sku-dock", "quantity": 20}
    return {"customerId": f"c-{i}", "productId": "sku-cable", "quantity": 1}


@pytest.mark.parametrize("processes", [1, 3])
async def test_kill_9_mid_run_then_restart_finishes_every_order_once(
    spawn: Spawn, tmp_path: Path, processes: int
) -> None:
    total = 500
    serve = spawn(log_name="serve-1", processes=processes)
    await asyncio.to_thread(serve.wait_serving, 60, processes)
    port = serve.port
    store = Store(tmp_path / "orderdeck.db")
    accepted: set[int] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def poster(client: httpx.AsyncClient) -> None:
        # A careful client: every order has its Idempotency-Key and is retried until 201.
        while not queue.empty():
            i = queue.get_nowait()
            while True:
                try:
                    r = await client.post(
                        f"http://127.0.0.1:{port}{ORDERS}",
                        json=order_body(i),
                        headers={"Idempotency-Key": f"crash-run-{i}"},
                    )
                    if r.status_code == 201:
                        accepted.add(i)
                        break
                    assert r.status_code == 503, r.text
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)

    finals = ("confirmed", "payment_declined", "cancelled", "rejected")

    def final_count() -> int:
        counts = store.status_counts()
        return sum(counts.get(s, 0) for s in finals)

    try:
        async with httpx.AsyncClient(timeout=10) as client:
            posting = asyncio.gather(*(poster(client) for _ in range(16)))
            await wait_for(lambda: final_count() >= 100, within=60, what="100 final orders")
            serve.proc.kill()  # kill -9, mid-run
            await asyncio.to_thread(serve.wait, 10)
            at_kill = final_count()
            assert at_kill < total, "the run finished before the kill; nothing was proven"
            restarted = spawn(port=port, log_name="serve-2", processes=processes)
            await asyncio.to_thread(restarted.wait_serving, 60, processes)
            await asyncio.wait_for(posting, 90)
        assert len(accepted) == total
        await wait_for(lambda: final_count() == total, within=90, what="every order final")
        counts = store.status_counts()
        assert counts == {"confirmed": 445, "payment_declined": 50, "cancelled": 5}, counts
        effects = store.effect_counts()
        assert effects["charges"] == 450  # one per paid order, none twice
        assert effects["declines"] == 50
        assert effects["refunds"] == 5
        assert effects["notifications"] == total
        totals = store.payment_totals()
        assert totals["refund"] == 5 * 20 * 19999  # refunds equal the charges of the cancelled
        dock = next(p for p in store.list_products() if p.id == "sku-dock")
        assert (dock.stock, dock.reserved) == (0, 100)
        restarted.signal(signal.SIGTERM)
        assert await asyncio.to_thread(restarted.wait, 10) == 0, restarted.log()
    finally:
        store.close()
