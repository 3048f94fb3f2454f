"""What does the groups view cost with 50 groups x 12 partitions? (issue 16 item 7, CPU half)

    .venv/bin/python bench/groups_view_cpu.py [--bootstrap-servers H:P] [--seconds 20]

On its own broker (unless ``--bootstrap-servers``), 50 consumer groups get committed offsets
on one 12-partition topic (no members: commits only, which is all the view needs), then a
producer (a child process, so not counted) keeps the log ends moving. Each second the bench
does what the control center does for the Groups screen: one ``GroupInspector.describe`` of
all 50 groups (the runtime's poll), ``LagTracker.observe`` and ``groups()`` (lag seconds,
ETA, verdicts), ``LiveModel.update``, and every group panel's rendering model (head badge,
lag bars, ``describe_rows`` at 76 columns). Printed: this process's CPU time
(``time.process_time``) over the measured seconds as a share of one core (goal <= 5 %), and
the median wall time of one refresh. The broker's own CPU is not counted: it is a separate
process and is there whatever the view does.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from lag_time import broker  # noqa: E402

from orderdeck.kafka.admin import GroupInspector  # noqa: E402
from orderdeck.kafka.connection import KafkaConnection  # noqa: E402
from orderdeck.kafka.lag_tracker import LagTracker  # noqa: E402
from orderdeck.kafka.topics import TopicAdmin  # noqa: E402
from orderdeck.widgets.group_panel import describe_rows, lag_bars, verdict_badge  # noqa: E402
from orderdeck.widgets.live import LiveModel  # noqa: E402

GROUPS, PARTITIONS, WIDTH = 50, 12, 76


async def seed(bootstrap: str, topic: str, groups: list[str]) -> None:
    """Records on every partition, then one commit per group and partition (behind the end)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await producer.start()
    try:
        for i in range(PARTITIONS * 50):
            await producer.send(topic, b"x", partition=i % PARTITIONS)
        await producer.flush()
    finally:
        await producer.stop()
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    for n, group in enumerate(groups):
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
        await consumer.start()
        try:
            consumer.assign(parts)
            await consumer.commit({tp: n % 40 for tp in parts})
        finally:
            await consumer.stop()


async def keep_producing(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20)
    await producer.start()
    try:
        sent = 0
        while True:
            await producer.send(topic, b"x", partition=sent % PARTITIONS)
            sent += 1
            await asyncio.sleep(0.01)
    finally:
        await producer.stop()


def produce_in_child(bootstrap: str, topic: str) -> None:
    """The producer's own process: its CPU is the pipeline's, not the view's."""
    asyncio.run(keep_producing(bootstrap, topic))


async def measure(bootstrap: str, seconds: int) -> None:
    kafka = KafkaConnection(bootstrap)
    topic = f"bench-groups-{uuid.uuid4().hex[:6]}"
    groups = [f"{topic}-g{n:02d}" for n in range(GROUPS)]
    async with TopicAdmin(kafka) as admin:
        await admin.ensure([topic], partitions=PARTITIONS)
    await seed(bootstrap, topic, groups)
    producing = multiprocessing.Process(
        target=produce_in_child, args=(bootstrap, topic), daemon=True
    )
    producing.start()
    tracker, live = LagTracker(), LiveModel()
    refreshes: list[float] = []
    rows = 0
    try:
        async with GroupInspector(kafka) as inspector:
            await inspector.describe(groups)  # warm the coordinators, as a running app has
            cpu_start, wall_start = time.process_time(), time.monotonic()
            for _ in range(seconds):
                started = time.monotonic()
                snapshots = await inspector.describe(groups)
                tracker.observe(snapshots)
                live.update(snapshots)
                live.lag_times = tracker.groups()
                for snap in snapshots:
                    figures = live.lag_times.get(snap.group)
                    verdict_badge(figures.verdict if figures else "?")
                    lag_bars(live.lag_history.get(snap.group, ()), WIDTH)
                    rows += len(describe_rows(snap, WIDTH, figures).plain.splitlines())
                refreshes.append(time.monotonic() - started)
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            cpu = time.process_time() - cpu_start
            wall = time.monotonic() - wall_start
    finally:
        producing.terminate()
        producing.join(10)
    print(f"| groups view, {GROUPS} groups x {PARTITIONS} partitions, {seconds} refreshes |")
    print(
        f"CPU {cpu:.2f} s over {wall:.1f} s = {100 * cpu / wall:.1f} % of a core"
        " (producer not counted)"
    )
    print(f"refresh median {1000 * statistics.median(refreshes):.0f} ms; {rows} rows drawn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    with broker(args.bootstrap_servers) as bootstrap:
        asyncio.run(measure(bootstrap, args.seconds))


if __name__ == "__main__":
    main()
