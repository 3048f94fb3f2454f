"""A live tail of topics that never joins a consumer group.

The tail assigns itself every partition of its topics (``assign``, no ``group_id``), so it
cannot trigger a rebalance of the services' groups or commit anything: watching the system
never disturbs it. Records come back in bounded batches so a UI can render one batch per
frame, and each record carries the fields a tail shows (key, event type, order id) extracted
cheaply: the event type from the ``event-type`` header and the order id from the record key
(every pipeline record is keyed by its order id), parsing the JSON value only for records
that lack them (legacy orders, foreign producers).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from orderdeck.errors import KafkaUnavailableError, OrderdeckError
from orderdeck.events import HEADER_EVENT_TYPE
from orderdeck.kafka.admin import partition_leaders, unreachable
from orderdeck.kafka.clients import new_admin, new_consumer
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.seek_target import SeekOffset, SeekTarget

#: The broker holds a tail's fetch until this much has gathered or the wait below passed.
TAIL_FETCH_MIN_BYTES = 64 * 1024
TAIL_FETCH_MAX_WAIT_MS = 100


class UnknownTopicError(OrderdeckError):
    """A topic to tail does not exist on the cluster."""


class UnknownPartitionError(OrderdeckError):
    """A seek named a partition the tailed topics do not have."""


@dataclass(frozen=True)
class TailRecord:
    """One record as a tail shows it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    event_type: str | None
    order_id: str | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = field(default=())

    @classmethod
    def from_consumer_record(cls, record: Any) -> TailRecord:
        """Build from an aiokafka ConsumerRecord, parsing the value only when needed."""
        raw_key: bytes | None = record.key
        key = raw_key.decode("utf-8", "replace") if raw_key is not None else None
        value: bytes = record.value if record.value is not None else b""
        headers: tuple[tuple[str, bytes], ...] = tuple(record.headers or ())
        event_type = None
        for name, header in headers:
            if name == HEADER_EVENT_TYPE:
                event_type = header.decode("utf-8", "replace")
                break
        order_id = key
        if event_type is None or order_id is None:
            data = _json_object(value)
            if data is not None:
                if event_type is None:
                    event_type = _str_or_none(data.get("type"))
                if order_id is None:
                    # envelope events carry orderId; legacy orders call it id
                    order_id = _str_or_none(data.get("orderId")) or _str_or_none(data.get("id"))
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            key=key,
            event_type=event_type,
            order_id=order_id,
            value=value,
            headers=headers,
        )

    def value_text(self) -> str:
        """The value as text (undecodable bytes replaced)."""
        return self.value.decode("utf-8", "replace")

    def parsed_value(self) -> Any:
        """The value as parsed JSON, or as text when it is not JSON."""
        try:
            return json.loads(self.value)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return self.value_text()

    def pretty_json(self) -> str:
        """The value indented for reading; non-JSON values are returned as text."""
        try:
            data = json.loads(self.value)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return self.value_text()
        return json.dumps(data, indent=2, ensure_ascii=False)

    def to_json_dict(self) -> dict[str, Any]:
        """The record as ``orderdeck tail --json`` prints it (one object per line)."""
        headers: dict[str, str] = {}
        for name, value in self.headers:
            headers.setdefault(name, value.decode("utf-8", "replace"))
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp_ms,
            "key": self.key,
            "type": self.event_type,
            "orderId": self.order_id,
            "headers": headers,
            "value": self.parsed_value(),
        }


def _json_object(value: bytes) -> dict[str, Any] | None:
    if not value.startswith(b"{"):
        return None
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class TopicTail:
    """Follows topics from their end (default) or their beginning, outside any group."""

    def __init__(
        self,
        kafka: KafkaConnection,
        topics: Sequence[str],
        *,
        from_beginning: bool = False,
        client_suffix: str = "tail",
        request_timeout_ms: int = 10_000,
    ) -> None:
        if not topics:
            raise ValueError("TopicTail needs at least one topic")
        self.kafka = kafka
        self.topics: tuple[str, ...] = tuple(dict.fromkeys(topics))
        self.from_beginning = from_beginning
        self._client_suffix = client_suffix
        self._request_timeout_ms = request_timeout_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: tuple[TopicPartition, ...] = ()

    @property
    def partitions(self) -> tuple[tuple[str, int], ...]:
        """Every (topic, partition) the tail follows, once started."""
        return tuple((tp.topic, tp.partition) for tp in self._partitions)

    async def start(self) -> None:
        """Assign every partition of the topics and seek to their beginning or end.

        Raises UnknownTopicError for a topic the cluster does not have and
        KafkaUnavailableError when the cluster does not answer.
        """
        try:
            partitions = await self._discover_partitions()
        except KafkaError as exc:
            raise KafkaUnavailableError(unreachable(self.kafka.bootstrap_servers, exc)) from exc
        consumer = new_consumer(
            self.kafka,
            client_suffix=self._client_suffix,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if self.from_beginning else "latest",
            request_timeout_ms=self._request_timeout_ms,
            # A fetch returns once 64 KiB or 100 ms have gathered: at 2,000 records/s that
            # is ~10 fetches a second instead of one per few records, each a loop wake-up.
            fetch_min_bytes=TAIL_FETCH_MIN_BYTES,
            fetch_max_wait_ms=TAIL_FETCH_MAX_WAIT_MS,
        )
        try:
            await consumer.start()
            # Let aiokafka's group-less coordinator task start, so stop() can always cancel it.
            await asyncio.sleep(0)
            consumer.assign(partitions)
            if self.from_beginning:
                await consumer.seek_to_beginning(*partitions)
            else:
                await consumer.seek_to_end(*partitions)
        except BaseException as exc:
            await consumer.stop()
            if isinstance(exc, KafkaError):
                raise KafkaUnavailableError(unreachable(self.kafka.bootstrap_servers, exc)) from exc
            raise
        self._consumer = consumer
        self._partitions = tuple(partitions)

    async def _discover_partitions(self) -> list[TopicPartition]:
        """Every partition of the topics, from one metadata request that creates nothing."""
        admin = new_admin(
            self.kafka,
            client_suffix=self._client_suffix,
            request_timeout_ms=self._request_timeout_ms,
        )
        try:
            await admin.start()
            leaders = await partition_leaders(admin, self.topics)
        finally:
            await admin.close()
        missing = [t for t in self.topics if t not in leaders]
        if missing:
            raise UnknownTopicError(f"topic {', '.join(missing)} does not exist")
        return [TopicPartition(t, p) for t in self.topics for p in sorted(leaders[t])]

    async def stop(self) -> None:
        """Close the consumer; safe to call twice or after a failed start."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def __aenter__(self) -> TopicTail:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def _running(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("TopicTail is not started")
        return self._consumer

    async def seek(self, target: SeekTarget) -> dict[tuple[str, int], int]:
        """Move the tail to ``target``; returns the offset each moved partition reads next.

        An offset is kept inside each partition's log (a position past its end would make
        the consumer reset by policy, silently elsewhere). A time finds, per partition, the
        first record at or after it (``offsets_for_times``, the broker's time index); a
        partition with none is put at its end, so it shows what arrives next. A
        ``SeekOffset`` with a partition moves that partition only. Raises
        UnknownPartitionError for a partition the topics lack, KafkaUnavailableError when
        the cluster does not answer.
        """
        consumer = self._running
        try:
            if isinstance(target, SeekOffset):
                wanted = await self._offset_positions(consumer, target)
            else:
                wanted = await self._time_positions(consumer, target.timestamp_ms)
        except KafkaError as exc:
            raise KafkaUnavailableError(unreachable(self.kafka.bootstrap_servers, exc)) from exc
        for tp, offset in wanted.items():
            consumer.seek(tp, offset)
        return {(tp.topic, tp.partition): offset for tp, offset in wanted.items()}

    async def _offset_positions(
        self, consumer: AIOKafkaConsumer, target: SeekOffset
    ) -> dict[TopicPartition, int]:
        chosen = [
            tp
            for tp in self._partitions
            if target.partition is None or tp.partition == target.partition
        ]
        if not chosen:
            have = ", ".join(str(p) for p in sorted({tp.partition for tp in self._partitions}))
            raise UnknownPartitionError(
                f"partition {target.partition} does not exist in {', '.join(self.topics)} "
                f"(partitions {have})"
            )
        starts = await consumer.beginning_offsets(chosen)
        ends = await consumer.end_offsets(chosen)
        return {tp: min(max(target.offset, starts[tp]), ends[tp]) for tp in chosen}

    async def _time_positions(
        self, consumer: AIOKafkaConsumer, timestamp_ms: int
    ) -> dict[TopicPartition, int]:
        everything = list(self._partitions)
        found = await consumer.offsets_for_times({tp: timestamp_ms for tp in everything})
        ends = await consumer.end_offsets(everything)
        positions: dict[TopicPartition, int] = {}
        for tp in everything:
            hit = found.get(tp)
            positions[tp] = hit.offset if hit is not None else ends[tp]
        return positions

    async def next_batch(self, max_records: int = 500, timeout_ms: int = 200) -> list[TailRecord]:
        """Up to ``max_records`` new records, waiting at most ``timeout_ms`` for the first.

        Within a partition records come in offset order; partitions are not interleaved by
        time (a bounded batch is rendered at once anyway).
        """
        by_partition = await self._running.getmany(timeout_ms=timeout_ms, max_records=max_records)
        convert = TailRecord.from_consumer_record
        return [convert(r) for records in by_partition.values() for r in records]

    async def caught_up(self) -> bool:
        """True when every partition's position has reached its current log-end offset."""
        consumer = self._running
        if not self._partitions:
            return True
        ends = await consumer.end_offsets(list(self._partitions))
        for tp in self._partitions:
            if await consumer.position(tp) < ends[tp]:
                return False
        return True

    async def lag(self) -> int:
        """Records between the tail's positions and the log-end offsets (all partitions)."""
        consumer = self._running
        if not self._partitions:
            return 0
        ends = await consumer.end_offsets(list(self._partitions))
        total = 0
        for tp in self._partitions:
            total += max(ends[tp] - await consumer.position(tp), 0)
        return total
