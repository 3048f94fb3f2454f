"""The app's rolling picture of the pipeline, fed by one poll per second.

Group snapshots only say where things stand *now*; the views also want movement: events/s
into each topic (from log-end offsets over time) and each group's total lag over the last
minutes for its sparkline. Keeping that history here, outside any screen, lets every screen
show it at once when it is switched to, and keeps the arithmetic testable without a terminal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orderdeck.rates import RateMeter

if TYPE_CHECKING:
    from orderdeck.kafka.admin import GroupSnapshot
    from orderdeck.kafka.lag_tracker import GroupLagTime

RATE_WINDOW_S = 5.0


@dataclass(frozen=True)
class EdgeStats:
    """One topic seen as an edge of the pipeline: what flows in and what waits."""

    topic: str
    group: str
    rate: float | None
    lag: int | None
    log_end: int | None


class LiveModel:
    """Latest group snapshots plus the short history the views draw from."""

    def __init__(self, history_points: int = 300) -> None:
        self.snapshots: dict[str, GroupSnapshot] = {}
        self.lag_history: dict[str, deque[int]] = {}
        #: The runtime's lag seconds, time to drain and verdict per group (its tracker's view).
        self.lag_times: dict[str, GroupLagTime] = {}
        self._topics: dict[str, RateMeter] = {}
        self._history_points = history_points
        self.updates = 0

    def update(self, snapshots: Iterable[GroupSnapshot]) -> None:
        """Fold in one poll's snapshots (one sample per group per poll)."""
        for snap in snapshots:
            self.snapshots[snap.group] = snap
            history = self.lag_history.setdefault(snap.group, deque(maxlen=self._history_points))
            history.append(snap.total_lag)
            ends: dict[str, int] = {}
            for part in snap.partitions:
                if part.log_end is not None:
                    ends[part.topic] = ends.get(part.topic, 0) + part.log_end
            for topic, end in ends.items():
                self._topics.setdefault(topic, RateMeter(RATE_WINDOW_S)).add(snap.taken_at, end)
        self.updates += 1

    def forget(self) -> None:
        """Drop the snapshots (a poll failed): lag is unknown, not what it was before."""
        self.snapshots.clear()
        self.lag_times.clear()

    def topic_rate(self, topic: str) -> float | None:
        """Events/s appended to ``topic`` over the last few seconds."""
        track = self._topics.get(topic)
        return track.rate() if track else None

    def edge(self, topic: str, group: str) -> EdgeStats:
        """Rate into ``topic`` and the lag of ``group`` on it."""
        snap = self.snapshots.get(group)
        lag: int | None = None
        log_end: int | None = None
        if snap is not None:
            parts = [p for p in snap.partitions if p.topic == topic]
            if parts:
                ends = [p.log_end for p in parts if p.log_end is not None]
                log_end = sum(ends) if ends else None
                lags = [p.lag for p in parts if p.lag is not None]
                lag = sum(lags) if lags else None
        return EdgeStats(topic, group, self.topic_rate(topic), lag, log_end)
