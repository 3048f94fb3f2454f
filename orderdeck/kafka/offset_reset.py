"""Offset resets for a consumer group: a plan first, applied only when asked.

This is what ``kafka-consumer-groups --reset-offsets`` does, with the same rules, so a user
who knows that tool gets no surprises:

* the plan lists, per partition, the group's current committed offset and the new one; making
  it changes nothing on the cluster;
* every new offset lies between the partition's log-start and log-end offset (a shift past
  either end is clamped, as the tool does);
* a reset to a time takes the first offset whose record timestamp is at or after that time,
  or the log-end offset when there is none (ListOffsets by timestamp);
* a group with active members is refused, naming them: committing under a live consumer
  would be overwritten by its next commit, or worse, half-applied.

Offsets are applied with one OffsetCommit request to the group's coordinator, with generation
-1 and no member id: the way a client outside the group commits. Nothing joins the group, so
applying cannot trigger a rebalance.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from aiokafka.errors import KafkaError
from aiokafka.protocol.commit import OffsetCommitRequest
from aiokafka.protocol.offset import OffsetRequest

from orderdeck.errors import KafkaUnavailableError, OrderdeckError
from orderdeck.kafka.admin import DEAD, GroupInspector, GroupMember, list_latest, partition_leaders
from orderdeck.kafka.aiokafka_compat import send_request
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.offset_plan import PlannedOffset, ResetMode, ResetTarget

__all__ = ["PlannedOffset", "ResetMode", "ResetTarget"]

#: A topic and the partitions chosen in it (None: all of its partitions).
TopicSelection = Mapping[str, tuple[int, ...] | None]

_ISO_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


class ActiveMembersError(OrderdeckError):
    """The group has members; its offsets cannot be reset under them."""

    def __init__(self, group: str, members: Sequence[GroupMember]) -> None:
        names = ", ".join(f"{m.member_id} (client {m.client_id}, host {m.host})" for m in members)
        super().__init__(
            f"consumer group {group!r} has {len(members)} active member(s): {names}; "
            "stop them before resetting its offsets"
        )
        self.members = tuple(members)


def parse_iso_duration(text: str) -> timedelta:
    """``PT10M``, ``P1DT2H``, ``PT0.5S``: the ISO-8601 durations the official tool accepts."""
    match = _ISO_DURATION.match(text.strip().upper())
    if match is None or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
        raise OrderdeckError(f"not an ISO-8601 duration: {text!r} (e.g. PT10M, P1DT2H)")
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    return timedelta(**parts)


def parse_datetime_ms(text: str) -> int:
    """An ISO-8601 date-time as epoch milliseconds; without a zone it means UTC.

    UTC rather than the local zone (the official tool's choice) so a command written down in a
    runbook means the same instant on every machine.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise OrderdeckError(
            f"not an ISO-8601 date-time: {text!r} (e.g. 2026-12-03T05:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def target_from_duration(duration: timedelta, now_ms: int | None = None) -> ResetTarget:
    """The target "records from ``duration`` ago onwards", fixed at one instant."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return ResetTarget("duration", now - int(duration.total_seconds() * 1000))


def parse_topic_selection(specs: Sequence[str]) -> dict[str, tuple[int, ...] | None]:
    """``--topic orders`` (every partition) or ``--topic orders:0,2`` (those partitions)."""
    chosen: dict[str, tuple[int, ...] | None] = {}
    for spec in specs:
        topic, sep, partitions = spec.partition(":")
        if not topic:
            raise OrderdeckError(f"--topic needs a topic name: {spec!r}")
        if not sep:
            chosen[topic] = None
            continue
        try:
            numbers = tuple(sorted({int(p) for p in partitions.split(",") if p.strip()}))
        except ValueError:
            raise OrderdeckError(f"--topic partitions must be numbers: {spec!r}") from None
        if not numbers:
            raise OrderdeckError(f"--topic lists no partitions after ':': {spec!r}")
        if topic in chosen and chosen[topic] is None:
            continue  # the whole topic was asked for already
        chosen[topic] = tuple(sorted({*(chosen.get(topic) or ()), *numbers}))
    return chosen


def new_offset(
    target: ResetTarget, current: int | None, start: int, end: int, at_time: int | None
) -> int:
    """The new offset of one partition, clamped to [start, end] like the official tool.

    A shift from a partition without a commit starts at the log-start offset. ``at_time`` is
    the ListOffsets-by-timestamp answer (None: no record that late, so the log end).
    """
    if target.mode == "earliest":
        wanted = start
    elif target.mode == "latest":
        wanted = end
    elif target.mode == "shift":
        wanted = (start if current is None else current) + target.value
    else:
        wanted = end if at_time is None else at_time
    return min(max(wanted, start), end)


class OffsetResetter:
    """Plans and applies offset resets for one group, with the admin calls of the tool."""

    def __init__(self, inspector: GroupInspector) -> None:
        self.inspector = inspector

    async def plan(
        self,
        group: str,
        target: ResetTarget,
        topics: TopicSelection | None = None,
        *,
        refuse_members: bool = True,
    ) -> list[PlannedOffset]:
        """The plan; raises ActiveMembersError for a live group and an error for an unknown
        group without ``topics`` (there is nothing to reset). ``refuse_members=False`` is for
        the runtime's preview: it stops its own members before applying, so they are no
        reason to refuse a preview."""
        (snapshot,) = await self.inspector.describe([group])
        if snapshot.members and refuse_members:
            raise ActiveMembersError(group, snapshot.members)
        committed = {
            (p.topic, p.partition): p.committed
            for p in snapshot.partitions
            if p.committed is not None
        }
        admin = self.inspector.admin
        try:
            if topics:
                leaders = await partition_leaders(admin, topics)
                missing = sorted(set(topics) - set(leaders))
                if missing:
                    raise OrderdeckError(f"no such topic: {', '.join(missing)}")
                wanted: set[tuple[str, int]] = set()
                for topic, chosen in topics.items():
                    have = leaders[topic]
                    bad = [p for p in chosen or () if p not in have]
                    if bad:
                        raise OrderdeckError(f"topic {topic!r} has no partition {bad[0]}")
                    wanted.update((topic, p) for p in (chosen if chosen else sorted(have)))
            else:
                if snapshot.state == DEAD or not committed:
                    raise OrderdeckError(
                        f"consumer group {group!r} has no committed offsets; name the "
                        "partitions to reset with --topic"
                    )
                wanted = set(committed)
                leaders = await partition_leaders(admin, {t for t, _ in wanted})
            starts, ends, at_time = await asyncio.gather(
                list_latest(admin, wanted, leaders, earliest=True),
                list_latest(admin, wanted, leaders),
                self._offsets_for_time(wanted, leaders, target),
            )
        except KafkaError as exc:
            raise KafkaUnavailableError(f"could not read offsets: {exc}") from exc
        leaderless = sorted(tp for tp in wanted if tp not in starts or tp not in ends)
        if leaderless:
            topic, partition = leaderless[0]
            raise KafkaUnavailableError(f"partition {topic}:{partition} has no leader now")
        return [
            PlannedOffset(
                group,
                topic,
                partition,
                committed.get((topic, partition)),
                new_offset(
                    target,
                    committed.get((topic, partition)),
                    starts[(topic, partition)],
                    ends[(topic, partition)],
                    at_time.get((topic, partition)),
                ),
            )
            for topic, partition in sorted(wanted)
        ]

    async def apply(self, group: str, plan: Sequence[PlannedOffset]) -> None:
        """Commit the plan's new offsets for ``group``; checks for members again first, since
        one may have joined since the plan was shown."""
        (snapshot,) = await self.inspector.describe([group])
        if snapshot.members:
            raise ActiveMembersError(group, snapshot.members)
        by_topic: dict[str, list[tuple[int, int, str]]] = {}
        for row in plan:
            by_topic.setdefault(row.topic, []).append((row.partition, row.new, ""))
        if not by_topic:
            return
        admin = self.inspector.admin
        request = OffsetCommitRequest(
            group,
            OffsetCommitRequest.DEFAULT_GENERATION_ID,
            "",
            OffsetCommitRequest.DEFAULT_RETENTION_TIME,
            list(by_topic.items()),
        )
        try:
            node = await admin.find_coordinator(group)
            response = await send_request(admin, request, node)
        except KafkaError as exc:
            raise KafkaUnavailableError(f"could not commit the new offsets: {exc}") from exc
        failed = [
            (topic, partition, code)
            for topic, partitions in response.topics
            for partition, code in partitions
            if code != 0
        ]
        if failed:
            topic, partition, code = failed[0]
            raise OrderdeckError(
                f"the broker refused the new offset of {topic}:{partition} (error code {code}); "
                f"{len(failed)} partition(s) not reset"
            )

    async def _offsets_for_time(
        self,
        wanted: set[tuple[str, int]],
        leaders: dict[str, dict[int, int]],
        target: ResetTarget,
    ) -> dict[tuple[str, int], int]:
        """ListOffsets by timestamp; partitions without a record that late are left out."""
        if target.mode not in ("datetime", "duration"):
            return {}
        admin = self.inspector.admin
        by_node: dict[int, dict[str, list[tuple[int, int]]]] = {}
        for topic, partition in sorted(wanted):
            node = leaders.get(topic, {}).get(partition, -1)
            if node >= 0:
                by_node.setdefault(node, {}).setdefault(topic, []).append((partition, target.value))
        responses = await asyncio.gather(
            *(
                send_request(admin, OffsetRequest(-1, 0, list(topics.items())), node)
                for node, topics in by_node.items()
            )
        )
        found: dict[tuple[str, int], int] = {}
        for response in responses:
            for topic, partitions in response.topics:
                for partition, error_code, _timestamp, offset, *_ in partitions:
                    if error_code == 0 and offset >= 0:
                        found[(topic, partition)] = offset
        return found


async def plan_offset_reset(
    kafka: KafkaConnection,
    group: str,
    target: ResetTarget,
    topics: TopicSelection | None = None,
    *,
    execute: bool = False,
) -> list[PlannedOffset]:
    """Make the plan and, with ``execute``, apply it; returns the plan either way."""
    async with GroupInspector(kafka, client_suffix="offset-reset") as inspector:
        resetter = OffsetResetter(inspector)
        plan = await resetter.plan(group, target, topics)
        if execute:
            await resetter.apply(group, plan)
        return plan
