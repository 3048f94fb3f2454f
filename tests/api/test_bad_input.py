"""The order API's bad-input table: every case is a 4xx naming the field and the reason."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from orderdeck.api_models import MAX_BODY_BYTES
from orderdeck.store import Store

ORDERS = "/api/v1/orders"
GOOD = {"customerId": "c-1", "productId": "sku-mouse", "quantity": 1}
JSON = {"content-type": "application/json"}


def body(**changes: Any) -> bytes:
    data = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


def multi(items: Any, **extra: Any) -> bytes:
    return json.dumps({"customerId": "c-1", "items": items, **extra}).encode()


# (case id, content, headers, status, [(field, words expected in the reason)])
CASES: list[tuple[str, bytes, dict[str, str], int, list[tuple[str, str]]]] = [
    ("text-plain", body(), {"content-type": "text/plain"}, 415, []),
    ("no-content-type", body(), {}, 415, []),
    ("form", b"customerId=c", {"content-type": "application/x-www-form-urlencoded"}, 415, []),
    ("too-large", b'{"customerId":"' + b"x" * MAX_BODY_BYTES + b'"}', JSON, 413, []),
    ("empty", b"", JSON, 400, []),
    ("not-json", b'{"customerId": ', JSON, 400, []),
    ("not-utf8", b'{"customerId":"\xff\xfe"}', JSON, 400, []),
    ("deep-nesting", b"[" * 5000 + b"]" * 5000, JSON, 400, []),
    ("array", b"[1, 2]", JSON, 422, [("body", "object")]),
    ("string", b'"order"', JSON, 422, [("body", "object")]),
    ("null", b"null", JSON, 422, [("body", "object")]),
    ("missing-customer", body(customerId=...), JSON, 422, [("customerId", "required")]),
    (
        "missing-product-and-quantity",
        body(productId=..., quantity=...),
        JSON,
        422,
        [("productId", "required"), ("quantity", "required")],
    ),
    ("extra-field", body(price=1), JSON, 422, [("price", "unknown field")]),
    ("quantity-string", body(quantity="2"), JSON, 422, [("quantity", "integer")]),
    ("quantity-float", body(quantity=2.5), JSON, 422, [("quantity", "integer")]),
    ("quantity-float-whole", body(quantity=2.0), JSON, 422, [("quantity", "integer")]),
    ("quantity-bool", body(quantity=True), JSON, 422, [("quantity", "integer")]),
    ("quantity-null", body(quantity=None), JSON, 422, [("quantity", "integer")]),
    (
        "quantity-nan",
        b'{"customerId":"c","productId":"sku-mouse","quantity":NaN}',
        JSON,
        422,
        [("quantity", "integer")],
    ),
    ("quantity-zero", body(quantity=0), JSON, 422, [("quantity", "at least 1")]),
    ("quantity-negative", body(quantity=-3), JSON, 422, [("quantity", "at least 1")]),
    ("quantity-too-big", body(quantity=1001), JSON, 422, [("quantity", "at most 1000")]),
    ("quantity-huge", body(quantity=10**30), JSON, 422, [("quantity", "at most 1000")]),
    ("customer-empty", body(customerId=""), JSON, 422, [("customerId", "empty")]),
    ("customer-blank", body(customerId="   "), JSON, 422, [("customerId", "empty")]),
    ("customer-number", body(customerId=42), JSON, 422, [("customerId", "string")]),
    ("customer-too-long", body(customerId="c" * 129), JSON, 422, [("customerId", "at most")]),
    ("unknown-product", body(productId="sku-nope"), JSON, 422, [("productId", "unknown product")]),
    ("items-empty", multi([]), JSON, 422, [("items", "empty")]),
    ("items-not-list", multi({"productId": "sku-mouse"}), JSON, 422, [("items", "list")]),
    (
        "item-missing-quantity",
        multi([{"productId": "sku-mouse"}]),
        JSON,
        422,
        [("items.0.quantity", "required")],
    ),
    (
        "item-extra-field",
        multi([{"productId": "sku-mouse", "quantity": 1, "colour": "red"}]),
        JSON,
        422,
        [("items.0.colour", "unknown field")],
    ),
    (
        "item-unknown-product",
        multi([{"productId": "sku-mouse", "quantity": 1}, {"productId": "sku-x", "quantity": 1}]),
        JSON,
        422,
        [("items.1.productId", "unknown product")],
    ),
    (
        "item-bad-quantity",
        multi([{"productId": "sku-mouse", "quantity": 0}]),
        JSON,
        422,
        [("items.0.quantity", "at least 1")],
    ),
    (
        "items-and-product",
        multi([{"productId": "sku-mouse", "quantity": 1}], productId="sku-mouse"),
        JSON,
        422,
        [("productId", "unknown field")],
    ),
    (
        "items-duplicate-product",
        multi(
            [{"productId": "sku-mouse", "quantity": 1}, {"productId": "sku-mouse", "quantity": 2}]
        ),
        JSON,
        422,
        [("items.1.productId", "duplicate")],
    ),
    (
        "items-too-many",
        multi([{"productId": f"sku-{i}", "quantity": 1} for i in range(51)]),
        JSON,
        422,
        [("items", "at most 50")],
    ),
    (
        "idempotency-key-too-long",
        body(),
        {**JSON, "idempotency-key": "k" * 300},
        422,
        [("Idempotency-Key", "characters")],
    ),
]


def assert_error(response: httpx.Response, status: int, fields: list[tuple[str, str]]) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == status
    assert error["message"]
    got = {f["field"]: f["reason"] for f in error["fields"]}
    for field, words in fields:
        assert field in got, f"{field} missing from {got}"
        assert words in got[field], f"{field}: {got[field]!r} lacks {words!r}"


@pytest.mark.parametrize(
    ("content", "headers", "status", "fields"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
async def test_bad_order_is_refused_with_field_and_reason(
    client: httpx.AsyncClient,
    store: Store,
    content: bytes,
    headers: dict[str, str],
    status: int,
    fields: list[tuple[str, str]],
) -> None:
    response = await client.post(ORDERS, content=content, headers=headers)
    assert_error(response, status, fields)
    assert store.status_counts() == {}, "a refused request must not create an order"


async def test_streamed_body_over_the_limit_is_413_without_content_length(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"customerId":"'
        for _ in range(10):
            yield b"x" * 8192
        yield b'"}'

    response = await client.post(ORDERS, content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, [])


async def test_declared_length_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        ORDERS, content=body(), headers={**JSON, "content-length": str(MAX_BODY_BYTES + 1)}
    )
    assert_error(response, 413, [])


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("DELETE", ORDERS, 405),
        ("PUT", f"{ORDERS}/abc", 405),
        ("POST", "/api/v1/products", 405),
        ("POST", "/health", 405),
        ("GET", "/api/v1/nothing", 404),
        ("GET", f"{ORDERS}/no-such-order", 404),
    ],
)
async def test_wrong_method_or_path_is_a_json_error(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)
    assert_error(response, status, [])
    if status == 405:
        assert "allow" in response.headers


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=100000", "limit"),
        ("status=shipped", "status"),
        ("cursor=not-a-cursor", "cursor"),
    ],
)
async def test_bad_listing_query_is_422(client: httpx.AsyncClient, query: str, field: str) -> None:
    response = await client.get(f"{ORDERS}?{query}")
    assert_error(response, 422, [(field, "")])
