"""The event contract: JSON on the wire, envelopes, headers, legacy records, poison records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orderdeck import events as ev
from orderdeck.events import (
    EVENT_TYPES,
    LineItem,
    OrderPlaced,
    OrderPlacedPayload,
    PoisonRecordError,
    PricedLineItem,
    TopicNames,
    decode,
    encode,
    header_value,
    headers_for,
)

_ITEMS = [PricedLineItem(productId="sku-mouse", quantity=2, unitPriceCents=2999)]

SAMPLES: list[Any] = [
    OrderPlaced(
        orderId="o1",
        payload=OrderPlacedPayload(
            customerId="c", items=[LineItem(productId="sku-mouse", quantity=2)]
        ),
    ),
    ev.PaymentRequested(
        orderId="o1",
        payload=ev.PaymentRequestedPayload(customerId="c", items=_ITEMS, amountCents=5998),
    ),
    ev.RefundRequested(
        orderId="o1",
        payload=ev.RefundRequestedPayload(customerId="c", amountCents=5998, reason="oos"),
    ),
    ev.StockReservationRequested(
        orderId="o1",
        payload=ev.StockReservationRequestedPayload(customerId="c", items=_ITEMS, amountCents=5998),
    ),
    ev.OrderConfirmed(
        orderId="o1",
        payload=ev.OrderConfirmedPayload(customerId="c", items=_ITEMS, amountCents=5998),
    ),
    ev.OrderRejected(orderId="o1", payload=ev.OrderRejectedPayload(customerId="c", reason="x")),
    ev.PaymentDeclined(
        orderId="o1",
        payload=ev.PaymentDeclinedPayload(customerId="c", amountCents=5998, reason="x"),
    ),
    ev.OrderCancelled(
        orderId="o1",
        payload=ev.OrderCancelledPayload(customerId="c", refundedCents=5998, reason="x"),
    ),
]


def test_every_event_type_has_a_sample() -> None:
    assert {s.type for s in SAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_round_trip_and_envelope(event: Any) -> None:
    raw = encode(event)
    data = json.loads(raw)
    assert {"eventId", "type", "orderId", "occurredAt", "schemaVersion", "payload"} <= set(data)
    assert data["type"] == event.type
    assert data["schemaVersion"] == 1
    assert data["occurredAt"].endswith("Z")
    assert decode(raw) == event


def test_event_topics_follow_the_journey() -> None:
    topics = {t: cls.topic for t, cls in EVENT_TYPES.items()}
    assert topics["OrderPlaced"] == "order-events"
    assert topics["PaymentRequested"] == topics["RefundRequested"] == "payment-events"
    assert topics["StockReservationRequested"] == "inventory-events"
    for final in ("OrderConfirmed", "OrderRejected", "PaymentDeclined", "OrderCancelled"):
        assert topics[final] == "notification-events"


def test_headers_carry_type_and_correlation_id() -> None:
    event = SAMPLES[0]
    headers = headers_for(event)
    assert header_value(headers, "event-type") == "OrderPlaced"
    assert header_value(headers, "correlation-id") == "o1"  # falls back to the order id
    assert header_value(headers, "schema-version") == "1"
    assert header_value(headers, "missing") is None


def test_topic_names_prefix_every_topic_and_dlq() -> None:
    names = TopicNames(prefix="t1.")
    assert names.orders == "t1.order-events"
    assert names.pipeline()[-1] == "t1.notification-events"
    assert names.all()[4:] == tuple(t + ".dlq" for t in names.pipeline())
    assert TopicNames().resolve("payment-events") == "payment-events"


def test_legacy_record_becomes_order_placed_with_a_stable_event_id() -> None:
    legacy = {
        "id": "legacy-1",
        "customerId": "c",
        "productId": "sku-mouse",
        "quantity": 3,
        "status": "pending",
        "createdAt": "2024-05-01T10:00:00.000Z",
        "extra": "ignored",
    }
    first = decode(json.dumps(legacy).encode())
    second = decode(json.dumps(legacy).encode())
    assert isinstance(first, OrderPlaced)
    assert first.orderId == "legacy-1"
    assert first.payload.source == "legacy"
    assert first.payload.items == [LineItem(productId="sku-mouse", quantity=3)]
    assert first.eventId == second.eventId  # a replay is recognised


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "no value"),
        (b"\xff\xfe", "not JSON"),
        (b"{oops", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "Teleport"}', "unknown event type"),
        (b'{"type": "OrderPlaced", "orderId": "o"}', "invalid OrderPlaced"),
        (b'{"id": "x", "customerId": "c", "productId": "p", "quantity": 0}', "invalid legacy"),
    ],
)
def test_poison_records_raise_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(PoisonRecordError, match=reason):
        decode(value)


def test_quantity_bounds_and_unknown_fields_are_rejected() -> None:
    base = json.loads(encode(SAMPLES[0]))
    for bad_quantity in (0, 1001, "2", 1.5):
        data = json.loads(json.dumps(base))
        data["payload"]["items"][0]["quantity"] = bad_quantity
        with pytest.raises(PoisonRecordError):
            decode(json.dumps(data).encode())
    base["surprise"] = True
    with pytest.raises(PoisonRecordError):
        decode(json.dumps(base).encode())


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_services_fast_decode_agrees_with_the_contract(event: Any) -> None:
    from orderdeck.events import decode_record

    assert decode_record(encode(event)) == decode(encode(event))


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"{oops",
        b'{"type": "Teleport"}',
        b'{"type": "OrderPlaced", "orderId": "o"}',
        b'{"id": "x", "customerId": "c", "productId": "p", "quantity": 0}',
    ],
)
def test_services_fast_decode_rejects_what_the_contract_rejects(value: bytes | None) -> None:
    from orderdeck.events import decode_record

    with pytest.raises(PoisonRecordError):
        decode_record(value)


def test_services_fast_decode_converts_legacy_records() -> None:
    from orderdeck.events import decode_record

    raw = b'{"id": "l1", "customerId": "c", "productId": "sku-mouse", "quantity": 2}'
    fast, slow = decode_record(raw), decode(raw)
    assert isinstance(fast, OrderPlaced)
    assert (fast.eventId, fast.orderId, fast.payload) == (slow.eventId, slow.orderId, slow.payload)


def test_ids_are_version_7_uuids_that_sort_by_time() -> None:
    import time
    import uuid

    from orderdeck.events import time_ordered_uuid

    first = time_ordered_uuid()
    time.sleep(0.002)
    later = [time_ordered_uuid() for _ in range(600)]  # more than one pool of random bits
    parsed = uuid.UUID(first)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert str(parsed) == first
    assert abs(int(first[:8] + first[9:13], 16) - time.time() * 1000) < 5_000
    assert all(first < other for other in later)
    assert len(set(later)) == len(later)


def test_derived_event_ids_are_stable_and_keep_the_causes_time() -> None:
    import uuid

    from orderdeck.events import derived_event_id, time_ordered_uuid

    cause = time_ordered_uuid()
    derived = derived_event_id(cause, "PaymentRequested")
    assert derived == derived_event_id(cause, "PaymentRequested")
    assert derived != derived_event_id(cause, "OrderRejected")
    assert derived[:13] == cause[:13]  # the 48-bit timestamp
    parsed = uuid.UUID(derived)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    # Ids that are not time-ordered (uuid5 of an Idempotency-Key, other producers' ids)
    # give a plain hash.
    other = derived_event_id("legacy-id", "PaymentRequested")
    assert other == derived_event_id("legacy-id", "PaymentRequested")
    assert str(uuid.UUID(other)) == other
    assert other[:13] != derived[:13]
