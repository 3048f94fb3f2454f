"""Read-your-writes across API processes that share one PostgreSQL database.

An order accepted by one ``orderdeck serve`` is answered 201 before anything is written to the
store (the order service records it from Kafka; the accepting desk's write-behind is the back
stop), so another process must wait for it within ``order_desk.VISIBLE_WITHIN_S`` instead of
answering 404. These tests post to one process and read from the other at once, many times,
and check the bound itself with no order service running anywhere.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from orderdeck.events import TopicNames
from orderdeck.order_desk import VISIBLE_WITHIN_S, fresh_id_wait
from orderdeck.store import open_store
from tests.api.serve_process import ServeProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ORDER = {"customerId": "c-ryw", "productId": "sku-dock", "quantity": 1}


def _two_hosts(
    tmp_path: Path, bootstrap: str, names: TopicNames, store_url: str, services: str | None
) -> list[ServeProcess]:
    seed = open_store(store_url)
    try:
        seed.set_stock("sku-dock", 10_000)
    finally:
        seed.close()
    hosts = []
    for name in ("host-a", "host-b"):
        directory = tmp_path / name
        directory.mkdir()
        hosts.append(
            ServeProcess(directory, bootstrap=bootstrap, prefix=names.prefix, services=services)
        )
    return hosts


async def test_an_order_posted_to_one_api_is_found_at_once_by_another(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_names: TopicNames,
    postgres_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERDECK_STORE", postgres_db_url)
    hosts = _two_hosts(tmp_path, kafka_bootstrap, topic_names, postgres_db_url, None)
    try:
        for host in hosts:
            await asyncio.to_thread(host.wait_serving, 90)
        a, b = hosts
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=10) as to_a,
            httpx.AsyncClient(base_url=b.url, timeout=10) as to_b,
        ):

            async def round_trip(n: int) -> tuple[int, int]:
                posted = await (to_a if n % 2 else to_b).post("/api/v1/orders", json=ORDER)
                assert posted.status_code == 201, posted.text
                order_id = posted.headers["location"].rsplit("/", 1)[-1]
                # The other process, at once: never a 404 for an accepted order.
                read = await (to_b if n % 2 else to_a).get(f"/api/v1/orders/{order_id}")
                return posted.status_code, read.status_code

            limits = asyncio.Semaphore(8)

            async def limited(n: int) -> tuple[int, int]:
                async with limits:
                    return await round_trip(n)

            answers = await asyncio.gather(*(limited(n) for n in range(200)))
            assert [read for _, read in answers] == [200] * 200

            # A made-up id answers 404 at once: no wait for ids that cannot be in flight.
            for made_up in (str(uuid.uuid4()), "0190a0a0-0000-7000-8000-000000000000", "x"):
                began = time.monotonic()
                missing = await to_b.get(f"/api/v1/orders/{made_up}")
                assert missing.status_code == 404
                assert time.monotonic() - began < 0.5
    finally:
        for host in hosts:
            host.close()


async def test_without_an_order_service_another_api_waits_for_the_write_behind(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_names: TopicNames,
    postgres_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bound itself: only the accepting desk's write-behind records the order."""
    monkeypatch.setenv("ORDERDECK_STORE", postgres_db_url)
    hosts = _two_hosts(
        tmp_path, kafka_bootstrap, topic_names, postgres_db_url, "payment,inventory,notification"
    )
    try:
        for host in hosts:
            await asyncio.to_thread(host.wait_serving, 90)
        a, b = hosts
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=10) as to_a,
            httpx.AsyncClient(base_url=b.url, timeout=10) as to_b,
        ):
            for _ in range(3):
                posted = await to_a.post("/api/v1/orders", json=ORDER)
                assert posted.status_code == 201, posted.text
                began = time.monotonic()
                order_id = posted.headers["location"].rsplit("/", 1)[-1]
                read = await to_b.get(f"/api/v1/orders/{order_id}")
                waited = time.monotonic() - began
                assert read.status_code == 200
                assert read.json()["status"] == "placed"
                assert waited < VISIBLE_WITHIN_S + 0.5
    finally:
        for host in hosts:
            host.close()


def test_only_a_fresh_canonical_uuid7_is_waited_for() -> None:
    now = time.time()
    millis = int(now * 1000)

    def v7(at_ms: int) -> str:
        raw = bytearray(at_ms.to_bytes(6, "big") + bytes(10))
        raw[6] = 0x70
        raw[8] = 0x80
        return str(uuid.UUID(bytes=bytes(raw)))

    assert 0 < fresh_id_wait(v7(millis), now) <= VISIBLE_WITHIN_S
    assert fresh_id_wait(v7(millis - int(VISIBLE_WITHIN_S * 1000) - 10), now) == 0
    assert fresh_id_wait(v7(millis + 60_000), now) == 0  # far in the future
    assert fresh_id_wait(v7(millis).upper(), now) == 0  # not the form handed out
    assert fresh_id_wait(str(uuid.uuid4()), now) == 0
    assert fresh_id_wait(str(uuid.uuid5(uuid.NAMESPACE_URL, "k")), now) == 0
    assert fresh_id_wait("not-an-id", now) == 0
