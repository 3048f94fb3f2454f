"""The four consumer services of the order pipeline and the types their runner reports.

Each service consumes one inbox topic in the consumer group named after that topic (see
``services/base.py`` for the loop and its guarantees); ``services/supervisor.py`` runs them as
asyncio tasks. Nothing here imports a UI: screens read :class:`ServiceStatus` snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SERVICE_NAMES: tuple[str, ...] = ("order", "payment", "inventory", "notification")

#: The states a service moves through, as shown by ``ServiceStatus.state``.
SERVICE_STATES = ("starting", "running", "paused", "restarting", "failed", "stopped")


@dataclass(frozen=True)
class ServiceStatus:
    """A snapshot of one service: its consumers, counters and health.

    ``rate`` is events per second over the last ~5 s. ``state`` is ``failed`` while the
    service keeps crashing (it is still retried, with backoff capped at a few seconds).
    """

    name: str
    state: str
    instances: int
    processed: int
    errors: int
    dead_letters: int
    rate: float
    last_error: str | None
    restarts: int
    inbox: str
    group: str
    duplicates: int = 0


@dataclass(frozen=True)
class FailureRecord:
    """A record a service failed on, and whether it was dead-lettered."""

    at: datetime
    service: str
    topic: str
    partition: int
    offset: int
    reason: str
    dead_lettered: bool
