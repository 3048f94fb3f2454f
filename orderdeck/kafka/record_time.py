"""When were the records at the groups' committed offsets written? (the one-shot lag-time fallback)

A single ``orderdeck groups`` run has no history of log-end samples to interpolate in, but the
record waiting at a committed offset carries its own timestamp: its age is how far behind the
group is in time. One fetch per lagging partition, outside any group, so nothing is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from orderdeck.kafka.clients import new_consumer
from orderdeck.kafka.connection import KafkaConnection

FETCH_TIMEOUT = 10.0
log = logging.getLogger(__name__)


async def record_timestamps(
    kafka: KafkaConnection,
    offsets: Mapping[tuple[str, int], int],
    timeout: float = FETCH_TIMEOUT,  # noqa: ASYNC109 - one deadline for all partitions
) -> dict[tuple[str, int], float]:
    """Per (topic, partition) the epoch-seconds timestamp of the first record from its offset on.

    An offset whose record retention has deleted gives the oldest record still kept (the
    consumer resets to the earliest). Partitions that cannot be read before the deadline, or at
    all (no READ permission on the topic: describing groups needs less), are left out, and the
    caller reports their lag time as unknown: lag seconds are an extra, never a reason for
    ``orderdeck groups`` to fail.
    """
    if not offsets:
        return {}
    consumer = new_consumer(
        kafka,
        client_suffix="lag-time",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=64 * 1024,
    )
    found: dict[tuple[str, int], float] = {}
    try:
        await asyncio.wait_for(consumer.start(), timeout)
        partitions = {TopicPartition(t, p): o for (t, p), o in offsets.items()}
        consumer.assign(list(partitions))
        for tp, offset in partitions.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while len(found) < len(partitions) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                key = (tp.topic, tp.partition)
                if records and key not in found:
                    found[key] = records[0].timestamp / 1000.0
                    consumer.pause(tp)  # one record each is all we need
    except (KafkaError, TimeoutError) as exc:
        log.debug("record timestamps: %s (%d of %d read)", exc, len(found), len(offsets))
    finally:
        await asyncio.shield(consumer.stop())
    return found
