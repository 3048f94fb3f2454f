"""``GET /metrics`` of the app itself: route labels, the store's figures, the children's relay."""

from __future__ import annotations

import asyncio
import os

import httpx

from orderdeck.metrics import UNMATCHED_ROUTE, ChildEventTotals, relay_service_events
from orderdeck.services.supervisor import Supervisor
from orderdeck.store import Store
from tests.api.conftest import wait_for
from tests.metrics_scrape import parse, series, value

ORDER = {"customerId": "c-metrics", "productId": "sku-mouse", "quantity": 1}


async def test_request_durations_are_labelled_by_route_template(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/api/v1/orders", json=ORDER)
    assert created.status_code == 201
    assert (await client.get(created.headers["location"])).status_code == 200
    assert (await client.get("/api/v1/orders/no-such-order")).status_code == 404
    assert (await client.get("/no/such/path")).status_code == 404
    assert (await client.post("/api/v1/orders", content=b"{")).status_code == 415

    samples = parse((await client.get("/metrics")).text)
    count = "orderdeck_http_request_duration_seconds_count"
    assert value(samples, count, route="/api/v1/orders", code="201") == 1
    assert value(samples, count, route="/api/v1/orders", code="415") == 1
    assert value(samples, count, route="/api/v1/orders/{order_id}", code="200") == 1
    assert value(samples, count, route="/api/v1/orders/{order_id}", code="404") == 1
    assert value(samples, count, route=UNMATCHED_ROUTE, code="404") == 1
    routes = {s["route"] for s in series(samples, count)}
    assert "/no/such/path" not in routes
    assert "no-such-order" not in str(routes)


async def test_latency_counts_each_final_order_once(
    client: httpx.AsyncClient, store: Store, services: Supervisor
) -> None:
    for i in range(5):
        body = {**ORDER, "customerId": f"declined-{i}"} if i == 0 else ORDER
        assert (await client.post("/api/v1/orders", json=body)).status_code == 201

    def all_final() -> bool:
        counts = store.status_counts()
        return counts.get("confirmed", 0) + counts.get("payment_declined", 0) == 5

    await wait_for(all_final, within=30, what="five final orders")
    for _ in range(3):  # scraping again observes nothing twice
        samples = parse((await client.get("/metrics")).text)
    assert value(samples, "orderdeck_order_latency_seconds_count") == 5
    assert value(samples, "orderdeck_orders_accepted_total") == 5
    assert value(samples, "orderdeck_orders_final_total", status="confirmed") == 4
    assert value(samples, "orderdeck_orders_final_total", status="payment_declined") == 1
    total = value(samples, "orderdeck_order_latency_seconds_sum")
    assert total is not None
    assert 0 < total < 5 * 30
    # Without a runtime there is no Kafka probe to report.
    assert value(samples, "orderdeck_kafka_reachable") is None


async def test_a_childs_last_report_stays_in_the_totals_after_it_exits() -> None:
    totals = ChildEventTotals()
    read_fd, write_fd = os.pipe()
    totals.follow(read_fd)
    counts = {"order": {"processed": 1, "replayed": 0}}

    def source() -> dict[str, dict[str, int]]:
        return counts

    relay = asyncio.create_task(relay_service_events(write_fd, source, interval=0.05))
    await wait_for(lambda: totals.totals() == counts, within=5, what="the first report")
    counts = {"order": {"processed": 7, "replayed": 2}}
    await wait_for(lambda: totals.totals() == counts, within=5, what="a later report")
    counts = {"order": {"processed": 9, "replayed": 2}}
    relay.cancel()  # the child stops: one last report, then its pipe closes
    await asyncio.gather(relay, return_exceptions=True)
    await wait_for(lambda: totals.totals() == counts, within=5, what="the last report")

    # A second child (a restart) adds to what the first one left.
    read_fd, write_fd = os.pipe()
    totals.follow(read_fd)
    os.write(write_fd, b'{"order":{"processed":3}}\n{"order":{"proc')
    await wait_for(
        lambda: totals.totals() == {"order": {"processed": 12, "replayed": 2}},
        within=5,
        what="the restarted child's report",
    )
    os.close(write_fd)
    totals.close()
    assert totals.totals() == {"order": {"processed": 12, "replayed": 2}}


async def test_a_childs_report_carries_its_service_states_until_its_pipe_closes() -> None:
    totals = ChildEventTotals()
    read_fd, write_fd = os.pipe()
    totals.follow(read_fd)
    states = {"order": "running", "payment": "running"}

    def source() -> dict[str, dict[str, int]]:
        return {"order": {"processed": 1}}

    relay = asyncio.create_task(
        relay_service_events(write_fd, source, interval=0.05, states=lambda: states)
    )
    await wait_for(lambda: totals.states(read_fd) == states, within=5, what="the first states")
    states = {"order": "restarting", "payment": "running"}
    await wait_for(lambda: totals.states(read_fd) == states, within=5, what="a crash reported")
    # The states are not counted as a service's events.
    assert totals.totals() == {"order": {"processed": 1}}
    relay.cancel()
    await asyncio.gather(relay, return_exceptions=True)
    await wait_for(lambda: totals.states(read_fd) == {}, within=5, what="the closed pipe")
    assert totals.totals() == {"order": {"processed": 1}}
