"""The running system: local Kafka, topics, store, order API and services, in one event loop.

``orderdeck serve`` and ``orderdeck launch`` both run a :class:`Runtime`. It starts the parts
in dependency order, reports each step as it goes (the TUI shows them, ``serve`` logs them),
keeps a cached picture of their health for cheap polling, and stops them in reverse order so
the services commit, the API drains and nothing — task or process — is left behind.

The API server is uvicorn running as a task in the caller's loop: it installs no signal
handlers (the host keeps Ctrl-C) and logs only through the handler it was given, because a
line printed to the terminal would tear the TUI.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from orderdeck.api import create_app
from orderdeck.api_guard import AccessPolicy, require_token
from orderdeck.api_models import HealthReport, KafkaHealth, ServiceHealth
from orderdeck.config import Settings
from orderdeck.errors import KafkaUnavailableError, OrderdeckError
from orderdeck.events import TopicNames, dlq_topic
from orderdeck.faults import BrokerControl, FaultInjector, local_broker_control
from orderdeck.fenced import FencedEvents
from orderdeck.http_server import EmbeddedServer, build_server
from orderdeck.kafka.dead_letters import DeadLetter, RedriveReport, read_dead_letters
from orderdeck.kafka.dead_letters import redrive as redrive_dead_letters
from orderdeck.kafka.lag_tracker import GroupLagTime, LagTracker
from orderdeck.kafka.outage_log import KafkaOutageLog
from orderdeck.kafka.producer import EventProducer
from orderdeck.metrics import (
    Metrics,
    PipelineView,
    ServiceEvents,
    lag_samples,
    lag_seconds_samples,
    service_events_of,
)
from orderdeck.order_desk import OrderDesk
from orderdeck.orders import DEFAULT_ACK_TIMEOUT_S, OrderRequest, SubmittedOrder
from orderdeck.rates import RateMeter
from orderdeck.services import SERVICE_NAMES, ServiceStatus
from orderdeck.startup_checks import check_port_free
from orderdeck.store import StoreBackend, open_store

if TYPE_CHECKING:
    from orderdeck.kafka.admin import GroupInspector, GroupSnapshot
    from orderdeck.kafka.cluster import ClusterReader
    from orderdeck.kafka.cluster_model import ClusterView
    from orderdeck.kafka.local import LocalKafka, StartResult
    from orderdeck.kafka.local_cluster import ClusterStartResult, LocalCluster
    from orderdeck.kafka.offset_reset import PlannedOffset, ResetTarget, TopicSelection
    from orderdeck.kafka.tail import TopicTail
    from orderdeck.services.supervisor import Supervisor

log = logging.getLogger("orderdeck.runtime")

StepName = Literal["kafka", "topics", "api", "services"]
StepState = Literal["pending", "running", "done", "failed"]
STEP_NAMES: tuple[StepName, ...] = ("kafka", "topics", "api", "services")
#: Loggers whose records go to the runtime's handler instead of the terminal.
ROUTED_LOGGERS = ("orderdeck", "uvicorn", "aiokafka")
KAFKA_READY_TIMEOUT_S = 30.0
#: How long start() waits for the services' first assignments before reporting them started.
JOIN_TIMEOUT_S = 15.0
MONITOR_INTERVAL_S = 1.0
#: Lag and reachability come from admin calls; fetch them less often than store counts.
LAG_EVERY_N_TICKS = 2
RATE_WINDOW_S = 5.0
PROBE_TIMEOUT_S = 1.5
LAG_TIMEOUT_S = 3.0
LAG_MAX_AGE_S = 1.5
#: How long an accepted order's OrderPlaced waits for others to share its produce request:
#: a request costs the broker far more CPU than the records in it (BENCHMARKS.md, "API
#: produce linger"). Only while orders come fast enough for the wait to gather half an order
#: on average (over 167/s; EventProducer.linger_due): slower, it added 3 ms to every 201 for
#: nothing.
API_PRODUCE_LINGER_S = 0.003
STOP_PART_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class StartupStep:
    """Progress of one start-up step, reported through ``on_progress``."""

    name: StepName
    state: StepState
    message: str = ""


@dataclass(frozen=True)
class RuntimeStatus:
    """A cheap snapshot of the whole system (the TUI header polls it)."""

    kafka: str  # starting | running | unreachable | stopped
    api: str  # disabled | starting | running | failed | stopped
    services: tuple[ServiceStatus, ...]
    orders_per_s: float
    total_lag: int | None
    status_counts: dict[str, int]
    bootstrap_servers: str
    api_url: str | None
    steps: tuple[StartupStep, ...] = ()
    #: How the connection is secured (``KafkaConnection.describe()``: protocol, mechanism and
    #: user, never a secret); None for plaintext, which the header leaves unsaid.
    kafka_security: str | None = None
    #: Partitions with fewer in-sync replicas than replicas, and without a leader, over all
    #: topics (the Pipeline screen's warning); 0 while unknown.
    under_replicated: int = 0
    offline_partitions: int = 0


class Runtime:
    """Starts, watches and stops everything one orderdeck process runs."""

    def __init__(
        self,
        settings: Settings,
        *,
        services: Sequence[str] = SERVICE_NAMES,
        with_api: bool = True,
        keep_kafka: bool = False,
        log_handler: logging.Handler | None = None,
        on_progress: Callable[[StartupStep], None] | None = None,
        on_change: Callable[[], None] | None = None,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT_S,
        monitor: bool = True,
        store_on_loop: bool = False,
        broker_control: BrokerControl | None = None,
    ) -> None:
        self.settings = settings
        #: Run store transactions on the event loop's thread (see ``Store.run_inline``): for
        #: processes with neither an API nor a screen to keep responsive.
        self.store_on_loop = store_on_loop
        #: Refresh counts, Kafka reachability and lag every second (for screens, /health and
        #: serve's summaries). The children of ``serve --processes`` have none of those.
        self.monitor = monitor
        self.services = tuple(services)
        self.with_api = with_api
        self.keep_kafka = keep_kafka
        self.names = TopicNames(prefix=settings.topic_prefix)
        #: How every client of this process reaches Kafka (the local broker's port is
        #: settled when it starts).
        self.kafka = settings.kafka_connection()
        self.api_url = settings.api_url
        self.ack_timeout = ack_timeout
        self._log_handler = log_handler
        self._on_progress = on_progress
        self._on_change = on_change
        self._steps: dict[StepName, StartupStep] = {
            n: StartupStep(n, "pending") for n in STEP_NAMES
        }
        self._local: LocalKafka | LocalCluster | None = None
        self._stop_local = False
        self._store: StoreBackend | None = None
        self._producer: EventProducer | None = None
        self._desk: OrderDesk | None = None
        #: OrderPlaced events the desk fenced after a 503 (kept across desks; see fenced.py).
        self.fenced = FencedEvents()
        self._server: EmbeddedServer | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._supervisor: Supervisor | None = None
        self._inspector_task: asyncio.Task[GroupInspector] | None = None
        self._cluster_task: asyncio.Task[ClusterReader] | None = None
        #: (under-replicated, offline) partitions at the last background read.
        self._replication = (0, 0)
        self._stopping = asyncio.Event()
        self._monitor: asyncio.Task[None] | None = None
        self._saved_loggers: list[tuple[logging.Logger, bool, int]] = []
        #: Folds an outage's aiokafka errors into two lines on the log handler (if any).
        self._outage_log: KafkaOutageLog | None = None
        self._outage_probe: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kafka_state = "stopped"
        self._api_state = "disabled" if not with_api else "stopped"
        self._counts: dict[str, int] = {}
        self._orders_per_s = 0.0
        self._total_lag: int | None = None
        self._lags: dict[str, int] = {}
        #: Records in each dead-letter topic (log-end minus log-start), read from Kafka.
        self._dlq_records: dict[str, int] = {}
        #: (service, state) of services that other processes run for this one (``serve
        #: --processes``), reported by ``GET /health`` beside the local ones.
        self.external_services: Callable[[], Sequence[tuple[str, str]]] | None = None
        #: The service events of those processes, for ``GET /metrics``.
        self.external_service_events: Callable[[], ServiceEvents] | None = None
        self._snapshots: list[GroupSnapshot] = []
        #: Lag seconds, time to drain and verdicts, kept current by every groups poll.
        self.lag_tracker = LagTracker()
        self._snapshot_at = 0.0
        self._rate = RateMeter(RATE_WINDOW_S)
        #: The Chaos screen's faults and their timeline (``broker_control`` stops, kills and
        #: starts the local brokers; the single local broker's is made when it starts).
        self.faults = FaultInjector(
            names=self.names,
            kafka=lambda: self.kafka,
            service_faults=lambda: self.supervisor.faults,
            services=self.services,
            broker_control=broker_control,
        )
        self._started = False
        self._running = False

    # ------------------------------------------------------------------ properties

    @property
    def running(self) -> bool:
        """True between a completed start() and the beginning of stop()."""
        return self._running

    @property
    def bootstrap_servers(self) -> str:
        """Where Kafka is (the local broker's real port once it started)."""
        return self.kafka.bootstrap_servers

    @property
    def local_cluster(self) -> LocalCluster | None:
        """The three local brokers this runtime started or adopted (broker faults act on
        its ``nodes``); None on a single broker or an external cluster."""
        from orderdeck.kafka.local_cluster import LocalCluster

        return self._local if isinstance(self._local, LocalCluster) else None

    @property
    def store(self) -> StoreBackend:
        """The store shared by the API and the services (available once started)."""
        if self._store is None:
            raise OrderdeckError("the runtime is not started")
        return self._store

    @property
    def supervisor(self) -> Supervisor:
        """The services' supervisor (available once started)."""
        if self._supervisor is None:
            raise OrderdeckError("the runtime is not started")
        return self._supervisor

    @property
    def producer(self) -> EventProducer:
        """The producer the API and submit_order use (available once started)."""
        if self._producer is None:
            raise OrderdeckError("the runtime is not started")
        return self._producer

    @property
    def desk(self) -> OrderDesk:
        """The order desk the API and submit_order place orders with (once started)."""
        if self._desk is None:
            raise OrderdeckError("the runtime is not started")
        return self._desk

    # ------------------------------------------------------------------ start

    def _progress(self, name: StepName, state: StepState, message: str = "") -> None:
        step = StartupStep(name, state, message)
        self._steps[name] = step
        if self._on_progress is not None:
            self._on_progress(step)
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:  # a UI callback must never take the runtime down
                log.exception("on_change callback failed")

    async def start(self) -> None:
        """Start every part in order; on failure stop what started and raise OrderdeckError."""
        if self.with_api:  # before anything starts: an exposed API without a token never runs
            require_token(self.settings.api_host, self.settings.api_token)
            # and a port somebody else holds is found before Kafka is started, not after
            try:
                check_port_free(self.settings.api_host, self.settings.api_port)
            except OrderdeckError as exc:
                self._progress("api", "failed", str(exc))
                raise
        self._loop = asyncio.get_running_loop()
        self._route_logs()
        self._started = True
        step: StepName = "kafka"
        try:
            await self._start_kafka()
            step = "topics"
            await self._start_topics()
            step = "api"
            await self._start_store_and_api()
            step = "services"
            await self._start_services()
        except asyncio.CancelledError:
            self._progress(step, "failed", "cancelled")
            await self.stop()
            raise
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            self._progress(step, "failed", message)
            await self.stop()
            if isinstance(exc, OrderdeckError):
                raise
            raise OrderdeckError(f"{step} failed to start: {message}") from exc
        self._counts = await self.store.run(self.store.status_counts)
        self._rate.add(time.monotonic(), sum(self._counts.values()))
        self._running = True
        self._stopping.clear()
        if self.monitor:
            self._monitor = asyncio.create_task(self._watch(), name="orderdeck-runtime-monitor")

    async def _start_kafka(self) -> None:
        from orderdeck.kafka.clients import wait_until_ready

        self._kafka_state = "starting"
        if self.settings.uses_local_kafka:
            from orderdeck.kafka.local_cluster import local_kafka_for

            self._progress("kafka", "running", "starting the local Apache Kafka")
            local = local_kafka_for(
                self.settings.data_dir, self.settings.kafka_port, self.settings.local_brokers
            )
            self._local = local
            if self.faults.broker_control is None:
                self.faults.broker_control = local_broker_control(local)
            start: Callable[[], StartResult | ClusterStartResult] = local.start
            starting = asyncio.ensure_future(asyncio.to_thread(start))
            try:
                result = await asyncio.shield(starting)
            except asyncio.CancelledError:
                # The JVM is started by a thread nobody can interrupt: wait for it, so that
                # stop() can stop the broker instead of leaving it behind.
                with contextlib.suppress(Exception):
                    late = await starting
                    self._stop_local = not late.already_running and not self.keep_kafka
                raise
            # A broker this process did not start (kept by an earlier run, or serving another
            # process) is left running.
            self._stop_local = not result.already_running and not self.keep_kafka
            # A secure data dir's broker is reached through its client.properties (SASL_SSL),
            # which --processes children are then handed as their --kafka-config.
            self.kafka = local.connection().with_bootstrap(result.bootstrap_servers)
            if self._outage_log is not None:
                self._outage_log.bootstrap_servers = self.bootstrap_servers
            how = "reusing the running" if result.already_running else "started the"
            self._progress(
                "kafka",
                "done",
                f"{how} local Kafka at {self.bootstrap_servers} ({result.seconds:.1f} s)",
            )
        else:
            self._progress("kafka", "running", f"connecting to {self.bootstrap_servers}")
            try:
                await wait_until_ready(self.kafka, KAFKA_READY_TIMEOUT_S)
            except OrderdeckError:
                raise
            except Exception as exc:
                raise KafkaUnavailableError(
                    f"Kafka at {self.bootstrap_servers} did not answer: {exc}"
                ) from exc
            self._progress("kafka", "done", f"Kafka at {self.bootstrap_servers} answers")
        self._kafka_state = "running"

    async def _start_topics(self) -> None:
        from orderdeck.kafka.topics import ensure_topics

        self._progress("topics", "running", "creating topics")
        await ensure_topics(
            self.kafka,
            self.names,
            partitions=self.settings.partitions,
            replication_factor=self.settings.replication_factor,
        )
        self._progress("topics", "done", f"{len(self.names.all())} topics ready")

    async def _start_store_and_api(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._store = await asyncio.to_thread(
            open_store, self.settings.store_url, data_dir=self.settings.data_dir
        )
        self._store.run_inline = self.store_on_loop
        producer = EventProducer(self.kafka, client_suffix="api", linger_s=API_PRODUCE_LINGER_S)
        await producer.start()
        self._producer = producer
        self._desk = OrderDesk(
            self._store, producer, self.names, ack_timeout=self.ack_timeout, fenced=self.fenced
        )
        if not self.with_api:
            self._progress("api", "done", "API disabled")
            return
        self._progress("api", "running", f"starting the API on port {self.settings.api_port}")
        self._api_state = "starting"
        access = AccessPolicy.for_server(
            self.settings.api_host, self.settings.api_token, self.settings.allowed_hosts
        )
        app = create_app(
            self._desk,
            health=self.health,
            metrics=Metrics(self._store, self.metrics_view),
            access=access,
        )
        server = build_server(app, self.settings.api_host, self.settings.api_port)
        self._server = server
        self._server_task = asyncio.create_task(self._serve(server), name="orderdeck-api")
        while not server.started:
            if self._server_task.done():
                self._api_state = "failed"
                raise OrderdeckError(
                    f"the API could not listen on {self.settings.api_host}:"
                    f"{self.settings.api_port} (is the port in use?)"
                )
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        self.api_url = self.settings.api_url_on(port)
        self._api_state = "running"
        needs = " (bearer token required)" if self.settings.api_token is not None else ""
        self._progress("api", "done", f"API at {self.api_url}{needs}")

    async def _serve(self, server: EmbeddedServer) -> None:
        try:
            await server.serve()
        except SystemExit:  # uvicorn exits this way when it cannot bind
            log.error("the API server failed to start")
        finally:
            if self._api_state == "running":
                self._api_state = "stopped"

    async def _start_services(self) -> None:
        from orderdeck.services.supervisor import Supervisor

        self._progress("services", "running", f"starting {', '.join(self.services)}")
        supervisor = Supervisor(
            self.kafka,
            self.settings.store_url,
            self.names,
            services=self.services,
            on_change=self._changed,
            store=self._store,  # one database thread and one warm page cache for all
        )
        self._supervisor = supervisor
        await supervisor.start()
        running = ", ".join(self.services) or "none in this process"
        try:
            async with asyncio.timeout(JOIN_TIMEOUT_S):
                await supervisor.wait_joined()
        except TimeoutError:
            self._progress("services", "done", f"started {running}; still joining their groups")
        else:
            self._progress("services", "done", f"running {running}")

    def _route_logs(self) -> None:
        if self._log_handler is None:
            return
        self._outage_log = KafkaOutageLog(self.bootstrap_servers, on_outage=self._outage_began)
        self._log_handler.addFilter(self._outage_log)
        for name in ROUTED_LOGGERS:
            logger = logging.getLogger(name)
            self._saved_loggers.append((logger, logger.propagate, logger.level))
            logger.addHandler(self._log_handler)
            logger.propagate = False
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING if name == "aiokafka" else logging.INFO)

    def _outage_began(self) -> None:
        """An outage line was logged. Without the monitor nothing would ever see its end, so
        probe until Kafka answers (called from whichever thread logged)."""
        if self.monitor or self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._start_outage_probe)

    def _start_outage_probe(self) -> None:
        if self._outage_probe is None or self._outage_probe.done():
            self._outage_probe = asyncio.create_task(
                self._probe_until_reachable(), name="orderdeck-outage-probe"
            )

    async def _probe_until_reachable(self) -> None:
        from orderdeck.kafka.clients import is_ready

        while self._started and self._outage_log is not None and self._outage_log.awaiting_probe:
            try:
                if await is_ready(self.kafka, PROBE_TIMEOUT_S):
                    self._outage_log.reachable()
                    return
            except Exception as exc:
                log.debug("Kafka probe failed: %s", exc)
            self._outage_log.unreachable("no answer to a probe")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), MONITOR_INTERVAL_S)

    def _unroute_logs(self) -> None:
        if self._outage_log is not None and self._log_handler is not None:
            self._log_handler.removeFilter(self._outage_log)
            self._outage_log = None
        for logger, propagate, level in reversed(self._saved_loggers):
            if self._log_handler is not None:
                logger.removeHandler(self._log_handler)
            logger.propagate = propagate
            logger.setLevel(level)
        self._saved_loggers.clear()

    # ------------------------------------------------------------------ stop

    async def stop(self) -> None:
        """Stop in reverse order: monitor, services, API, producer, store, local Kafka."""
        if not self._started:
            return
        self._started = False
        self._running = False
        if self._monitor is not None:
            # Let the monitor finish what it is doing (it may be starting a Kafka client);
            # cancel only if it does not notice in time.
            self._stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._monitor), STOP_PART_TIMEOUT_S)
            except TimeoutError:
                self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
            self._monitor = None
        if self._outage_probe is not None:
            self._stopping.set()
            self._outage_probe.cancel()
            await asyncio.gather(self._outage_probe, return_exceptions=True)
            self._outage_probe = None
        if self._supervisor is not None:
            await self._bounded(self._supervisor.stop(), "services")
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self._server_task), STOP_PART_TIMEOUT_S)
            except TimeoutError:
                self._server.force_exit = True
                await asyncio.gather(self._server_task, return_exceptions=True)
            self._api_state = "stopped"
            self._server = self._server_task = None
        if self._inspector_task is not None:
            starting, self._inspector_task = self._inspector_task, None
            await asyncio.gather(starting, return_exceptions=True)
            if not starting.cancelled() and starting.exception() is None:
                await self._bounded(starting.result().close(), "group inspector")
        if self._cluster_task is not None:
            starting_reader, self._cluster_task = self._cluster_task, None
            await asyncio.gather(starting_reader, return_exceptions=True)
            if not starting_reader.cancelled() and starting_reader.exception() is None:
                await self._bounded(starting_reader.result().close(), "cluster reader")
        if self._producer is not None:
            await self._bounded(self._producer.stop(), "producer")
            self._producer = None
        if self._desk is not None:
            await self._bounded(self._desk.aclose(), "recording accepted orders")
            self._desk = None
        if self._store is not None:
            self._store.close()
        if self._local is not None and self._stop_local:
            await asyncio.to_thread(self._local.stop)
        self._kafka_state = "stopped"
        self._changed()
        self._unroute_logs()

    @staticmethod
    async def _bounded(stopping: Any, what: str) -> None:
        try:
            await asyncio.wait_for(stopping, STOP_PART_TIMEOUT_S)
        except TimeoutError:
            log.error("%s did not stop within %.0f s", what, STOP_PART_TIMEOUT_S)
        except Exception as exc:
            log.error("%s failed while stopping: %s", what, exc)

    # ------------------------------------------------------------------ status

    async def _watch(self) -> None:
        """Refresh the cached counts, rate, Kafka reachability and lag about once a second."""
        tick = 0
        while not self._stopping.is_set():
            try:
                counts = await self.store.run(self.store.status_counts)
                self._counts = counts
                self._rate.add(time.monotonic(), sum(counts.values()))
                self._orders_per_s = self._rate.rate() or 0.0
                await self._watch_faults()
                if tick % LAG_EVERY_N_TICKS == 0:
                    await self._refresh_kafka()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("status refresh failed: %s", exc)
            self._changed()
            tick += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), MONITOR_INTERVAL_S)

    async def _refresh_kafka(self) -> None:
        from orderdeck.kafka.clients import is_ready

        try:
            reachable = await is_ready(self.kafka, PROBE_TIMEOUT_S)
        except Exception as exc:
            log.debug("Kafka probe failed: %s", exc)
            reachable = False
        state = "running" if reachable else "unreachable"
        if self._outage_log is not None:  # it logs the outage's start and end, once each
            self._outage_log.bootstrap_servers = self.bootstrap_servers
            if reachable:
                self._outage_log.reachable()
            else:
                self._outage_log.unreachable("no answer to a probe")
        elif state != self._kafka_state:
            log.warning("Kafka at %s is %s", self.bootstrap_servers, state)
        self._kafka_state = state
        self.faults.watcher.kafka(reachable)
        if not reachable:
            return
        await self._refresh_replication()
        if not (self.services or self.external_services):
            await self._refresh_dead_letters()
            return
        # Not when somebody (the control center's poll) asked very recently; the dead-letter
        # depths are read all the same (nobody else reads them).
        if time.monotonic() - self._snapshot_at >= LAG_MAX_AGE_S:
            try:
                await asyncio.wait_for(self.group_snapshots(), LAG_TIMEOUT_S)
            except Exception as exc:
                log.debug("group snapshots failed: %s", exc)
        await self._refresh_dead_letters()

    async def _refresh_replication(self) -> None:
        """Count under-replicated and offline partitions (one Metadata request)."""
        try:
            reader = await self._cluster_reader()
            view = await asyncio.wait_for(reader.describe(metadata_only=True), LAG_TIMEOUT_S)
        except Exception as exc:
            log.debug("cluster metadata failed: %s", exc)
            return
        self._replication = (view.under_replicated, view.offline)
        self.faults.watcher.cluster(view)

    async def _watch_faults(self) -> None:
        """Feed the chaos timeline the services' states and, while a fault is open, how many
        in-flight orders are older than it (one indexed count per open fault)."""
        if self._supervisor is not None:
            self.faults.watcher.services(self._supervisor.statuses())
        store = self.store
        await self.faults.watcher.orders(lambda age: store.run(store.stuck_count, age))

    async def _refresh_dead_letters(self) -> None:
        """The depth of every dead-letter topic, from its offsets: the same number whichever
        process (or earlier run) dead-lettered the records."""
        dlqs = [dlq_topic(t) for t in self.names.pipeline()]
        try:
            inspector = await self._ensure_inspector()
            self._dlq_records = await asyncio.wait_for(inspector.topic_records(dlqs), LAG_TIMEOUT_S)
            self.faults.watcher.dead_letters(self._dlq_records)
        except Exception as exc:
            log.debug("dead-letter offsets failed: %s", exc)

    @property
    def kafka_reachable(self) -> bool:
        """False while the last probe of Kafka went unanswered (lag and states are unknown)."""
        return self._kafka_state != "unreachable"

    def _as_seen(self, status: ServiceStatus) -> ServiceStatus:
        """A service's status as the screens and /health should show it.

        While Kafka is unreachable a service's consumers only retry: ``waiting``, not a green
        ``running``. Its dead letters are its dead-letter topic's depth (from Kafka's offsets,
        whoever wrote them), not this process's count since it started.
        """
        changes: dict[str, Any] = {}
        if not self.kafka_reachable and status.state in ("running", "starting"):
            changes["state"] = "waiting"
        depth = self._dlq_records.get(dlq_topic(status.inbox))
        if depth is not None:
            changes["dead_letters"] = depth
        return dataclasses.replace(status, **changes) if changes else status

    def status(self) -> RuntimeStatus:
        """The cached picture of the system; cheap enough to call on every repaint."""
        services = (
            tuple(self._as_seen(s) for s in self._supervisor.statuses())
            if self._supervisor is not None
            else ()
        )
        return RuntimeStatus(
            kafka=self._kafka_state,
            api=self._api_state,
            services=services,
            orders_per_s=self._orders_per_s,
            # The last figure is stale once Kafka stops answering: unknown, not the old value.
            total_lag=self._total_lag if self.kafka_reachable else None,
            status_counts=dict(self._counts),
            bootstrap_servers=self.bootstrap_servers,
            api_url=self.api_url if self.with_api else None,
            steps=tuple(self._steps[n] for n in STEP_NAMES),
            kafka_security=None if self.kafka.is_plaintext else self.kafka.describe(),
            under_replicated=self._replication[0] if self.kafka_reachable else 0,
            offline_partitions=self._replication[1] if self.kafka_reachable else 0,
        )

    async def health(self) -> HealthReport:
        """``GET /health``: Kafka reachable, services running, total lag, stuck orders (one
        indexed count over the in-flight orders only)."""
        status = self.status()
        lags = dict(self._lags) if self.kafka_reachable else {}
        dead = dict(self._dlq_records) if self.kafka_reachable else {}  # no stale depths either
        services = [
            ServiceHealth(name=s.name, state=s.state, instances=s.instances, lag=lags.get(s.group))
            for s in status.services
        ]
        if self.external_services is not None:
            groups = dict(zip(SERVICE_NAMES, self.names.pipeline(), strict=True))
            services += [
                ServiceHealth(
                    name=name,
                    state="waiting"
                    if not self.kafka_reachable and state in ("running", "starting")
                    else state,
                    instances=1,
                    lag=lags.get(groups[name]),
                )
                for name, state in self.external_services()
            ]
        healthy = status.kafka == "running" and all(s.state == "running" for s in services)
        return HealthReport(
            status="ok" if healthy else "degraded",
            kafka=KafkaHealth(
                bootstrapServers=self.bootstrap_servers, reachable=status.kafka == "running"
            ),
            services=services,
            totalLag=status.total_lag,
            deadLetters=dead,
            totalDeadLetters=sum(dead.values()) if dead else None,
            stuckOrders=await self.store.run(self.store.stuck_count),
        )

    def service_states(self) -> dict[str, str]:
        """service -> state of this process's services (what a ``--processes`` child reports)."""
        return {s.name: s.state for s in self.status().services}

    def service_events(self) -> dict[str, dict[str, int]]:
        """The events this process's services handled, by service and outcome (metrics)."""
        return service_events_of(self._supervisor.statuses() if self._supervisor else [])

    def metrics_view(self) -> PipelineView:
        """What ``GET /metrics`` shows beside the store's figures (cached: never waits)."""
        events: dict[str, Mapping[str, int]] = dict(self.service_events())
        if self.external_service_events is not None:
            events.update(self.external_service_events())
        reachable = None if self._kafka_state == "stopped" else self._kafka_state == "running"
        return PipelineView(
            reachable,
            lag_samples(self._snapshots),
            events,
            lag_seconds=lag_seconds_samples(self.lag_times()),
            dead_letters=dict(self._dlq_records),
        )

    # ------------------------------------------------------------------ actions

    async def submit_order(
        self, request: OrderRequest, *, idempotency_key: str | None = None
    ) -> SubmittedOrder:
        """Place an order exactly as ``POST /api/v1/orders`` does (same validation and path)."""
        return await self.desk.place_order(request, idempotency_key=idempotency_key)

    def service_groups(self) -> list[str]:
        """The consumer groups of the pipeline's services (named after their inbox topics)."""
        return list(self.names.pipeline())

    async def group_snapshots(self) -> list[GroupSnapshot]:
        """Members, assignments and lag of the four service groups (standard admin calls)."""
        inspector = await self._ensure_inspector()
        snapshots = await inspector.describe(self.service_groups())
        self._snapshots = snapshots
        self.lag_tracker.observe(snapshots)
        self.faults.watcher.groups(snapshots)
        self._lags = {s.group: s.total_lag for s in snapshots}
        self._total_lag = sum(self._lags.values())
        self._snapshot_at = time.monotonic()
        return snapshots

    async def preview_offset_reset(
        self, group: str, target: ResetTarget, topics: TopicSelection | None = None
    ) -> list[PlannedOffset]:
        """The plan of an offset reset (changes nothing); refuses members of other processes."""
        from orderdeck import own_group_reset

        return await own_group_reset.preview(
            self.supervisor, await self._ensure_inspector(), group, target, topics
        )

    async def apply_offset_reset(self, group: str, plan: Sequence[PlannedOffset]) -> None:
        """Stop this process's consumers of ``group``, apply ``plan``, start them again."""
        from orderdeck import own_group_reset

        await own_group_reset.apply(self.supervisor, await self._ensure_inspector(), group, plan)

    def lag_times(self) -> dict[str, GroupLagTime]:
        """Lag seconds, time to drain and verdicts per group as of the last groups poll."""
        return self.lag_tracker.groups() if self.kafka_reachable else {}

    async def _ensure_inspector(self) -> GroupInspector:
        # One inspector, started once, by a task of its own: a caller that gives up (a
        # timeout) must not cancel a half-started client and leak its connections.
        if self._inspector_task is None:
            self._inspector_task = asyncio.create_task(
                self._start_inspector(), name="orderdeck-group-inspector-start"
            )
        return await asyncio.shield(self._inspector_task)

    async def _start_inspector(self) -> GroupInspector:
        from orderdeck.kafka.admin import GroupInspector

        inspector = GroupInspector(self.kafka)
        try:
            await inspector.start()
        except BaseException:
            self._inspector_task = None  # try again on the next call
            raise
        return inspector

    async def dead_letters(self, topic: str | None = None) -> list[DeadLetter]:
        """The records of one DLQ, or of every pipeline DLQ when ``topic`` is None, for the
        Dead letters screen (which runs this in a worker and never imports the Kafka code)."""
        dlqs = [topic] if topic else [dlq_topic(t) for t in self.names.pipeline()]
        letters: list[DeadLetter] = []
        for dlq in dlqs:
            letters.extend(await read_dead_letters(self.kafka, dlq))
        return letters

    async def redrive(
        self,
        dlq: str,
        positions: Sequence[tuple[int, int]] | None,
        *,
        value: bytes | None = None,
        force: bool = False,
    ) -> RedriveReport:
        """Send dead letters of ``dlq`` back to their original topic (see kafka/dead_letters.py)."""
        return await redrive_dead_letters(self.kafka, dlq, positions, value=value, force=force)

    async def cluster_view(self) -> ClusterView:
        """Brokers, controller and every topic's partitions now (the Cluster screen's data).

        One admin client, started once by a task of its own for the same reason as the
        group inspector's, serves every refresh.
        """
        view = await (await self._cluster_reader()).describe()
        self._replication = (view.under_replicated, view.offline)
        self.faults.watcher.cluster(view)
        return view

    async def _cluster_reader(self) -> ClusterReader:
        if self._cluster_task is None:
            self._cluster_task = asyncio.create_task(
                self._start_cluster_reader(), name="orderdeck-cluster-reader-start"
            )
        return await asyncio.shield(self._cluster_task)

    async def _start_cluster_reader(self) -> ClusterReader:
        from orderdeck.kafka.cluster import ClusterReader

        reader = ClusterReader(self.kafka)
        try:
            await reader.start()
        except BaseException:
            self._cluster_task = None  # try again on the next call
            raise
        return reader

    def open_tail(self, topics: Sequence[str], from_beginning: bool = False) -> TopicTail:
        """A group-less tail of ``topics`` (the caller starts and stops it)."""
        from orderdeck.kafka.tail import TopicTail

        return TopicTail(self.kafka, topics, from_beginning=from_beginning)
