"""How close is the window's lag time to the truth? (issue 16 item 7, accuracy half)

    .venv/bin/python bench/lag_time.py [--bootstrap-servers H:P] [--seconds 40] [--rate 200]

A producer writes ``--rate`` records/s (round-robin over 3 partitions, CreateTime = send time)
while a consumer group keeps up, is paused for the middle third of the run, and resumes. Every
second the group is described (``GroupInspector``, as the groups poller does) and two lag
times are computed per partition:

- **window**: ``kafka.lag_time`` over the last 60 log-end samples (kafka-lag-exporter's method);
- **truth**: now minus the timestamp of the record at the committed offset (``record_time``).

Printed: median and p90 of |window - truth| over all lagging (partition, second) pairs, the
largest truth seen (so the pause is visibly measured), and the share of samples with a window
figure. Without ``--bootstrap-servers`` the bench runs its own broker and stops it at the end.
The CPU half of item 7 (groups view with 50 x 12 partitions) is ``bench/groups_view_cpu.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from orderdeck.errors import KafkaUnavailableError  # noqa: E402
from orderdeck.kafka.admin import GroupInspector  # noqa: E402
from orderdeck.kafka.connection import KafkaConnection  # noqa: E402
from orderdeck.kafka.lag_time import PartitionSamples  # noqa: E402
from orderdeck.kafka.local import LocalKafka  # noqa: E402
from orderdeck.kafka.record_time import record_timestamps  # noqa: E402
from orderdeck.kafka.topics import TopicAdmin  # noqa: E402


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
    with tempfile.TemporaryDirectory(prefix="orderdeck-bench-lag-") as tmp:
        kafka = LocalKafka(Path(tmp), port=free_port())
        kafka.start(timeout=120)
        try:
            yield kafka.bootstrap_servers
        finally:
            kafka.stop()


async def produce(bootstrap: str, topic: str, rate: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    await producer.start()
    try:
        started, sent = time.monotonic(), 0
        while True:
            await producer.send(topic, b"x", partition=sent % 3)
            sent += 1
            ahead = started + sent / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, group: str, paused: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_commit_interval_ms=500
    )
    await consumer.start()
    try:
        while True:
            if paused.is_set():
                consumer.pause(*consumer.assignment())
            else:
                consumer.resume(*consumer.assignment())
            await consumer.getmany(timeout_ms=200)
    finally:
        await consumer.stop()


async def until_committing(inspector: GroupInspector, group: str, limit: float = 90) -> None:
    """Wait (bounded) for a fresh broker's coordinator and the group's first commits."""
    deadline = time.monotonic() + limit
    while True:
        with contextlib.suppress(KafkaUnavailableError):
            (snapshot,) = await inspector.describe([group])
            if len(snapshot.partitions) == 3 and all(p.committed for p in snapshot.partitions):
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"group {group} did not start committing within {limit:g} s")
        await asyncio.sleep(0.5)


async def measure(bootstrap: str, seconds: int, rate: float) -> None:
    kafka = KafkaConnection(bootstrap)
    topic = f"bench-lag-{uuid.uuid4().hex[:6]}"
    group = f"{topic}-group"
    errors: list[float] = []
    truths: list[float] = []
    lagging = with_window = 0
    async with TopicAdmin(kafka) as admin:
        await admin.ensure([topic], partitions=3)
    paused = asyncio.Event()
    jobs = [
        asyncio.create_task(produce(bootstrap, topic, rate)),
        asyncio.create_task(consume(bootstrap, topic, group, paused)),
    ]
    tables: dict[int, PartitionSamples] = {}
    try:
        async with GroupInspector(kafka) as inspector:
            await until_committing(inspector, group)
            for second in range(seconds):
                paused_now = seconds // 3 <= second < 2 * seconds // 3
                if paused_now:
                    paused.set()
                else:
                    paused.clear()
                (snapshot,) = await inspector.describe([group])
                now = time.time()
                behind: dict[tuple[str, int], int] = {}
                window: dict[int, float | None] = {}
                for p in snapshot.partitions:
                    if p.log_end is None:
                        continue
                    table = tables.setdefault(p.partition, PartitionSamples(60))
                    table.add(p.log_end, p.committed, now)
                    if p.lag and p.committed is not None:
                        behind[(p.topic, p.partition)] = p.committed
                        window[p.partition] = table.lag_seconds()
                stamps = await record_timestamps(kafka, behind)
                for (_, partition), stamp in stamps.items():
                    truth = max(0.0, now - stamp)
                    lagging += 1
                    figure = window.get(partition)
                    if figure is not None:
                        with_window += 1
                        errors.append(abs(figure - truth))
                        truths.append(truth)
                await asyncio.sleep(max(0.0, 1.0 - (time.time() - now)))
    finally:
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
    if not errors:
        print("no lagging samples with a window figure")
        return
    errors.sort()
    p90 = errors[min(len(errors) - 1, int(0.9 * len(errors)))]
    print(f"| lag-time error at {rate:g} records/s, {seconds} s, paused for the middle third |")
    print(f"median |window - truth| = {statistics.median(errors):.3f} s, p90 = {p90:.3f} s")
    print(f"largest truth = {max(truths):.1f} s; {with_window}/{lagging} lagging samples dated")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    with broker(args.bootstrap_servers) as bootstrap:
        asyncio.run(measure(bootstrap, args.seconds, args.rate))


if __name__ == "__main__":
    main()
