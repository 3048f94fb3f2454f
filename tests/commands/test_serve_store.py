"""``orderdeck serve --store``: the state goes where the URL says, in every process.

A real ``serve --processes 2`` (the API here, the services in a child) on the session broker,
with its store named by ORDERDECK_STORE outside the data dir: the order is placed, confirmed
and read back from that store, the child found it without a ``--store`` on its command line,
and the data dir's default SQLite file is never created.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from orderdeck.events import TopicNames
from orderdeck.store import Store, StoreURL, open_store, parse_store_url
from tests.api.conftest import wait_for
from tests.api.serve_process import ServeProcess

pytestmark = pytest.mark.timeout(240)


async def test_serve_and_its_children_use_the_named_store(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_names: TopicNames,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = StoreURL.sqlite(tmp_path / "state" / "elsewhere.db")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("ORDERDECK_STORE", str(elsewhere))
    serve = ServeProcess(
        data_dir, bootstrap=kafka_bootstrap, prefix=topic_names.prefix, processes=2
    )
    try:
        await asyncio.to_thread(serve.wait_serving, 90, 2)
        assert f"store {elsewhere}" in serve.log()
        async with httpx.AsyncClient(base_url=serve.url) as client:
            created = await client.post(
                "/api/v1/orders",
                json={"customerId": "c-store", "productId": "sku-mouse", "quantity": 1},
            )
            assert created.status_code == 201
            location = created.headers["location"]

            async def confirmed() -> bool:
                return bool((await client.get(location)).json()["status"] == "confirmed")

            await wait_for(confirmed, within=30, what="the order to be confirmed")
        order_id = location.rsplit("/", 1)[-1]
        assert elsewhere.path is not None
        store = Store(elsewhere.path)
        try:
            order = store.get_order(order_id)
            assert order is not None
            assert order.status == "confirmed"
            # The child ran payment, inventory and notification: their hops are in this store.
            assert {hop.service for hop in order.journey} >= {"payment", "inventory"}
        finally:
            store.close()
        serve.signal(signal.SIGTERM)
        assert await asyncio.to_thread(serve.wait, 15) == 0, serve.log()
    finally:
        serve.close()
    assert not (data_dir / "orderdeck.db").exists()


async def test_serve_on_postgres_creates_no_sqlite_file_and_never_prints_the_password(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_names: TopicNames,
    postgres_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = parse_store_url(postgres_db_url)
    assert url.password
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("ORDERDECK_STORE", postgres_db_url)
    serve = ServeProcess(
        data_dir, bootstrap=kafka_bootstrap, prefix=topic_names.prefix, processes=2
    )
    try:
        await asyncio.to_thread(serve.wait_serving, 90, 2)
        assert f"store {url.redacted()}" in serve.log()
        async with httpx.AsyncClient(base_url=serve.url) as client:
            created = await client.post(
                "/api/v1/orders",
                json={"customerId": "c-pg", "productId": "sku-mouse", "quantity": 1},
            )
            assert created.status_code == 201
            location = created.headers["location"]

            async def confirmed() -> bool:
                return bool((await client.get(location)).json()["status"] == "confirmed")

            await wait_for(confirmed, within=30, what="the order to be confirmed")
        order_id = location.rsplit("/", 1)[-1]
        store = open_store(url)
        try:
            order = store.get_order(order_id)
            assert order is not None
            assert order.status == "confirmed"
            assert {hop.service for hop in order.journey} >= {"payment", "inventory"}
        finally:
            store.close()
        serve.signal(signal.SIGTERM)
        assert await asyncio.to_thread(serve.wait, 15) == 0, serve.log()
    finally:
        serve.close()
    assert url.password not in serve.log()
    assert not [p for p in data_dir.rglob("*") if p.name.endswith((".db", ".db-wal", ".db-shm"))]
    assert not list(data_dir.rglob("*writer-lock*"))
