"""Lag time, time to drain and verdicts that stay current while the app runs.

The one-shot ``groups --window`` samples for a few seconds and forgets; a console running for
hours already polls every group each second, so it can keep the history for free. This tracker
is fed each groups snapshot the runtime takes and keeps, per (group, topic, partition), a
bounded window of log-end samples (for lag seconds and the drain rate) and of commits (for
Burrow's verdicts). It is pure: it reads plain snapshots and never talks to Kafka, so the
rules are tested with synthetic snapshots.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orderdeck.kafka import lag_time, verdicts

if TYPE_CHECKING:
    from orderdeck.kafka.admin import GroupSnapshot

PartitionKey = tuple[str, int]
_DRAIN_ORDER = {lag_time.CAUGHT_UP: 0, lag_time.DRAINING: 1, lag_time.UNKNOWN: 2}


@dataclass(frozen=True)
class PartitionLagTime:
    """One partition's figures: None where they cannot be known yet (too few samples)."""

    lag_seconds: float | None
    drain_seconds: float | None
    drain_state: str
    verdict: str


@dataclass(frozen=True)
class GroupLagTime:
    """A group's figures (oldest partition, slowest drain, worst verdict) and its partitions'."""

    lag_seconds: float | None
    drain_seconds: float | None
    drain_state: str
    verdict: str
    partitions: Mapping[PartitionKey, PartitionLagTime]


@dataclass
class _History:
    samples: lag_time.PartitionSamples
    commits: deque[verdicts.CommitSample]
    #: When the committed offset last moved (or was first seen): STOP looks past the window.
    moved_at: float
    last_committed: int | None = None
    newest: PartitionLagTime | None = field(default=None)


class LagTracker:
    """Bounded per-partition history fed by groups snapshots.

    ``window_seconds`` is the span the drain rate and the verdicts look at; ``max_samples``
    bounds the memory per partition whatever the poll interval. A partition that leaves a
    group's snapshot (topic deleted, group gone) is forgotten with it.
    """

    def __init__(self, window_seconds: float = 60.0, max_samples: int = 120) -> None:
        if window_seconds <= 0:
            raise ValueError("the window must span some time")
        self.window_seconds = window_seconds
        self.max_samples = max_samples
        self._history: dict[str, dict[PartitionKey, _History]] = {}

    def observe(self, snapshots: Iterable[GroupSnapshot]) -> None:
        """Add one poll's snapshots (each stamped with its own ``taken_at``)."""
        for snapshot in snapshots:
            self._observe_group(snapshot)

    def _observe_group(self, snapshot: GroupSnapshot) -> None:
        now = snapshot.taken_at
        before = self._history.get(snapshot.group, {})
        after: dict[PartitionKey, _History] = {}
        for part in snapshot.partitions:
            if part.log_end is None:
                continue
            key = (part.topic, part.partition)
            history = before.get(key) or _History(
                lag_time.PartitionSamples(self.max_samples),
                deque(maxlen=self.max_samples),
                moved_at=now,
            )
            history.samples.add(part.log_end, part.committed, now)
            if part.committed is not None:
                if part.committed != history.last_committed:
                    history.moved_at = now
                    history.last_committed = part.committed
                history.commits.append(
                    verdicts.CommitSample(
                        part.committed, max(0, part.log_end - part.committed), now
                    )
                )
            while history.commits and history.commits[0].at < now - self.window_seconds:
                history.commits.popleft()
            history.newest = self._figures(history, now)
            after[key] = history
        self._history[snapshot.group] = after

    def _figures(self, history: _History, now: float) -> PartitionLagTime:
        samples = tuple(s for s in history.samples.samples if s.at >= now - self.window_seconds)
        seconds = lag_time.lag_seconds(samples)
        drain_seconds, drain_state = lag_time.drain(samples)
        commits = list(history.commits)
        verdict = verdicts.partition_verdict(commits, now, self.window_seconds)
        lagging = bool(commits) and commits[-1].lag > 0
        stopped = lagging and now - history.moved_at > self.window_seconds
        if stopped and verdict not in (verdicts.OK, verdicts.REWIND):
            verdict = verdicts.STOP  # nobody has committed for longer than the window spans
        return PartitionLagTime(seconds, drain_seconds, drain_state, verdict)

    def partition(self, group: str, topic: str, partition: int) -> PartitionLagTime | None:
        """A partition's latest figures, None for one never seen."""
        history = self._history.get(group, {}).get((topic, partition))
        return history.newest if history is not None else None

    def group(self, group: str) -> GroupLagTime | None:
        """A group's latest figures, None for a group never seen."""
        histories = self._history.get(group)
        if histories is None:
            return None
        parts = {k: h.newest for k, h in histories.items() if h.newest is not None}
        return summarize(parts)

    def groups(self) -> dict[str, GroupLagTime]:
        """Every tracked group's figures (for the screens and /metrics)."""
        out = {}
        for name in self._history:
            figures = self.group(name)
            if figures is not None:
                out[name] = figures
        return out


def summarize(parts: Mapping[PartitionKey, PartitionLagTime]) -> GroupLagTime:
    """The oldest partition's lag time, the slowest drain and the worst verdict."""
    values = list(parts.values())
    ages = [p.lag_seconds for p in values if p.lag_seconds is not None]
    states = [p.drain_state for p in values]
    if lag_time.NOT_DRAINING in states:
        state = lag_time.NOT_DRAINING
    else:
        state = max(states, key=lambda s: _DRAIN_ORDER.get(s, 2), default=lag_time.CAUGHT_UP)
    drains = [p.drain_seconds for p in values]
    known = state in (lag_time.CAUGHT_UP, lag_time.DRAINING) and None not in drains
    return GroupLagTime(
        lag_seconds=max(ages) if ages else None,
        drain_seconds=max((d for d in drains if d is not None), default=0.0) if known else None,
        drain_state=state,
        verdict=verdicts.group_verdict(p.verdict for p in values),
        partitions=dict(parts),
    )
