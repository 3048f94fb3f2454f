"""Consumer-group snapshots: members, their partitions, committed and log-end offsets, lag.

Everything here comes from the standard Kafka admin calls the official
``kafka-consumer-groups --describe`` tool makes — ListGroups, DescribeGroups, OffsetFetch and
ListOffsets (latest) — and the rows are built by its rules, so the control center and
``orderdeck groups`` show the same numbers as that tool on any cluster:

* a row for every partition assigned to a member, owned by that member;
* a row, without owner, for every other partition the group has committed an offset for;
* ``committed`` is None where the group has no commit (the tool prints ``-``), and so is ``lag``;
* ``lag = log_end - committed``.

DescribeGroups returns each member's assignment as opaque bytes in the consumer protocol's
format, decoded by :func:`decode_assignment`. The inspector keeps its connections and caches
group coordinators, so calling :meth:`GroupInspector.describe` once a second is cheap.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest

from orderdeck.backoff import Backoff
from orderdeck.errors import KafkaUnavailableError, OrderdeckError
from orderdeck.kafka.aiokafka_compat import send_request
from orderdeck.kafka.clients import new_admin
from orderdeck.kafka.connection import KafkaConnection

#: Group states as the broker names them (classic protocol).
DEAD = "Dead"
EMPTY = "Empty"
STABLE = "Stable"

#: DescribeGroups / OffsetFetch error codes that mean "ask the (new) coordinator again".
_COORDINATOR_MOVED = frozenset({14, 15, 16})  # LOAD_IN_PROGRESS, NOT_AVAILABLE, NOT_COORDINATOR
_GROUP_ID_NOT_FOUND = 69
#: How long a group call keeps asking while no coordinator is available. A fresh broker has
#: none until it has created its offsets topic, which takes seconds on a busy machine; a
#: coordinator that moved answers again within a second.
COORDINATOR_WAIT_S = 15.0
#: Protocol types of groups the official tool lists as consumer groups ("" = commit-only group).
_CONSUMER_PROTOCOL_TYPES = frozenset({"consumer", ""})


def unreachable(bootstrap_servers: str, exc: KafkaError) -> str:
    """A one-line reason for a failed connection (aiokafka's own text lists raw addresses)."""
    if isinstance(exc, KafkaConnectionError):
        return f"cannot reach Kafka at {bootstrap_servers}"
    return f"cannot reach Kafka at {bootstrap_servers}: {exc}"


class AssignmentDecodeError(ValueError):
    """Member assignment bytes that are not in the consumer protocol's format."""


@dataclass(frozen=True)
class PartitionLag:
    """One row of ``kafka-consumer-groups --describe``.

    ``committed`` and ``lag`` are None where the group has no committed offset; ``log_end``
    is None when the partition's end offset could not be read (topic deleted, no leader).
    ``member_id``/``client_id``/``host`` are None for a partition no member owns.
    """

    topic: str
    partition: int
    committed: int | None
    log_end: int | None
    lag: int | None
    member_id: str | None
    client_id: str | None
    host: str | None


@dataclass(frozen=True)
class GroupMember:
    """A member of a group as the coordinator reports it, with its decoded assignment."""

    member_id: str
    client_id: str
    host: str
    assignments: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class GroupSnapshot:
    """A consumer group at one moment: state, members and one row per partition."""

    group: str
    state: str
    members: tuple[GroupMember, ...]
    partitions: tuple[PartitionLag, ...]
    total_lag: int
    taken_at: float
    #: The assignment strategy the group agreed on ("range", "roundrobin", ...), "" if none.
    protocol: str = ""

    @property
    def exists(self) -> bool:
        """False for a group the coordinator does not know (state Dead, nothing committed)."""
        return self.state != DEAD or bool(self.partitions)


# ----------------------------------------------------------------------------- decoding


def decode_assignment(data: bytes | None) -> tuple[tuple[str, int], ...]:
    """Decode a ConsumerProtocolAssignment (versions 0-3) into sorted (topic, partition) pairs.

    The layout (big-endian, not flexible) is: int16 version, an int32-counted array of
    (int16-length topic string, int32-counted array of int32 partitions), then int32-length
    user data, which we do not need. Versions 1-3 only exist to stay in step with the
    subscription format, so they share version 0's layout; like Kafka's own deserializer we
    read newer versions with it too and ignore trailing bytes. Empty bytes mean "nothing
    assigned yet" (a member mid-rebalance).
    """
    if not data:
        return ()
    view = memoryview(data)
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(view):
            raise AssignmentDecodeError(f"assignment truncated at byte {pos}")
        (value,) = struct.unpack_from(fmt, view, pos)
        pos += size
        return int(value)

    version = take(">h")
    if version < 0:
        raise AssignmentDecodeError(f"invalid assignment version {version}")
    pairs: list[tuple[str, int]] = []
    for _ in range(max(take(">i"), 0)):  # -1 is a null array: nothing assigned
        length = take(">h")
        if length < 0 or pos + length > len(view):
            raise AssignmentDecodeError(f"invalid topic name length {length} at byte {pos - 2}")
        topic = bytes(view[pos : pos + length]).decode("utf-8")
        pos += length
        pairs.extend((topic, take(">i")) for _ in range(max(take(">i"), 0)))
    return tuple(sorted(pairs))


def encode_assignment(
    assignments: Iterable[tuple[str, int]], version: int = 0, user_data: bytes | None = None
) -> bytes:
    """Encode (topic, partition) pairs as a ConsumerProtocolAssignment (for tests and tools)."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in assignments:
        by_topic.setdefault(topic, []).append(partition)
    out = [struct.pack(">hi", version, len(by_topic))]
    for topic, partitions in by_topic.items():
        name = topic.encode()
        out.append(struct.pack(f">h{len(name)}si", len(name), name, len(partitions)))
        out.append(struct.pack(f">{len(partitions)}i", *partitions))
    if user_data is None:
        out.append(struct.pack(">i", -1))
    else:
        out.append(struct.pack(">i", len(user_data)) + user_data)
    return b"".join(out)


def build_rows(
    members: Sequence[GroupMember],
    committed: dict[tuple[str, int], int],
    log_end: dict[tuple[str, int], int],
) -> tuple[PartitionLag, ...]:
    """The tool's rows: assigned partitions with their owner, then committed-only partitions.

    Sorted by topic and partition (the tool prints them member by member; the set of rows and
    every value in them is the same).
    """
    owners: dict[tuple[str, int], GroupMember] = {}
    for member in members:
        for tp in member.assignments:
            owners.setdefault(tp, member)
    rows: list[PartitionLag] = []
    for tp in sorted(owners.keys() | committed.keys()):
        owner = owners.get(tp)
        offset = committed.get(tp)
        end = log_end.get(tp)
        rows.append(
            PartitionLag(
                topic=tp[0],
                partition=tp[1],
                committed=offset,
                log_end=end,
                lag=None if offset is None or end is None else end - offset,
                member_id=owner.member_id if owner else None,
                client_id=owner.client_id if owner else None,
                host=owner.host if owner else None,
            )
        )
    return tuple(rows)


# ----------------------------------------------------------------------------- inspector


@dataclass(frozen=True)
class _Described:
    group: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple[GroupMember, ...]


class AdminSession:
    """One admin client held for an object's whole life: started once, closed once.

    The readers that poll the cluster every second or two (:class:`GroupInspector`,
    ``cluster.ClusterReader``) share this lifecycle so each refresh reuses its connections.
    """

    def __init__(
        self,
        kafka: KafkaConnection,
        *,
        client_suffix: str,
        request_timeout_ms: int = 10_000,
    ) -> None:
        self.kafka = kafka
        self._client_suffix = client_suffix
        self._request_timeout_ms = request_timeout_ms
        self._admin: AIOKafkaAdminClient | None = None

    async def start(self) -> None:
        """Connect; raises KafkaUnavailableError when the cluster does not answer."""
        admin = new_admin(
            self.kafka,
            client_suffix=self._client_suffix,
            request_timeout_ms=self._request_timeout_ms,
        )
        try:
            await admin.start()
        except KafkaError as exc:
            await admin.close()
            raise KafkaUnavailableError(unreachable(self.kafka.bootstrap_servers, exc)) from exc
        self._admin = admin

    async def close(self) -> None:
        """Close the admin client; safe to call twice or after a failed start."""
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def _client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._admin


class GroupInspector(AdminSession):
    """Takes consumer-group snapshots with the admin calls of ``kafka-consumer-groups``.

    Holds one admin client for its whole life and remembers each group's coordinator, so a
    snapshot of all groups costs a handful of small requests, most of them concurrent. It
    never joins a group, fetches records, or (unlike a consumer's metadata requests)
    auto-creates a topic a group still has offsets for after the topic was deleted.
    """

    def __init__(
        self,
        kafka: KafkaConnection,
        *,
        client_suffix: str = "inspect",
        request_timeout_ms: int = 10_000,
    ) -> None:
        super().__init__(kafka, client_suffix=client_suffix, request_timeout_ms=request_timeout_ms)
        self._coordinators: dict[str, int] = {}

    async def list_groups(self) -> list[str]:
        """Names of the cluster's consumer groups, sorted (what ``--list`` prints)."""
        admin = self._client
        try:
            listed = await admin.list_consumer_groups()
        except KafkaError as exc:
            raise KafkaUnavailableError(f"could not list consumer groups: {exc}") from exc
        return sorted({name for name, ptype in listed if ptype in _CONSUMER_PROTOCOL_TYPES})

    async def describe(self, groups: Sequence[str]) -> list[GroupSnapshot]:
        """One snapshot per group, in the order given (duplicates dropped).

        Descriptions and committed offsets are fetched for all groups at once; log-end
        offsets are read afterwards so that, as with the official tool, a lag is never
        computed against an end offset older than the commit.
        """
        names = list(dict.fromkeys(groups))
        if not names:
            return []
        try:
            described, committed = await asyncio.gather(
                asyncio.gather(*(self._describe_group(g) for g in names)),
                asyncio.gather(*(self._committed(g) for g in names)),
            )
            wanted: set[tuple[str, int]] = set()
            for desc, offsets in zip(described, committed, strict=True):
                wanted.update(offsets)
                for member in desc.members:
                    wanted.update(member.assignments)
            log_end = await self._log_end_offsets(wanted)
        except KafkaError as exc:
            raise KafkaUnavailableError(f"could not describe consumer groups: {exc}") from exc
        taken_at = time.time()
        snapshots = []
        for desc, offsets in zip(described, committed, strict=True):
            rows = build_rows(desc.members, offsets, log_end)
            snapshots.append(
                GroupSnapshot(
                    group=desc.group,
                    state=desc.state,
                    members=desc.members,
                    partitions=rows,
                    total_lag=sum(max(r.lag, 0) for r in rows if r.lag is not None),
                    taken_at=taken_at,
                    protocol=desc.protocol,
                )
            )
        return snapshots

    async def end_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        """Log-end offset (ListOffsets latest) of every partition of the given topics.

        Topics that do not exist are left out.
        """
        try:
            leaders = await partition_leaders(self._client, topics)
            return await list_latest(
                self._client, {(t, p) for t, ps in leaders.items() for p in ps}, leaders
            )
        except KafkaError as exc:
            raise KafkaUnavailableError(f"could not read end offsets: {exc}") from exc

    async def topic_records(self, topics: Sequence[str]) -> dict[str, int]:
        """Records each topic holds now: log-end minus log-start offset, summed over its
        partitions (what a dead-letter topic's depth is, whoever wrote the records).

        Topics that do not exist are left out.
        """
        try:
            leaders = await partition_leaders(self._client, topics)
            wanted = {(t, p) for t, ps in leaders.items() for p in ps}
            ends, starts = await asyncio.gather(
                list_latest(self._client, wanted, leaders),
                list_latest(self._client, wanted, leaders, earliest=True),
            )
        except KafkaError as exc:
            raise KafkaUnavailableError(f"could not read topic offsets: {exc}") from exc
        held: dict[str, int] = {}
        for (topic, partition), end in ends.items():
            start = starts.get((topic, partition))
            if start is not None:
                held[topic] = held.get(topic, 0) + max(end - start, 0)
        return held

    @property
    def admin(self) -> AIOKafkaAdminClient:
        """The started admin client, for modules that make further admin calls with the same
        connections (``offset_reset``) rather than opening their own."""
        return self._client

    # --------------------------------------------------------------------- internals

    async def _coordinator(self, group: str) -> int:
        node = self._coordinators.get(group)
        if node is None:
            admin = self._client
            node = await admin.find_coordinator(group)
            self._coordinators[group] = node
        return node

    async def _describe_group(self, group: str) -> _Described:
        """DescribeGroups for one group.

        One group per request on purpose: aiokafka 0.14 decodes the v3 response with the v2
        schema, which is harmless for one group but misreads the second group onwards.
        """
        admin = self._client
        retry = _CoordinatorRetry(group)
        while True:
            try:
                node = await self._coordinator(group)
                responses = await admin.describe_consumer_groups([group], group_coordinator_id=node)
            except KafkaError as exc:
                self._coordinators.pop(group, None)
                await retry.after(exc)
                continue
            entry: Any = responses[0].groups[0]
            error_code, name, state, protocol_type, protocol, members = entry[:6]
            if error_code == 0:
                return _Described(
                    group=name,
                    state=state,
                    protocol_type=protocol_type,
                    protocol=protocol,
                    members=_members(members, decode=protocol_type == "consumer"),
                )
            if error_code == _GROUP_ID_NOT_FOUND:
                return _Described(group, DEAD, "", "", ())
            if error_code not in _COORDINATOR_MOVED:
                raise OrderdeckError(f"cannot describe group {group!r}: error code {error_code}")
            self._coordinators.pop(group, None)
            await retry.after(None)

    async def _committed(self, group: str) -> dict[tuple[str, int], int]:
        """The group's committed offsets; partitions without a commit are absent."""
        admin = self._client
        retry = _CoordinatorRetry(group)
        while True:
            try:
                node = await self._coordinator(group)
                offsets = await admin.list_consumer_group_offsets(group, group_coordinator_id=node)
            except KafkaError as exc:
                self._coordinators.pop(group, None)
                await retry.after(exc)
                continue
            return {
                (tp.topic, tp.partition): om.offset for tp, om in offsets.items() if om.offset >= 0
            }

    async def _log_end_offsets(self, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """ListOffsets(latest) for the partitions that exist; others are left out."""
        if not wanted:
            return {}
        leaders = await partition_leaders(self._client, {t for t, _ in wanted})
        return await list_latest(self._client, wanted, leaders)


#: ListOffsets timestamps meaning "the log-end offset" and "the log-start offset".
_LATEST = -1
_EARLIEST = -2


async def list_latest(
    admin: AIOKafkaAdminClient,
    wanted: set[tuple[str, int]],
    leaders: dict[str, dict[int, int]],
    *,
    earliest: bool = False,
    skip_unreachable: bool = False,
) -> dict[tuple[str, int], int]:
    """Log-end offsets of ``wanted``: one ListOffsets request per partition leader, all at once.

    A partition without a leader, or whose leader answers with an error (a broker can name a
    new partition's leader a moment before it serves ListOffsets for it), is left out. The
    admin client has no ListOffsets call (see ``aiokafka_compat`` for why not end_offsets()).
    ``earliest`` asks for the log-start offsets instead (what retention has not deleted).
    ``skip_unreachable`` leaves out the partitions of a leader that cannot be reached too
    (the metadata names a dead broker until the controller fences it, or for good once the
    controller quorum is lost); without it that raises, for callers that need every offset.
    """
    spec = _EARLIEST if earliest else _LATEST
    by_node: dict[int, dict[str, list[tuple[int, int]]]] = {}
    for topic, partition in sorted(wanted):
        node = leaders.get(topic, {}).get(partition, -1)
        if node >= 0:  # no leader: the tool shows '-' as well
            by_node.setdefault(node, {}).setdefault(topic, []).append((partition, spec))
    responses = await asyncio.gather(
        *(
            send_request(admin, OffsetRequest(-1, 0, list(topics.items())), node)
            for node, topics in by_node.items()
        ),
        return_exceptions=True,
    )
    ends: dict[tuple[str, int], int] = {}
    for response in responses:
        if isinstance(response, BaseException):
            if skip_unreachable and isinstance(response, KafkaError):
                continue
            raise response
        for topic, partitions in response.topics:
            for partition, error_code, _timestamp, offset, *_ in partitions:
                if error_code == 0:
                    ends[(topic, partition)] = offset
    return ends


async def partition_leaders(
    admin: AIOKafkaAdminClient, topics: Iterable[str]
) -> dict[str, dict[int, int]]:
    """For each existing topic, partition id -> leader node id (-1 when leaderless).

    Topics that do not exist are left out. The metadata request says
    ``allow_auto_topic_creation=False``: aiokafka's ``describe_topics`` does not, and on a
    broker with ``auto.create.topics.enable`` merely looking at a missing topic would
    create it.
    """
    names = sorted(set(topics))
    if not names:
        return {}
    request = MetadataRequest(names, allow_auto_topic_creation=False)
    response = await send_request(admin, request)
    leaders: dict[str, dict[int, int]] = {}
    for topic in response.to_object()["topics"]:
        if topic["error_code"] == 0:
            leaders[topic["topic"]] = {p["partition"]: p["leader"] for p in topic["partitions"]}
    return leaders


def _members(raw: Sequence[Any], *, decode: bool) -> tuple[GroupMember, ...]:
    members = []
    for member_id, client_id, host, _metadata, assignment in raw:
        try:
            assigned = decode_assignment(assignment) if decode else ()
        except AssignmentDecodeError:
            assigned = ()  # a member of a non-standard client; show it without partitions
        members.append(GroupMember(member_id, client_id, host, assigned))
    return tuple(sorted(members, key=lambda m: (m.client_id, m.member_id)))


class _CoordinatorRetry:
    """The retries of one group call while its coordinator is unavailable or moved: with a
    growing delay, until :data:`COORDINATOR_WAIT_S` has passed since the call began."""

    def __init__(self, group: str) -> None:
        self._group = group
        self._deadline = time.monotonic() + COORDINATOR_WAIT_S
        self._backoff = Backoff.doubling(0.1, cap=1.0)

    async def after(self, error: KafkaError | None) -> None:
        """Wait before the next try, or raise: ``error`` (a KafkaError the call raised; None
        for an error code in the answer) when it is not worth retrying or time is up."""
        # An unreachable broker is an outage, not a coordinator on its way: fail at once.
        if error is not None and (not error.retriable or isinstance(error, KafkaConnectionError)):
            raise error
        if time.monotonic() + self._backoff.delay > self._deadline:
            if error is not None:
                raise error
            raise KafkaUnavailableError(
                f"the coordinator of group {self._group!r} is not available"
            )
        await self._backoff.sleep()
