"""Faults a service worker can be told to suffer: crash now, or take N ms longer per record.

The control center's Chaos screen crashes and slows services to show what Kafka does about
it (a rebalance, lag building and draining). The faults are injected *inside* the real
worker loop rather than imitated from outside, so the supervisor restarts a crashed worker
exactly as it would after any other exception, and a slowed service holds its partitions
and falls behind exactly as a slow handler would.

One :class:`ServiceFaults` belongs to each supervisor (several runtimes in one process, as
in the tests, do not see each other's faults). Each worker holds a :class:`FaultSwitch`,
whose two checks cost a dictionary lookup when no fault is set: the worker loop calls
:meth:`FaultSwitch.check` once per poll and :meth:`FaultSwitch.delay` once per batch.
"""

from __future__ import annotations

import asyncio
import contextlib


class FaultInjected(Exception):
    """Raised in a worker whose service was crashed from the control center."""


class ServiceFaults:
    """The crash and slow-down requests of one process's services, by service name."""

    def __init__(self) -> None:
        #: How many crashes were asked for each service: a worker built after the last one
        #: (the restarted one) has seen them all and runs on.
        self._crashes: dict[str, int] = {}
        self._slow_ms: dict[str, float] = {}

    def crash(self, service: str) -> None:
        """Make every worker of ``service`` running now raise :class:`FaultInjected`."""
        self._crashes[service] = self._crashes.get(service, 0) + 1

    def slow(self, service: str, ms_per_record: float) -> None:
        """Add ``ms_per_record`` milliseconds per record to every batch of ``service``."""
        if ms_per_record <= 0:
            raise ValueError("the latency per record must be positive")
        self._slow_ms[service] = float(ms_per_record)

    def unslow(self, service: str) -> None:
        """Take the added latency of ``service`` away (its next batch runs at full speed)."""
        self._slow_ms.pop(service, None)

    def slow_ms(self, service: str) -> float:
        """The latency per record added to ``service`` now (0 when none)."""
        return self._slow_ms.get(service, 0.0)

    def crashes(self, service: str) -> int:
        """How many crashes of ``service`` were asked for so far."""
        return self._crashes.get(service, 0)

    def switch(self, service: str) -> FaultSwitch:
        """The switch a new worker of ``service`` checks (it ignores earlier crashes)."""
        return FaultSwitch(self, service)


class FaultSwitch:
    """What one worker checks in its loop; see the module docstring."""

    __slots__ = ("_faults", "_seen", "_service")

    def __init__(self, faults: ServiceFaults, service: str) -> None:
        self._faults = faults
        self._service = service
        self._seen = faults.crashes(service)

    def check(self) -> None:
        """Raise :class:`FaultInjected` once for every crash asked since the last check."""
        asked = self._faults.crashes(self._service)
        if asked != self._seen:
            self._seen = asked
            raise FaultInjected(f"{self._service} crashed from the control center")

    async def delay(self, records: int, stopping: asyncio.Event) -> None:
        """Wait the added latency for a batch of ``records`` (cut short by a stop request)."""
        ms = self._faults.slow_ms(self._service)
        if ms <= 0 or records <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), ms * records / 1000.0)


#: The faults of a worker built without a supervisor (tests, tools): never set.
NO_FAULTS = ServiceFaults()
