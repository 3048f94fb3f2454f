"""What the control center may see of the runtime, and the bridge for its callbacks.

Screens never talk to Kafka or SQL: they call the methods named here. ``RuntimeLike`` is a
Protocol so the app can be driven by the real ``orderdeck.runtime.Runtime`` or, in snapshot
tests, by a deterministic fake with a fixed clock and fixed ids.

The runtime reports start-up steps, state changes and log records through plain callbacks
that may fire from any thread. ``RuntimeHooks`` turns them into state the app *pulls* on its
refresh tick, which keeps the callbacks cheap and thread-agnostic and coalesces bursts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from orderdeck.widgets.log_buffer import LogBuffer

if TYPE_CHECKING:
    from orderdeck.events import TopicNames
    from orderdeck.faults import BrokerRef, TimelineView
    from orderdeck.kafka.admin import GroupSnapshot
    from orderdeck.kafka.cluster_model import ClusterView
    from orderdeck.kafka.dead_letters import DeadLetter, RedriveReport
    from orderdeck.kafka.lag_tracker import GroupLagTime
    from orderdeck.kafka.offset_plan import PlannedOffset, ResetTarget
    from orderdeck.kafka.seek_target import SeekTarget
    from orderdeck.kafka.tail import TailRecord
    from orderdeck.orders import OrderRequest, SubmittedOrder
    from orderdeck.runtime import RuntimeStatus, StartupStep
    from orderdeck.services import FailureRecord, ServiceStatus
    from orderdeck.store import OrderSummary, OrderView, Product
    from orderdeck.store.views import StuckOrder


T = TypeVar("T")


class StoreReader(Protocol):
    """The read side of the store that screens use.

    Screens call the reads through :meth:`run` (from a worker), never on the event loop.
    """

    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...

    def order_statuses(self, order_ids: Sequence[str]) -> dict[str, str]: ...

    def get_order(self, order_id: str) -> OrderView | None: ...

    def list_orders(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[OrderSummary], str | None]: ...

    def list_products(self) -> list[Product]: ...

    def status_counts(self) -> dict[str, int]: ...

    def stuck_count(self, older_than_s: float = 30.0) -> int: ...

    def stuck_orders(self, older_than_s: float = 30.0, limit: int = 100) -> list[StuckOrder]: ...


class ServiceControl(Protocol):
    """The supervisor's status and control surface."""

    def statuses(self) -> list[ServiceStatus]: ...

    async def pause(self, name: str) -> None: ...

    async def resume(self, name: str) -> None: ...

    async def scale(self, name: str, instances: int) -> None: ...

    def recent_failures(self) -> list[FailureRecord]: ...


class TailLike(Protocol):
    """A group-less topic tail (``orderdeck.kafka.tail.TopicTail``)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def next_batch(
        self, max_records: int = 500, timeout_ms: int = 200
    ) -> list[TailRecord]: ...

    @property
    def partitions(self) -> tuple[tuple[str, int], ...]:
        """Every (topic, partition) followed, once started."""
        ...

    async def seek(self, target: SeekTarget) -> dict[tuple[str, int], int]:
        """Move to an offset or a time (see ``kafka/seek_target.py``)."""
        ...


class FencedLookup(Protocol):
    """The events the API fenced after a 503 (``orderdeck.fenced.FencedEvents``)."""

    def is_fenced(self, order_id: str | None, value: bytes) -> bool: ...


class FaultControl(Protocol):
    """The faults the Chaos screen causes and the timeline of their recovery
    (``orderdeck.faults.FaultInjector``)."""

    def crash_service(self, name: str) -> None: ...

    def slow_service(self, name: str, ms: float) -> None: ...

    def unslow_service(self, name: str) -> None: ...

    def slowed(self) -> dict[str, float]: ...

    async def inject_poison(self, topic: str) -> None: ...

    async def brokers(self) -> list[BrokerRef]: ...

    async def stop_broker(self, broker_id: int) -> None: ...

    async def kill_broker(self, broker_id: int) -> None: ...

    async def start_broker(self, broker_id: int) -> None: ...

    def timeline(self) -> TimelineView: ...


class RuntimeLike(Protocol):
    """Everything the control center needs from the running system."""

    @property
    def bootstrap_servers(self) -> str: ...

    @property
    def api_url(self) -> str: ...

    @property
    def names(self) -> TopicNames: ...

    @property
    def store(self) -> StoreReader: ...

    @property
    def supervisor(self) -> ServiceControl: ...

    @property
    def faults(self) -> FaultControl: ...

    @property
    def fenced(self) -> FencedLookup:
        """The OrderPlaced events this process's API fenced (the Topics tail marks them)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> RuntimeStatus: ...

    async def submit_order(self, request: OrderRequest) -> SubmittedOrder: ...

    async def group_snapshots(self) -> list[GroupSnapshot]: ...

    async def cluster_view(self) -> ClusterView: ...

    def lag_times(self) -> Mapping[str, GroupLagTime]:
        """Lag seconds, time to drain and verdicts per group, as of the last snapshots."""
        ...

    def open_tail(self, topics: Sequence[str], from_beginning: bool) -> TailLike: ...

    async def dead_letters(self, topic: str | None = None) -> list[DeadLetter]: ...

    async def redrive(
        self,
        dlq: str,
        positions: Sequence[tuple[int, int]] | None,
        *,
        value: bytes | None = None,
        force: bool = False,
    ) -> RedriveReport: ...

    async def preview_offset_reset(
        self, group: str, target: ResetTarget
    ) -> list[PlannedOffset]: ...

    async def apply_offset_reset(self, group: str, plan: Sequence[PlannedOffset]) -> None: ...


class RuntimeHooks:
    """Callbacks handed to the runtime; the app drains what they collected on each tick."""

    def __init__(self, log_capacity: int = 2000) -> None:
        self.log_buffer = LogBuffer(capacity=log_capacity)
        self._guard = threading.Lock()
        self._steps: list[StartupStep] = []
        self._changed = False

    def on_progress(self, step: StartupStep) -> None:
        """Runtime callback: a start-up step began, finished or failed."""
        with self._guard:
            self._steps.append(step)

    def on_change(self) -> None:
        """Runtime callback: some service or component changed state."""
        with self._guard:
            self._changed = True

    def take_steps(self) -> list[StartupStep]:
        """Start-up steps reported since the last call."""
        with self._guard:
            steps, self._steps = self._steps, []
        return steps

    def take_changed(self) -> bool:
        """True once after one or more ``on_change`` calls."""
        with self._guard:
            changed, self._changed = self._changed, False
        return changed
