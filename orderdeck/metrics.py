"""``GET /metrics``: the pipeline's figures in Prometheus' text format (prometheus_client).

Each figure is taken where it is true for the whole deployment, not only for the process that
happens to answer the scrape:

- **Orders accepted, final orders by status, order latency** (accepted → final) are read from
  the shared store at scrape time. Every process writes its work there (the API, the services
  in this process, the children of ``serve --processes``, other ``serve`` processes sharing
  the database), so these agree with the store by construction and survive restarts. They are
  cheap to read: the counts are ``Store.status_counts`` (which keeps a tally of the orders
  that can no longer change), and :class:`_LatencyFollower` reads only the orders that are new
  since the last scrape plus the ones it saw in flight then (``Store.order_timings``), and
  observes each order's latency once, when it first sees it final. A first scrape of a big
  store catches up :data:`LATENCY_CATCH_UP` orders per scrape instead of reading them all at once.
- **HTTP request durations** are measured by :meth:`Metrics.timed`, an ASGI wrapper around
  the whole app (so ``POST /api/v1/orders``, which ``api._OrdersFastPath`` answers before
  Starlette's router, is timed too); routes are labelled by their template, never the raw
  path, so an id in a URL cannot grow the number of series.
- **Service events** are counted by each process's supervisor. The children of ``serve
  --processes`` write their totals as one JSON line a second (and once more when they stop)
  to a pipe the parent reads (:func:`relay_service_events`, :class:`ChildEventTotals`); the
  parent adds them to its own. A child that exits leaves its last totals in the sum, so a
  restart never makes a counter go back (a ``kill -9`` loses at most its last second).
- **Kafka reachability and consumer lag** come from the runtime's monitor, which probes Kafka
  and describes the consumer groups (standard admin calls, so the lag covers every member of
  every process); a scrape reads that cache and never waits on Kafka.

prometheus_client's multiprocess mode is not used: it needs an environment variable set before
prometheus_client is imported in every process and a directory of mmap files to clean up, and
it would still only see processes on this host, while the store and Kafka already hold the
deployment-wide figures. Each :class:`Metrics` has its own registry, so several apps in one
process (the tests) do not add up each other's figures.

This module imports neither textual nor the services: the API builds on it, and the runtime
hands it what only the runtime knows (:class:`PipelineView`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orderdeck.events import FINAL_STATUSES

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from orderdeck.kafka.admin import GroupSnapshot
    from orderdeck.kafka.lag_tracker import GroupLagTime
    from orderdeck.store import StoreBackend

log = logging.getLogger(__name__)

#: The outcomes ``orderdeck_service_events_total`` counts, for every service.
OUTCOMES = ("processed", "replayed", "dead_lettered", "failed")
#: The most orders one scrape reads to catch up on latencies (a first scrape of a big store).
LATENCY_CATCH_UP = 20_000
#: How often a services child sends its totals to its parent.
RELAY_INTERVAL_S = 1.0
#: The key of the service states in a child's report (not a service name: those are words).
STATES_KEY = "_states"
#: Orders take milliseconds to seconds from acceptance to a final status; a paused service
#: can hold them for minutes.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The route label of a request no route matched (404s), so junk paths make one series.
UNMATCHED_ROUTE = "unmatched"

#: service -> outcome -> events since the service started (see :data:`OUTCOMES`).
ServiceEvents = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class PartitionLagSample:
    """One partition's lag for one consumer group, as the runtime last measured it."""

    group: str
    topic: str
    partition: int
    lag: int


@dataclass(frozen=True)
class PartitionLagSeconds:
    """How old one partition's oldest uncommitted record is, from the runtime's lag tracker."""

    group: str
    topic: str
    partition: int
    seconds: float


@dataclass(frozen=True)
class PipelineView:
    """What only the runtime knows: its cached Kafka probe and lag, and the service counters."""

    kafka_reachable: bool | None = None
    lags: Sequence[PartitionLagSample] = ()
    service_events: ServiceEvents = field(default_factory=dict)
    #: Records held by each dead-letter topic (its offsets' last reading).
    dead_letters: Mapping[str, int] = field(default_factory=dict)
    lag_seconds: Sequence[PartitionLagSeconds] = ()


class CountedService(Protocol):
    """The counters of one service, as ``services.ServiceStatus`` carries them."""

    @property
    def name(self) -> str: ...
    @property
    def processed(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def dead_letters(self) -> int: ...
    @property
    def errors(self) -> int: ...


def service_events_of(statuses: Iterable[CountedService]) -> dict[str, dict[str, int]]:
    """Service statuses as the outcomes ``orderdeck_service_events_total`` counts."""
    return {
        s.name: {
            "processed": s.processed,
            "replayed": s.duplicates,
            "dead_lettered": s.dead_letters,
            "failed": s.errors,
        }
        for s in statuses
    }


def lag_samples(snapshots: Iterable[GroupSnapshot]) -> list[PartitionLagSample]:
    """Every partition's lag in ``snapshots`` (partitions without a committed offset have none)."""
    return [
        PartitionLagSample(snap.group, p.topic, p.partition, p.lag)
        for snap in snapshots
        for p in snap.partitions
        if p.lag is not None
    ]


def lag_seconds_samples(groups: Mapping[str, GroupLagTime]) -> list[PartitionLagSeconds]:
    """Every partition whose lag time is known (fewer than two samples leave it out)."""
    return [
        PartitionLagSeconds(group, topic, partition, figures.lag_seconds)
        for group, times in sorted(groups.items())
        for (topic, partition), figures in sorted(times.partitions.items())
        if figures.lag_seconds is not None
    ]


class Metrics:
    """The metrics of one API: a registry, the HTTP timer and what a scrape reads.

    ``pipeline`` is called at each scrape for the runtime's part (without it, only the store's
    figures and the HTTP durations are shown).
    """

    def __init__(
        self, store: StoreBackend, pipeline: Callable[[], PipelineView] | None = None
    ) -> None:
        self._store = store
        self._pipeline = pipeline
        self.registry = CollectorRegistry(auto_describe=True)
        self._http = Histogram(
            "orderdeck_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route and status.",
            ("route", "code"),
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        latency = Histogram(
            "orderdeck_order_latency_seconds",
            "Time from an order's acceptance to its final status.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._latency = _LatencyFollower(latency.observe)
        self._figures = _Figures()
        self.registry.register(self._figures)

    def timed(self, app: ASGIApp, fixed_routes: Collection[str] = ()) -> ASGIApp:
        """``app`` with every HTTP request's duration recorded.

        Requests Starlette routes are labelled with the matching route's template; a path in
        ``fixed_routes`` that is answered before Starlette's router is labelled with itself.
        """
        return _TimedApp(app, self._http, frozenset(fixed_routes))

    async def exposition(self) -> bytes:
        """The text a scrape receives (reads the store on its thread, never waits on Kafka)."""
        counts = await self._store.run(self._read_store)
        view = self._pipeline() if self._pipeline is not None else PipelineView()
        # No await between preparing the figures and rendering them: scrapes do not interleave.
        self._figures.prepare(counts, view)
        return generate_latest(self.registry)

    def _read_store(self) -> dict[str, int]:
        self._latency.follow(self._store)
        return self._store.status_counts()


class _Figures(Collector):
    """The scrape-time figures, computed by :meth:`Metrics.exposition` just before rendering."""

    def __init__(self) -> None:
        self._families: list[Metric] = []

    def prepare(self, counts: Mapping[str, int], view: PipelineView) -> None:
        accepted = CounterMetricFamily(
            "orderdeck_orders_accepted",
            "Orders accepted and recorded in the store.",
            value=sum(counts.values()),
        )
        final = CounterMetricFamily(
            "orderdeck_orders_final",
            "Orders in the store that reached a final status, by status.",
            labels=("status",),
        )
        for status in sorted(FINAL_STATUSES):
            final.add_metric((status,), counts.get(status, 0))
        events = CounterMetricFamily(
            "orderdeck_service_events",
            "Events the pipeline services handled, by service and outcome (every process).",
            labels=("service", "outcome"),
        )
        for service, outcomes in sorted(view.service_events.items()):
            for outcome in OUTCOMES:
                events.add_metric((service, outcome), outcomes.get(outcome, 0))
        lag = GaugeMetricFamily(
            "orderdeck_consumer_lag_records",
            "Records not yet committed by a consumer group, per partition (last measurement).",
            labels=("group", "topic", "partition"),
        )
        for sample in view.lags:
            lag.add_metric((sample.group, sample.topic, str(sample.partition)), sample.lag)
        lag_seconds = GaugeMetricFamily(
            "orderdeck_consumer_lag_seconds",
            "Age of the oldest record a consumer group has not committed, per partition "
            "(interpolated from the log end's history; absent until two polls are seen).",
            labels=("group", "topic", "partition"),
        )
        for age in view.lag_seconds:
            lag_seconds.add_metric((age.group, age.topic, str(age.partition)), age.seconds)
        reachable = GaugeMetricFamily(
            "orderdeck_kafka_reachable",
            "1 when the last probe of Kafka was answered, 0 when not (absent before the first).",
        )
        if view.kafka_reachable is not None:
            reachable.add_metric((), 1.0 if view.kafka_reachable else 0.0)
        dead = GaugeMetricFamily(
            "orderdeck_dead_letters",
            "Records in each dead-letter topic: log-end minus log-start offsets (last reading).",
            labels=("topic",),
        )
        for topic, count in sorted(view.dead_letters.items()):
            dead.add_metric((topic,), count)
        self._families = [accepted, final, events, lag, lag_seconds, reachable, dead]

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class _LatencyFollower:
    """Observes each order's latency once, when a scrape first finds it final.

    It remembers the newest order it has read and the orders it saw in flight, so a scrape
    reads the orders that are new and re-reads only those still in flight: the work is the
    store's recent traffic and its backlog, not its size.
    """

    def __init__(self, observe: Callable[[float], None]) -> None:
        self._observe = observe
        self._lock = threading.Lock()
        self._seen_upto = 0
        self._waiting: set[int] = set()

    def follow(self, store: StoreBackend) -> None:
        with self._lock:
            timings = store.order_timings(self._seen_upto, sorted(self._waiting), LATENCY_CATCH_UP)
            for timing in timings:
                self._seen_upto = max(self._seen_upto, timing.seq)
                if timing.status not in FINAL_STATUSES:
                    self._waiting.add(timing.seq)
                    continue
                self._waiting.discard(timing.seq)
                accepted = datetime.fromisoformat(timing.created_at)
                final = datetime.fromisoformat(timing.updated_at)
                # Clocks of two hosts can disagree by a little; a latency is never negative.
                self._observe(max(0.0, (final - accepted).total_seconds()))


class _TimedApp:
    """Times every HTTP request of the app it wraps (see :meth:`Metrics.timed`)."""

    def __init__(self, app: ASGIApp, histogram: Histogram, fixed_routes: frozenset[str]) -> None:
        self.app = app
        self._histogram = histogram
        self._fixed = fixed_routes
        self._series: dict[tuple[str, int], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500  # what the client gets if the app fails before answering

        async def send_noting_status(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self._record(scope, code, time.perf_counter() - started)

    def _record(self, scope: Scope, code: int, seconds: float) -> None:
        # Starlette's router leaves the route it chose in the scope.
        route = getattr(scope.get("route"), "path", None)
        if not isinstance(route, str):
            route = scope["path"] if scope["path"] in self._fixed else UNMATCHED_ROUTE
        series = self._series.get((route, code))
        if series is None:
            series = self._series[(route, code)] = self._histogram.labels(route, str(code))
        series.observe(seconds)


# ----------------------------------------------------------------------------- children


#: ``service -> state`` of a child's services (``running``, ``restarting``, ``failed``...).
ServiceStates = Mapping[str, str]


def encode_service_events(events: ServiceEvents, states: ServiceStates | None = None) -> bytes:
    """One line of a child's report (well under PIPE_BUF, so a pipe write is atomic).

    The states ride along under a key no service can have, so the parent learns that a
    service inside a live child is restarting or failed, not only that the child is alive.
    """
    report: dict[str, Any] = dict(events)
    if states is not None:
        report[STATES_KEY] = dict(states)
    return json.dumps(report, separators=(",", ":"), sort_keys=True).encode() + b"\n"


async def relay_service_events(
    fd: int,
    source: Callable[[], ServiceEvents],
    interval: float = RELAY_INTERVAL_S,
    states: Callable[[], ServiceStates] | None = None,
) -> None:
    """In a services child: write ``source()`` (and ``states()``) to ``fd`` every
    ``interval`` until cancelled.

    A last report is written when cancelled (after the services stopped), so the parent's sum
    includes the final batches. A full or broken pipe drops a report: the next one carries
    the same totals, and a gone parent means the child is stopping anyway.
    """
    os.set_blocking(fd, False)

    def report() -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(fd, encode_service_events(source(), states() if states else None))

    try:
        while True:
            report()
            await asyncio.sleep(interval)
    finally:
        report()
        os.close(fd)


class ChildEventTotals:
    """In the parent of ``serve --processes``: the children's service events, summed.

    :meth:`follow` reads one child's pipe on the event loop; its latest report counts until
    the pipe closes (the child exited), after which that report stays in the sum.
    """

    def __init__(self) -> None:
        self._live: dict[int, dict[str, dict[str, int]]] = {}
        self._retired: Counter[tuple[str, str]] = Counter()
        self._partial: dict[int, bytes] = {}
        self._reported: set[int] = set()
        self._states: dict[int, dict[str, str]] = {}
        self._reported_at: dict[int, float] = {}

    def reporting(self, fd: int) -> bool:
        """True once the child on ``fd`` sent a report: it runs its services (a child starts
        reporting only after its start-up finished) and its pipe is still open."""
        return fd in self._reported and fd in self._live

    def report_age(self, fd: int) -> float | None:
        """Seconds since the child on ``fd`` last reported (None: no report yet)."""
        at = self._reported_at.get(fd)
        return None if at is None else time.monotonic() - at

    def states(self, fd: int) -> ServiceStates:
        """The service states in the latest report of the child on ``fd`` (empty before
        its first report and after its pipe closed)."""
        return self._states.get(fd, {})

    def follow(self, fd: int) -> None:
        """Start reading reports from ``fd`` (the read end of a child's pipe)."""
        os.set_blocking(fd, False)
        self._live[fd] = {}
        self._partial[fd] = b""
        asyncio.get_running_loop().add_reader(fd, self._readable, fd)

    def totals(self) -> dict[str, dict[str, int]]:
        """service -> outcome -> events, over every child this parent ran."""
        summed = Counter(self._retired)
        for report in self._live.values():
            for service, outcomes in report.items():
                for outcome, count in outcomes.items():
                    summed[(service, outcome)] += count
        result: dict[str, dict[str, int]] = {}
        for (service, outcome), count in summed.items():
            result.setdefault(service, {})[outcome] = count
        return result

    def close(self) -> None:
        """Stop reading every pipe (the last reports stay in the totals)."""
        for fd in list(self._live):
            self._retire(fd)

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._retire(fd)
            return
        *lines, self._partial[fd] = (self._partial[fd] + data).split(b"\n")
        for line in reversed(lines):  # the newest complete report is all that matters
            decoded = _decode_report(line)
            if decoded is not None:
                self._live[fd], self._states[fd] = decoded
                self._reported.add(fd)
                self._reported_at[fd] = time.monotonic()
                break

    def _retire(self, fd: int) -> None:
        report = self._live.pop(fd, None)
        self._partial.pop(fd, None)
        self._reported.discard(fd)
        self._states.pop(fd, None)
        self._reported_at.pop(fd, None)
        if report is None:
            return
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        for service, outcomes in report.items():
            for outcome, count in outcomes.items():
                self._retired[(service, outcome)] += count


def _decode_report(line: bytes) -> tuple[dict[str, dict[str, int]], dict[str, str]] | None:
    """(events, states) of one report line; None for a line that is not a report."""
    try:
        raw: Any = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    states = raw.pop(STATES_KEY, None)
    events = {
        str(service): {str(k): int(v) for k, v in outcomes.items() if isinstance(v, int)}
        for service, outcomes in raw.items()
        if isinstance(outcomes, dict)
    }
    if not isinstance(states, dict):
        return events, {}
    return events, {str(k): str(v) for k, v in states.items() if isinstance(v, str)}
