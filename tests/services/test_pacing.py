"""The pacer's linger follows the load: none for a trickle, a backlog or late orders; capped;
only on the first hop."""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka import ConsumerRecord

from orderdeck.events import HEADER_CORRELATION_ID, time_ordered_uuid
from orderdeck.services import SERVICE_NAMES
from orderdeck.services.pacing import MAX_LINGER_S, TARGET_RECORDS, Pacer, oldest_order_age_s
from orderdeck.services.supervisor import make_service


def _steady(pacer: Pacer, rate: float, batches: int = 40, size: int = 1) -> float:
    """Feed ``batches`` batches of ``size`` records arriving at ``rate`` records/s; the last
    linger."""
    now, linger = 1000.0, 0.0
    for _ in range(batches):
        linger = pacer.linger(size, now)
        now += size / rate
    return linger


def test_a_trickle_is_never_held_back() -> None:
    pacer = Pacer(full=500)
    assert _steady(pacer, rate=10.0) == 0.0
    assert pacer.rate == pytest.approx(10.0, rel=0.25)


def test_twenty_orders_a_second_are_a_trickle() -> None:
    # The longest wait would gather 1.2 orders: not worth 60 ms of every order's time.
    assert _steady(Pacer(full=500), rate=20.0) == 0.0
    assert _steady(Pacer(full=500), rate=30.0) > 0.0


def test_only_the_order_service_lets_its_batches_gather() -> None:
    # Its inbox is fed one record per API request; each later inbox receives the batches of
    # the service before it whole, and a linger there only added latency.
    paced = [name for name in SERVICE_NAMES if make_service(name).paced]
    assert paced == ["order"]


def test_a_steady_load_lingers_no_longer_than_the_cap() -> None:
    assert _steady(Pacer(full=500), rate=150.0) == MAX_LINGER_S


def test_a_higher_rate_lingers_only_for_the_target_batch() -> None:
    linger = _steady(Pacer(full=500), rate=4000.0, size=50)
    assert linger == pytest.approx(TARGET_RECORDS / 4000.0, rel=0.05)


def test_a_full_batch_is_followed_at_once() -> None:
    pacer = Pacer(full=500)
    _steady(pacer, rate=4000.0, size=50)
    assert pacer.linger(500, 1000.0 + 10.0) == 0.0


def test_a_pause_in_the_load_ends_the_linger() -> None:
    pacer = Pacer(full=500)
    _steady(pacer, rate=200.0)
    now = 1000.0 + 40 / 200.0
    for _ in range(5):  # single records, two seconds apart
        now += 2.0
        last = pacer.linger(1, now)
    assert last == 0.0


def _record(order_id: str) -> ConsumerRecord[bytes, bytes]:
    headers = [("event-type", b"OrderPlaced"), (HEADER_CORRELATION_ID, order_id.encode())]
    return ConsumerRecord("t", 0, 0, 0, 0, None, b"{}", None, 0, 2, headers)


def test_an_orders_age_is_read_from_its_time_ordered_id() -> None:
    young, older = time_ordered_uuid(), time_ordered_uuid()
    now_ms = time.time_ns() // 1_000_000
    stamp = f"{now_ms - 250:012x}"
    older = f"{stamp[:8]}-{stamp[8:]}{older[13:]}"
    age = oldest_order_age_s([_record(young), _record(older)], now_ms)
    assert age == pytest.approx(0.25, abs=0.002)


def test_ids_that_tell_no_time_make_no_age() -> None:
    keyed = str(uuid.uuid5(uuid.NAMESPACE_URL, "an idempotency key"))
    now_ms = time.time_ns() // 1_000_000
    assert oldest_order_age_s([_record(keyed), _record("legacy-17")], now_ms) == 0.0
