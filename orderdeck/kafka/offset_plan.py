"""The data of an offset reset — where to move and the resulting plan — with no Kafka code,
so screens can build a target and show a plan without importing a client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ResetMode = Literal["earliest", "latest", "datetime", "duration", "shift"]


@dataclass(frozen=True)
class ResetTarget:
    """Where to move the offsets: a mode and, for time and shift modes, its value.

    ``value`` is a timestamp in epoch milliseconds for ``datetime`` and ``duration`` (already
    resolved against the clock, so one plan uses one instant), the shift for ``shift``.
    """

    mode: ResetMode
    value: int = 0


@dataclass(frozen=True)
class PlannedOffset:
    """One row of a plan: GROUP TOPIC PARTITION CURRENT-OFFSET NEW-OFFSET."""

    group: str
    topic: str
    partition: int
    current: int | None  # None: the group has no commit there
    new: int
