"""The order API against the real broker: 201 shape, reads, idempotency, the journey."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest

from orderdeck.api import create_app
from orderdeck.events import TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.producer import EventProducer
from orderdeck.order_desk import RECORD_DELAY_S, OrderDesk
from orderdeck.orders import build_order_placed, parse_order_body
from orderdeck.services.supervisor import Supervisor
from orderdeck.store import Store, StoreBackend
from tests.api.conftest import read_topic, wait_for

ORDERS = "/api/v1/orders"
ORIGINAL = {"customerId": "cust-42", "productId": "sku-keyboard", "quantity": 2}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def post(client: httpx.AsyncClient, body: Any, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await client.post(ORDERS, json=body, headers=headers)


@pytest.mark.usefixtures("store_url")  # on every store engine
async def test_original_body_answers_201_in_the_original_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, ORIGINAL)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"message", "event", "status"}
    assert body["message"] == "Order event sent"
    assert body["status"] == "placed"
    event = body["event"]
    assert set(event) == {"id", "customerId", "productId", "quantity", "status", "createdAt"}
    assert event["customerId"] == "cust-42"
    assert event["productId"] == "sku-keyboard"
    assert event["quantity"] == 2
    assert ISO_UTC.match(event["createdAt"])
    assert response.headers["location"] == f"{ORDERS}/{event['id']}"

    # Readable at once (recorded after the ack), with the OrderPlaced hop of the journey.
    order = (await client.get(response.headers["location"])).json()
    assert order["id"] == event["id"]
    assert order["status"] == "placed"
    assert order["items"] == [{"productId": "sku-keyboard", "quantity": 2, "unitPriceCents": 8999}]
    assert order["amountCents"] == 2 * 8999
    [hop] = order["journey"]
    assert hop["type"] == "OrderPlaced"
    assert hop["topic"].endswith("order-events")
    assert hop["partition"] in (0, 1, 2)
    assert hop["offset"] >= 0
    assert hop["timestamp"] > 0


@pytest.mark.usefixtures("store_url")  # on every store engine
async def test_multi_item_body_lists_items_in_the_answer(client: httpx.AsyncClient) -> None:
    items = [{"productId": "sku-mouse", "quantity": 1}, {"productId": "sku-cable", "quantity": 3}]
    response = await post(client, {"customerId": "cust-7", "items": items})
    assert response.status_code == 201, response.text
    event = response.json()["event"]
    assert event["items"] == items
    assert (event["productId"], event["quantity"]) == ("sku-mouse", 1)
    order = (await client.get(response.headers["location"])).json()
    assert order["amountCents"] == 2999 + 3 * 999


@pytest.mark.usefixtures("store_url")  # on every store engine
async def test_same_idempotency_key_and_body_gives_the_same_order_and_one_event(
    client: httpx.AsyncClient, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    first = await post(client, ORIGINAL, key="retry-me")
    again = await asyncio.gather(*(post(client, ORIGINAL, key="retry-me") for _ in range(5)))
    assert first.status_code == 201
    for response in again:
        assert response.status_code == 201
        assert response.json() == first.json()
        assert response.headers["location"] == first.headers["location"]
        assert response.headers["idempotent-replayed"] == "true"
    order_id = first.json()["event"]["id"]
    records = await read_topic(kafka_connection, topic_names.orders)
    assert [r.order_id for r in records] == [order_id]


@pytest.mark.usefixtures("store_url")  # on every store engine
async def test_concurrent_first_requests_with_one_key_produce_one_event(
    client: httpx.AsyncClient, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    responses = await asyncio.gather(*(post(client, ORIGINAL, key="race") for _ in range(8)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["event"]["id"] for r in responses}) == 1
    assert len(await read_topic(kafka_connection, topic_names.orders)) == 1


@pytest.mark.usefixtures("store_url")  # on every store engine
async def test_same_idempotency_key_with_another_body_is_409(
    client: httpx.AsyncClient, store: StoreBackend
) -> None:
    assert (await post(client, ORIGINAL, key="k-409")).status_code == 201
    response = await post(client, {**ORIGINAL, "quantity": 3}, key="k-409")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["fields"] == [{"field": "Idempotency-Key", "reason": "reused"}]
    assert sum(store.status_counts().values()) == 1


async def test_listing_filters_by_status_and_pages_with_a_cursor(
    client: httpx.AsyncClient,
) -> None:
    ids = [(await post(client, ORIGINAL)).json()["event"]["id"] for _ in range(5)]

    # No order service runs here, so the API itself records the orders RECORD_DELAY_S after
    # their 201 (until then each is readable by id, see the next test); listings follow.
    async def listed() -> bool:
        page = (await client.get(f"{ORDERS}?status=placed&limit=10")).json()
        return len(page["orders"]) == 5

    await wait_for(listed, within=RECORD_DELAY_S + 5, what="the API to record its 5 orders")
    seen: list[str] = []
    url = f"{ORDERS}?status=placed&limit=2"
    while url:
        page = (await client.get(url)).json()
        assert len(page["orders"]) <= 2
        seen += [o["id"] for o in page["orders"]]
        url = (
            f"{ORDERS}?status=placed&limit=2&cursor={page['nextCursor']}"
            if page["nextCursor"]
            else ""
        )
    assert seen == list(reversed(ids))
    assert (await client.get(f"{ORDERS}?status=confirmed")).json()["orders"] == []


async def test_an_accepted_order_is_readable_at_once_and_recorded_by_the_api_later(
    client: httpx.AsyncClient, store: Store
) -> None:
    """No order service runs: the API answers GETs from memory, then records the order."""
    began = time.monotonic()
    created = await post(client, ORIGINAL)
    order_id = created.json()["event"]["id"]
    assert store.get_order(order_id) is None  # not written on the way to the 201
    view = (await client.get(created.headers["location"])).json()
    assert (view["id"], view["status"], view["amountCents"]) == (order_id, "placed", 2 * 8999)
    assert [h["type"] for h in view["journey"]] == ["OrderPlaced"]

    await wait_for(
        lambda: store.get_order(order_id) is not None,
        within=RECORD_DELAY_S + 5,
        what="the API to record the order the order service never took",
    )
    assert time.monotonic() - began >= RECORD_DELAY_S * 0.9
    recorded = store.get_order(order_id)
    assert recorded is not None
    assert recorded.status == "placed"
    assert [(h.type, h.offset) for h in recorded.journey] == [
        ("OrderPlaced", view["journey"][0]["offset"])
    ]
    assert (await client.get(created.headers["location"])).json()["journey"] == view["journey"]


async def test_flush_records_accepted_orders_at_once(
    client: httpx.AsyncClient, store: Store, desk: OrderDesk
) -> None:
    ids = [(await post(client, ORIGINAL)).json()["event"]["id"] for _ in range(3)]
    assert store.existing_orders(ids) == set()
    await desk.flush()
    assert store.existing_orders(ids) == set(ids)


async def test_products_show_the_catalog_with_stock(client: httpx.AsyncClient) -> None:
    products = (await client.get("/api/v1/products")).json()["products"]
    assert len(products) >= 5
    mouse = next(p for p in products if p["id"] == "sku-mouse")
    assert mouse["priceCents"] == 2999
    assert mouse["stock"] > 0


async def test_openapi_is_generated_from_the_request_models(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    single = schemas["SingleItemOrder"]
    assert single["additionalProperties"] is False
    assert set(single["required"]) == {"customerId", "productId", "quantity"}
    assert single["properties"]["quantity"]["minimum"] == 1
    assert single["properties"]["quantity"]["maximum"] == 1000
    assert schemas["MultiItemOrder"]["properties"]["items"]["minItems"] == 1
    post_op = doc["paths"]["/api/v1/orders"]["post"]
    assert {"201", "400", "409", "413", "415", "422", "503"} <= set(post_op["responses"])
    assert "OrderView" in schemas


async def test_health_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.usefixtures("store_url")  # on every store engine
async def test_order_is_confirmed_with_its_whole_journey(
    client: httpx.AsyncClient, services: Supervisor
) -> None:
    location = (await post(client, ORIGINAL)).headers["location"]

    async def confirmed() -> bool:
        return bool((await client.get(location)).json()["status"] == "confirmed")

    await wait_for(confirmed, what="the order to be confirmed")
    order = (await client.get(location)).json()
    assert [h["type"] for h in order["journey"]] == [
        "OrderPlaced",
        "PaymentRequested",
        "StockReservationRequested",
        "OrderConfirmed",
    ]
    for hop in order["journey"]:
        assert hop["partition"] == order["journey"][0]["partition"]  # keyed by order id
        assert hop["offset"] >= 0
        assert hop["timestamp"] > 0
        assert hop["service"] in ("order", "payment", "inventory", "notification")
    assert order["history"][0]["status"] == "placed"
    assert order["history"][-1]["status"] == "confirmed"


@pytest.mark.usefixtures("store_url")  # on every store engine
async def test_crash_between_ack_and_saving_the_key_cannot_create_a_second_order(
    client: httpx.AsyncClient,
    producer: EventProducer,
    topic_names: TopicNames,
    store: StoreBackend,
    services: Supervisor,
) -> None:
    # A first attempt got its ack, then the process died before recording anything.
    lost = build_order_placed(parse_order_body(ORIGINAL), idempotency_key="crash-key")
    await producer.send_event(lost, topic_names.orders)
    # The client retries with the same key.
    retry = await post(client, ORIGINAL, key="crash-key")
    assert retry.status_code == 201
    assert retry.json()["event"]["id"] == lost.orderId

    def final() -> bool:
        return store.status_counts().get("confirmed", 0) == 1

    await wait_for(final, what="the order to be confirmed")
    await asyncio.sleep(0.5)  # give a (wrong) second order every chance to show up
    assert store.status_counts() == {"confirmed": 1}
    assert store.order_payments(lost.orderId) == {"charge": 2 * 8999}


async def test_the_starlette_route_answers_posts_like_the_fast_path(desk: OrderDesk) -> None:
    """POSTs skip Starlette's layers (api._OrdersFastPath); its route answers the same way."""
    app = create_app(desk)
    inner = app.app  # type: ignore[attr-defined]
    bad = {"customerId": "c", "productId": "sku-mouse", "quantity": 0}
    answers = []
    for target in (app, inner):
        transport = httpx.ASGITransport(app=target)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            created = await post(c, ORIGINAL)
            refused = await post(c, bad)
            wrong_type = await c.post(ORDERS, content=b"{}", headers={"content-type": "text/plain"})
        assert created.status_code == 201, created.text
        assert created.headers["location"] == f"{ORDERS}/{created.json()['event']['id']}"
        assert created.headers["content-type"] == "application/json"
        answers.append((refused.status_code, refused.json(), wrong_type.status_code))
    assert answers[0] == answers[1]
    assert answers[0][0] == 422
    assert answers[0][2] == 415
