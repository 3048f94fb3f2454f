"""How long to wait before trying again: one helper for every retry loop.

A retry loop that waits the same short time after every failure hammers whatever is failing
(a locked database, an absent broker) and floods the log; one that grows without bound comes
back late once the cause is gone. :class:`Backoff` grows the delay along a schedule up to a
cap, and :meth:`Backoff.reset` starts over after a success, so each loop states its numbers
once (``Backoff.doubling(0.5, cap=5.0)``) instead of doing the arithmetic inline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


class Backoff:
    """Delays along a schedule; the last delay repeats once the schedule is used up."""

    def __init__(self, schedule: Sequence[float]) -> None:
        if not schedule:
            raise ValueError("a backoff needs at least one delay")
        self._schedule = tuple(schedule)
        self._step = 0

    @classmethod
    def doubling(cls, first: float, cap: float) -> Backoff:
        """``first``, twice that, and so on, capped at ``cap`` (0.5, 1, 2, 4, 5, 5, ...)."""
        delays = [first]
        while delays[-1] < cap:
            delays.append(min(delays[-1] * 2, cap))
        return cls(delays)

    @property
    def delay(self) -> float:
        """The delay to wait next."""
        return self._schedule[self._step]

    def grow(self) -> None:
        """Move to the next (longer) delay."""
        self._step = min(self._step + 1, len(self._schedule) - 1)

    def next(self) -> float:
        """The delay to wait now; the one after will be longer (up to the cap)."""
        delay = self.delay
        self.grow()
        return delay

    async def sleep(self) -> None:
        """Wait :meth:`next` seconds."""
        await asyncio.sleep(self.next())

    def reset(self) -> None:
        """Start from the first delay again (the last try succeeded, or ran long enough)."""
        self._step = 0
