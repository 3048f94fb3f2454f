"""Lag as time, and time to drain, from (log-end offset, time) samples of one partition.

Offsets say how many records a consumer is behind; an on-call engineer wants to know how *old*
the oldest unprocessed record is and whether the backlog is clearing. kafka-lag-exporter's method
needs nothing but what a groups poll already reads: keep a short table of when the log end
reached which offset, and the committed offset's time is where it falls in that table
(interpolated between the samples around it, extrapolated from the window's ends). Everything
here is pure so the arithmetic is tested without a broker.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

DRAINING = "draining"
NOT_DRAINING = "not draining"
CAUGHT_UP = "caught up"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class OffsetSample:
    """The log end, the group's committed offset and when both were read (seconds)."""

    log_end: int
    committed: int | None
    at: float


class PartitionSamples:
    """A bounded window of samples for one (group, topic, partition), oldest first.

    Bounded so a long-running poller costs constant memory per partition; ``max_samples``
    times the poll interval is the window the rates and interpolation see.
    """

    def __init__(self, max_samples: int = 60) -> None:
        if max_samples < 2:
            raise ValueError("need at least two samples to interpolate")
        self._samples: deque[OffsetSample] = deque(maxlen=max_samples)

    def add(self, log_end: int, committed: int | None, at: float) -> None:
        """Record one poll; a sample older than the newest is ignored (clocks only go forward)."""
        if self._samples and at <= self._samples[-1].at:
            return
        self._samples.append(OffsetSample(log_end, committed, at))

    @property
    def samples(self) -> tuple[OffsetSample, ...]:
        return tuple(self._samples)

    def lag_seconds(self) -> float | None:
        """Seconds from when the log end passed the committed offset to the newest sample."""
        return lag_seconds(self.samples)

    def drain(self) -> tuple[float | None, str]:
        """(seconds until lag reaches 0 at the window's net rate, the drain state)."""
        return drain(self.samples)


def offset_time(samples: tuple[OffsetSample, ...], offset: int) -> float | None:
    """When the log end reached ``offset``: interpolated, or extrapolated past either end.

    None with fewer than two samples, or when the log end never moved (no rate to extrapolate
    with and the offset is not in the table).
    """
    if len(samples) < 2:
        return None
    for older, newer in itertools.pairwise(samples):
        if older.log_end <= offset <= newer.log_end and newer.log_end > older.log_end:
            share = (offset - older.log_end) / (newer.log_end - older.log_end)
            return older.at + share * (newer.at - older.at)
    first, last = samples[0], samples[-1]
    if last.log_end == first.log_end:
        return None
    rate = (last.log_end - first.log_end) / (last.at - first.at)  # records per second
    anchor = first if offset < first.log_end else last
    return anchor.at + (offset - anchor.log_end) / rate


def lag_seconds(samples: tuple[OffsetSample, ...]) -> float | None:
    """The newest committed offset's age; 0 when caught up, None when it cannot be known."""
    if not samples:
        return None
    newest = samples[-1]
    if newest.committed is None:
        return None
    if newest.committed >= newest.log_end:
        return 0.0
    reached = offset_time(samples, newest.committed)
    if reached is None:
        return None
    return max(0.0, newest.at - reached)


def drain(samples: tuple[OffsetSample, ...]) -> tuple[float | None, str]:
    """Time to drain from the net consume rate over the window (commits minus new records)."""
    if not samples:
        return None, UNKNOWN
    newest = samples[-1]
    if newest.committed is not None and newest.committed >= newest.log_end:
        return 0.0, CAUGHT_UP
    committed = [s for s in samples if s.committed is not None]
    if len(committed) < 2 or committed[-1].at <= committed[0].at:
        return None, UNKNOWN
    first, last = committed[0], committed[-1]
    span = last.at - first.at
    lag_then = first.log_end - (first.committed or 0)
    lag_now = last.log_end - (last.committed or 0)
    net_rate = (lag_then - lag_now) / span  # lag removed per second
    if net_rate <= 0:
        return None, NOT_DRAINING
    return lag_now / net_rate, DRAINING


def format_duration(seconds: float | None) -> str:
    """``4.2s``, ``3m05s``, ``2h01m``; ``-`` when unknown. Short, so it fits a narrow column."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
