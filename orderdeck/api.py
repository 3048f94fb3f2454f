"""The order API: a Starlette app built by :func:`create_app` from a store and a producer.

Store calls run on the store's database thread (``Store.run``): SQLite may make a writer wait
for a service's batch to commit, and the event loop serving the API must not wait with it.

The app only produces ``order-events`` and reads the store; it never imports the services.
Every answer is JSON, errors included (``{"error": {"status", "message", "fields"}}``), and
bad input is always a 4xx naming the field and the reason — never a 500 or a traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import pydantic_core
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from orderdeck.api_guard import AccessPolicy, ApiGuard
from orderdeck.events import FINAL_STATUSES, IN_FLIGHT_STATUSES, TopicNames
from orderdeck.orders import (
    DEFAULT_ACK_TIMEOUT_S,
    FieldError,
    IdempotencyConflictError,
    OrderNotAcknowledgedError,
    OrderValidationError,
    find_order,
    parse_order_body,
    place_order,
)

if TYPE_CHECKING:
    from orderdeck.kafka.producer import EventProducer
    from orderdeck.store import Store

log = logging.getLogger("orderdeck.api")

#: The collection every order is POSTed to.
ORDERS_PATH = "/api/v1/orders"
#: Largest accepted request body; an order is a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
DEFAULT_PAGE = 50
MAX_PAGE = 500
#: Statuses an order can be listed by: the in-flight ones (see store.py) and the final ones.
KNOWN_STATUSES = IN_FLIGHT_STATUSES | FINAL_STATUSES


class ErrorField(BaseModel):
    """One field that made a request unacceptable."""

    field: str
    reason: str


class ErrorDetail(BaseModel):
    """What went wrong, for people and programs."""

    status: int
    message: str
    fields: list[ErrorField] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every error answer of the API has this shape."""

    error: ErrorDetail


class KafkaHealth(BaseModel):
    """Whether the API's Kafka cluster answers."""

    bootstrapServers: str
    reachable: bool | None = None


class ServiceHealth(BaseModel):
    """One pipeline service as the runtime sees it."""

    name: str
    state: str
    instances: int = 0
    lag: int | None = None


class HealthReport(BaseModel):
    """``GET /health``: ``ok`` when Kafka answers and every service runs."""

    status: str
    kafka: KafkaHealth
    api: str = "running"
    services: list[ServiceHealth] = Field(default_factory=list)
    totalLag: int | None = None


HealthProbe = Callable[[], Awaitable[HealthReport]]


# ----------------------------------------------------------------------------- responses


class JSONBody(Response):
    """A JSON response that also serialises pydantic models and dataclasses."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, BaseModel):
            return content.model_dump_json().encode()
        return json.dumps(to_jsonable(content), separators=(",", ":")).encode()


def to_jsonable(value: Any) -> Any:
    """Turn store views (pydantic models, dataclasses, datetimes, tuples) into JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    return value


def error_body(status: int, message: str, fields: list[FieldError] | None = None) -> bytes:
    """The JSON body of every error answer."""
    return (
        ErrorBody(
            error=ErrorDetail(
                status=status,
                message=message,
                fields=[ErrorField(field=f.field, reason=f.reason) for f in fields or ()],
            )
        )
        .model_dump_json()
        .encode()
    )


def error_response(
    status: int,
    message: str,
    fields: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The JSON error answer every failing route returns."""
    return Response(
        error_body(status, message, fields),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


@dataclasses.dataclass(frozen=True)
class Answer:
    """A JSON answer independent of the web framework: status, body and extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class _BadRequest(Exception):
    """Raised while reading a request; becomes a JSON error answer."""

    def __init__(self, status: int, message: str, fields: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields


async def _read_json_body(header: Callable[[str], str | None], chunks: AsyncIterator[bytes]) -> Any:
    content_type = header("content-type") or ""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise _BadRequest(
            415,
            f"Content-Type must be application/json, got {content_type or 'nothing'!r}",
        )
    declared = header("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _BadRequest(400, "Content-Length is not a number")
        if int(declared) > MAX_BODY_BYTES:
            raise _BadRequest(413, f"body is larger than {MAX_BODY_BYTES} bytes")
    parts: list[bytes] = []
    size = 0
    # Count what actually arrives too: chunked bodies have no Content-Length, and a client
    # may send more than it declared.
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _BadRequest(413, f"body is larger than {MAX_BODY_BYTES} bytes")
            parts.append(chunk)
    except ClientDisconnect:
        # Nobody will read the answer; the status is for the record only.
        raise _BadRequest(400, "client disconnected before sending the whole body") from None
    raw = b"".join(parts)
    if not raw.strip():
        raise _BadRequest(400, "body is empty; send a JSON object")
    try:
        return pydantic_core.from_json(raw)
    except ValueError as exc:
        raise _BadRequest(400, f"body is not valid JSON: {exc}") from None


# ----------------------------------------------------------------------------- the app


def create_app(
    store: Store,
    producer: EventProducer,
    names: TopicNames,
    *,
    health: HealthProbe | None = None,
    ack_timeout: float = DEFAULT_ACK_TIMEOUT_S,
    access: AccessPolicy | None = None,
) -> ASGIApp:
    """Build the order API around an open store and a started producer.

    ``health`` reports Kafka and service state for ``GET /health`` (the runtime passes its
    own); ``ack_timeout`` bounds the wait for Kafka's acknowledgement of an OrderPlaced;
    ``access`` (the Host names and token a server accepts, see api_guard.py) is checked
    before every route, the fast path included. Without it the app serves anyone, as it
    does inside the tests' ASGI transport.
    """
    retry_after = str(max(1, math.ceil(ack_timeout)))

    async def place(header: Callable[[str], str | None], chunks: AsyncIterator[bytes]) -> Answer:
        """``POST /api/v1/orders`` whichever way it arrives (see _OrdersFastPath)."""
        try:
            body = await _read_json_body(header, chunks)
            order = parse_order_body(body)
            submitted = await place_order(
                order,
                store=store,
                producer=producer,
                names=names,
                idempotency_key=header("idempotency-key"),
                ack_timeout=ack_timeout,
            )
        except _BadRequest as exc:
            return Answer(exc.status, error_body(exc.status, exc.message, exc.fields))
        except OrderValidationError as exc:
            return Answer(422, error_body(422, "the order is not valid", exc.fields))
        except IdempotencyConflictError as exc:
            fields = [FieldError("Idempotency-Key", "reused")]
            return Answer(409, error_body(409, str(exc), fields))
        except OrderNotAcknowledgedError as exc:
            log.warning("order refused: %s", exc)
            return Answer(503, error_body(503, str(exc)), (("Retry-After", retry_after),))
        headers = [("Location", submitted.location)]
        if submitted.replayed:
            headers.append(("Idempotent-Replayed", "true"))
        return Answer(201, submitted.response.to_json().encode(), tuple(headers))

    async def create_order(request: Request) -> Response:
        answer = await place(request.headers.get, request.stream())
        return Response(
            answer.body,
            status_code=answer.status,
            headers=dict(answer.headers),
            media_type="application/json",
        )

    async def orders_collection(request: Request) -> Response:
        # One route for both methods so a wrong method's 405 lists both in Allow.
        if request.method == "POST":
            return await create_order(request)
        return await list_orders(request)

    async def get_order(request: Request) -> Response:
        order_id = request.path_params["order_id"]
        view = await find_order(store, order_id)
        if view is None:
            return error_response(404, f"no order with id {order_id!r}")
        return JSONBody(view)

    async def list_orders(request: Request) -> Response:
        params = request.query_params
        problems: list[FieldError] = []
        status = params.get("status") or None
        if status is not None and status not in KNOWN_STATUSES:
            problems.append(
                FieldError("status", f"must be one of {', '.join(sorted(KNOWN_STATUSES))}")
            )
        limit = DEFAULT_PAGE
        if "limit" in params:
            text = params["limit"]
            if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
                problems.append(FieldError("limit", f"must be an integer in 1..{MAX_PAGE}"))
            else:
                limit = int(text)
        if problems:
            return error_response(422, "bad query parameters", problems)
        cursor = params.get("cursor") or None
        try:
            orders, next_cursor = await store.run(
                functools.partial(store.list_orders, status=status, limit=limit, cursor=cursor)
            )
        except ValueError:
            return error_response(
                422, "bad query parameters", [FieldError("cursor", "not a cursor from this API")]
            )
        return JSONBody({"orders": orders, "nextCursor": next_cursor})

    async def list_products(request: Request) -> Response:
        return JSONBody({"products": await store.run(store.list_products)})

    async def get_health(request: Request) -> Response:
        if health is None:
            report = HealthReport(
                status="ok", kafka=KafkaHealth(bootstrapServers=producer.kafka.bootstrap_servers)
            )
        else:
            report = await health()
        return JSONBody(report, status_code=200 if report.status == "ok" else 503)

    async def get_openapi(request: Request) -> Response:
        from orderdeck.openapi import openapi_document  # it imports this module

        return JSONBody(openapi_document())

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        message = {404: "no such resource", 405: "method not allowed"}.get(
            exc.status_code, exc.detail
        )
        if exc.status_code == 405 and "allow" in {k.lower() for k in headers}:
            message = f"method not allowed; use {headers.get('Allow', headers.get('allow'))}"
        return error_response(exc.status_code, message, headers=headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; see the server log")

    routes = [
        Route(ORDERS_PATH, orders_collection, methods=["GET", "POST"]),
        Route("/api/v1/orders/{order_id}", get_order, methods=["GET"]),
        Route("/api/v1/products", list_products, methods=["GET"]),
        Route("/health", get_health, methods=["GET"]),
        Route("/openapi.json", get_openapi, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    # A redirect to the slash-less path would build its Location from the Host header.
    app.router.redirect_slashes = False
    orders_fast_path = _OrdersFastPath(app, place)
    return orders_fast_path if access is None else ApiGuard(orders_fast_path, access)


Place = Callable[[Callable[[str], "str | None"], AsyncIterator[bytes]], Awaitable[Answer]]


class _OrdersFastPath:
    """``POST /api/v1/orders`` straight from ASGI; every other request goes to Starlette.

    The hot route is the one clients hammer. Starlette's middleware, router, Request and
    Response objects were about a quarter of the API's CPU per order, for a route whose
    answer is fully decided by ``place`` (the same function the Starlette route calls, so
    both ways answer identically; the Starlette route still serves the route's other
    methods and its 405, and documents it).
    """

    def __init__(self, app: Starlette, place: Place) -> None:
        self.app = app
        self._place = place

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != ORDERS_PATH:
            await self.app(scope, receive, send)
            return
        # ASGI servers send header names in lower case; the first of repeated ones wins.
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        try:
            answer = await self._place(headers.get, _body_chunks(receive))
        except Exception:
            log.exception("unexpected error on POST %s", ORDERS_PATH)
            answer = Answer(500, error_body(500, "internal error; see the server log"))
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer.body)).encode()),
        ]
        raw_headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in answer.headers]
        await send({"type": "http.response.start", "status": answer.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": answer.body})


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """A request body from ASGI ``receive`` messages, as Starlette's ``Request.stream``."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
