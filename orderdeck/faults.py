"""Faults the control center causes on purpose, and the broker control behind them.

The Chaos screen (key 8) stops, kills and starts brokers, crashes and slows services and
poisons topics, so what Kafka does under faults can be caused and watched in one window.
:class:`FaultInjector` is what the runtime exposes for that (``runtime.faults``): every
action is put on the :class:`~orderdeck.fault_timeline.FaultTimeline` first, then done, and
the runtime's polls feed the timeline's watcher the recovery that follows.

Service faults go through the supervisor's :class:`~orderdeck.services.faults.ServiceFaults`
(the real worker raises, or waits per record). A poison record is produced like any other
record, through ``kafka/clients.py``, so the service dead-letters it as it would any record
that does not decode. Brokers are reached through a :class:`BrokerControl`: the runtime
builds one with :func:`local_broker_control` for the local Kafka it started or adopted (the
nodes of a three-broker ``LocalCluster``, or the single broker as node 1). Broker calls
block (a JVM starts in seconds), so they run in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from orderdeck.errors import OrderdeckError
from orderdeck.fault_timeline import FaultSummary, FaultTimeline, TimelineEntry, TimelineWatcher
from orderdeck.services import SERVICE_NAMES

if TYPE_CHECKING:
    from orderdeck.events import TopicNames
    from orderdeck.kafka.connection import KafkaConnection
    from orderdeck.kafka.local import LocalKafka
    from orderdeck.services.faults import ServiceFaults

#: What a poison record carries: not JSON, so ``decode_record`` refuses it.
POISON_VALUE = b"\x00chaos: not an event{"
POISON_KEY = b"chaos-poison"
KILL_WAIT_S = 15.0


@dataclass(frozen=True)
class BrokerRef:
    """One broker the control center can stop, kill or start."""

    id: int
    bootstrap: str
    running: bool
    pid: int | None


class BrokerControl(Protocol):
    """Stops, kills and starts the brokers of a local Kafka (blocking calls)."""

    def brokers(self) -> list[BrokerRef]: ...

    def stop(self, broker_id: int) -> None: ...

    def kill(self, broker_id: int) -> None: ...

    def start(self, broker_id: int) -> None: ...


class BrokerNode(Protocol):
    """One broker process of a local Kafka, as ``kafka/local_cluster.py``'s nodes are."""

    @property
    def node_id(self) -> int: ...

    @property
    def bootstrap(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    def is_running(self) -> bool: ...

    def stop(self) -> object: ...

    def kill(self) -> object: ...

    def start(self) -> object: ...


class NodeBrokerControl:
    """A :class:`BrokerControl` over broker nodes (a local cluster's, or the one broker)."""

    def __init__(self, nodes: Callable[[], Sequence[BrokerNode]]) -> None:
        self._nodes = nodes

    def brokers(self) -> list[BrokerRef]:
        return [
            BrokerRef(n.node_id, n.bootstrap, n.is_running(), n.pid)
            for n in sorted(self._nodes(), key=lambda n: n.node_id)
        ]

    def stop(self, broker_id: int) -> None:
        self._node(broker_id).stop()

    def kill(self, broker_id: int) -> None:
        self._node(broker_id).kill()

    def start(self, broker_id: int) -> None:
        self._node(broker_id).start()

    def _node(self, broker_id: int) -> BrokerNode:
        for node in self._nodes():
            if node.node_id == broker_id:
                return node
        raise OrderdeckError(f"no broker {broker_id} here")


class _SingleBroker:
    """The single local broker (``kafka/local.py``, node id 1) as a :class:`BrokerNode`."""

    node_id = 1

    def __init__(self, local: LocalKafka) -> None:
        self._local = local

    @property
    def bootstrap(self) -> str:
        return self._local.bootstrap_servers

    @property
    def pid(self) -> int | None:
        status = self._local.status()
        return status.pid if status is not None else None

    def is_running(self) -> bool:
        return self._local.is_running()

    def stop(self) -> bool:
        return self._local.stop()

    def kill(self) -> bool:
        """``kill -9``: no controlled shutdown; its log is recovered on the next start."""
        pid = self.pid
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + KILL_WAIT_S
        while self._local.is_running():
            if time.monotonic() > deadline:
                raise OrderdeckError(f"broker pid {pid} still runs after SIGKILL")
            time.sleep(0.05)
        # Nothing left to stop: this reaps the JVM (our child) and removes its run files.
        self._local.stop()
        return True

    def start(self) -> object:
        return self._local.start()


class BrokerNodes(Protocol):
    """A local Kafka of several brokers (``kafka/local_cluster.py``'s ``LocalCluster``)."""

    @property
    def nodes(self) -> Sequence[BrokerNode]: ...


def local_broker_control(local: LocalKafka | BrokerNodes) -> BrokerControl:
    """The broker control of the local Kafka the runtime started or adopted: the nodes of a
    local cluster, or the single broker as node 1."""
    from orderdeck.kafka.local import LocalKafka

    if isinstance(local, LocalKafka):
        single = _SingleBroker(local)
        return NodeBrokerControl(lambda: [single])
    return NodeBrokerControl(lambda: local.nodes)


@dataclass(frozen=True)
class TimelineView:
    """The timeline as the Chaos screen shows it."""

    entries: tuple[TimelineEntry, ...]
    faults: tuple[FaultSummary, ...]


class FaultInjector:
    """The faults one runtime can cause, each put on the timeline before it is done."""

    def __init__(
        self,
        *,
        names: TopicNames,
        kafka: Callable[[], KafkaConnection],
        service_faults: Callable[[], ServiceFaults],
        services: Sequence[str] = SERVICE_NAMES,
        broker_control: BrokerControl | None = None,
        watcher: TimelineWatcher | None = None,
    ) -> None:
        self.names = names
        #: The services this process runs (only those can be crashed or slowed here).
        self.services = tuple(services)
        self._kafka = kafka
        self._service_faults = service_faults
        #: None while no local Kafka is controlled here (an external cluster).
        self.broker_control = broker_control
        self.watcher = watcher or TimelineWatcher()

    @property
    def _timeline(self) -> FaultTimeline:
        return self.watcher.timeline

    def _now(self) -> float:
        return self.watcher.clock()

    # ------------------------------------------------------------------ services

    def crash_service(self, name: str) -> None:
        """Make the service's workers raise; the supervisor restarts them."""
        faults = self._own(name)
        self._timeline.fault("crash", name, f"crash {name}", self._now())
        faults.crash(name)

    def slow_service(self, name: str, ms: float) -> None:
        """Add ``ms`` milliseconds of latency per record to the service."""
        faults = self._own(name)
        if ms <= 0:
            raise OrderdeckError("the latency must be more than 0 ms per record")
        self._timeline.fault("slow", name, f"slow {name} by {ms:g} ms/record", self._now())
        faults.slow(name, ms)

    def unslow_service(self, name: str) -> None:
        """Take the service's added latency away."""
        self._own(name).unslow(name)
        self._timeline.restored(name, self._now())

    def slowed(self) -> dict[str, float]:
        """Services slowed now, with their latency per record in ms."""
        try:
            faults = self._service_faults()
        except OrderdeckError:
            return {}
        return {s: faults.slow_ms(s) for s in self.services if faults.slow_ms(s) > 0}

    def _own(self, name: str) -> ServiceFaults:
        if name not in self.services:
            raise OrderdeckError(f"{name} does not run in this process")
        return self._service_faults()

    async def inject_poison(self, topic: str) -> None:
        """Produce one record that does not decode into ``topic`` (a pipeline topic)."""
        from orderdeck.kafka.clients import new_producer

        if topic not in self.names.pipeline():
            raise OrderdeckError(f"{topic} is not one of the pipeline's topics")
        fault = self._timeline.fault("poison", topic, f"poison record into {topic}", self._now())
        async with self._failing(fault):
            producer = new_producer(self._kafka(), client_suffix="chaos", acks="all")
            await producer.start()
            try:
                await producer.send_and_wait(topic, POISON_VALUE, key=POISON_KEY)
            finally:
                await producer.stop()

    # ------------------------------------------------------------------ brokers

    async def brokers(self) -> list[BrokerRef]:
        """The brokers that can be stopped, killed or started here (none without control)."""
        if self.broker_control is None:
            return []
        return await asyncio.to_thread(self.broker_control.brokers)

    async def stop_broker(self, broker_id: int) -> None:
        """Stop a broker cleanly (SIGTERM: a controlled shutdown)."""
        control = self._control()
        fault = self._timeline.fault(
            "stop_broker", str(broker_id), f"stop broker {broker_id}", self._now()
        )
        async with self._failing(fault):
            await asyncio.to_thread(control.stop, broker_id)
        self._timeline.broker_stopped(str(broker_id), self._now())

    async def kill_broker(self, broker_id: int) -> None:
        """``kill -9`` a broker."""
        control = self._control()
        fault = self._timeline.fault(
            "kill_broker", str(broker_id), f"kill -9 broker {broker_id}", self._now()
        )
        async with self._failing(fault):
            await asyncio.to_thread(control.kill, broker_id)
        self._timeline.broker_stopped(str(broker_id), self._now())

    async def start_broker(self, broker_id: int) -> None:
        """Start a stopped or killed broker again (returns once it answers)."""
        control = self._control()
        self._timeline.broker_started(str(broker_id), self._now())
        try:
            await asyncio.to_thread(control.start, broker_id)
        except Exception as exc:
            self._timeline.note(f"start broker {broker_id} failed: {exc}", self._now())
            raise
        self._timeline.broker_up(str(broker_id), self._now())

    @contextlib.asynccontextmanager
    async def _failing(self, fault_id: int) -> AsyncIterator[None]:
        """Close ``fault_id`` as failed (and re-raise) when the action behind it fails."""
        try:
            yield
        except Exception as exc:
            self._timeline.failed(fault_id, str(exc) or type(exc).__name__, self._now())
            raise

    def _control(self) -> BrokerControl:
        if self.broker_control is None:
            raise OrderdeckError("no local Kafka to control (an external cluster is in use)")
        return self.broker_control

    # ------------------------------------------------------------------ timeline

    def timeline(self) -> TimelineView:
        """The timeline now (cheap: what the watcher already holds)."""
        return TimelineView(tuple(self._timeline.entries()), tuple(self._timeline.summaries()))
