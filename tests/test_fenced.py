"""FencedEvents: what the Topics tail asks for every row it draws, so it must be exact and cheap."""

from __future__ import annotations

import json

import pytest

from orderdeck.fenced import FencedEvents


def value(event_id: str, order_id: str) -> bytes:
    return json.dumps({"eventId": event_id, "orderId": order_id, "type": "OrderPlaced"}).encode()


def test_a_fenced_attempt_is_recognised_by_its_event_id() -> None:
    fenced = FencedEvents()
    fenced.add("e-1", "o-1")
    assert fenced.is_fenced("o-1", value("e-1", "o-1"))
    assert fenced.has_event("e-1")
    assert len(fenced) == 1


def test_a_retry_of_the_same_order_with_a_fresh_event_id_is_a_real_order() -> None:
    # An Idempotency-Key retry keeps the order id (uuid5 of the key), not the event id.
    fenced = FencedEvents()
    fenced.add("e-dead", "o-1")
    assert not fenced.is_fenced("o-1", value("e-retry", "o-1"))


def test_other_orders_and_odd_values_are_not_fenced() -> None:
    fenced = FencedEvents()
    fenced.add("e-1", "o-1")
    assert not fenced.is_fenced("o-2", value("e-1", "o-2"))
    assert not fenced.is_fenced(None, value("e-1", "o-1"))
    assert not fenced.is_fenced("o-1", b"not json")
    assert not fenced.is_fenced("o-1", b'["e-1"]')
    assert not fenced.is_fenced("o-1", b'{"eventId": 7}')
    assert not fenced.is_fenced("o-1", b"\xff\xfe")


def test_only_the_newest_are_kept_and_the_oldest_go_first() -> None:
    fenced = FencedEvents(capacity=3)
    for n in range(5):
        fenced.add(f"e-{n}", f"o-{n % 2}")
    assert len(fenced) == 3
    assert not fenced.has_event("e-0")
    assert not fenced.has_event("e-1")
    assert fenced.is_fenced("o-0", value("e-2", "o-0"))
    assert fenced.is_fenced("o-1", value("e-3", "o-1"))
    assert fenced.is_fenced("o-0", value("e-4", "o-0"))


def test_an_order_whose_attempts_all_aged_out_costs_no_parse_again() -> None:
    fenced = FencedEvents(capacity=1)
    fenced.add("e-a", "o-a")
    fenced.add("e-b", "o-b")
    # o-a is no longer indexed: the value is not even looked at (it is not JSON here).
    assert not fenced.is_fenced("o-a", b"\x00")
    assert fenced.is_fenced("o-b", value("e-b", "o-b"))


def test_adding_the_same_event_twice_keeps_one() -> None:
    fenced = FencedEvents(capacity=2)
    fenced.add("e-1", "o-1")
    fenced.add("e-1", "o-1")
    fenced.add("e-2", "o-2")
    assert fenced.has_event("e-1")
    assert fenced.has_event("e-2")
    assert len(fenced) == 2


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FencedEvents(capacity=0)
