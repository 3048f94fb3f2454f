"""The chaos timeline: each injected fault, each recovery step seen after it, and its
recovery time.

A fault is recovered when its own disturbance is over (the broker is back, the crashed
service runs again, the slow-down was taken away, the poison record was dead-lettered) and
after that the service groups' lag was seen at 0 *and* no order older than the fault was
still in flight — the definition of issue 17: the pipeline caught up and every order that
was under way when the fault hit reached a final status. The recovery time is the fault's
start to the later of those two sightings.

Nothing here asks anything of Kafka or the store. :class:`FaultTimeline` is pure: it is
told about faults and fed :class:`Observation` s with their wall-clock time, which is what
the unit tests do. :class:`TimelineWatcher` turns what the runtime already polls (group
snapshots every two seconds, cluster metadata, the dead-letter depths, the services'
statuses, Kafka's reachability) into observations; the one read of its own — how many
in-flight orders are older than each open fault, an indexed count — is made only while a
fault is open.

Times are wall-clock seconds (``time.time()``): the store's order ages are wall-clock too,
and the screen prints them as times of day.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from orderdeck.kafka.admin import GroupSnapshot
    from orderdeck.kafka.cluster_model import ClusterView
    from orderdeck.services import ServiceStatus

FaultKind = Literal["stop_broker", "kill_broker", "crash", "slow", "poison"]
STABLE = "Stable"
#: How long after its recovery a fault still collects late steps.
LATE_STEPS_S = 120.0


@dataclass(frozen=True)
class Observation:
    """What one poll saw; a field left None was not looked at by that poll."""

    at: float
    kafka_reachable: bool | None = None
    #: Broker ids the cluster metadata lists.
    brokers: frozenset[int] | None = None
    #: (topic, partition) -> leader id (-1 for none).
    leaders: Mapping[tuple[str, int], int] | None = None
    under_replicated: int | None = None
    #: Service group -> (state, member ids).
    groups: Mapping[str, tuple[str, frozenset[str]]] | None = None
    total_lag: int | None = None
    #: (group, topic, partition) -> (committed offset or None, log-end offset or None).
    offsets: Mapping[tuple[str, str, int], tuple[int | None, int | None]] | None = None
    #: Service -> (state, restarts).
    services: Mapping[str, tuple[str, int]] | None = None
    #: Dead-letter topic -> records in it.
    dead_letters: Mapping[str, int] | None = None
    #: Fault id -> in-flight orders accepted before the fault.
    older_in_flight: Mapping[int, int] | None = None


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the timeline: a fault, a step of its recovery, or a note."""

    at: float
    fault_id: int
    text: str
    kind: Literal["fault", "step", "recovered", "note"]


@dataclass(frozen=True)
class FaultSummary:
    """A fault and, once recovered, how long that took."""

    fault_id: int
    label: str
    at: float
    recovered_at: float | None
    #: Why the fault could not be caused (the action failed); it never recovers then.
    failed: str | None = None

    @property
    def recovery_s(self) -> float | None:
        """Seconds from the fault to its recovery; None while it is not recovered."""
        return None if self.recovered_at is None else self.recovered_at - self.at


@dataclass
class _Fault:
    """The state of one fault's recovery: what it needs cleared and what was seen."""

    fault_id: int
    kind: FaultKind
    target: str
    label: str
    at: float
    #: What the last observations before the fault showed (leaders, members, ...).
    baseline: Observation
    steps: set[str] = field(default_factory=set)
    cleared_at: float | None = None
    lag_zero_at: float | None = None
    #: The log-end offsets seen first after the fault cleared: once every group committed
    #: past them, the backlog the fault left is consumed (under a steady load the lag is
    #: rarely exactly 0 at the moment of a poll).
    backlog_ends: dict[tuple[str, str, int], int] | None = None
    final_at: float | None = None
    recovered_at: float | None = None
    #: For a slow-down: the moment the latency was taken away.
    restored_at: float | None = None
    #: A stopped or killed broker: when its process was gone, when the cluster was seen
    #: without it (metadata lists a dead broker until its session times out), and when its
    #: process ran again.
    broker_down_at: float | None = None
    seen_absent: bool = False
    broker_up_at: float | None = None
    failed: str | None = None


class FaultTimeline:
    """Faults, the steps seen after them, and their recovery times (pure; see module doc)."""

    def __init__(self, max_entries: int = 500) -> None:
        self._faults: dict[int, _Fault] = {}
        self._entries: list[TimelineEntry] = []
        self._max_entries = max_entries
        self._next_id = 1
        #: The latest value of each field, so a new fault knows what "before" looked like.
        self._last = Observation(at=0.0)

    # ------------------------------------------------------------------ telling

    def fault(self, kind: FaultKind, target: str, label: str, at: float) -> int:
        """Put a fault on the timeline; returns its id."""
        fault_id = self._next_id
        self._next_id += 1
        self._faults[fault_id] = _Fault(fault_id, kind, target, label, at, self._last)
        self._add(TimelineEntry(at, fault_id, label, "fault"))
        return fault_id

    def restored(self, service: str, at: float) -> None:
        """The slow-down of ``service`` was taken away (a step of its open slow fault)."""
        for f in self._open("slow"):
            if f.target == service and f.restored_at is None:
                f.restored_at = at
                self._step(f, "restored", f"{service} back to full speed", at)
                self._clear(f, at)
                return
        self._add(TimelineEntry(at, 0, f"{service} back to full speed", "note"))

    def broker_stopped(self, broker: str, at: float) -> None:
        """Broker ``broker``'s process is gone (the stop or kill returned)."""
        for f in self._open("stop_broker", "kill_broker"):
            if f.target == broker:
                # A clean stop may end after the cluster already fenced the broker.
                f.broker_down_at = at if f.broker_down_at is None else f.broker_down_at
                self._step(f, "process gone", f"broker {broker} process gone", at)

    def broker_started(self, broker: str, at: float) -> None:
        """Broker ``broker`` was asked to start (a step of its open stop or kill fault)."""
        for f in self._open("stop_broker", "kill_broker"):
            if f.target == broker:
                self._step(f, "start asked", f"start broker {broker} asked", at)
                return
        self._add(TimelineEntry(at, 0, f"start broker {broker}", "note"))

    def broker_up(self, broker: str, at: float) -> None:
        """Broker ``broker``'s process answers again (its start returned)."""
        for f in self._open("stop_broker", "kill_broker"):
            if f.target == broker and f.broker_up_at is None:
                f.broker_up_at = at
                self._step(f, "process up", f"broker {broker} process running", at)

    def failed(self, fault_id: int, reason: str, at: float) -> None:
        """The action behind ``fault_id`` failed: it is closed, with no recovery time."""
        f = self._faults[fault_id]
        f.failed = reason
        self._add(TimelineEntry(at, fault_id, f"{f.label} failed: {reason}", "note"))

    def note(self, text: str, at: float) -> None:
        """A line that belongs to no fault (an action that failed, say)."""
        self._add(TimelineEntry(at, 0, text, "note"))

    def observe(self, seen: Observation) -> None:
        """Feed one poll's observation to every open fault, and to those recovered in the
        last :data:`LATE_STEPS_S` (a step such as "ISR back to full" may come after the
        recovery: replicas catch up after the pipeline did) — until the next fault, whose
        rebalance or moved leaders are its own."""
        for f in self._faults.values():
            if f.failed is not None or seen.at < f.at:
                continue
            if f.recovered_at is None or (
                seen.at - f.recovered_at <= LATE_STEPS_S and not self._caused_after(f, seen.at)
            ):
                self._advance(f, seen)
        self._last = _merged(self._last, seen)

    # ------------------------------------------------------------------ reading

    def entries(self) -> list[TimelineEntry]:
        """Every line, oldest first."""
        return list(self._entries)

    def summaries(self) -> list[FaultSummary]:
        """Every fault with its recovery time (None while recovering), oldest first."""
        return [
            FaultSummary(f.fault_id, f.label, f.at, f.recovered_at, f.failed)
            for f in self._faults.values()
        ]

    def open_faults(self) -> list[tuple[int, float]]:
        """(id, time) of every fault not yet recovered: the orders check asks about these."""
        return [(f.fault_id, f.at) for f in self._open()]

    def last_seen(self) -> Observation:
        """The latest value of every field observed (what a new fault's baseline will be)."""
        return self._last

    # ------------------------------------------------------------------ recovery rules

    def _open(self, *kinds: FaultKind) -> Iterable[_Fault]:
        return [
            f
            for f in self._faults.values()
            if f.recovered_at is None and f.failed is None and (not kinds or f.kind in kinds)
        ]

    def _caused_after(self, f: _Fault, before: float) -> bool:
        """Whether another fault was caused after ``f`` and before ``before``."""
        return any(f.at < g.at <= before for g in self._faults.values())

    def _advance(self, f: _Fault, seen: Observation) -> None:
        if f.kind in ("stop_broker", "kill_broker"):
            self._broker_steps(f, seen)
        elif f.kind == "crash":
            self._crash_steps(f, seen)
        elif f.kind == "slow":
            if seen.total_lag and f.restored_at is None:
                self._step(f, "lag building", f"lag building ({seen.total_lag})", seen.at)
        elif f.kind == "poison":
            self._poison_steps(f, seen)
        if f.kind != "poison" and seen.groups:
            if any(state != STABLE for state, _ in seen.groups.values()):
                self._step(f, "rebalancing", "groups rebalancing", seen.at)
            elif f.cleared_at is not None and (
                "rebalancing" in f.steps or _members_changed(f.baseline.groups, seen.groups)
            ):
                self._step(f, "group stable", "every group stable", seen.at)
        if f.cleared_at is None:
            return
        if f.lag_zero_at is None:
            self._caught_up(f, seen)
        older = (seen.older_in_flight or {}).get(f.fault_id)
        if older == 0 and f.final_at is None and seen.at >= f.cleared_at:
            f.final_at = seen.at
            self._step(f, "final", "every order from before the fault final", seen.at)
        if f.lag_zero_at is not None and f.final_at is not None and f.recovered_at is None:
            f.recovered_at = max(f.lag_zero_at, f.final_at)
            took = f.recovered_at - f.at
            self._add(
                TimelineEntry(f.recovered_at, f.fault_id, f"recovered in {took:.1f} s", "recovered")
            )

    def _caught_up(self, f: _Fault, seen: Observation) -> None:
        """Lag 0, or every group committed past the log ends seen when the fault cleared."""
        if seen.total_lag == 0:
            f.lag_zero_at = seen.at
            self._step(f, "lag 0", "lag 0", seen.at)
            return
        if seen.offsets is None:
            return
        if f.backlog_ends is None:
            f.backlog_ends = {k: end for k, (_, end) in seen.offsets.items() if end is not None}
            return
        if all(
            (seen.offsets.get(k, (None, None))[0] or 0) >= end for k, end in f.backlog_ends.items()
        ):
            f.lag_zero_at = seen.at
            text = f"backlog consumed (lag {seen.total_lag} is newer than the fault)"
            self._step(f, "lag 0", text, seen.at)

    def _broker_steps(self, f: _Fault, seen: Observation) -> None:
        broker = int(f.target)
        absent = seen.kafka_reachable is False or (
            seen.brokers is not None and broker not in seen.brokers
        )
        if absent:
            f.seen_absent = True
            if f.broker_down_at is None:
                f.broker_down_at = seen.at
            self._step(f, "absent", f"broker {broker} gone from the cluster", seen.at)
        # Listed again after it was seen gone, or listed by a read made after its process
        # ran again: a read before that may still list the dead broker.
        listed = seen.brokers is not None and broker in seen.brokers
        back = listed and (
            (f.seen_absent and not absent)
            or (f.broker_up_at is not None and seen.at >= f.broker_up_at)
        )
        if seen.leaders is not None and f.baseline.leaders:
            moved = [
                tp
                for tp, leader in seen.leaders.items()
                if f.baseline.leaders.get(tp) == broker and leader not in (broker, -1)
            ]
            if moved:
                n = len(moved)
                text = f"leader of {n} partition{'s' if n > 1 else ''} moved off broker {broker}"
                self._step(f, "leaders moved", text, seen.at)
        if seen.under_replicated:
            self._step(
                f, "isr shrank", f"ISR shrank ({seen.under_replicated} under-replicated)", seen.at
            )
        if back:
            self._step(f, "back", f"broker {broker} back", seen.at)
            self._clear(f, seen.at)
        if f.cleared_at is not None and seen.under_replicated == 0:
            self._step(f, "isr full", "ISR back to full", seen.at)

    def _crash_steps(self, f: _Fault, seen: Observation) -> None:
        if seen.services is None or f.target not in seen.services:
            return
        state, restarts = seen.services[f.target]
        before = (f.baseline.services or {}).get(f.target, (state, 0))[1]
        if restarts > before or state in ("restarting", "failed"):
            self._step(f, "crashed", f"{f.target} crashed, supervisor restarting it", seen.at)
        if restarts > before and state == "running":
            self._step(f, "running", f"{f.target} running again", seen.at)
            self._clear(f, seen.at)

    def _poison_steps(self, f: _Fault, seen: Observation) -> None:
        if seen.dead_letters is None:
            return
        dlq = f"{f.target}.dlq"
        before = (f.baseline.dead_letters or {}).get(dlq, 0)
        depth = seen.dead_letters.get(dlq, 0)
        if depth > before:
            self._step(f, "dead-lettered", f"poison record in {dlq} ({depth})", seen.at)
            self._clear(f, seen.at)

    def _clear(self, f: _Fault, at: float) -> None:
        if f.cleared_at is None:
            f.cleared_at = at

    def _step(self, f: _Fault, key: str, text: str, at: float) -> None:
        if key in f.steps:
            return
        f.steps.add(key)
        self._add(TimelineEntry(at, f.fault_id, text, "step"))

    def _add(self, entry: TimelineEntry) -> None:
        self._entries.append(entry)
        if len(self._entries) > self._max_entries:
            del self._entries[: len(self._entries) - self._max_entries]


def _members_changed(
    before: Mapping[str, tuple[str, frozenset[str]]] | None,
    now: Mapping[str, tuple[str, frozenset[str]]],
) -> bool:
    if not before:
        return False
    return any(group in before and before[group][1] != m for group, (_, m) in now.items())


def _merged(last: Observation, seen: Observation) -> Observation:
    """``last`` with every field ``seen`` looked at replaced."""
    fields = {
        f.name: getattr(seen, f.name)
        for f in dataclasses.fields(Observation)
        if getattr(seen, f.name) is not None
    }
    return dataclasses.replace(last, **fields)


class TimelineWatcher:
    """Feeds a :class:`FaultTimeline` from what the runtime polls anyway."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.timeline = FaultTimeline()
        self.clock = clock

    def cluster(self, view: ClusterView) -> None:
        """A cluster metadata read (the runtime's replication count or the Cluster screen)."""
        self.timeline.observe(
            Observation(
                at=self.clock(),
                kafka_reachable=True,
                brokers=frozenset(b.id for b in view.brokers),
                leaders=view.leaders(),
                under_replicated=view.under_replicated,
            )
        )

    def kafka(self, reachable: bool) -> None:
        """The runtime's probe of Kafka answered (or not)."""
        self.timeline.observe(Observation(at=self.clock(), kafka_reachable=reachable))

    def groups(self, snapshots: Sequence[GroupSnapshot]) -> None:
        """A poll of the service groups: their states, members and total lag."""
        self.timeline.observe(
            Observation(
                at=self.clock(),
                groups={
                    s.group: (s.state, frozenset(m.member_id for m in s.members)) for s in snapshots
                },
                total_lag=sum(s.total_lag for s in snapshots),
                offsets={
                    (s.group, p.topic, p.partition): (p.committed, p.log_end)
                    for s in snapshots
                    for p in s.partitions
                },
            )
        )

    def services(self, statuses: Sequence[ServiceStatus]) -> None:
        """The supervisor's statuses (state and restarts of each service)."""
        self.timeline.observe(
            Observation(at=self.clock(), services={s.name: (s.state, s.restarts) for s in statuses})
        )

    def dead_letters(self, depths: Mapping[str, int]) -> None:
        """The depth of every dead-letter topic."""
        self.timeline.observe(Observation(at=self.clock(), dead_letters=dict(depths)))

    async def orders(self, in_flight_older_than: Callable[[float], Awaitable[int]]) -> None:
        """Count, for each open fault, the in-flight orders accepted before it.

        ``in_flight_older_than(seconds)`` is the store's ``stuck_count``; nothing is read
        while no fault is open.
        """
        open_faults = self.timeline.open_faults()
        if not open_faults:
            return
        now = self.clock()
        counts = {
            fault_id: await in_flight_older_than(max(0.0, now - at)) for fault_id, at in open_faults
        }
        self.timeline.observe(Observation(at=now, older_in_flight=counts))
