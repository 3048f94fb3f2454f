"""What fuzzing the order API found, each case over real TCP against the real server.

Every case is a 4xx naming the offending field (never a 500), and nothing malformed is
stored; the last case is about the connection, not a field: a valid order followed by
garbage on the same connection still gets its 201.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from orderdeck.api import create_app
from orderdeck.order_desk import OrderDesk
from orderdeck.orders import PRINTABLE_ID_PATTERN
from orderdeck.store import Store
from tests.api.test_bad_input import assert_error

ORDERS = "/api/v1/orders"
GOOD = {"customerId": "c-1", "productId": "sku-mouse", "quantity": 1}
JSON = {"content-type": "application/json"}


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as c:
        yield c


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("limit=²", "limit", id="superscript-two"),
        pytest.param("limit=①", "limit", id="circled-one"),
        pytest.param("limit=٣", "limit", id="arabic-indic-three"),
        pytest.param("limit=" + "9" * 4301, "limit", id="4301-digits"),
        pytest.param("limit=" + "1" * 5000, "limit", id="5000-digits"),
        pytest.param(f"cursor={cursor_of('o:99999999999999999999999')}", "cursor", id="overflow"),
        pytest.param(f"cursor={cursor_of('o:٣')}", "cursor", id="cursor-non-ascii-digit"),
        pytest.param(f"cursor={cursor_of('o:-5')}", "cursor", id="cursor-negative"),
        pytest.param("status=", "status", id="empty-status"),
        pytest.param("cursor=", "cursor", id="empty-cursor"),
    ],
)
async def test_bad_listing_query_is_a_4xx_naming_the_parameter(
    http: httpx.AsyncClient, query: str, field: str
) -> None:
    response = await http.get(f"{ORDERS}?{query}")
    assert_error(response, 422, [(field, "")])


async def test_the_largest_cursor_sqlite_holds_is_still_a_cursor(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{ORDERS}?cursor={cursor_of(f'o:{2**63 - 1}')}")
    assert response.status_code == 200, response.text
    assert response.json()["orders"] == []


@pytest.mark.parametrize(
    ("content", "field"),
    [
        pytest.param(
            b'{"customerId":"c","productId":"sku-mouse","quantity":1,"quantity":900}',
            "quantity",
            id="top-level",
        ),
        pytest.param(
            b'{"customerId":"c","customerId":"d","productId":"sku-mouse","quantity":1}',
            "customerId",
            id="customer",
        ),
        pytest.param(
            b'{"customerId":"c","items":[{"productId":"sku-mouse","quantity":1},'
            b'{"productId":"sku-cable","productId":"sku-mouse","quantity":1}]}',
            "items.1.productId",
            id="inside-items",
        ),
    ],
)
async def test_a_repeated_json_key_is_400_naming_it(
    http: httpx.AsyncClient, store: Store, content: bytes, field: str
) -> None:
    response = await http.post(ORDERS, content=content, headers=JSON)
    assert_error(response, 400, [(field, "more than once")])
    assert store.status_counts() == {}


@pytest.mark.parametrize("where", ["customerId", "productId"])
@pytest.mark.parametrize(
    "char", ["\x00", "\x07", "\x1b", "\x1f", "\x7f", "\u202a", "\u202e", "\u2066", "\u2069"]
)
async def test_control_and_bidi_characters_in_ids_are_422(
    http: httpx.AsyncClient, store: Store, where: str, char: str
) -> None:
    value = {"customerId": "cust", "productId": "sku-mouse"}[where]
    body = {**GOOD, where: value[:2] + char + value[2:]}
    response = await http.post(ORDERS, content=json.dumps(body).encode(), headers=JSON)
    assert_error(response, 422, [(where, "control")])
    multi = {
        "customerId": body["customerId"],
        "items": [{"productId": body["productId"], "quantity": 1}],
    }
    response = await http.post(ORDERS, json=multi)
    expected = "customerId" if where == "customerId" else "items.0.productId"
    assert_error(response, 422, [(expected, "control")])
    assert store.status_counts() == {}


async def test_ordinary_unicode_ids_are_still_accepted(http: httpx.AsyncClient) -> None:
    response = await http.post(ORDERS, json={**GOOD, "customerId": "Zoë 山田 ✓"})
    assert response.status_code == 201, response.text
    assert response.json()["event"]["customerId"] == "Zoë 山田 ✓"


async def test_two_idempotency_keys_are_400(
    http: httpx.AsyncClient, store: Store, desk: OrderDesk
) -> None:
    headers = [
        ("content-type", "application/json"),
        ("idempotency-key", "a"),
        ("idempotency-key", "b"),
    ]
    response = await http.post(ORDERS, content=json.dumps(GOOD).encode(), headers=headers)
    assert_error(response, 400, [("Idempotency-Key", "once")])
    # Starlette's route (reached by the fast path's fallback) answers the same.
    inner = httpx.ASGITransport(app=create_app(desk).app)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=inner, base_url="http://t") as c:
        again = await c.post(ORDERS, content=json.dumps(GOOD).encode(), headers=headers)
    assert_error(again, 400, [("Idempotency-Key", "once")])
    await desk.flush()
    assert store.status_counts() == {}


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def test_a_valid_post_followed_by_garbage_still_gets_its_201(
    api_url: str, http: httpx.AsyncClient
) -> None:
    host, port = api_url.removeprefix("http://").split(":")
    body = json.dumps(GOOD).encode()
    request = (
        b"POST /api/v1/orders HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    garbage = b"\x16\x03\x01 NOT HTTP AT ALL\r\n\r\n"
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request + garbage)  # one write: the server reads both at once
        await writer.drain()
        async with asyncio.timeout(10):
            status, headers, answer = await _read_response(reader)
            assert status == 201, answer
            order_id = json.loads(answer)["event"]["id"]
            assert headers["location"] == f"{ORDERS}/{order_id}"
            # Then the garbage gets its 400 and the connection closes.
            second, _, _ = await _read_response(reader)
            assert second == 400
            assert await reader.read() == b""
    finally:
        writer.close()
        await writer.wait_closed()
    assert (await http.get(f"{ORDERS}/{order_id}")).status_code == 200


async def test_two_pipelined_posts_then_garbage_get_both_answers(api_url: str) -> None:
    host, port = api_url.removeprefix("http://").split(":")
    body = json.dumps(GOOD).encode()
    request = (
        b"POST /api/v1/orders HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request + request + b"GARBAGE\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(10):
            answers = [(await _read_response(reader))[0] for _ in range(3)]
    finally:
        writer.close()
        await writer.wait_closed()
    assert answers == [201, 201, 400]


async def test_the_openapi_document_states_the_new_constraints(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    pattern = schemas["SingleItemOrder"]["properties"]["customerId"]["pattern"]
    assert pattern == PRINTABLE_ID_PATTERN
    assert schemas["OrderItem"]["properties"]["productId"]["pattern"] == PRINTABLE_ID_PATTERN
    listing = {p["name"]: p["schema"] for p in doc["paths"][ORDERS]["get"]["parameters"]}
    assert listing["cursor"]["minLength"] == 1
    assert "" not in listing["status"]["enum"]
    assert listing["limit"] == {"type": "integer", "minimum": 1, "maximum": 500}
    post = doc["paths"][ORDERS]["post"]
    assert "twice" in post["responses"]["400"]["description"]
