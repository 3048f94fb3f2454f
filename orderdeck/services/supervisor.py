"""Runs the services as supervised asyncio tasks: restarts, pause/resume, scaling, status.

Every service runs 1..3 :class:`~orderdeck.services.worker.ServiceWorker` instances, each an
asyncio task with its own consumer in the service's group (Kafka splits the partitions between
them, and between the workers of other ``serve`` processes). A worker that raises is restarted
with exponential backoff (0.5 s doubling to :data:`MAX_BACKOFF_S`); the error is kept as
``last_error`` and shown in the status. Backoff is capped low so that after a Kafka outage the
services come back by themselves within seconds.

Pause keeps group membership and pauses fetching on the assigned partitions, so the partitions
stay with this member and the group's lag grows visibly until resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orderdeck.backoff import Backoff
from orderdeck.errors import OrderdeckError
from orderdeck.events import TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.rates import RateMeter
from orderdeck.services import SERVICE_NAMES, FailureRecord, Service, ServiceCounters, ServiceStatus
from orderdeck.services.faults import ServiceFaults
from orderdeck.services.inventory import InventoryService
from orderdeck.services.notification import NotificationService
from orderdeck.services.order import OrderService
from orderdeck.services.payment import PaymentService
from orderdeck.services.worker import ServiceWorker
from orderdeck.store import open_store
from orderdeck.store.tx import StoreBackend
from orderdeck.store.url import StoreURL

log = logging.getLogger(__name__)

MAX_INSTANCES = 3
MAX_BACKOFF_S = 5.0
FAILED_AFTER = 5  # consecutive crashes before the state reads "failed"
RATE_WINDOW_S = 5.0
TICK_S = 0.5
STABLE_S = 10.0  # a worker that ran this long resets its backoff
STOP_GRACE_S = 3.0
DEFAULT_NAMES = TopicNames()

SERVICES: dict[str, Callable[[], Service]] = {
    "order": OrderService,
    "payment": PaymentService,
    "inventory": InventoryService,
    "notification": NotificationService,
}


def make_service(name: str) -> Service:
    """The service called ``name``; OrderdeckError for an unknown name."""
    try:
        return SERVICES[name]()
    except KeyError:
        raise OrderdeckError(
            f"unknown service {name!r} (choose from {', '.join(SERVICE_NAMES)})"
        ) from None


@dataclass
class _Slot:
    """One supervised instance: its task and the worker currently running in it."""

    index: int
    task: asyncio.Task[None] | None = None
    worker: ServiceWorker | None = None
    retiring: bool = False
    backing_off: bool = False
    consecutive_failures: int = 0
    #: When the current worker was started, and the service's processed count then: a worker
    #: that has since run STABLE_S or handled an event clears ``consecutive_failures``.
    worker_since: float = 0.0
    processed_before: int = 0


@dataclass
class _Group:
    name: str
    service: Service
    inbox: str
    counters: ServiceCounters = field(default_factory=ServiceCounters)
    slots: list[_Slot] = field(default_factory=list)
    paused: bool = False
    stopped: bool = True
    restarts: int = 0
    last_error: str | None = None
    meter: RateMeter = field(default_factory=lambda: RateMeter(RATE_WINDOW_S))
    rate: float = 0.0


class Supervisor:
    """Starts, watches and controls the services of one process."""

    def __init__(
        self,
        kafka: KafkaConnection,
        store_path: Path | StoreURL,
        names: TopicNames = DEFAULT_NAMES,
        services: Sequence[str] = SERVICE_NAMES,
        on_change: Callable[[], None] | None = None,
        store: StoreBackend | None = None,
    ) -> None:
        """``store`` lets the caller share its Store (and so its database thread) with the
        services; without it the supervisor opens one on first use and closes it on stop."""
        self.kafka = kafka
        self.store_path = store_path if isinstance(store_path, StoreURL) else Path(store_path)
        self.names = names
        self._on_change = on_change
        self._groups: dict[str, _Group] = {}
        for name in services:
            service = make_service(name)
            self._groups[name] = _Group(name, service, names.resolve(service.inbox))
        self._failures: deque[FailureRecord] = deque(maxlen=200)
        self._ticker: asyncio.Task[None] | None = None
        self._store = store
        self._owns_store = store is None
        self._store_lock = asyncio.Lock()
        #: Crashes and slow-downs the control center injects into the workers.
        self.faults = ServiceFaults()

    # -- lifecycle

    async def start(self) -> None:
        """Start one worker per service (returns at once; workers join their groups)."""
        for group in self._groups.values():
            group.stopped = False
            if not group.slots:
                self._add_slot(group)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name="orderdeck-supervisor-tick")
        self._changed()

    async def stop(self) -> None:
        """Stop every worker cleanly: finish the batch, commit, leave the group."""
        for group in self._groups.values():
            group.stopped = True
        await asyncio.gather(
            *(self._retire(g, s) for g in self._groups.values() for s in list(g.slots))
        )
        for group in self._groups.values():
            group.slots.clear()
        if self._owns_store and self._store is not None:
            store, self._store = self._store, None
            await asyncio.to_thread(store.close)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self._changed()

    async def wait_joined(self) -> None:
        """Wait until every worker has received its first assignment (bound it with a timeout)."""
        while True:
            workers = [s.worker for g in self._groups.values() for s in g.slots if not s.retiring]
            if all(w is not None and w.joined.is_set() for w in workers):
                return
            await asyncio.sleep(0.05)

    # -- control

    async def pause(self, name: str) -> None:
        """Stop fetching for ``name`` (membership is kept; its lag grows)."""
        group = self._group(name)
        group.paused = True
        for slot in group.slots:
            if slot.worker is not None:
                slot.worker.pause()
        self._changed()

    async def resume(self, name: str) -> None:
        """Fetch again for ``name`` from its committed offsets."""
        group = self._group(name)
        group.paused = False
        for slot in group.slots:
            if slot.worker is not None:
                slot.worker.resume()
        self._changed()

    async def stop_service(self, name: str) -> int:
        """Stop every worker of ``name`` cleanly (commit, leave the group) and keep the service
        stopped; returns how many instances ran so :meth:`start_service` can bring them back.
        An offset reset needs the group empty, and a paused worker would still be a member."""
        group = self._group(name)
        instances = len(group.slots)
        group.stopped = True
        retiring = list(group.slots)
        group.slots.clear()
        self._changed()
        await asyncio.gather(*(self._retire(group, s) for s in retiring))
        self._changed()
        return instances

    async def start_service(self, name: str, instances: int = 1) -> None:
        """Start ``name`` again with ``instances`` workers, fetching from the committed offsets."""
        group = self._group(name)
        group.stopped = False
        while len(group.slots) < max(1, min(instances, MAX_INSTANCES)):
            self._add_slot(group)
        self._changed()

    async def scale(self, name: str, instances: int) -> None:
        """Run ``instances`` (1..3) consumers of ``name`` in its group."""
        group = self._group(name)
        if not 1 <= instances <= MAX_INSTANCES:
            raise OrderdeckError(f"instances must be between 1 and {MAX_INSTANCES}")
        if group.stopped:
            raise OrderdeckError(f"service {name} is not running")
        while len(group.slots) < instances:
            self._add_slot(group)
        retiring = group.slots[instances:]
        del group.slots[instances:]
        self._changed()
        await asyncio.gather(*(self._retire(group, s) for s in retiring))
        self._changed()

    # -- status

    def statuses(self) -> list[ServiceStatus]:
        """One snapshot per service, in pipeline order."""
        return [self._status(g) for g in self._groups.values()]

    def workers(self, name: str) -> list[ServiceWorker]:
        """The workers of service ``name`` running now (none while they restart)."""
        return [s.worker for s in self._group(name).slots if s.worker is not None]

    def recent_failures(self) -> list[FailureRecord]:
        """The latest records that failed or were dead-lettered, oldest first."""
        return list(self._failures)

    def _status(self, g: _Group) -> ServiceStatus:
        return ServiceStatus(
            name=g.name,
            state=self._state(g),
            instances=len(g.slots),
            processed=g.counters.processed,
            errors=g.counters.errors,
            dead_letters=g.counters.dead_letters,
            rate=round(g.rate, 1),
            last_error=g.last_error,
            restarts=g.restarts,
            inbox=g.inbox,
            group=g.inbox,
            duplicates=g.counters.duplicates,
        )

    @staticmethod
    def _state(g: _Group) -> str:
        if g.stopped and not g.slots:
            return "stopped"
        if any(s.consecutive_failures >= FAILED_AFTER for s in g.slots):
            return "failed"
        if any(s.backing_off for s in g.slots):
            return "restarting"
        if any(s.worker is not None and s.worker.waiting_on_store for s in g.slots):
            return "waiting"  # alive, but its batch cannot get the database's write lock
        if g.paused:
            return "paused"
        if any(s.worker is None or not s.worker.joined.is_set() for s in g.slots):
            return "starting"
        return "running"

    # -- internals

    def _group(self, name: str) -> _Group:
        try:
            return self._groups[name]
        except KeyError:
            raise OrderdeckError(
                f"unknown service {name!r} (running: {', '.join(self._groups) or 'none'})"
            ) from None

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                log.exception("on_change callback failed")

    def _add_slot(self, group: _Group) -> None:
        used = {s.index for s in group.slots}
        slot = _Slot(index=min(i for i in range(MAX_INSTANCES + 1) if i not in used))
        slot.task = asyncio.create_task(
            self._run_slot(group, slot), name=f"orderdeck-{group.name}-{slot.index}"
        )
        group.slots.append(slot)

    async def _retire(self, group: _Group, slot: _Slot) -> None:
        slot.retiring = True
        if slot.worker is not None:
            slot.worker.request_stop()
        task = slot.task
        if task is None:
            return
        if slot.backing_off:
            task.cancel()
        # A clean stop takes one batch; a worker stuck connecting to an absent Kafka is
        # cancelled after the grace period.
        done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_S)
        if not done:
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:  # pragma: no cover - _run_slot handles worker errors itself
            log.exception("%s[%d] ended with an error", group.name, slot.index)

    def _record_failure(self, failure: FailureRecord) -> None:
        self._failures.append(failure)
        self._changed()

    async def _shared_store(self) -> StoreBackend:
        """The one Store every worker of this process writes through (opened on first use)."""
        async with self._store_lock:
            if self._store is None:
                self._store = await asyncio.to_thread(open_store, self.store_path)
            return self._store

    async def _run_slot(self, group: _Group, slot: _Slot) -> None:
        backoff = Backoff.doubling(0.5, cap=MAX_BACKOFF_S)
        while not slot.retiring:
            started = time.monotonic()
            try:
                store = await self._shared_store()
            except Exception as exc:
                await self._crashed(group, slot, exc, backoff.next())
                continue
            worker = ServiceWorker(
                group.service,
                kafka=self.kafka,
                store_path=self.store_path,
                names=self.names,
                counters=group.counters,
                instance=slot.index,
                paused=group.paused,
                on_failure=self._record_failure,
                store=store,
                faults=self.faults,
            )
            slot.worker = worker
            slot.worker_since, slot.processed_before = time.monotonic(), group.counters.processed
            try:
                await worker.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - started >= STABLE_S:
                    backoff.reset()
                await self._crashed(group, slot, exc, backoff.next())
                continue
            slot.worker = None
            if not slot.retiring:  # pragma: no cover - run() only returns when asked to stop
                continue
        slot.worker = None

    async def _crashed(self, group: _Group, slot: _Slot, exc: Exception, backoff: float) -> None:
        slot.consecutive_failures += 1
        group.restarts += 1
        group.last_error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "%s[%d] crashed (%s); restarting in %.1f s",
            group.name,
            slot.index,
            group.last_error,
            backoff,
        )
        slot.worker = None
        slot.backing_off = True
        self._changed()
        try:
            await asyncio.sleep(backoff)
        finally:
            slot.backing_off = False

    @staticmethod
    def _recovered(g: _Group, slot: _Slot, now: float) -> bool:
        """Whether a slot's worker proved it works: it joined its group and then ran
        STABLE_S or handled events. Joining alone proves little: a worker that crashes on
        the first record it fetches joins every time, and must still end up ``failed``."""
        worker = slot.worker
        if worker is None or not worker.joined.is_set():
            return False
        return now - slot.worker_since >= STABLE_S or g.counters.processed > slot.processed_before

    async def _tick(self) -> None:
        """Sample counters for the rates and report state changes."""
        last: list[ServiceStatus] = []
        while True:
            now = time.monotonic()
            for g in self._groups.values():
                g.meter.add(now, g.counters.processed)
                g.rate = g.meter.rate() or 0.0
                for slot in g.slots:
                    if self._recovered(g, slot, now):
                        slot.consecutive_failures = 0
            current = self.statuses()
            if current != last:
                last = current
                self._changed()
            await asyncio.sleep(TICK_S)
