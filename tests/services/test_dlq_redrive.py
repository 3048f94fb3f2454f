"""``orderdeck dlq``: a poison order lands in its DLQ, is listed, and redriven fixed it completes.

The four services run for real against a real broker and store; the CLI runs as a separate
process, as a user would run it, so the redrive memory has to be durable to refuse a second
redrive.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from orderdeck.events import FINAL_STATUSES, TopicNames, dlq_topic, headers_for
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.dead_letters import (
    REDRIVEN_FROM,
    DeadLetterError,
    read_committed_records,
    read_dead_letters,
    redrive,
)
from orderdeck.kafka.producer import EventProducer
from orderdeck.services.supervisor import Supervisor
from orderdeck.store import StoreBackend
from tests.services.conftest import order_placed, wait_for
from tests.services.test_dead_letters import _read_all


async def orderdeck(bootstrap: str, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """Run the CLI in its own process; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orderdeck.cli",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ORDERDECK_BOOTSTRAP_SERVERS": bootstrap},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _dlq_count(bootstrap: str, dlq: str) -> int:
    code, out, err = await orderdeck(bootstrap, "dlq", "list", "--json")
    assert code == 0, err
    counts: dict[str, int] = json.loads(out)
    return counts.get(dlq, 0)


def _status(store: StoreBackend, order_id: str) -> str | None:
    view = store.get_order(order_id)
    return view.status if view is not None else None


async def test_poison_order_redriven_with_a_fixed_value_reaches_a_final_state(
    kafka_bootstrap: str,
    services: Supervisor,
    store: StoreBackend,
    producer: EventProducer,
    topic_names: TopicNames,
    tmp_path: Path,
) -> None:
    fixed = order_placed("poppy", [("sku-cable", 1)])
    poison: dict[str, Any] = json.loads(fixed.model_dump_json())
    poison["payload"]["items"][0]["quantity"] = 5000  # more than one order may ask for
    key = fixed.orderId.encode()
    headers = [*headers_for(fixed), ("trace", b"t-1")]
    await producer.send_many([(topic_names.orders, key, json.dumps(poison).encode(), headers)])
    dlq = dlq_topic(topic_names.orders)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while await _dlq_count(kafka_bootstrap, dlq) != 1:  # counted from the topic's offsets
        assert loop.time() < deadline, "the poison order never reached its DLQ"
        await asyncio.sleep(0.2)

    code, out, err = await orderdeck(kafka_bootstrap, "dlq", "list", dlq, "--json")
    assert code == 0, err
    [letter] = json.loads(out)
    assert "invalid OrderPlaced" in letter["reason"]
    assert letter["originalTopic"] == topic_names.orders
    assert letter["originalOffset"] is not None
    assert letter["service"] == "order"
    assert letter["redriven"] is False
    position = f"{letter['partition']}:{letter['offset']}"

    # A dry run says what it would send and sends nothing.
    code, out, err = await orderdeck(
        kafka_bootstrap, "dlq", "redrive", dlq, "--offset", position, "--dry-run", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["sent"][0]["offset"] is None
    code, out, err = await orderdeck(kafka_bootstrap, "dlq", "list", dlq, "--json")
    assert json.loads(out)[0]["redriven"] is False
    assert _status(store, fixed.orderId) is None

    # A value that is not JSON is refused before anything is sent.
    bad = tmp_path / "bad.json"
    bad.write_text("{quantity: 1")
    code, out, err = await orderdeck(
        kafka_bootstrap, "dlq", "redrive", dlq, "--offset", position, "--value-file", str(bad)
    )
    assert code == 1
    assert "not JSON" in err
    assert str(bad) in err

    value_file = tmp_path / "fixed.json"
    value_file.write_text(fixed.model_dump_json())
    code, out, err = await orderdeck(
        kafka_bootstrap,
        "dlq",
        "redrive",
        dlq,
        "--offset",
        position,
        "--value-file",
        str(value_file),
    )
    assert code == 0, err
    assert f"redrove {dlq}:{position} -> {topic_names.orders}" in out
    await wait_for(
        lambda: _status(store, fixed.orderId) in FINAL_STATUSES,
        within=30,
        what="the redriven order to reach a final state",
    )
    # Remembered durably (another process asks next): a second redrive is refused...
    code, out, err = await orderdeck(kafka_bootstrap, "dlq", "redrive", dlq, "--all")
    assert code == 1
    assert f"skipped {dlq}:{position}" in out
    code, out, err = await orderdeck(kafka_bootstrap, "dlq", "list", dlq, "--json")
    assert json.loads(out)[0]["redriven"] is True
    # ...unless forced.
    code, out, err = await orderdeck(
        kafka_bootstrap, "dlq", "redrive", dlq, "--all", "--force", "--dry-run"
    )
    assert code == 0, err
    assert f"would redrive {dlq}:{position}" in out


async def test_redriven_record_keeps_key_and_headers_and_says_where_it_came_from(
    kafka_bootstrap: str,
    topic_names: TopicNames,
    producer: EventProducer,
) -> None:
    """Without services: the DLQ record written by hand, the redriven copy read back."""

    dlq = dlq_topic(topic_names.payments)
    headers = [
        ("dlq-reason", b"unknown event type"),
        ("dlq-original-topic", topic_names.payments.encode()),
        ("dlq-original-partition", b"2"),
        ("dlq-original-offset", b"7"),
        ("dlq-service", b"payment"),
        ("trace", b"abc"),
    ]
    await producer.send_many([(dlq, b"ord-k", b'{"type": "Teleport"}', headers)])
    kafka = KafkaConnection(kafka_bootstrap)
    [letter] = await read_dead_letters(kafka, dlq)
    assert (letter.reason, letter.service, letter.original_offset) == (
        "unknown event type",
        "payment",
        7,
    )
    report = await redrive(kafka, dlq, None)
    assert [r.partition for r in report.sent] == [2]
    [copy] = await _read_all(kafka_bootstrap, topic_names.payments, 1)
    assert copy.partition == 2
    assert copy.key == b"ord-k"
    assert copy.value == b'{"type": "Teleport"}'
    assert dict(copy.headers) == {
        "trace": b"abc",
        REDRIVEN_FROM: f"{dlq}:{letter.partition}:{letter.offset}".encode(),
    }
    again = await redrive(kafka, dlq, None)
    assert again.sent == ()
    assert again.skipped == (letter.position,)


async def test_mistakes_are_one_line_errors(
    kafka_bootstrap: str, topic_names: TopicNames, producer: EventProducer
) -> None:
    dlq = dlq_topic(topic_names.inventory)
    await producer.send_many([(dlq, b"k", b"{}", [("dlq-reason", b"r")])])
    cases = [
        (("dlq", "list", topic_names.prefix + "nope.dlq"), "no topic"),
        (("dlq", "list", topic_names.inventory), "is not a dead-letter topic"),
        (("dlq", "redrive", dlq, "--offset", "0:x"), "is not PARTITION:OFFSET"),
        (("dlq", "redrive", dlq, "--offset", "0:999"), f"no record at 0:999 in {dlq}"),
    ]
    code, out, err = await orderdeck(
        kafka_bootstrap, "dlq", "redrive", dlq, "--all", "--value-file", "-", stdin=b"nope"
    )
    assert code == 1
    assert "the value from stdin is not JSON" in err
    for args, message in cases:
        code, out, err = await orderdeck(kafka_bootstrap, *args)
        assert code == 1, (args, out, err)
        assert message in err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    code, out, err = await orderdeck(kafka_bootstrap, "dlq", "list")
    assert code == 0, err
    assert any(line.split() == [dlq, "1"] for line in out.splitlines())
    code, out, err = await orderdeck(kafka_bootstrap, "dlq", "list", dlq)
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["POSITION", "ORIGINAL", "SERVICE", "REDRIVEN", "REASON"]
    assert row.split()[1:] == [f"{topic_names.inventory}:-:-", "-", "no", "r"]


async def test_two_racing_redrives_send_a_record_once(
    kafka_bootstrap: str, topic_names: TopicNames, producer: EventProducer
) -> None:
    dlq = dlq_topic(topic_names.notifications)
    headers = [("dlq-original-topic", topic_names.notifications.encode())]
    await producer.send_many([(dlq, b"ord-r", b"{}", headers)])
    kafka = KafkaConnection(kafka_bootstrap)
    outcomes = await asyncio.gather(
        redrive(kafka, dlq, None), redrive(kafka, dlq, None), return_exceptions=True
    )
    sent = [o for o in outcomes if not isinstance(o, BaseException) and o.sent]
    assert len(sent) == 1, outcomes
    # The loser either saw the winner's memo or was fenced before it could commit.
    for other in outcomes:
        if other is not sent[0]:
            assert isinstance(other, DeadLetterError) or other.skipped, outcomes
    # The committed records (a fenced send was aborted, never committed). A commit's markers
    # reach the partitions a moment after the redrive returns, and until then a read_committed
    # reader's end offset stops before the record: read again until it is there.
    copies: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not copies and loop.time() < deadline:
        copies = await read_committed_records(kafka, topic_names.notifications, 3, suffix="test")
    assert [c.key for c in copies] == [b"ord-r"]
