"""Benchmark the local Apache Kafka: start-up time, idle memory, aiokafka throughput.

    .venv/bin/python bench/kafka_broker.py [--starts 5] [--runs 3] [--records 200000]

Figures (medians), printed as a markdown table and saved to bench/results/kafka_broker.md:

- ``orderdeck kafka start`` to ready with a warm jar cache, a fresh data dir each time
  (wall clock of the command: storage format, JVM start, metadata answer, topic creation);
  and the restart of an existing data dir (no format).
- the idle broker's resident memory (VmRSS) a few seconds after start.
- aiokafka produce and consume rates against it: 200-byte values keyed like order ids,
  acks=all, idempotence on, linger 5 ms — the ceiling the pipeline works under.

Runs its own broker on free ports in a temporary directory and stops it at the end.
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
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.local import KAFKA_VERSION, LocalKafka
from orderdeck.kafka.topics import TopicAdmin

RESULTS = Path(__file__).resolve().parent / "results" / "kafka_broker.md"
VALUE_SIZE = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def time_starts(count: int, root: Path) -> tuple[list[float], list[float]]:
    """Wall-clock seconds of ``orderdeck kafka start``: fresh data dirs, then restarts."""
    fresh: list[float] = []
    restart: list[float] = []
    for i in range(count):
        data_dir = root / f"start-{i}"
        port = str(free_port())
        began = time.monotonic()
        done = cli("kafka", "start", "--port", port, "--data-dir", str(data_dir))
        fresh.append(time.monotonic() - began)
        assert done.stdout.splitlines()[-1] == f"127.0.0.1:{port}", done.stdout
        cli("kafka", "stop", "--data-dir", str(data_dir))
        began = time.monotonic()
        cli("kafka", "start", "--port", port, "--data-dir", str(data_dir))
        restart.append(time.monotonic() - began)
        cli("kafka", "stop", "--data-dir", str(data_dir))
    return fresh, restart


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def produce(bootstrap: str, topic: str, records: int) -> float:
    """Records/s for ``records`` sends awaited to the last ack."""
    value = os.urandom(VALUE_SIZE // 2).hex().encode()
    keys = [f"order-{uuid.uuid4()}".encode() for _ in range(5000)]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        began = time.perf_counter()
        pending = [
            await producer.send(topic, value=value, key=keys[i % len(keys)]) for i in range(records)
        ]
        await producer.flush()
        await asyncio.gather(*pending)
        return records / (time.perf_counter() - began)
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, records: int) -> float:
    """Records/s reading ``records`` from the beginning of every partition (no group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        began = time.perf_counter()
        seen = 0
        while seen < records:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(batch) for batch in batches.values())
        return records / (time.perf_counter() - began)
    finally:
        await consumer.stop()


async def throughput(bootstrap: str, runs: int, records: int) -> tuple[list[float], list[float]]:
    produced: list[float] = []
    consumed: list[float] = []
    async with TopicAdmin(KafkaConnection(bootstrap)) as admin:
        for run in range(runs):
            topic = f"bench-{run}-{uuid.uuid4().hex[:6]}"
            await admin.ensure([topic], partitions=3)
            produced.append(await produce(bootstrap, topic, records))
            consumed.append(await consume(bootstrap, topic, records))
            await admin.delete([topic])
    return produced, consumed


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    java_line = java.splitlines()[0] if java else "java ?"
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python "
        f"{platform.python_version()}, {java_line}, Apache Kafka {KAFKA_VERSION}"
    )


def load_average() -> str:
    """1-minute load average: other work on the box skews every figure here."""
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()

    LocalKafka(Path(".")).install()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="orderdeck-bench-") as tmp:
        root = Path(tmp)
        fresh, restart = time_starts(args.starts, root)
        kafka = LocalKafka(root / "broker", port=free_port())
        kafka.start()
        try:
            cli("kafka", "topics", "--data-dir", str(kafka.data_dir))
            time.sleep(5)  # let start-up work settle before measuring "idle"
            status = kafka.status()
            assert status is not None
            idle_rss = rss_mb(status.pid)
            produced, consumed = asyncio.run(
                throughput(kafka.bootstrap_servers, args.runs, args.records)
            )
        finally:
            kafka.stop()

    def med(values: list[float]) -> float:
        return statistics.median(values)

    rows = [
        (
            "`orderdeck kafka start` to ready, fresh data dir (format + start + 8 topics)",
            f"{med(fresh):.2f} s",
            f"median of {len(fresh)}: " + ", ".join(f"{v:.2f}" for v in fresh),
        ),
        (
            "`orderdeck kafka start` to ready, existing data dir (restart)",
            f"{med(restart):.2f} s",
            f"median of {len(restart)}: " + ", ".join(f"{v:.2f}" for v in restart),
        ),
        ("idle broker RSS", f"{idle_rss:.0f} MB", "VmRSS 5 s after start, 8 topics"),
        (
            f"aiokafka produce, {args.records:,} x {VALUE_SIZE} B, acks=all, idempotent, "
            "linger 5 ms",
            f"{med(produced):,.0f} records/s",
            f"median of {len(produced)}: " + ", ".join(f"{v:,.0f}" for v in produced),
        ),
        (
            f"aiokafka consume, {args.records:,} x {VALUE_SIZE} B, from the beginning",
            f"{med(consumed):,.0f} records/s",
            f"median of {len(consumed)}: " + ", ".join(f"{v:,.0f}" for v in consumed),
        ),
    ]
    lines = [
        "# Local Apache Kafka: start-up, memory, aiokafka throughput",
        "",
        f"Command: `.venv/bin/python bench/kafka_broker.py` — {datetime.now(UTC):%Y-%m-%d}",
        "",
        f"Machine: {machine()}",
        "",
        f"1-minute load average before / after the run: {load_before} / {load_average()}",
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
