"""An order request: the body models, their validation, the OrderPlaced and the 201 answer.

Both doors into the pipeline — ``POST /api/v1/orders`` and the TUI's submit form — validate
with these models and hand the result to ``orderdeck.order_desk.OrderDesk``, which produces
and records it. This module imports no web framework, so the TUI validates its form with the
very models the API uses.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import ErrorDetails

from orderdeck.errors import OrderdeckError
from orderdeck.events import (
    MAX_ITEMS,
    MAX_QUANTITY,
    LineItem,
    OrderPlaced,
    OrderPlacedPayload,
    iso_utc,
    time_ordered_uuid,
)

if TYPE_CHECKING:
    from orderdeck.kafka.producer import Delivery

#: The status an order has from the moment Kafka acknowledged its OrderPlaced.
PLACED_STATUS = "placed"
CREATED_MESSAGE = "Order event sent"
DEFAULT_ACK_TIMEOUT_S = 5.0
MAX_IDEMPOTENCY_KEY_LENGTH = 255
#: Namespace of the ids derived from an Idempotency-Key (uuid5): stable across processes.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d3c52-3b8e-5f0a-9c47-0d5e2a7b9e11")

#: Ids are shown in terminals and logs: no control characters (U+0000-U+001F, U+007F) and no
#: bidirectional overrides or isolates (U+202A-U+202E, U+2066-U+2069), which could make an id
#: display as another. A pattern (not a validator) so the OpenAPI document states it too.
PRINTABLE_ID_PATTERN = r"^[^\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]*$"
CustomerId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=128, pattern=PRINTABLE_ID_PATTERN
    ),
]
ProductId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=PRINTABLE_ID_PATTERN
    ),
]
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SingleItemOrder(_Body):
    """The original project's body: one product line."""

    customerId: CustomerId
    productId: ProductId
    quantity: Quantity


class OrderItem(_Body):
    """One line of a multi-item order."""

    productId: ProductId
    quantity: Quantity


class MultiItemOrder(_Body):
    """Several product lines in one order (each product at most once)."""

    customerId: CustomerId
    items: list[OrderItem] = Field(min_length=1, max_length=MAX_ITEMS)


class OrderRequest(BaseModel):
    """An order as the pipeline sees it, whichever body shape it arrived in.

    ``multiItem`` remembers the shape so errors and the 201 answer speak the client's language
    (``productId`` vs ``items.0.productId``, ``items`` in the answer or not).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    customerId: CustomerId
    items: tuple[LineItem, ...] = Field(min_length=1, max_length=MAX_ITEMS)
    multiItem: bool = False

    @classmethod
    def single(cls, customer_id: str, product_id: str, quantity: int) -> OrderRequest:
        """A one-line order, validated like the original body (raises OrderValidationError)."""
        return parse_order_body(
            {"customerId": customer_id, "productId": product_id, "quantity": quantity}
        )

    def field_of(self, index: int, name: str) -> str:
        """The body field a client used for line ``index``'s ``name``."""
        return f"items.{index}.{name}" if self.multiItem else name

    def fingerprint(self) -> str:
        """A hash of what was asked for, to tell a retried request from a different one."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class PlacedOrderEvent(BaseModel):
    """The ``event`` of the 201 answer: the original project's order record.

    For a multi-item order ``productId``/``quantity`` repeat the first line so clients of the
    original shape keep working, and ``items`` lists every line.
    """

    id: str
    customerId: str
    productId: str
    quantity: int
    status: str
    createdAt: str
    items: list[LineItem] | None = None


class OrderCreated(BaseModel):
    """The 201 answer: the original shape plus the order's status."""

    message: str = CREATED_MESSAGE
    event: PlacedOrderEvent
    status: str

    def to_json(self) -> str:
        """Compact JSON without the multi-item ``items`` key when it is absent."""
        return self.model_dump_json(exclude_none=True)


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of a request."""

    field: str
    reason: str


class OrderValidationError(OrderdeckError):
    """The request is well-formed JSON but not an acceptable order (HTTP 422)."""

    def __init__(self, fields: list[FieldError]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{f.field}: {f.reason}" for f in fields))


class IdempotencyConflictError(OrderdeckError):
    """The Idempotency-Key was already used for a different request (HTTP 409)."""

    def __init__(self, key: str, order_id: str) -> None:
        self.key = key
        self.order_id = order_id
        super().__init__(
            f"Idempotency-Key {key!r} was already used for a different order ({order_id})"
        )


class OrderNotAcknowledgedError(OrderdeckError):
    """Kafka did not acknowledge the OrderPlaced in time; no order was created (HTTP 503)."""

    def __init__(self, timeout: float, cause: str) -> None:
        self.timeout = timeout
        super().__init__(
            f"Kafka did not acknowledge the order within {timeout:g} s ({cause}); "
            "no order was created, retry later"
        )


@dataclass(frozen=True)
class SubmittedOrder:
    """The outcome of a successful ``OrderDesk.place_order``."""

    order_id: str
    response: OrderCreated
    #: Where the OrderPlaced landed; None when an idempotent retry was answered from the store.
    delivery: Delivery | None
    #: True when an Idempotency-Key matched an earlier identical request.
    replayed: bool = False

    @property
    def location(self) -> str:
        """The order's URL path (the 201's Location header)."""
        return f"/api/v1/orders/{self.order_id}"


# ----------------------------------------------------------------------------- validation

_REASONS = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "int_type": "must be an integer",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "string_pattern_mismatch": "must not contain control or bidirectional formatting characters",
}


def _reason(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _REASONS:
        return _REASONS[kind]
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return "must not be empty"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} entries"
    return str(err["msg"])


def _field_errors(exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(".".join(str(p) for p in err["loc"]) or "body", _reason(err))
        for err in exc.errors(include_url=False)
    ]


def parse_order_body(data: Any) -> OrderRequest:
    """Validate a decoded JSON body (either shape) into an OrderRequest.

    The shape is chosen by the presence of ``items`` so the errors describe the shape the
    client meant, rather than a confusing union of both. Raises OrderValidationError.
    """
    if not isinstance(data, dict):
        raise OrderValidationError([FieldError("body", "must be a JSON object")])
    try:
        if "items" in data:
            multi = MultiItemOrder.model_validate(data)
            request = OrderRequest(
                customerId=multi.customerId,
                items=tuple(
                    LineItem(productId=i.productId, quantity=i.quantity) for i in multi.items
                ),
                multiItem=True,
            )
        else:
            single = SingleItemOrder.model_validate(data)
            request = OrderRequest(
                customerId=single.customerId,
                items=(LineItem(productId=single.productId, quantity=single.quantity),),
            )
    except ValidationError as exc:
        raise OrderValidationError(_field_errors(exc)) from None
    seen: dict[str, int] = {}
    duplicates = []
    for index, item in enumerate(request.items):
        if item.productId in seen:
            duplicates.append(
                FieldError(
                    request.field_of(index, "productId"),
                    f"duplicate of items.{seen[item.productId]}; combine the quantities",
                )
            )
        seen.setdefault(item.productId, index)
    if duplicates:
        raise OrderValidationError(duplicates)
    return request


def check_products(request: OrderRequest, known: Collection[str]) -> None:
    """Raise OrderValidationError naming every line whose product is not in the catalog."""
    unknown = [
        FieldError(request.field_of(i, "productId"), f"unknown product {item.productId!r}")
        for i, item in enumerate(request.items)
        if item.productId not in known
    ]
    if unknown:
        raise OrderValidationError(unknown)


def check_idempotency_key(key: str | None) -> str | None:
    """Validate an Idempotency-Key header value (printable ASCII, 1..255 characters)."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise OrderValidationError(
            [
                FieldError(
                    "Idempotency-Key",
                    f"must be 1..{MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters",
                )
            ]
        )
    return key


# ----------------------------------------------------------------------------- events


def idempotent_order_id(key: str) -> str:
    """The order id an Idempotency-Key stands for, the same in every process."""
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"order:{key}"))


def build_order_placed(request: OrderRequest, idempotency_key: str | None = None) -> OrderPlaced:
    """The OrderPlaced for a request: a fresh order id, or the one derived from the key."""
    key = idempotency_key
    order_id = time_ordered_uuid() if key is None else idempotent_order_id(key)
    return OrderPlaced(
        eventId=time_ordered_uuid(),
        orderId=order_id,
        correlationId=order_id,
        payload=OrderPlacedPayload(customerId=request.customerId, items=list(request.items)),
    )


def created_response(request: OrderRequest, event: OrderPlaced) -> OrderCreated:
    """The 201 body for an accepted order."""
    first = request.items[0]
    return OrderCreated(
        event=PlacedOrderEvent(
            id=event.orderId,
            customerId=request.customerId,
            productId=first.productId,
            quantity=first.quantity,
            status=PLACED_STATUS,
            createdAt=iso_utc(event.occurredAt),
            items=list(request.items) if request.multiItem else None,
        ),
        status=PLACED_STATUS,
    )
