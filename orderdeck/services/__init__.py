"""The four consumer services of the order pipeline, what a service is, and what its runner reports.

Each service (a :class:`Service`) consumes one inbox topic in the consumer group named after
that topic. ``services/worker.py`` runs the loop and states its guarantees, applying each batch
with ``services/batch.py`` and sending and committing it with ``services/acks.py``;
``services/supervisor.py`` runs the workers as asyncio tasks. Nothing here imports a UI:
screens read :class:`ServiceStatus` snapshots.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orderdeck.store.tx import WriteTx

SERVICE_NAMES: tuple[str, ...] = ("order", "payment", "inventory", "notification")

#: The states a service moves through, as shown by ``ServiceStatus.state``.
#: ``waiting`` is the runtime's word for a service whose consumers retry while Kafka is
#: unreachable (the supervisor itself cannot tell).
SERVICE_STATES = ("starting", "running", "waiting", "paused", "restarting", "failed", "stopped")


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


class Service(ABC):
    """One step of the pipeline: which inbox it reads and what it does with each event."""

    #: Service name, one of ``SERVICE_NAMES``.
    name: str
    #: Logical inbox topic (``order-events``, ...).
    inbox: str
    #: Event types that belong in the inbox; anything else is dead-lettered.
    accepts: frozenset[str]
    #: Whether the worker lets the next batch gather (``services/pacing.py``): only for an
    #: inbox fed record by record. The order service's is (the API produces each order as it
    #: is accepted); every later inbox receives the batches the service before it produced.
    paced: bool = False

    @abstractmethod
    def handle(self, tx: WriteTx, event: Any) -> Sequence[Any]:
        """Apply ``event`` inside ``tx`` and return the events to emit (may be empty).

        Runs on the worker's database thread. Must be deterministic given the database state:
        it may run again after a rollback.
        """


@dataclass
class ServiceCounters:
    """Counters shared by every instance of a service (they survive restarts); a batch
    is counted once its offsets are committed."""

    processed: int = 0
    duplicates: int = 0
    errors: int = 0
    dead_letters: int = 0
