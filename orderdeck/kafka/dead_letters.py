"""Dead-letter topics you can act on: count them, read them, redrive their records.

The services dead-letter a poison record to ``<topic>.dlq`` with ``dlq-*`` headers saying why,
where it came from and which service gave up on it (``services/batch.py``). This module reads
those topics back:

* counts come from the topics' offsets (log-end minus log-start per partition), so they are
  the same for every process and survive restarts, unlike a count of what one run saw;
* a DLQ's records are read from the beginning up to the end offsets taken at the start, so a
  listing is a bounded read, not a tail;
* a redrive produces the record to its original topic and partition with the original key and
  headers (the ``dlq-*`` ones dropped) plus ``dlq-redriven-from: <dlq>:<partition>:<offset>``,
  optionally with an edited value that must be JSON.

A record redriven once is remembered in the compacted topic :data:`MEMORY_TOPIC` (key
``<dlq>:<partition>:<offset>``), written in the same Kafka transaction as the redriven record:
either both are visible or neither, so a crash between the two cannot redrive a record twice or
remember one that was never sent. The memory is read with ``read_committed`` and consulted by
every process, so a second redrive is refused without ``force``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError

from orderdeck.errors import OrderdeckError
from orderdeck.events import DLQ_SUFFIX
from orderdeck.kafka.aiokafka_compat import retrieve_transaction_failure
from orderdeck.kafka.clients import new_admin, new_consumer, new_producer
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.topics import replication_configs, replication_for

#: The compacted topic that remembers which dead letters were redriven.
MEMORY_TOPIC = "orderdeck-dlq-redrives"
#: The header a redriven record carries: the DLQ position it came from.
REDRIVEN_FROM = "dlq-redriven-from"
#: How long one bounded read of a topic may take before it is reported as stuck.
READ_TIMEOUT_S = 30.0
_TOPIC_ALREADY_EXISTS = 36


class DeadLetterError(OrderdeckError):
    """A DLQ request that cannot be carried out (unknown topic, bad offset, bad value)."""


@dataclass(frozen=True)
class DeadLetter:
    """One record of a DLQ with what its ``dlq-*`` headers say about it."""

    dlq: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    redriven: bool

    @property
    def position(self) -> str:
        """``<dlq>:<partition>:<offset>``, the record's name in the redrive memory."""
        return f"{self.dlq}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` as text, or None."""
        found = [v for k, v in self.headers if k == name]
        return found[-1].decode(errors="replace") if found else None

    @property
    def reason(self) -> str:
        return self.header("dlq-reason") or ""

    @property
    def service(self) -> str:
        return self.header("dlq-service") or ""

    @property
    def original_topic(self) -> str:
        """Where the record came from; the DLQ's name without ``.dlq`` when no header says."""
        return self.header("dlq-original-topic") or self.dlq.removesuffix(DLQ_SUFFIX)

    @property
    def original_partition(self) -> int | None:
        text = self.header("dlq-original-partition")
        return int(text) if text and text.isdigit() else None

    @property
    def original_offset(self) -> int | None:
        text = self.header("dlq-original-offset")
        return int(text) if text and text.isdigit() else None

    def to_json(self) -> dict[str, Any]:
        """The record for ``--json`` output (value as text, key as text)."""
        return {
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key.decode(errors="replace") if self.key is not None else None,
            "value": self.value.decode(errors="replace") if self.value is not None else None,
            "reason": self.reason,
            "originalTopic": self.original_topic,
            "originalPartition": self.original_partition,
            "originalOffset": self.original_offset,
            "service": self.service,
            "redriven": self.redriven,
        }


@dataclass(frozen=True)
class Redriven:
    """One dead letter a redrive sent (or, for a dry run, would send) and where to."""

    source: str
    topic: str
    partition: int | None  # None: the key's partition, known once sent
    offset: int | None  # None for a dry run


@dataclass(frozen=True)
class RedriveReport:
    """What one redrive did: the records sent and the ones skipped as redriven before."""

    sent: tuple[Redriven, ...]
    skipped: tuple[str, ...]
    dry_run: bool


def parse_position(text: str) -> tuple[int, int]:
    """``P:O`` as (partition, offset); a DeadLetterError naming the text otherwise."""
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise DeadLetterError(f"--offset {text!r} is not PARTITION:OFFSET (e.g. 0:12)")
    return int(partition), int(offset)


def check_json(value: bytes, where: str) -> bytes:
    """``value`` unchanged if it is JSON; a DeadLetterError saying where and why otherwise."""
    try:
        json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeadLetterError(f"the value from {where} is not JSON: {exc}") from None
    return value


async def _partition_counts(kafka: KafkaConnection) -> dict[str, int]:
    admin = new_admin(kafka, client_suffix="dlq-admin")
    await admin.start()
    try:
        topics: list[dict[str, Any]] = await admin.describe_topics()
    finally:
        await admin.close()
    return {
        t["topic"]: len(t.get("partitions") or [])
        for t in topics
        if t.get("error_code", 0) == 0 and t.get("partitions")
    }


async def dlq_counts(kafka: KafkaConnection, topics: Sequence[str] | None = None) -> dict[str, int]:
    """Records held by each DLQ (every ``*.dlq`` topic, or ``topics``), from its offsets."""
    counts = await _partition_counts(kafka)
    wanted = sorted(topics) if topics is not None else sorted(t for t in counts if _is_dlq(t))
    for name in wanted:
        if name not in counts:
            raise DeadLetterError(f"no topic {name!r} on {kafka.bootstrap_servers}")
    if not wanted:
        return {}
    consumer = new_consumer(kafka, client_suffix="dlq-counts", enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in wanted for p in range(counts[t])]
        starts = await consumer.beginning_offsets(parts)
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    totals = dict.fromkeys(wanted, 0)
    for tp in parts:
        totals[tp.topic] += ends[tp] - starts[tp]
    return totals


def _is_dlq(topic: str) -> bool:
    return topic.endswith(DLQ_SUFFIX) and len(topic) > len(DLQ_SUFFIX)


async def read_committed_records(
    kafka: KafkaConnection, topic: str, partitions: int, *, suffix: str
) -> list[Any]:
    """Every committed record of ``topic`` up to the end offsets taken now."""
    consumer = new_consumer(
        kafka,
        client_suffix=suffix,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[Any] = []
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        pending = {tp for tp in parts if ends[tp] > starts[tp]}
        for tp in parts:
            consumer.seek(tp, starts[tp])
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                while pending:
                    batch = await consumer.getmany(*pending, timeout_ms=200)
                    for tp, recs in batch.items():
                        records.extend(r for r in recs if r.offset < ends[tp])
                    # A transaction's commit marker takes an offset but is never returned:
                    # the position, not the last record, says when the partition is read.
                    for tp in list(pending):
                        if await consumer.position(tp) >= ends[tp]:
                            pending.discard(tp)
        except TimeoutError:
            raise DeadLetterError(
                f"reading {topic} did not reach its end within {READ_TIMEOUT_S:.0f} s"
            ) from None
    finally:
        await consumer.stop()
    return records


async def _redriven(kafka: KafkaConnection, dlq: str, counts: dict[str, int]) -> set[str]:
    """The positions of ``dlq`` the memory topic says were redriven."""
    if MEMORY_TOPIC not in counts:
        return set()
    prefix = f"{dlq}:"
    remembered: set[str] = set()
    for record in await read_committed_records(
        kafka, MEMORY_TOPIC, counts[MEMORY_TOPIC], suffix="dlq-memory"
    ):
        key = record.key.decode() if record.key else ""
        if not key.startswith(prefix):
            continue
        if record.value is None:  # a tombstone: forgotten
            remembered.discard(key)
        else:
            remembered.add(key)
    return remembered


async def read_dead_letters(kafka: KafkaConnection, dlq: str) -> list[DeadLetter]:
    """Every record ``dlq`` holds now, oldest first per partition, marked if redriven."""
    counts = await _partition_counts(kafka)
    if dlq not in counts:
        raise DeadLetterError(f"no topic {dlq!r} on {kafka.bootstrap_servers}")
    if not _is_dlq(dlq):
        raise DeadLetterError(f"{dlq!r} is not a dead-letter topic (its name ends in {DLQ_SUFFIX})")
    records = await read_committed_records(kafka, dlq, counts[dlq], suffix="dlq-read")
    remembered = await _redriven(kafka, dlq, counts)
    letters = [
        DeadLetter(
            dlq=dlq,
            partition=r.partition,
            offset=r.offset,
            key=r.key,
            value=r.value,
            headers=tuple((k, bytes(v)) for k, v in (r.headers or ())),
            redriven=f"{dlq}:{r.partition}:{r.offset}" in remembered,
        )
        for r in records
    ]
    letters.sort(key=lambda d: (d.partition, d.offset))
    return letters


async def _ensure_memory_topic(kafka: KafkaConnection) -> None:
    admin = new_admin(kafka, client_suffix="dlq-admin")
    await admin.start()
    try:
        # As many copies as the pipeline's topics: on three brokers the record of what was
        # re-driven must survive a lost broker, as the dead letters themselves do.
        brokers = await admin.describe_cluster()
        replication = replication_for(len(brokers.get("brokers") or ()))
        topic = NewTopic(
            MEMORY_TOPIC,
            num_partitions=1,
            replication_factor=replication,
            topic_configs={"cleanup.policy": "compact", **replication_configs(replication)},
        )
        response = await admin.create_topics([topic])
    finally:
        await admin.close()
    for entry in response.topic_errors:
        if entry[1] not in (0, _TOPIC_ALREADY_EXISTS):
            raise DeadLetterError(f"could not create {MEMORY_TOPIC}: error code {entry[1]}")


def select(
    letters: Sequence[DeadLetter], positions: Sequence[tuple[int, int]] | None
) -> list[DeadLetter]:
    """The letters at ``positions`` (all for None); a DeadLetterError for one not there."""
    if positions is None:
        return list(letters)
    by_position = {(d.partition, d.offset): d for d in letters}
    chosen: list[DeadLetter] = []
    for partition, offset in positions:
        letter = by_position.get((partition, offset))
        if letter is None:
            dlq = letters[0].dlq if letters else "the DLQ"
            raise DeadLetterError(f"no record at {partition}:{offset} in {dlq}")
        if letter not in chosen:
            chosen.append(letter)
    return chosen


async def redrive(
    kafka: KafkaConnection,
    dlq: str,
    positions: Sequence[tuple[int, int]] | None,
    *,
    value: bytes | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> RedriveReport:
    """Send the chosen dead letters back to their original topic, remembered durably.

    ``positions`` None means every record of ``dlq``. ``value`` replaces the value (one record
    only: an edit is made for a record). Records redriven before are skipped unless ``force``.
    """
    letters = select(await read_dead_letters(kafka, dlq), positions)
    if value is not None and len(letters) != 1:
        raise DeadLetterError(f"an edited value needs exactly one record, not {len(letters)}")
    skipped = tuple(d.position for d in letters if d.redriven and not force)
    todo = [d for d in letters if force or not d.redriven]
    if dry_run or not todo:
        sent = tuple(
            Redriven(d.position, d.original_topic, _target_partition(d), None) for d in todo
        )
        return RedriveReport(sent, skipped, dry_run)
    await _ensure_memory_topic(kafka)
    producer = new_producer(
        kafka,
        client_suffix="dlq-redrive",
        transactional_id=f"orderdeck-dlq-redrive-{dlq}",
        enable_idempotence=True,
        acks="all",
    )
    await producer.start()
    try:
        if not force:
            # Starting the producer fenced any redrive of this DLQ still under way elsewhere
            # (same transactional id), so the memory read now is the last word: two processes
            # racing cannot both send a record.
            counts = await _partition_counts(kafka)
            remembered = await _redriven(kafka, dlq, counts)
            skipped += tuple(d.position for d in todo if d.position in remembered)
            todo = [d for d in todo if d.position not in remembered]
            if not todo:
                return RedriveReport((), skipped, dry_run)
        async with producer.transaction():
            # Everything is queued first and awaited together: one round trip, not one each.
            deliveries: list[asyncio.Future[Any]] = [
                await producer.send(
                    letter.original_topic,
                    value if value is not None else letter.value,
                    key=letter.key,
                    partition=_target_partition(letter),
                    headers=_redrive_headers(letter),
                )
                for letter in todo
            ]
            metas = await _all_delivered(deliveries)
            memos: list[asyncio.Future[Any]] = [
                await producer.send(
                    MEMORY_TOPIC,
                    _memo(meta, edited=value is not None),
                    key=letter.position.encode(),
                )
                for letter, meta in zip(todo, metas, strict=True)
            ]
            await _all_delivered(memos)
        results = [
            Redriven(letter.position, meta.topic, meta.partition, meta.offset)
            for letter, meta in zip(todo, metas, strict=True)
        ]
    except KafkaError as exc:
        retrieve_transaction_failure(producer)
        raise DeadLetterError(f"redrive of {dlq} failed, nothing was sent: {exc}") from None
    finally:
        await producer.stop()
    return RedriveReport(tuple(results), skipped, dry_run)


async def _all_delivered(deliveries: list[asyncio.Future[Any]]) -> list[Any]:
    """Every delivery's metadata; the first failure raised once all are retrieved.

    A fenced producer fails every pending send: each exception is retrieved here, so none is
    reported later as "Future exception was never retrieved".
    """
    results = await asyncio.gather(*deliveries, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _memo(meta: Any, *, edited: bool) -> bytes:
    """The memory topic's value: when, to where, and whether the value was edited."""
    return json.dumps(
        {
            "redrivenAt": datetime.now(UTC).isoformat(),
            "to": f"{meta.topic}:{meta.partition}:{meta.offset}",
            "edited": edited,
        }
    ).encode()


def _target_partition(letter: DeadLetter) -> int | None:
    """The partition the record was read from (its key's partition), else the key decides."""
    return letter.original_partition


def _redrive_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    kept = [(k, v) for k, v in letter.headers if not k.startswith("dlq-")]
    return [*kept, (REDRIVEN_FROM, letter.position.encode())]
