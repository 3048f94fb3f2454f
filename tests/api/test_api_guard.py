"""Who the API answers, over real TCP: the bearer token, the Host header, no Host-built URLs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest

from orderdeck.api import create_app
from orderdeck.api_guard import AccessPolicy, ApiAccessError
from orderdeck.events import TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.order_desk import OrderDesk
from tests.api.conftest import read_topic
from tests.api.live_server import live_server

ORDERS = "/api/v1/orders"
ORDER = {"customerId": "cust-guard", "productId": "sku-mouse", "quantity": 1}
TOKEN = "test-token-0123456789abcdef"
GUARDED = [
    ("GET", ORDERS),
    ("POST", ORDERS),  # the fast path, answered before Starlette
    ("GET", f"{ORDERS}/no-such-order"),
    ("GET", "/api/v1/products"),
    ("GET", "/openapi.json"),
    ("POST", "/health"),
    ("GET", "/no-such-route"),
]

Serve = Callable[[AccessPolicy], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def serve(desk: OrderDesk) -> Serve:
    """Serve the API with an access policy on a real socket; yields a client for it."""

    @contextlib.asynccontextmanager
    async def _serve(policy: AccessPolicy) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(desk, access=policy)
        async with (
            live_server(app) as port,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            yield client

    return _serve


def assert_json_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["status"] == status
    assert error["message"]
    assert error["fields"] == []


@pytest.fixture
async def guarded(serve: Serve) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(AccessPolicy.for_server("0.0.0.0", TOKEN)) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), GUARDED)
async def test_without_a_token_every_route_but_health_is_401(
    guarded: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await guarded.request(method, path, json=ORDER if method == "POST" else None)
    assert_json_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_health_answers_without_a_token(guarded: httpx.AsyncClient) -> None:
    assert (await guarded.get("/health")).status_code == 200
    assert (await guarded.head("/health")).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        [("authorization", f"Bearer {TOKEN}x")],
        [("authorization", f"Bearer {TOKEN[:-1]}")],
        [("authorization", f"Basic {TOKEN}")],
        [("authorization", TOKEN)],
        [("authorization", "Bearer")],
        [("authorization", f"Bearer {TOKEN}"), ("authorization", "Bearer other")],
    ],
    ids=["longer", "shorter", "basic", "no-scheme", "empty", "two-headers"],
)
async def test_a_wrong_token_is_401_and_a_refused_post_places_nothing(
    guarded: httpx.AsyncClient,
    kafka_connection: KafkaConnection,
    topic_names: TopicNames,
    authorization: list[tuple[str, str]],
) -> None:
    response = await guarded.post(ORDERS, json=ORDER, headers=authorization)
    assert_json_error(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert TOKEN not in response.text
    assert await read_topic(kafka_connection, topic_names.orders) == []


async def test_the_token_opens_every_route(guarded: httpx.AsyncClient) -> None:
    bearer = {"Authorization": f"bearer {TOKEN}"}  # the scheme is case-insensitive
    created = await guarded.post(ORDERS, json=ORDER, headers=bearer)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location == f"{ORDERS}/{created.json()['event']['id']}"  # relative, no Host in it
    assert (await guarded.get(location, headers=bearer)).status_code == 200
    assert (await guarded.get(ORDERS, headers=bearer)).status_code == 200
    assert (await guarded.get("/api/v1/products", headers=bearer)).status_code == 200
    assert (await guarded.get("/openapi.json", headers=bearer)).status_code == 200


@pytest.mark.parametrize(
    ("allowed", "host", "served"),
    [
        ((), "127.0.0.1:{port}", True),
        ((), "localhost", True),
        ((), "LOCALHOST:{port}", True),
        ((), "[::1]:{port}", True),
        ((), "evil.example", False),
        ((), "evil.example:{port}", False),
        ((), "127.0.0.1.evil.example", False),
        ((), "127.0.0.1:{port}@evil.example", False),
        ((), "::1", False),
        (("api.example.com",), "api.example.com:{port}", True),
        (("api.example.com:443",), "api.example.com:{port}", False),
        (("api.example.com:443",), "api.example.com:443", True),
        (("*",), "anything.example", True),
    ],
)
async def test_only_allowed_hosts_are_served(
    serve: Serve, allowed: tuple[str, ...], host: str, served: bool
) -> None:
    async with serve(AccessPolicy.for_server("127.0.0.1", allowed_hosts=allowed)) as client:
        port = client.base_url.port
        response = await client.get("/api/v1/products", headers={"Host": host.format(port=port)})
    if served:
        assert response.status_code == 200, response.text
    else:
        assert_json_error(response, 400)


async def test_the_bound_address_is_an_allowed_host(serve: Serve) -> None:
    policy = AccessPolicy.for_server("192.0.2.7", TOKEN)
    assert policy.host_allowed("192.0.2.7:3000")
    assert policy.host_allowed("192.0.2.7")
    assert not policy.host_allowed("192.0.2.8:3000")
    assert AccessPolicy.for_server("::", TOKEN).host_allowed("[::1]:3000")
    assert not AccessPolicy.for_server("::", TOKEN).host_allowed("[::]:3000")


async def test_a_request_without_a_host_header_is_400(serve: Serve) -> None:
    async with serve(AccessPolicy.for_server("127.0.0.1")) as client:
        port = client.base_url.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/v1/products HTTP/1.0\r\n\r\n")
        async with asyncio.timeout(10):
            answer = await reader.read()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("path", [f"{ORDERS}/", "/health/", "/api/v1/products/"])
async def test_no_answer_builds_a_url_from_the_host_header(serve: Serve, path: str) -> None:
    # Every Host is let through so that the request reaches the router.
    async with serve(AccessPolicy.for_server("127.0.0.1", allowed_hosts=("*",))) as client:
        headers = {"Host": "evil.example"}
        for method in ("GET", "POST"):
            response = await client.request(method, path, json=ORDER, headers=headers)
            assert response.status_code == 404
            assert "location" not in response.headers
            assert "evil" not in str(response.headers) + response.text


def test_bad_allowed_hosts_and_tokens_are_refused() -> None:
    with pytest.raises(ApiAccessError, match="not a host name"):
        AccessPolicy.for_server("127.0.0.1", allowed_hosts=("http://x/",))
    with pytest.raises(ApiAccessError, match="at least 16"):
        AccessPolicy.for_server("127.0.0.1", "short")
    with pytest.raises(ApiAccessError, match="ORDERDECK_API_TOKEN"):
        AccessPolicy.for_server("0.0.0.0")
    assert TOKEN not in repr(AccessPolicy.for_server("0.0.0.0", TOKEN))
