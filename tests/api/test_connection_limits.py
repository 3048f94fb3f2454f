"""Connections that never finish a request head, or never send one, are closed within seconds.

Real sockets against the server ``http_server.build_server`` makes (the runtime's), with
its default limits; every wait has a deadline. Meanwhile ordinary POSTs keep answering.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from orderdeck.api import create_app
from orderdeck.api_guard import AccessPolicy
from orderdeck.http_server import ConnectionLimits
from orderdeck.order_desk import OrderDesk
from tests.api.live_server import live_server

pytestmark = pytest.mark.timeout(120)

ORDERS = "/api/v1/orders"
ORDER = {"customerId": "cust-limits", "productId": "sku-mouse", "quantity": 1}
LIMITS = ConnectionLimits()
#: Time allowed beyond a limit for the close to be noticed on a loaded 2-core machine.
SLACK_S = 3.0
#: An ordinary POST answers well within this, attack or not.
POST_BOUND_S = 2.0
SLOW_HEAD = (
    b"POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 64\r\n\r\n"
)


@pytest.fixture
async def port(desk: OrderDesk) -> AsyncIterator[int]:
    app = create_app(desk, access=AccessPolicy.for_server("127.0.0.1"))
    async with live_server(app, limits=LIMITS) as bound:
        yield bound


async def _until_closed(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sent until it closed the connection; fails at the deadline."""
    received = b""
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(4096):
                received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for more than {within} s")
    return received


async def _slowloris(port: int, within: float) -> tuple[float, bytes]:
    """Send a request head at 1 byte/s; how long until the server hung up, and its answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = time.monotonic()

    async def dribble() -> None:
        for offset in range(len(SLOW_HEAD)):
            writer.write(SLOW_HEAD[offset : offset + 1])
            await writer.drain()
            await asyncio.sleep(1.0)

    sending = asyncio.create_task(dribble())
    try:
        answer = await _until_closed(reader, within)
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.close()
    return time.monotonic() - opened, answer


async def _post_latencies(port: int, stop: asyncio.Event) -> list[float]:
    """POST an order every 0.2 s until ``stop``; each one's latency."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        while not stop.is_set():
            started = time.monotonic()
            response = await client.post(ORDERS, json=ORDER)
            latencies.append(time.monotonic() - started)
            assert response.status_code == 201, response.text
            await asyncio.sleep(0.2)
    return latencies


async def test_50_slowloris_connections_are_closed_while_posts_keep_answering(port: int) -> None:
    stop = asyncio.Event()
    posting = asyncio.create_task(_post_latencies(port, stop))
    try:
        within = LIMITS.head_timeout_s + SLACK_S
        outcomes = await asyncio.gather(*(_slowloris(port, within) for _ in range(50)))
    finally:
        stop.set()
    latencies = await posting
    assert all(answer.startswith(b"HTTP/1.1 408 ") for _, answer in outcomes)
    assert all(LIMITS.head_timeout_s - 0.5 <= lasted <= within for lasted, _ in outcomes)
    assert len(latencies) >= 10
    assert max(latencies) < POST_BOUND_S, latencies


async def test_500_idle_connections_are_closed_while_posts_keep_answering(port: int) -> None:
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(500)]
    stop = asyncio.Event()
    posting = asyncio.create_task(_post_latencies(port, stop))
    try:
        within = LIMITS.head_timeout_s + SLACK_S
        answers = await asyncio.gather(*(_until_closed(r, within) for r, _ in connections))
    finally:
        stop.set()
        for _, writer in connections:
            writer.close()
    latencies = await posting
    assert answers == [b""] * 500  # nothing was asked, so nothing is answered
    assert max(latencies) < POST_BOUND_S, latencies


async def test_an_idle_keep_alive_connection_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/v1/products HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    opened = time.monotonic()
    answer = await _until_closed(reader, LIMITS.keep_alive_s + SLACK_S)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert time.monotonic() - opened >= LIMITS.keep_alive_s - 0.5


async def test_a_body_sent_at_1_byte_per_second_is_cut_off(desk: OrderDesk) -> None:
    limits = ConnectionLimits(body_timeout_s=2.0)
    app = create_app(desk, access=AccessPolicy.for_server("127.0.0.1"))
    async with live_server(app, limits=limits) as bound:
        reader, writer = await asyncio.open_connection("127.0.0.1", bound)
        writer.write(SLOW_HEAD)  # the whole head at once, then the body byte by byte
        started = time.monotonic()

        async def dribble() -> None:
            for _ in range(64):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(1.0)

        sending = asyncio.create_task(dribble())
        try:
            await _until_closed(reader, limits.body_timeout_s + SLACK_S)
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            writer.close()
    assert time.monotonic() - started >= limits.body_timeout_s - 0.5


async def test_a_huge_request_head_is_refused(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    filler = b"x" * (LIMITS.max_head_bytes + 1)
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: " + filler + b"\r\n\r\n")
    answer = await _until_closed(reader, SLACK_S)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_connections_beyond_the_cap_are_closed_at_once(desk: OrderDesk) -> None:
    limits = ConnectionLimits(max_connections=10)
    app = create_app(desk, access=AccessPolicy.for_server("127.0.0.1"))
    async with live_server(app, limits=limits) as bound:
        connections = [await asyncio.open_connection("127.0.0.1", bound) for _ in range(15)]
        try:
            started = time.monotonic()
            closed = 0
            for reader, _ in connections[10:]:
                assert await _until_closed(reader, SLACK_S) == b""
                closed += 1
            assert closed == 5
            assert time.monotonic() - started < limits.head_timeout_s
            assert not any(reader.at_eof() for reader, _ in connections[:10])
        finally:
            for _, writer in connections:
                writer.close()
