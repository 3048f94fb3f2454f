"""``orderdeck tail`` as a shell user runs it: JSON lines, filters, end of topic, pipes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from orderdeck.events import (
    LineItem,
    OrderPlaced,
    OrderPlacedPayload,
    PaymentRequested,
    PaymentRequestedPayload,
    PricedLineItem,
    TopicNames,
    encode,
    headers_for,
)

Produced = dict[tuple[str, int, int], dict[str, Any]]  # (topic, partition, offset) -> event


def order_placed(order_id: str) -> OrderPlaced:
    return OrderPlaced(
        orderId=order_id,
        correlationId=order_id,
        payload=OrderPlacedPayload(customerId="c-9", items=[LineItem(productId="p-9", quantity=1)]),
    )


def payment_requested(order_id: str) -> PaymentRequested:
    item = PricedLineItem(productId="p-9", quantity=1, unitPriceCents=250)
    return PaymentRequested(
        orderId=order_id,
        correlationId=order_id,
        payload=PaymentRequestedPayload(customerId="c-9", items=[item], amountCents=250),
    )


async def produce(
    bootstrap: str, events: list[tuple[str, OrderPlaced | PaymentRequested]]
) -> Produced:
    """Produce (topic, event) pairs keyed by order id; returns where each one landed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, encode(event), key=event.orderId.encode(), headers=headers_for(event)
            )
            for topic, event in events
        ]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return {
        (md.topic, md.partition, md.offset): json.loads(encode(event))
        for md, (_, event) in zip(metadata, events, strict=True)
    }


def tail_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "orderdeck.cli", "tail", *args]


async def run_tail(bootstrap: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *tail_command(*args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ORDERDECK_BOOTSTRAP_SERVERS": bootstrap},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def check_partition_order(lines: list[dict[str, Any]]) -> None:
    last: dict[tuple[str, int], int] = {}
    for line in lines:
        where = (line["topic"], line["partition"])
        assert line["offset"] > last.get(where, -1), f"out of order: {line}"
        last[where] = line["offset"]


async def test_json_exit_at_end_prints_exactly_the_records_and_exits(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic = topic_names.orders
    produced = await produce(kafka_bootstrap, [(topic, order_placed(f"o-{i}")) for i in range(40)])
    code, out, err = await run_tail(
        kafka_bootstrap, topic, "--from-beginning", "--json", "--exit-at-end"
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len(produced)
    check_partition_order(lines)
    for line in lines:
        event = produced[(line["topic"], line["partition"], line["offset"])]
        assert line["value"] == event
        assert line["key"] == line["orderId"] == event["orderId"]
        assert line["type"] == "OrderPlaced"
        assert line["headers"]["event-type"] == "OrderPlaced"
        assert isinstance(line["timestamp"], int)


async def test_order_and_type_filters_across_topics(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    wanted = f"wanted-{uuid.uuid4().hex[:6]}"
    events: list[tuple[str, OrderPlaced | PaymentRequested]] = []
    for i in range(10):
        events.append((topic_names.orders, order_placed(f"other-{i}")))
        events.append((topic_names.payments, payment_requested(f"other-{i}")))
    events.append((topic_names.orders, order_placed(wanted)))
    events.append((topic_names.payments, payment_requested(wanted)))
    await produce(kafka_bootstrap, events)
    topics = (topic_names.orders, topic_names.payments)

    code, out, err = await run_tail(
        kafka_bootstrap, *topics, "--from-beginning", "--exit-at-end", "--json", "--order", wanted
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert sorted((line["topic"], line["type"]) for line in lines) == [
        (topic_names.orders, "OrderPlaced"),
        (topic_names.payments, "PaymentRequested"),
    ]
    assert {line["orderId"] for line in lines} == {wanted}
    # one order, one partition number in every topic
    assert len({line["partition"] for line in lines}) == 1

    code, out, err = await run_tail(
        kafka_bootstrap, *topics, "--from-beginning", "--exit-at-end", "--type", "PaymentRequested"
    )
    assert code == 0, err
    human = out.splitlines()
    assert len(human) == 11
    assert all(" PaymentRequested order=" in line for line in human)
    assert all(f" {topic_names.payments}/" in line for line in human)


async def test_a_closed_pipe_ends_the_tail_quietly(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    # ~1 MB of output: far more than a pipe buffers, so the tail must hit the closed pipe.
    await produce(
        kafka_bootstrap, [(topic_names.orders, order_placed(f"p-{i}")) for i in range(3000)]
    )
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        *tail_command(topic_names.orders, "--from-beginning", "--json"),
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ORDERDECK_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = await asyncio.to_thread(reader.readline)  # like `| head -1`
    assert json.loads(first)["topic"] == topic_names.orders
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0
    assert err.decode() == ""


async def test_ctrl_c_stops_without_a_traceback(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    proc = await asyncio.create_subprocess_exec(
        *tail_command(topic_names.notifications),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ORDERDECK_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )
    await produce(kafka_bootstrap, [(topic_names.notifications, order_placed("late"))])
    assert proc.stdout is not None
    # A record produced after start-up may land before the tail's seek to the end; keep
    # producing until one is printed, which proves the tail is running.
    line = b""
    for _ in range(50):
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=0.5)
            break
        except TimeoutError:
            await produce(kafka_bootstrap, [(topic_names.notifications, order_placed("late"))])
    assert b"order=late" in line
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 130
    assert "Traceback" not in err.decode()


async def test_unknown_topic_is_a_one_line_error(kafka_bootstrap: str) -> None:
    code, out, err = await run_tail(kafka_bootstrap, f"missing-{uuid.uuid4().hex}", "--exit-at-end")
    assert code == 1
    assert out == ""
    assert err.startswith("orderdeck: error: topic missing-")
    assert err.count("\n") == 1


async def test_from_an_offset_or_a_time_starts_there(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic = topic_names.payments
    produced = await produce(kafka_bootstrap, [(topic, order_placed(f"f-{i}")) for i in range(30)])
    code, out, err = await run_tail(
        kafka_bootstrap, topic, "--from", "3", "--json", "--exit-at-end"
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert sorted((line["partition"], line["offset"]) for line in lines) == sorted(
        (p, o) for (_, p, o) in produced if o >= 3
    )
    code, out, err = await run_tail(
        kafka_bootstrap, topic, "--from", "1:2", "--json", "--exit-at-end"
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["partition"], line["offset"]) for line in lines] == sorted(
        (p, o) for (_, p, o) in produced if p == 1 and o >= 2
    )
    code, out, err = await run_tail(kafka_bootstrap, topic, "--from=-1h", "--exit-at-end")
    assert code == 0, err
    assert len(out.splitlines()) == len(produced)


async def test_a_bad_from_is_a_usage_error_naming_the_mistake(kafka_bootstrap: str) -> None:
    code, out, err = await run_tail(kafka_bootstrap, "order-events", "--from", "-10")
    assert code == 2
    assert out == ""
    assert "argument --from: -10 needs a unit" in err
    code, _, err = await run_tail(kafka_bootstrap, "t", "--from", "5", "--from-beginning")
    assert code == 2
    assert "not allowed with argument" in err
