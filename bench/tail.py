"""Benchmark the group-less topic tail: catch-up throughput, live latency, the CLI's JSON lines.

    .venv/bin/python bench/tail.py [--bootstrap-servers H:P] [--records 100000] [--runs 3]

Figures (medians), printed as a markdown table and saved to bench/results/tail.md:

- **catch-up**: ``TopicTail`` from the beginning of a 3-partition topic holding ``--records``
  OrderPlaced events (~330 B JSON, keyed by order id, with the event-type header), read in
  batches of 500 until all arrived: records/s, including building every TailRecord.
- **catch-up, no headers**: the same for records without headers or keys, so every value is
  parsed as JSON to find its type and order id (the slow path: legacy/foreign producers).
- **live**: a producer writes at a fixed 2,000 events/s for 10 s while the tail follows from
  the end; delivered share and latency from the record's timestamp to the tail handing it
  over (p50/p99).
- **CLI**: wall clock of ``orderdeck tail TOPIC --from-beginning --json --exit-at-end >
  /dev/null`` over the same records (process start, JSON per line, a flush per line).

Without ``--bootstrap-servers`` the bench runs its own broker on free ports in a temporary
directory and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402

from orderdeck.events import (  # noqa: E402
    LineItem,
    OrderPlaced,
    OrderPlacedPayload,
    encode,
    headers_for,
)
from orderdeck.kafka.connection import KafkaConnection  # noqa: E402
from orderdeck.kafka.local import KAFKA_VERSION, LocalKafka  # noqa: E402
from orderdeck.kafka.tail import TopicTail  # noqa: E402
from orderdeck.kafka.topics import TopicAdmin  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "tail.md"
BATCH = 500
LIVE_RATE = 2_000
LIVE_SECONDS = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    """The given cluster, or a fresh local broker for the duration of the bench."""
    if bootstrap:
        yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="orderdeck-bench-tail-") as tmp:
        kafka = LocalKafka(Path(tmp), port=free_port())
        kafka.start(timeout=120)
        try:
            yield kafka.bootstrap_servers
        finally:
            kafka.stop()


def event(i: int) -> OrderPlaced:
    order_id = f"order-{i:08d}-{uuid.uuid4().hex[:8]}"
    return OrderPlaced(
        orderId=order_id,
        correlationId=order_id,
        payload=OrderPlacedPayload(
            customerId=f"customer-{i % 97}",
            items=[LineItem(productId=f"sku-{i % 13}", quantity=1 + i % 3)],
        ),
    )


async def fill(bootstrap: str, topic: str, records: int, *, with_headers: bool) -> None:
    """Write ``records`` events as fast as the producer goes."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20)
    await producer.start()
    try:
        template = [event(i) for i in range(1000)]
        values = [encode(e) for e in template]
        for i in range(records):
            e = template[i % len(template)]
            if with_headers:
                await producer.send(
                    topic, values[i % len(values)], key=e.orderId.encode(), headers=headers_for(e)
                )
            else:
                await producer.send(topic, values[i % len(values)])
        await producer.flush()
    finally:
        await producer.stop()


async def catch_up(bootstrap: str, topic: str, records: int) -> float:
    """Records/s of a tail reading ``records`` from the beginning."""
    async with TopicTail(KafkaConnection(bootstrap), [topic], from_beginning=True) as tail:
        began = time.perf_counter()
        seen = 0
        while seen < records:
            seen += len(await tail.next_batch(max_records=BATCH, timeout_ms=1000))
        return records / (time.perf_counter() - began)


async def live(bootstrap: str, topic: str) -> tuple[float, float, float]:
    """Delivered share, p50 and p99 latency (ms) at LIVE_RATE events/s for LIVE_SECONDS."""
    total = LIVE_RATE * LIVE_SECONDS
    latencies: list[float] = []
    async with TopicTail(KafkaConnection(bootstrap), [topic]) as tail:

        async def follow() -> None:
            deadline = time.monotonic() + LIVE_SECONDS + 10
            while len(latencies) < total and time.monotonic() < deadline:
                batch = await tail.next_batch(max_records=BATCH, timeout_ms=100)
                now_ms = time.time() * 1000
                latencies.extend(now_ms - r.timestamp_ms for r in batch)

        follower = asyncio.create_task(follow())
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
        await producer.start()
        try:
            template = [event(i) for i in range(1000)]
            began = time.monotonic()
            for i in range(total):
                e = template[i % len(template)]
                await producer.send(
                    topic, encode(e), key=e.orderId.encode(), headers=headers_for(e)
                )
                ahead = began + (i + 1) / LIVE_RATE - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await producer.flush()
        finally:
            await producer.stop()
        await follower
    latencies.sort()
    p50 = latencies[len(latencies) // 2] if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
    return len(latencies) / total, p50, p99


def cli_seconds(bootstrap: str, topic: str) -> float:
    began = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "orderdeck.cli",
            "tail",
            topic,
            "--from-beginning",
            "--json",
            "--exit-at-end",
        ],
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=600,
        env={**os.environ, "ORDERDECK_BOOTSTRAP_SERVERS": bootstrap},
        cwd=ROOT,
    )
    return time.perf_counter() - began


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python "
        f"{platform.python_version()}, Apache Kafka {KAFKA_VERSION}"
    )


async def measure(bootstrap: str, records: int, runs: int) -> list[tuple[str, str, str]]:
    prefix = f"bench-tail-{uuid.uuid4().hex[:6]}"
    topics = {"headers": f"{prefix}.headers", "bare": f"{prefix}.bare", "live": f"{prefix}.live"}
    async with TopicAdmin(KafkaConnection(bootstrap)) as admin:
        await admin.ensure(list(topics.values()), partitions=3)
        try:
            await fill(bootstrap, topics["headers"], records, with_headers=True)
            await fill(bootstrap, topics["bare"], records, with_headers=False)
            fast = [await catch_up(bootstrap, topics["headers"], records) for _ in range(runs)]
            slow = [await catch_up(bootstrap, topics["bare"], records) for _ in range(runs)]
            delivered, p50, p99 = await live(bootstrap, topics["live"])
            cli = [
                await asyncio.to_thread(cli_seconds, bootstrap, topics["headers"])
                for _ in range(runs)
            ]
        finally:
            await admin.delete(list(topics.values()))

    def runs_of(values: list[float], fmt: str) -> str:
        return f"median of {len(values)}: " + ", ".join(format(v, fmt) for v in values)

    cli_rate = [records / s for s in cli]
    return [
        (
            f"`TopicTail` catch-up, {records:,} events, header + key path",
            f"{statistics.median(fast):,.0f} records/s",
            runs_of(fast, ",.0f"),
        ),
        (
            f"`TopicTail` catch-up, {records:,} events, no headers (JSON parsed)",
            f"{statistics.median(slow):,.0f} records/s",
            runs_of(slow, ",.0f"),
        ),
        (
            f"`TopicTail` live at {LIVE_RATE:,} events/s for {LIVE_SECONDS} s",
            f"{delivered:.0%} delivered, p50 {p50:.0f} ms, p99 {p99:.0f} ms",
            "latency = record timestamp to next_batch() return",
        ),
        (
            f"`orderdeck tail --from-beginning --json --exit-at-end > /dev/null`, {records:,}",
            f"{statistics.median(cli):.2f} s ({statistics.median(cli_rate):,.0f} records/s)",
            runs_of(cli, ".2f") + " s, process start included",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("ORDERDECK_BOOTSTRAP_SERVERS")
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    load = os.getloadavg()[0]
    with broker(args.bootstrap_servers) as bootstrap:
        rows = asyncio.run(measure(bootstrap, args.records, args.runs))
    where = "a running broker" if args.bootstrap_servers else "its own broker"
    lines = [
        "# Topic tail: throughput and latency",
        "",
        f"Command: `.venv/bin/python bench/tail.py {' '.join(sys.argv[1:])}`"
        f" — {datetime.now(UTC):%Y-%m-%d}",
        "",
        f"Machine: {machine()}; 1-min load average {load:.1f} at start; against {where}",
        "",
        "| figure | value | runs |",
        "|---|---|---|",
        *[f"| {name} | {value} | {detail} |" for name, value, detail in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
