"""The order API: a Starlette app built by :func:`create_app` around an order desk.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import pydantic_core
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from orderdeck.api_guard import AccessPolicy, ApiGuard
from orderdeck.api_models import (
    DEFAULT_PAGE,
    KNOWN_STATUSES,
    MAX_BODY_BYTES,
    MAX_PAGE,
    ErrorBody,
    ErrorDetail,
    ErrorField,
    HealthReport,
    KafkaHealth,
)
from orderdeck.metrics import Metrics
from orderdeck.openapi import openapi_document
from orderdeck.orders import (
    FieldError,
    IdempotencyConflictError,
    OrderNotAcknowledgedError,
    OrderValidationError,
    parse_order_body,
)

if TYPE_CHECKING:
    from orderdeck.order_desk import OrderDesk

log = logging.getLogger("orderdeck.api")

#: The collection every order is POSTed to.
ORDERS_PATH = "/api/v1/orders"
#: Request headers that must not be repeated: two Idempotency-Keys leave it open which one
#: the order is bound to.
SINGLE_HEADERS = frozenset({"idempotency-key"})
#: ``limit`` has at most this many digits (MAX_PAGE has three; leading zeros allowed).
MAX_LIMIT_DIGITS = 6
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
        if not _is_ascii_number(declared):
            raise _BadRequest(400, "Content-Length is not a number")
        if len(declared.lstrip("0")) > len(str(MAX_BODY_BYTES)) or int(declared) > MAX_BODY_BYTES:
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
        data = pydantic_core.from_json(raw)
    except ValueError as exc:
        raise _BadRequest(400, f"body is not valid JSON: {exc}") from None
    duplicate = _first_duplicate_key(raw)
    if duplicate is not None:
        raise _BadRequest(
            400, "body repeats a key", [FieldError(duplicate, "given more than once")]
        )
    return data


def _is_ascii_number(text: str) -> bool:
    """Only 0-9: ``str.isdigit`` also takes "²", "①" and "٣", which ``int`` refuses."""
    return text.isascii() and text.isdigit()


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as the key/value pairs it was written with (duplicates kept)."""


def _first_duplicate_key(raw: bytes) -> str | None:
    """The path (``items.0.productId``) of the first key an object of ``raw`` repeats.

    JSON parsers keep the last of repeated keys, so ``{"quantity": 1, "quantity": 900}``
    would be an order for 900 that a proxy or log reader sees as 1; it is refused instead.
    ``raw`` is known to be valid JSON here (an order is a few hundred bytes).
    """
    try:
        tree = json.loads(raw, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return None  # pydantic_core accepted it; nothing this parser can add
    stack: list[tuple[str, Any]] = [("", tree)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, _Pairs):
            seen: set[str] = set()
            for key, value in node:
                where = f"{path}.{key}" if path else key
                if key in seen:
                    return where
                seen.add(key)
                stack.append((where, value))
        elif isinstance(node, list):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(node))
    return None


# ----------------------------------------------------------------------------- the app


def create_app(
    desk: OrderDesk,
    *,
    health: HealthProbe | None = None,
    metrics: Metrics | None = None,
    access: AccessPolicy | None = None,
) -> ASGIApp:
    """Build the order API around an order desk (and the store and producer it holds).

    ``health`` reports Kafka and service state for ``GET /health`` (the runtime passes its
    own); the desk's ``ack_timeout`` bounds the wait for Kafka's acknowledgement; ``metrics``
    is what ``GET /metrics`` shows (the runtime's includes the services and Kafka; by default,
    the store's figures and this app's request durations); ``access`` (the Host names and
    token a server accepts, see api_guard.py) is checked before every route, the fast path
    included. Without it the app serves anyone, as it does inside the tests' ASGI transport.
    """
    store, producer = desk.store, desk.producer
    metrics = metrics or Metrics(store)
    retry_after = str(max(1, math.ceil(desk.ack_timeout)))

    async def place(
        header: Callable[[str], str | None],
        chunks: AsyncIterator[bytes],
        repeated: Collection[str] = (),
    ) -> Answer:
        """``POST /api/v1/orders`` whichever way it arrives (see _OrdersFastPath).

        ``repeated`` names the headers of SINGLE_HEADERS the request sent more than once.
        """
        try:
            if "idempotency-key" in repeated:
                raise _BadRequest(
                    400,
                    "Idempotency-Key was sent more than once",
                    [FieldError("Idempotency-Key", "must be sent once")],
                )
            body = await _read_json_body(header, chunks)
            order = parse_order_body(body)
            submitted = await desk.place_order(order, idempotency_key=header("idempotency-key"))
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
        repeated = [n for n in SINGLE_HEADERS if len(request.headers.getlist(n)) > 1]
        answer = await place(request.headers.get, request.stream(), repeated)
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
        view = await desk.find_order(order_id)
        if view is None:
            return error_response(404, f"no order with id {order_id!r}")
        return JSONBody(view)

    async def list_orders(request: Request) -> Response:
        params = request.query_params
        problems: list[FieldError] = []
        # A parameter given empty (``status=``) is refused like any other unknown value.
        status = params.get("status")
        if status is not None and status not in KNOWN_STATUSES:
            problems.append(
                FieldError("status", f"must be one of {', '.join(sorted(KNOWN_STATUSES))}")
            )
        limit = DEFAULT_PAGE
        if "limit" in params:
            text = params["limit"]
            # The length bound comes first: int() refuses more than 4,300 digits.
            if (
                not _is_ascii_number(text)
                or len(text) > MAX_LIMIT_DIGITS
                or not 1 <= int(text) <= MAX_PAGE
            ):
                problems.append(FieldError("limit", f"must be an integer in 1..{MAX_PAGE}"))
            else:
                limit = int(text)
        cursor = params.get("cursor")
        if cursor == "":
            problems.append(FieldError("cursor", "must not be empty; omit it for the first page"))
        if problems:
            return error_response(422, "bad query parameters", problems)
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
        return JSONBody(openapi_document())

    async def get_metrics(request: Request) -> Response:
        return Response(await metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

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
        Route("/metrics", get_metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    # A redirect to the slash-less path would build its Location from the Host header.
    app.router.redirect_slashes = False
    served = metrics.timed(_OrdersFastPath(app, place), fixed_routes=(ORDERS_PATH,))
    return served if access is None else ApiGuard(served, access)


Place = Callable[
    [Callable[[str], "str | None"], AsyncIterator[bytes], Collection[str]], Awaitable[Answer]
]


class _OrdersFastPath:
    """``POST /api/v1/orders`` straight from ASGI; every other request goes to Starlette.

    The hot route is the one clients hammer, and Starlette's middleware, router, Request and
    Response objects cost more CPU than its answer, which is fully decided by ``place``
    (BENCHMARKS.md has the figure; ``place`` is the same function the Starlette route calls, so
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
        # ASGI servers send header names in lower case; the first of repeated ones wins,
        # and a repeat of one that must be unique is refused (see SINGLE_HEADERS).
        headers: dict[str, str] = {}
        repeated: list[str] = []
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1")
            if name in headers:
                if name in SINGLE_HEADERS:
                    repeated.append(name)
                continue
            headers[name] = raw_value.decode("latin-1")
        try:
            answer = await self._place(headers.get, _body_chunks(receive), repeated)
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
