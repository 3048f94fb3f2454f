"""A deterministic stand-in for ``orderdeck.runtime.Runtime`` for pure-UI tests.

Snapshot tests need every number, id and time on screen to be the same on every run, so
this fake serves fixed orders, services, group snapshots and tail records built from a fixed
clock. It is *not* a Kafka fake: the app's integration tests run against the real broker;
this only feeds the screens so their pictures can be compared.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from orderdeck.events import (
    FINAL_STATUSES,
    HEADER_CORRELATION_ID,
    HEADER_EVENT_TYPE,
    TopicNames,
    dlq_topic,
)
from orderdeck.fault_timeline import FaultTimeline, Observation
from orderdeck.faults import BrokerRef, TimelineView
from orderdeck.fenced import FencedEvents
from orderdeck.kafka.admin import GroupMember, GroupSnapshot, PartitionLag
from orderdeck.kafka.cluster_model import Broker, ClusterView, PartitionInfo, TopicInfo
from orderdeck.kafka.dead_letters import DeadLetter, Redriven, RedriveReport
from orderdeck.kafka.lag_tracker import GroupLagTime, LagTracker
from orderdeck.kafka.offset_plan import PlannedOffset, ResetTarget
from orderdeck.kafka.seek_target import SeekTarget
from orderdeck.kafka.tail import TailRecord
from orderdeck.orders import (
    OrderCreated,
    OrderRequest,
    PlacedOrderEvent,
    SubmittedOrder,
)
from orderdeck.runtime import RuntimeStatus, StartupStep
from orderdeck.services import SERVICE_NAMES, FailureRecord, ServiceStatus
from orderdeck.store import (
    JourneyHop,
    OrderItemView,
    OrderSummary,
    OrderView,
    Product,
    StatusChange,
)
from orderdeck.store.views import StuckOrder

BASE = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
BASE_MS = int(BASE.timestamp() * 1000)
CATALOG = Path(__file__).resolve().parents[2] / "data" / "inventory.json"
STATUSES = (
    "confirmed",
    "confirmed",
    "payment_declined",
    "confirmed",
    "cancelled",
    "pending",
    "confirmed",
    "rejected",
    "confirmed",
    "placed",
    "confirmed",
    "paid",
)
LAG_WAVE = (0, 0, 1, 3, 6, 10, 15, 21, 26, 24, 19, 13, 8, 4, 2, 0, 0, 0, 0, 0)
HOPS = {
    "confirmed": (
        ("OrderPlaced", "order-events", "order"),
        ("PaymentRequested", "payment-events", "payment"),
        ("StockReservationRequested", "inventory-events", "inventory"),
        ("OrderConfirmed", "notification-events", "notification"),
    ),
    "payment_declined": (
        ("OrderPlaced", "order-events", "order"),
        ("PaymentRequested", "payment-events", "payment"),
        ("PaymentDeclined", "notification-events", "notification"),
    ),
    "cancelled": (
        ("OrderPlaced", "order-events", "order"),
        ("PaymentRequested", "payment-events", "payment"),
        ("StockReservationRequested", "inventory-events", "inventory"),
        ("RefundRequested", "payment-events", "payment"),
        ("OrderCancelled", "notification-events", "notification"),
    ),
    "rejected": (
        ("OrderPlaced", "order-events", "order"),
        ("OrderRejected", "notification-events", "notification"),
    ),
}


def order_id(n: int) -> str:
    """A fixed, uuid-shaped order id."""
    return f"0f1e2d3c-0000-4000-8000-{n:012d}"


def _products() -> list[Product]:
    data = json.loads(CATALOG.read_text())
    return [
        Product(
            id=p["id"], name=p["name"], priceCents=p["priceCents"], stock=p["stock"], reserved=0
        )
        for p in data["products"]
    ]


T = TypeVar("T")


class FakeStore:
    """The store's read side over fixed data."""

    def __init__(self) -> None:
        self.products = _products()
        self.orders: dict[str, OrderView] = {}
        for n, status in enumerate(STATUSES, start=1):
            self.add(self._order(n, status))

    def _order(self, n: int, status: str) -> OrderView:
        product = self.products[n % len(self.products)]
        quantity = 1 + n % 3
        created = BASE + timedelta(seconds=n)
        hops = HOPS.get(status, HOPS["confirmed"][: 1 + n % 3])
        partition = n % 3
        journey = [
            JourneyHop(
                eventId=f"evt-{n}-{i}",
                type=kind,
                topic=topic,
                partition=partition,
                offset=40 + n * 2 + i,
                timestamp=BASE_MS + n * 1000 + i * 7,
                service=service,
                processedAt=created + timedelta(milliseconds=i * 7 + 3),
            )
            for i, (kind, topic, service) in enumerate(hops)
        ]
        history = [StatusChange(status="placed", at=created)]
        if status != "placed":
            history.append(StatusChange(status=status, at=created + timedelta(milliseconds=30)))
        return OrderView(
            id=order_id(n),
            customerId=f"customer-{n:02d}",
            status=status,
            items=[
                OrderItemView(
                    productId=product.id, quantity=quantity, unitPriceCents=product.priceCents
                )
            ],
            amountCents=product.priceCents * quantity,
            refundedCents=product.priceCents * quantity if status == "cancelled" else 0,
            createdAt=created,
            updatedAt=created + timedelta(milliseconds=30),
            history=history,
            journey=journey,
        )

    def add(self, order: OrderView) -> None:
        """Insert or replace an order."""
        self.orders[order.id] = order

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Like the real stores' ``run``, on a thread: the app must not care which."""
        return await asyncio.to_thread(fn, *args)

    def get_order(self, order_id: str) -> OrderView | None:
        return self.orders.get(order_id)

    def order_statuses(self, order_ids: Sequence[str]) -> dict[str, str]:
        return {oid: self.orders[oid].status for oid in order_ids if oid in self.orders}

    def list_orders(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[OrderSummary], str | None]:
        rows = [o for o in self.orders.values() if status is None or o.status == status]
        rows.sort(key=lambda o: o.createdAt, reverse=True)
        return [
            OrderSummary(
                id=o.id,
                customerId=o.customerId,
                status=o.status,
                amountCents=o.amountCents,
                refundedCents=o.refundedCents,
                itemCount=sum(i.quantity for i in o.items),
                createdAt=o.createdAt,
                updatedAt=o.updatedAt,
            )
            for o in rows[:limit]
        ], None

    def list_products(self) -> list[Product]:
        return list(self.products)

    def stuck_count(self, older_than_s: float = 30.0) -> int:
        """The fixed data's in-flight orders all count as stuck (its clock stands still)."""
        return sum(1 for o in self.orders.values() if o.status not in FINAL_STATUSES)

    def stuck_orders(self, older_than_s: float = 30.0, limit: int = 100) -> list[StuckOrder]:
        """The in-flight orders, oldest first, each stopped after its journey's last hop; the
        age is counted from a fixed clock one minute past the first order."""
        now = BASE + timedelta(minutes=1)
        rows = sorted(
            (o for o in self.orders.values() if o.status not in FINAL_STATUSES),
            key=lambda o: o.createdAt,
        )
        return [
            StuckOrder(
                id=o.id,
                customerId=o.customerId,
                status=o.status,
                lastEvent=o.journey[-1].type if o.journey else None,
                createdAt=o.createdAt,
                updatedAt=o.updatedAt,
                stuckForS=(now - o.createdAt).total_seconds(),
            )
            for o in rows[:limit]
        ]

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for order in self.orders.values():
            counts[order.status] = counts.get(order.status, 0) + 1
        return counts


class FakeSupervisor:
    """Service statuses and controls that only change the numbers on screen."""

    def __init__(self, names: TopicNames) -> None:
        self._statuses = {
            name: ServiceStatus(
                name=name,
                state="running",
                instances=1,
                processed=1200 - i * 150,
                errors=2 if name == "payment" else 0,
                dead_letters=1 if name == "payment" else 0,
                rate=12.5 - i,
                last_error="invalid PaymentRequested: payload.amountCents: field required"
                if name == "payment"
                else None,
                restarts=0,
                inbox=names.pipeline()[i],
                group=names.pipeline()[i],
            )
            for i, name in enumerate(SERVICE_NAMES)
        }

    def statuses(self) -> list[ServiceStatus]:
        return list(self._statuses.values())

    async def pause(self, name: str) -> None:
        self._statuses[name] = replace(self._statuses[name], state="paused")

    async def resume(self, name: str) -> None:
        self._statuses[name] = replace(self._statuses[name], state="running")

    async def scale(self, name: str, instances: int) -> None:
        self._statuses[name] = replace(self._statuses[name], instances=instances)

    def recent_failures(self) -> list[FailureRecord]:
        return [
            FailureRecord(
                at=BASE + timedelta(seconds=5),
                service="payment",
                topic="payment-events",
                partition=1,
                offset=17,
                reason="invalid PaymentRequested: payload.amountCents: field required",
                dead_lettered=True,
            ),
            FailureRecord(
                at=BASE + timedelta(seconds=9),
                service="payment",
                topic="payment-events",
                partition=2,
                offset=33,
                reason="database is locked (retrying)",
                dead_lettered=False,
            ),
        ]


def _record(topic: str, n: int) -> TailRecord:
    kind = {
        "order-events": "OrderPlaced",
        "payment-events": "PaymentRequested",
        "inventory-events": "StockReservationRequested",
        "notification-events": "OrderConfirmed",
    }.get(topic.removesuffix(".dlq"), "OrderPlaced")
    oid = order_id(n)
    value = {
        "eventId": f"0a0b0c0d-0000-4000-8000-{n:012d}",
        "type": kind,
        "orderId": oid,
        "occurredAt": (BASE + timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
        "schemaVersion": 1,
        "correlationId": oid,
        "payload": {
            "customerId": f"customer-{n:02d}",
            "items": [{"productId": "sku-mouse", "quantity": 1}],
        },
    }
    return TailRecord(
        topic=topic,
        partition=n % 3,
        offset=100 + n,
        timestamp_ms=BASE_MS + n * 1000,
        key=oid,
        event_type=kind,
        order_id=oid,
        value=json.dumps(value).encode(),
        headers=((HEADER_EVENT_TYPE, kind.encode()), (HEADER_CORRELATION_ID, oid.encode())),
    )


def _letter(topic: str, n: int) -> DeadLetter:
    """A dead letter of ``topic`` that a service could not handle (value ``n`` is not JSON)."""
    headers = (
        ("dlq-reason", b"handler failed: bad value"),
        ("dlq-service", b"payment"),
        ("dlq-original-topic", topic.encode()),
        ("dlq-original-partition", b"0"),
        ("dlq-original-offset", str(10 + n).encode()),
    )
    return DeadLetter(
        dlq_topic(topic), 0, n, order_id(n).encode(), b"{not json", headers, redriven=False
    )


class FakeTail:
    """Serves a fixed batch of records once, then nothing."""

    def __init__(self, topics: Sequence[str], count: int) -> None:
        self.topic = topics[0]
        self.records = [_record(topics[0], n) for n in range(1, count + 1)]
        self.started = False
        self.stopped = False
        #: Every seek asked for, in order.
        self.seeks: list[SeekTarget] = []

    @property
    def partitions(self) -> tuple[tuple[str, int], ...]:
        return tuple((self.topic, p) for p in range(3))

    async def seek(self, target: SeekTarget) -> dict[tuple[str, int], int]:
        self.seeks.append(target)
        return {}

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def next_batch(self, max_records: int = 500, timeout_ms: int = 200) -> list[TailRecord]:
        if self.records:
            batch, self.records = self.records[:max_records], self.records[max_records:]
            return batch
        await asyncio.sleep(timeout_ms / 1000)
        return []


def _chaos_history(names: TopicNames) -> FaultTimeline:
    """A kill -9 of broker 2 that recovered, then a slow-down still recovering (fixed times)."""
    at = BASE.timestamp()
    timeline = FaultTimeline()
    leaders = {(names.orders, 0): 2, (names.orders, 1): 3}
    timeline.observe(Observation(at=at, brokers=frozenset({1, 2, 3}), leaders=leaders))
    killed = timeline.fault("kill_broker", "2", "kill -9 broker 2", at + 1.0)
    timeline.broker_stopped("2", at + 1.2)
    timeline.observe(
        Observation(
            at=at + 3.4,
            brokers=frozenset({1, 3}),
            leaders={(names.orders, 0): 1, (names.orders, 1): 3},
            under_replicated=6,
            groups={names.orders: ("PreparingRebalance", frozenset())},
        )
    )
    timeline.broker_started("2", at + 8.0)
    timeline.observe(
        Observation(
            at=at + 14.6,
            brokers=frozenset({1, 2, 3}),
            under_replicated=0,
            groups={names.orders: ("Stable", frozenset({"m1"}))},
            total_lag=0,
            older_in_flight={killed: 0},
        )
    )
    slow = timeline.fault("slow", "inventory", "slow inventory by 100 ms/record", at + 30.0)
    timeline.observe(Observation(at=at + 32.0, total_lag=48, older_in_flight={slow: 5}))
    return timeline


class FakeFaults:
    """The fault API with a fixed history; actions are recorded, not carried out."""

    def __init__(self, names: TopicNames) -> None:
        self.names = names
        self.history = _chaos_history(names)
        self.asked: list[tuple[str, object]] = []
        self.broker_refs = [
            BrokerRef(1, "127.0.0.1:9092", True, 4101),
            BrokerRef(2, "127.0.0.1:9094", False, None),
            BrokerRef(3, "127.0.0.1:9096", True, 4303),
        ]
        self._slowed = {"inventory": 100.0}

    def crash_service(self, name: str) -> None:
        self.asked.append(("crash", name))

    def slow_service(self, name: str, ms: float) -> None:
        self.asked.append(("slow", (name, ms)))
        self._slowed[name] = ms

    def unslow_service(self, name: str) -> None:
        self.asked.append(("unslow", name))
        self._slowed.pop(name, None)

    def slowed(self) -> dict[str, float]:
        return dict(self._slowed)

    async def inject_poison(self, topic: str) -> None:
        self.asked.append(("poison", topic))

    async def brokers(self) -> list[BrokerRef]:
        return list(self.broker_refs)

    async def stop_broker(self, broker_id: int) -> None:
        self.asked.append(("stop_broker", broker_id))

    async def kill_broker(self, broker_id: int) -> None:
        self.asked.append(("kill_broker", broker_id))

    async def start_broker(self, broker_id: int) -> None:
        self.asked.append(("start_broker", broker_id))

    def timeline(self) -> TimelineView:
        return TimelineView(tuple(self.history.entries()), tuple(self.history.summaries()))


class FakeRuntime:
    """A runtime with fixed data and a fixed clock (see module docstring)."""

    def __init__(self, *, tail_records: int = 30) -> None:
        self.names = TopicNames()
        self.bootstrap_servers = "127.0.0.1:9092"
        self.api_url = "http://127.0.0.1:3000"
        self.store = FakeStore()
        self.supervisor = FakeSupervisor(self.names)
        self.faults = FakeFaults(self.names)
        self.started = False
        self.stopped = False
        self.polls = 0
        self.tails: list[FakeTail] = []
        self.cluster_reads = 0
        self.submitted: list[OrderRequest] = []
        self.previews: list[tuple[str, ResetTarget]] = []
        self.resets: list[tuple[str, list[PlannedOffset]]] = []
        self._tail_records = tail_records
        #: Counts to report instead of asking the store on every status() (the real runtime
        #: keeps a cached copy too); set when ``store`` is a real store.
        self.cached_counts: dict[str, int] | None = None
        #: Dead letters the Dead letters screen lists; a redrive marks them redriven.
        self.letters: list[DeadLetter] = [
            _letter(self.names.resolve("order-events"), n) for n in range(3)
        ]
        #: Each redrive asked for: (dlq, positions, value, force).
        self.redrives: list[tuple[str, list[tuple[int, int]] | None, bytes | None, bool]] = []
        self.lag_tracker = LagTracker()
        #: Fenced events, as the order desk records them after a 503.
        self.fenced = FencedEvents()

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def status(self) -> RuntimeStatus:
        return RuntimeStatus(
            kafka="running" if self.started else "starting",
            api="running" if self.started else "starting",
            services=tuple(self.supervisor.statuses()) if self.started else (),
            orders_per_s=12.5,
            total_lag=sum(s.total_lag for s in self.snapshots_for(self.polls)),
            status_counts=(
                self.cached_counts if self.cached_counts is not None else self.store.status_counts()
            ),
            bootstrap_servers=self.bootstrap_servers,
            api_url=self.api_url,
            steps=tuple(StartupStep(n, "done") for n in ("kafka", "topics", "api", "services")),
        )

    async def submit_order(self, request: OrderRequest) -> SubmittedOrder:
        self.submitted.append(request)
        n = 100 + len(self.submitted)
        oid = order_id(n)
        item = request.items[0]
        return SubmittedOrder(
            order_id=oid,
            response=OrderCreated(
                event=PlacedOrderEvent(
                    id=oid,
                    customerId=request.customerId,
                    productId=item.productId,
                    quantity=item.quantity,
                    status="placed",
                    createdAt="2025-01-15T12:00:00Z",
                ),
                status="placed",
            ),
            delivery=None,
        )

    def snapshots_for(self, step: int) -> list[GroupSnapshot]:
        """The four groups at poll ``step`` (log-ends grow, payment's lag comes and goes)."""
        snaps = []
        for i, (topic, service) in enumerate(
            zip(self.names.pipeline(), SERVICE_NAMES, strict=True)
        ):
            member = GroupMember(
                member_id=f"orderdeck-{service}-1-5f2c9a1e-{i}0b7",
                client_id=f"orderdeck-{service}-1",
                host="/127.0.0.1",
                assignments=tuple((topic, p) for p in range(3)),
            )
            lag_total = LAG_WAVE[step % len(LAG_WAVE)] if service == "payment" else 0
            parts = []
            for p in range(3):
                end = 400 + i * 10 + p * 3 + step * (4 - i)
                lag = lag_total // 3 + (1 if p < lag_total % 3 else 0)
                parts.append(
                    PartitionLag(
                        topic=topic,
                        partition=p,
                        committed=end - lag,
                        log_end=end,
                        lag=lag,
                        member_id=member.member_id,
                        client_id=member.client_id,
                        host=member.host,
                    )
                )
            snaps.append(
                GroupSnapshot(
                    group=topic,
                    state="Stable",
                    members=(member,),
                    partitions=tuple(parts),
                    total_lag=sum(p.lag or 0 for p in parts),
                    taken_at=1000.0 + step,
                    protocol="range",
                )
            )
        return snaps

    async def group_snapshots(self) -> list[GroupSnapshot]:
        self.polls += 1
        snapshots = self.snapshots_for(self.polls)
        self.lag_tracker.observe(snapshots)  # as the real runtime does
        return snapshots

    def lag_times(self) -> dict[str, GroupLagTime]:
        return self.lag_tracker.groups()

    def cluster_for(self, step: int) -> ClusterView:
        """Three brokers, the pipeline topics (two replicas each) and ``__consumer_offsets``.
        From ``step`` 1 on broker 2 is gone: the partitions it held are under-replicated, those
        it led are led by their other replica, and ``payment-events.dlq-2`` has no leader."""
        brokers = tuple(
            Broker(i, "127.0.0.1", 9091 + i, None, i == 1) for i in (1, 2, 3) if step < 1 or i != 2
        )
        topics = []
        for t, name in enumerate(sorted([*self.names.all(), "__consumer_offsets"])):
            parts = []
            for p in range(3):
                replicas = (1 + (p + t) % 3, 1 + (p + t + 1) % 3)
                leader, isr = replicas[0], replicas
                if step >= 1:
                    isr = tuple(r for r in replicas if r != 2)
                    if leader == 2:
                        leader = isr[0]
                    if name == self.names.payments + ".dlq" and p == 2:
                        leader, isr = -1, ()
                end = None if leader < 0 else 100 * t + 7 * p + step
                parts.append(PartitionInfo(p, leader, replicas, isr, (), end))
            topics.append(
                TopicInfo(
                    name=name,
                    internal=name.startswith("__"),
                    partitions=tuple(parts),
                    retention_ms=604_800_000,
                    cleanup_policy="compact" if name.startswith("__") else "delete",
                )
            )
        return ClusterView("fake-cluster", 1, brokers, tuple(topics), 1000.0 + step)

    async def cluster_view(self) -> ClusterView:
        view = self.cluster_for(self.cluster_reads)
        self.cluster_reads += 1
        return view

    async def preview_offset_reset(self, group: str, target: ResetTarget) -> list[PlannedOffset]:
        """The plan over this poll's snapshot (earliest is offset 0, latest the log end)."""
        (snapshot,) = [s for s in self.snapshots_for(self.polls) if s.group == group]
        self.previews.append((group, target))
        return [
            PlannedOffset(
                group,
                p.topic,
                p.partition,
                p.committed,
                0 if target.mode == "earliest" else p.log_end or 0,
            )
            for p in snapshot.partitions
        ]

    async def apply_offset_reset(self, group: str, plan: Sequence[PlannedOffset]) -> None:
        self.resets.append((group, list(plan)))

    async def dead_letters(self, topic: str | None = None) -> list[DeadLetter]:
        return [d for d in self.letters if topic is None or d.dlq == topic]

    async def redrive(
        self,
        dlq: str,
        positions: Sequence[tuple[int, int]] | None,
        *,
        value: bytes | None = None,
        force: bool = False,
    ) -> RedriveReport:
        """Like the real one: skips records redriven before unless ``force``, remembers the rest."""
        self.redrives.append(
            (dlq, list(positions) if positions is not None else None, value, force)
        )
        chosen = [
            d
            for d in self.letters
            if d.dlq == dlq and (positions is None or (d.partition, d.offset) in positions)
        ]
        skipped = tuple(d.position for d in chosen if d.redriven and not force)
        sent = tuple(
            Redriven(d.position, d.original_topic, d.partition, 100 + d.offset)
            for d in chosen
            if d.position not in skipped
        )
        done = {r.source for r in sent}
        self.letters = [
            replace(d, redriven=True) if d.position in done else d for d in self.letters
        ]
        return RedriveReport(sent=sent, skipped=skipped, dry_run=False)

    def open_tail(self, topics: Sequence[str], from_beginning: bool) -> FakeTail:
        tail = FakeTail(topics, self._tail_records)
        self.tails.append(tail)
        return tail
