"""``GET /metrics`` of a real ``orderdeck serve``: the scrape agrees with the store.

With ``--processes 2`` the services run in a child process, so the service events prove that
the children's counters reach the parent's scrape.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from orderdeck.store import Store
from tests.commands.test_serve import ORDERS, Spawn, order_body, spawn  # noqa: F401
from tests.metrics_scrape import Samples, parse, series, value

pytestmark = pytest.mark.timeout(240)

TOTAL = 60
FINALS = ("cancelled", "confirmed", "payment_declined", "rejected")


def _disagreements(samples: Samples, store: Store) -> list[str]:
    """How the scrape differs from the store (and from what TOTAL orders must have caused)."""
    counts = store.status_counts()
    problems: list[str] = []

    def check(what: str, got: float | None, ok: bool) -> None:
        if not ok:
            problems.append(f"{what}: {got}")

    accepted = value(samples, "orderdeck_orders_accepted_total")
    check("accepted", accepted, accepted == sum(counts.values()) == TOTAL)
    for status in FINALS:
        final = value(samples, "orderdeck_orders_final_total", status=status)
        check(
            f"final {status} (store {counts.get(status, 0)})", final, final == counts.get(status, 0)
        )
    latency = value(samples, "orderdeck_order_latency_seconds_count")
    check("latency count", latency, latency == TOTAL)
    posts = value(
        samples, "orderdeck_http_request_duration_seconds_count", route=ORDERS, code="201"
    )
    check("POST durations", posts, posts == TOTAL)
    cancelled = counts.get("cancelled", 0)
    reached_inventory = counts.get("confirmed", 0) + cancelled
    expected = {
        "order": TOTAL,
        "payment": TOTAL + cancelled,
        "inventory": reached_inventory,
        "notification": TOTAL,
    }
    for service, least in expected.items():
        got = value(samples, "orderdeck_service_events_total", service=service, outcome="processed")
        check(f"{service} processed (>= {least})", got, got is not None and got >= least)
        for outcome in ("dead_lettered", "failed"):
            bad = value(samples, "orderdeck_service_events_total", service=service, outcome=outcome)
            check(f"{service} {outcome}", bad, bad == 0)
    reachable = value(samples, "orderdeck_kafka_reachable")
    check("kafka reachable", reachable, reachable == 1)
    groups = {s["group"] for s in series(samples, "orderdeck_consumer_lag_records")}
    check("lag groups", len(groups), len(groups) == 4)
    dlqs = [labels["topic"] for labels in series(samples, "orderdeck_dead_letters")]
    check("dead-letter topics", dlqs, len(dlqs) == 4)
    for topic in dlqs:
        depth = value(samples, "orderdeck_dead_letters", topic=topic)
        check(f"dead letters in {topic}", depth, depth == 0)
    return problems


@pytest.mark.parametrize("processes", [1, 2])
async def test_a_scrape_agrees_with_the_store(
    spawn: Spawn,  # noqa: F811
    tmp_path: Path,
    processes: int,
) -> None:
    serve = spawn(processes=processes, log_name=f"serve-metrics-{processes}")
    await asyncio.to_thread(serve.wait_serving, 60, processes)
    store = Store(tmp_path / "orderdeck.db")
    try:
        async with httpx.AsyncClient(base_url=serve.url, timeout=10) as client:
            first = await client.get("/metrics")
            assert first.status_code == 200
            assert first.headers["content-type"].startswith("text/plain; version=")
            assert value(parse(first.text), "orderdeck_orders_accepted_total") == 0

            async def post(i: int) -> None:
                r = await client.post(ORDERS, json=order_body(i))
                assert r.status_code == 201, r.text

            await asyncio.gather(*(post(i) for i in range(TOTAL // 2)))
            during = parse((await client.get("/metrics")).text)  # the run is still going
            accepted_during = value(during, "orderdeck_orders_accepted_total")
            assert accepted_during is not None
            assert accepted_during <= TOTAL // 2
            await asyncio.gather(*(post(i) for i in range(TOTAL // 2, TOTAL)))

            problems: list[str] = ["no scrape yet"]
            deadline = asyncio.get_running_loop().time() + 60
            while problems and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.25)
                problems = _disagreements(parse((await client.get("/metrics")).text), store)
            assert not problems, f"{problems}\n{serve.log()}"
            assert store.status_counts()["payment_declined"] == TOTAL // 10
    finally:
        store.close()
