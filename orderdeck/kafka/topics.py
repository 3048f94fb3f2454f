"""The pipeline's topics and their dead-letter topics, created idempotently with the admin API.

Creation is "make sure it is there": a topic that exists with at least the partitions we need
is accepted as is, one with fewer is reported (never silently used — the per-order ordering
and the consumer-scaling story both assume the partition count), and only the missing ones
are created. The call returns once every topic has a leader for each partition, so the
caller can produce at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, for_code

from orderdeck.errors import KafkaUnavailableError, OrderdeckError
from orderdeck.events import TopicNames
from orderdeck.kafka.admin import list_latest, partition_leaders
from orderdeck.kafka.clients import new_admin, new_consumer
from orderdeck.kafka.connection import KafkaConnection

_TOPIC_ALREADY_EXISTS = 36
#: Copies of each partition on a cluster of three or more brokers, and how many must have a
#: write before it is acknowledged.
FULL_REPLICATION = 3
FULL_MIN_INSYNC = 2
_REQUEST_TIMEOUT_MS = 15_000


class TopicError(OrderdeckError):
    """A topic could not be created or does not have the shape orderdeck needs."""


@dataclass(frozen=True)
class TopicReport:
    """What ``ensure_topics`` found and did."""

    topics: tuple[str, ...]
    created: tuple[str, ...]
    existing: tuple[str, ...]
    partitions: Mapping[str, int]


@dataclass(frozen=True)
class TopicInfo:
    """One topic's partition count and the end (next) offset of each partition."""

    name: str
    partitions: int
    end_offsets: tuple[int, ...]

    @property
    def records(self) -> int:
        """Sum of the end offsets: records ever written (ignoring retention)."""
        return sum(self.end_offsets)


def replication_for(brokers: int) -> int:
    """How many copies a topic gets on a cluster of ``brokers``: 3 from three brokers up,
    else one per broker (see :meth:`TopicAdmin.cluster_replication`)."""
    return max(1, min(FULL_REPLICATION, brokers))


def replication_configs(replication: int) -> dict[str, str]:
    """The topic configs that go with ``replication`` copies.

    With three copies a write must reach two before it is acknowledged (acks=all), so one
    lost broker loses nothing and two lost refuse writes instead of keeping one copy.
    """
    return {"min.insync.replicas": str(FULL_MIN_INSYNC)} if replication >= 3 else {}


class TopicAdmin:
    """A connected admin client that makes sure topics exist; reusable across calls."""

    def __init__(self, kafka: KafkaConnection, *, client_suffix: str = "topics") -> None:
        self.kafka = kafka
        self._admin = new_admin(
            kafka,
            client_suffix=client_suffix,
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
        )

    async def start(self) -> None:
        """Connect; raises KafkaUnavailableError when no bootstrap server answers."""
        try:
            await self._admin.start()
        except (KafkaConnectionError, OSError) as exc:
            await self._admin.close()
            raise KafkaUnavailableError(
                f"cannot reach Kafka at {self.kafka.bootstrap_servers}: {exc}"
            ) from None

    async def close(self) -> None:
        """Disconnect."""
        await self._admin.close()

    async def __aenter__(self) -> TopicAdmin:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def partition_counts(self) -> dict[str, int]:
        """Every topic of the cluster with its partition count (only fully led topics)."""
        # Asking for all topics (not by name): a named Metadata request may auto-create them.
        topics: list[dict[str, Any]] = await self._admin.describe_topics()
        counts: dict[str, int] = {}
        for topic in topics:
            partitions = topic.get("partitions") or []
            if topic.get("error_code", 0) == 0 and partitions:
                led = all(p.get("leader", -1) >= 0 for p in partitions)
                counts[topic["topic"]] = len(partitions) if led else 0
        return counts

    async def ensure(
        self,
        topics: Sequence[str],
        partitions: int = 3,
        replication_factor: int | None = 1,
        wait_s: float = 30.0,
    ) -> TopicReport:
        """Create the missing ``topics``; raise TopicError for ones with too few partitions.

        ``replication_factor=None`` takes it from the cluster (:meth:`cluster_replication`).
        """
        existing = await self.partition_counts()
        self._check_partitions(topics, existing, partitions)
        missing = [t for t in topics if t not in existing]
        if replication_factor is None and missing:
            replication_factor = await self.cluster_replication()
        replicas = replication_factor or 1
        created = await self._create(missing, partitions, replicas) if missing else []
        counts = await self._wait_led(topics, wait_s)
        # Checked again: a topic created by someone else a moment ago shows up only now.
        self._check_partitions(topics, counts, partitions)
        return TopicReport(
            topics=tuple(topics),
            created=tuple(created),
            existing=tuple(t for t in topics if t not in created),
            partitions={t: counts[t] for t in topics},
        )

    @staticmethod
    def _check_partitions(topics: Sequence[str], counts: Mapping[str, int], wanted: int) -> None:
        too_small = [(t, counts[t]) for t in topics if 0 < counts.get(t, 0) < wanted]
        if too_small:
            listed = ", ".join(f"{name} has {count}" for name, count in too_small)
            raise TopicError(
                f"topics with fewer than {wanted} partitions: {listed}; add partitions "
                "(kafka-topics --alter --partitions) or delete them so orderdeck recreates them"
            )

    async def delete(self, topics: Sequence[str]) -> None:
        """Delete ``topics``; ones that do not exist are ignored."""
        try:
            await self._admin.delete_topics(list(topics))
        except KafkaError as exc:
            raise TopicError(
                f"could not delete topics on {self.kafka.bootstrap_servers}: {exc}"
            ) from None

    async def cluster_replication(self) -> int:
        """The replication factor the pipeline's topics get here: 3 copies where there are
        three brokers or more (the local cluster of ``kafka start --brokers 3``), else one
        per broker."""
        brokers = await self._admin.describe_cluster()
        return replication_for(len(brokers.get("brokers") or ()))

    async def _create(self, topics: list[str], partitions: int, replication: int) -> list[str]:
        configs = replication_configs(replication)
        new = [
            NewTopic(
                t,
                num_partitions=partitions,
                replication_factor=replication,
                topic_configs=configs,
            )
            for t in topics
        ]
        try:
            response = await self._admin.create_topics(new)
        except KafkaError as exc:
            raise TopicError(
                f"could not create topics on {self.kafka.bootstrap_servers}: {exc}"
            ) from None
        created = []
        for entry in response.topic_errors:
            name, code = entry[0], entry[1]
            message = entry[2] if len(entry) > 2 and entry[2] else ""
            if code == 0:
                created.append(name)
            elif code != _TOPIC_ALREADY_EXISTS:
                reason = for_code(code).__name__
                raise TopicError(f"could not create topic {name}: {reason} {message}".strip())
        return [t for t in topics if t in created]

    async def wait_for_group_coordinators(
        self, groups: Sequence[str], wait_s: float = 30.0
    ) -> None:
        """Wait until the broker names a coordinator for each consumer group.

        On a fresh broker the first FindCoordinator request creates ``__consumer_offsets``,
        and until its partitions are loaded every consumer that tries to join logs
        GroupCoordinatorNotAvailable errors. Waiting here keeps that noise out of the logs
        and makes "services running" mean "members of their groups" sooner.
        """
        deadline = time.monotonic() + wait_s
        pending = list(groups)
        while pending:
            still: list[str] = []
            for group in pending:
                try:
                    await self._admin.find_coordinator(group)
                except KafkaError:
                    still.append(group)
            pending = still
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise TopicError(f"no group coordinator in time for: {', '.join(pending)}")
            await asyncio.sleep(0.1)

    async def _wait_led(self, topics: Sequence[str], wait_s: float) -> dict[str, int]:
        """Wait until every partition of ``topics`` has a leader that serves ListOffsets.

        Metadata can name a new partition's leader a moment before that broker answers
        ListOffsets for it; until then lag and log-end readings would leave it out.
        """
        deadline = time.monotonic() + wait_s
        while True:
            # A leaderless partition is left out of the ListOffsets answers as well.
            leaders = await partition_leaders(self._admin, topics)
            wanted = {(t, p) for t, ps in leaders.items() for p in ps}
            served = await list_latest(self._admin, wanted, leaders)
            unserved = {t for t, p in wanted - served.keys()}
            pending = [t for t in topics if not leaders.get(t) or t in unserved]
            if not pending:
                return {t: len(leaders[t]) for t in topics}
            if time.monotonic() >= deadline:
                raise TopicError(f"topics not led and serving in time: {', '.join(pending)}")
            await asyncio.sleep(0.05)


async def ensure_topics(
    kafka: KafkaConnection,
    names: TopicNames = TopicNames(),  # noqa: B008 - frozen dataclass, safe as a default
    partitions: int = 3,
    replication_factor: int | None = None,
) -> TopicReport:
    """Make sure the four pipeline topics and their ``.dlq`` topics exist; idempotent.

    ``replication_factor=None``: 3 (with ``min.insync.replicas=2``) on three brokers or
    more, else the broker count.

    Returns once the topics have partition leaders and the services' consumer groups have a
    coordinator, so consumers started next join their groups at once.

    Raises TopicError when one exists with fewer than ``partitions`` partitions, and
    KafkaUnavailableError when the cluster cannot be reached.
    """
    async with TopicAdmin(kafka) as admin:
        report = await admin.ensure(names.all(), partitions, replication_factor)
        # Each service's group is named after its inbox topic.
        await admin.wait_for_group_coordinators(names.pipeline())
        return report


async def describe_topics(kafka: KafkaConnection, topics: Sequence[str]) -> list[TopicInfo]:
    """Partition counts and end offsets of ``topics`` (missing topics are left out)."""
    async with TopicAdmin(kafka, client_suffix="topics-list") as admin:
        counts = await admin.partition_counts()
    present = [t for t in topics if counts.get(t, 0) > 0]
    if not present:
        return []
    consumer = new_consumer(
        kafka,
        client_suffix="topics-list",
        enable_auto_commit=False,
        request_timeout_ms=_REQUEST_TIMEOUT_MS,
    )
    try:
        await consumer.start()
    except (KafkaConnectionError, OSError) as exc:
        await consumer.stop()
        raise KafkaUnavailableError(
            f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}"
        ) from None
    try:
        partitions = [TopicPartition(t, p) for t in present for p in range(counts[t])]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return [
        TopicInfo(t, counts[t], tuple(ends[TopicPartition(t, p)] for p in range(counts[t])))
        for t in present
    ]
