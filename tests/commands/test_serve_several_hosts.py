"""Two ``orderdeck serve`` processes that share only Kafka and PostgreSQL, as on two hosts.

Each has its own data dir (nothing shared on disk); both join the same consumer groups and
write the same database. 500 orders are posted to both APIs while one process is killed with
SIGKILL half-way: every order either API accepted ends final, read alike from the surviving
API, nothing is charged twice, the refunds equal the charges of the cancelled orders, and
stock plus reserved still equals the starting stock.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import psycopg
import pytest

from orderdeck.events import FINAL_STATUSES, TopicNames
from orderdeck.store import open_store, parse_store_url
from tests.api.conftest import wait_for
from tests.api.serve_process import ServeProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ORDERS = 500
STOCK = 150


async def _post_orders(
    urls: list[str], count: int, accepted: dict[str, str], kill_after: int, kill: asyncio.Event
) -> None:
    """Post ``count`` orders round-robin over ``urls``, 16 at a time; keep the accepted ones."""
    limits = asyncio.Semaphore(16)
    done = 0

    async def post(client: httpx.AsyncClient, n: int) -> None:
        nonlocal done
        async with limits:
            try:
                response = await client.post(
                    "/api/v1/orders",
                    json={"customerId": f"c-{n}", "productId": "sku-dock", "quantity": 1},
                    timeout=10,
                )
            except httpx.TransportError:
                return  # the killed process: not accepted, nothing to check
            finally:
                done += 1
                if done == kill_after:
                    kill.set()
            if response.status_code == 201:
                accepted[response.headers["location"].rsplit("/", 1)[-1]] = urls[n % len(urls)]

    clients = [httpx.AsyncClient(base_url=url) for url in urls]
    try:
        await asyncio.gather(*(post(clients[n % len(clients)], n) for n in range(count)))
    finally:
        for client in clients:
            await client.aclose()


async def test_two_serve_processes_share_the_work_and_survive_a_kill(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_names: TopicNames,
    postgres_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = parse_store_url(postgres_db_url)
    seed = open_store(url)
    try:
        seed.set_stock("sku-dock", STOCK)
    finally:
        seed.close()
    monkeypatch.setenv("ORDERDECK_STORE", postgres_db_url)
    dirs = [tmp_path / "host-a", tmp_path / "host-b"]
    for directory in dirs:
        directory.mkdir()
    hosts = [ServeProcess(d, bootstrap=kafka_bootstrap, prefix=topic_names.prefix) for d in dirs]
    victim, survivor = hosts
    try:
        for host in hosts:
            await asyncio.to_thread(host.wait_serving, 90)
        accepted: dict[str, str] = {}
        kill = asyncio.Event()

        async def killer() -> None:
            await kill.wait()
            victim.signal(signal.SIGKILL)

        killing = asyncio.create_task(killer())
        await _post_orders([h.url for h in hosts], ORDERS, accepted, ORDERS // 2, kill)
        await killing
        assert await asyncio.to_thread(victim.wait, 10) == -signal.SIGKILL
        assert len(accepted) >= ORDERS // 2
        assert set(accepted.values()) == {victim.url, survivor.url}  # both APIs took orders

        async with httpx.AsyncClient(base_url=survivor.url) as client:

            async def all_final() -> bool:
                store = open_store(url)
                try:
                    counts = store.status_counts()
                finally:
                    store.close()
                return sum(counts.get(s, 0) for s in FINAL_STATUSES) >= len(accepted)

            await wait_for(all_final, within=120, what="every accepted order to be final")
            # Any API answers for any order, whichever process accepted it.
            for order_id in list(accepted)[:: max(1, len(accepted) // 50)]:
                answer = await client.get(f"/api/v1/orders/{order_id}")
                assert answer.status_code == 200, order_id
                assert answer.json()["status"] in FINAL_STATUSES
    finally:
        for host in hosts:
            host.close()

    with psycopg.connect(postgres_db_url) as conn:
        statuses = dict(
            conn.execute(
                "SELECT id, status FROM orders WHERE id = ANY(%s)", (list(accepted),)
            ).fetchall()
        )
        charged_twice = conn.execute(
            "SELECT order_id FROM payments WHERE kind = 'charge'"
            " GROUP BY order_id HAVING COUNT(*) > 1"
        ).fetchall()
        refunds, cancelled_charges = conn.execute(
            "SELECT"
            " (SELECT COALESCE(SUM(amount_cents), 0) FROM payments WHERE kind = 'refund'),"
            " (SELECT COALESCE(SUM(p.amount_cents), 0) FROM payments p JOIN orders o"
            "   ON o.id = p.order_id WHERE p.kind = 'charge' AND o.status = 'cancelled')"
        ).fetchone() or (None, None)
        stock, reserved = conn.execute(
            "SELECT stock, reserved FROM products WHERE id = 'sku-dock'"
        ).fetchone() or (None, None)
        confirmed = conn.execute("SELECT COUNT(*) FROM orders WHERE status = 'confirmed'")
        (confirmed_count,) = confirmed.fetchone() or (None,)
    assert set(statuses) == set(accepted)
    assert set(statuses.values()) <= set(FINAL_STATUSES)
    assert charged_twice == []
    assert refunds == cancelled_charges
    assert (stock, reserved) == (0, STOCK)  # more orders were accepted than there was stock
    assert confirmed_count == reserved
