"""A local Apache Kafka of three brokers: ``orderdeck kafka start --brokers 3``.

One broker has nothing to fail over to; three show what Kafka is about under faults — a
leader moving when its broker dies, the in-sync replicas shrinking and growing back. Each
node is a real KRaft **combined** node (broker and controller in one JVM, as the single
local broker is): three JVMs, three data directories, and a controller quorum of all three,
so any one node can die and the other two keep a majority.

This module is also **the control surface for faults**: the Chaos screen and the tests stop,
kill and restart single brokers through :attr:`LocalCluster.nodes`. That per-node API —
``node_id``, ``bootstrap``, ``pid``, ``is_running()``, ``stop(timeout)``, ``kill()``,
``start(timeout)`` — and :meth:`LocalCluster.load` are kept stable for them.

A node is a :class:`~orderdeck.kafka.local.LocalKafka` with its own directory, so the pid
file that is trusted only while the process still runs this node's config, the class
archive, the failure messages and the clean SIGTERM shutdown are the single broker's.

Layout of ``<data-dir>/kafka``::

    cluster.json      the cluster id and every node's broker and controller ports, written
                      when the cluster is first started: the controller quorum is fixed then
    node-<id>/        one node, laid out like the single broker's directory
                      (server.properties, logs/, kafka.pid, broker.json, server.log, ...)

Ports: brokers on ``--port``, ``--port``+1, ``--port``+2; controllers on the first free ports
above those, never in the machine's ephemeral port range (Linux: 32768-60999). A node dialling
a peer that does not listen yet on such a port can be handed that same port as its own source
port and connect to itself (TCP simultaneous open): the raft client then reads its own request
as the answer and the JVM exits with ``CorrelationIdMismatchException``. Heaps are
``-Xms128m -Xmx384m`` per node (three fit a laptop next to the pipeline).
Topics get replication factor 3 and ``min.insync.replicas=2``: with ``acks=all`` a write
survives one lost broker, and with two lost the producer is refused (NOT_ENOUGH_REPLICAS)
rather than writing a single copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.install import KAFKA_VERSION, checked_java, locked
from orderdeck.kafka.local import (
    LocalKafka,
    LocalKafkaError,
    PortInUseError,
    StartResult,
    _check_port_free,
    _new_cluster_id,
    _read_text,
    _write_atomic,
)

__all__ = [
    "CLUSTER_FILE",
    "CLUSTER_SIZE",
    "NODE_HEAP_OPTS",
    "ClusterNode",
    "ClusterStartResult",
    "EphemeralPortError",
    "LocalCluster",
    "ephemeral_port_range",
    "free_cluster_port",
    "local_kafka_for",
]

#: The one cluster size offered: the smallest where a broker can die and writes go on with
#: ``min.insync.replicas=2``.
CLUSTER_SIZE = 3
CLUSTER_FILE = "cluster.json"
#: Three of these and the pipeline fit a laptop; a node of this demo never needs more.
NODE_HEAP_OPTS = ("-Xms128m", "-Xmx384m")
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2
_LOOPBACK = "127.0.0.1"
#: Where :func:`ephemeral_port_range` looks (Linux); elsewhere no range is assumed.
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: How long a restarted node waits for its ports to be released by the killed JVM's sockets.
PORT_RELEASE_S = 15.0
#: How long nodes that lost their controller quorum (a majority of the nodes down) get to
#: exit on SIGTERM before SIGKILL: their controlled shutdown waits for a controller that
#: cannot be elected, and would only end at the stop's full timeout.
NO_QUORUM_STOP_S = 5.0


@dataclass(frozen=True)
class NodePorts:
    """Where one node listens: its broker (data) port and its controller port."""

    node_id: int
    port: int
    controller_port: int


class ClusterNode(LocalKafka):
    """One KRaft combined node of a :class:`LocalCluster`, under ``<data-dir>/kafka/node-<id>``.

    ``stop``/``kill`` take it out, ``start`` puts it back into the running quorum.
    """

    heap_opts = NODE_HEAP_OPTS

    def __init__(
        self, data_dir: Path, ports: NodePorts, voters: str, cluster_id: str, size: int
    ) -> None:
        data_dir = Path(data_dir).expanduser().absolute()
        super().__init__(
            data_dir, ports.port, kafka_dir=data_dir / "kafka" / f"node-{ports.node_id}"
        )
        self.node_id = ports.node_id
        self.controller_port = ports.controller_port
        self.voters = voters
        self.cluster_id = cluster_id
        self.size = size
        self._dump: Path | None = None

    def __repr__(self) -> str:
        return f"ClusterNode({self.node_id}, {self.bootstrap}, pid={self.pid})"

    # ------------------------------------------------------------------ the fault surface

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>`` of this node's broker."""
        return self.bootstrap_servers

    @property
    def pid(self) -> int | None:
        """The node's JVM, or None while it is down."""
        return self._running_pid()

    def start(self, timeout: float = 60) -> StartResult:
        """Start this node alone (the others running) and wait until it answers metadata."""
        began = time.monotonic()
        with locked(self.kafka_dir / ".start.lock"):
            running = self.pid
            if running is None:
                self.launch()
                self.wait_started(began + timeout)
            pid = self.pid
            if pid is None:
                raise LocalKafkaError(f"broker {self.node_id} exited right after starting")
            seconds = time.monotonic() - began
            return StartResult(self.bootstrap, pid, running is not None, seconds, self.log_path)

    def kill(self) -> bool:
        """``kill -9`` the node's JVM and reap it; False when it was not running.

        No controlled shutdown: the controller learns of it only when the broker's session
        times out, which is what a crashed machine looks like.
        """
        pid = self.pid
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_gone(pid, 10.0):
            raise LocalKafkaError(f"broker {self.node_id} (pid {pid}) survived SIGKILL")
        self._reap()
        self._remove_run_files()
        return True

    # stop(timeout) and is_running() are LocalKafka's: SIGTERM, a controlled shutdown (the
    # controller moves this node's leaderships away first), SIGKILL only after the timeout.

    # ------------------------------------------------------------------ start in two steps

    def launch(self) -> None:
        """Write the config, format storage once, start the JVM; do not wait for it.

        The cluster launches all three nodes before waiting: a node becomes ready only once
        a majority of the controller quorum runs.
        """
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        self._remove_run_files()
        libs = self.install()
        java = checked_java()
        _wait_port_free(self.port, f"broker {self.node_id}")
        _wait_port_free(self.controller_port, f"controller {self.node_id}")
        connection = KafkaConnection(self.bootstrap_servers)
        if _read_text(self.cluster_id_path) is None:
            # Every node's storage is formatted with the cluster's one id.
            _write_atomic(self.cluster_id_path, self.cluster_id + "\n")
        self._write_config(self.controller_port, connection)
        self._ensure_formatted(java, libs, connection)
        self._dump = self._launch(java, libs, self.controller_port)

    def wait_started(self, deadline: float) -> None:
        """Block until the launched JVM answers metadata; kill it if it never does."""
        try:
            self._wait_ready(self._proc, deadline)
        except BaseException:
            self.abandon_start()
            raise

    def abandon_start(self) -> None:
        """Kill a JVM this object launched that is not ready (another node failed to start)."""
        self._kill_after_failed_start(self._dump)
        self._dump = None

    def _config(self, controller_port: int, connection: KafkaConnection) -> dict[str, str]:
        config = super()._config(controller_port, connection)
        replicas = str(min(REPLICATION_FACTOR, self.size))
        min_isr = str(MIN_INSYNC_REPLICAS if self.size >= REPLICATION_FACTOR else 1)
        config.update(
            {
                "node.id": str(self.node_id),
                "controller.quorum.voters": self.voters,
                "default.replication.factor": replicas,
                "min.insync.replicas": min_isr,
                "offsets.topic.replication.factor": replicas,
                "transaction.state.log.replication.factor": replicas,
                "transaction.state.log.min.isr": min_isr,
                "share.coordinator.state.topic.replication.factor": replicas,
                "share.coordinator.state.topic.min.isr": min_isr,
                # A kill -9'd broker is fenced (its leaderships moved, it leaves every ISR)
                # when its session times out: 9 s by default, a long stall in a demo. Beats
                # every 500 ms and a 4 s session still ride out a busy 2-core machine.
                "broker.heartbeat.interval.ms": "500",
                "broker.session.timeout.ms": "4000",
            }
        )
        return config


@dataclass(frozen=True)
class ClusterStartResult:
    """What :meth:`LocalCluster.start` did (the fields of the single broker's StartResult)."""

    bootstrap_servers: str
    pids: tuple[int, ...]
    already_running: bool
    seconds: float
    log_path: Path

    @property
    def pid(self) -> int:
        """The first node's pid (StartResult has one)."""
        return self.pids[0]


class LocalCluster:
    """Three local KRaft nodes under ``<data_dir>/kafka``; ``nodes`` drives them one by one."""

    def __init__(self, data_dir: Path, port: int = 9092, size: int = CLUSTER_SIZE) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.kafka_dir = self.data_dir / "kafka"
        self.cluster_path = self.kafka_dir / CLUSTER_FILE
        recorded = _read_cluster_file(self.cluster_path)
        if recorded is None and self.cluster_path.exists():
            raise LocalKafkaError(
                f"{self.cluster_path} cannot be read; remove {self.kafka_dir} to start over "
                "(this deletes the local brokers' data)"
            )
        if recorded is not None:
            self.cluster_id, ports = recorded
        else:
            self.cluster_id, ports = _new_cluster_id(), _plan_ports(port, size)
        self.nodes: tuple[ClusterNode, ...] = tuple(
            ClusterNode(self.data_dir, p, _voters(ports), self.cluster_id, len(ports))
            for p in ports
        )

    @classmethod
    def load(cls, data_dir: Path) -> LocalCluster | None:
        """The cluster recorded in ``data_dir``, or None when it holds none."""
        path = Path(data_dir).expanduser().absolute() / "kafka" / CLUSTER_FILE
        if _read_cluster_file(path) is None:
            return None
        return cls(data_dir)

    @staticmethod
    def exists(data_dir: Path) -> bool:
        """True when ``data_dir`` holds a cluster (``kafka start`` then keeps using it)."""
        return (Path(data_dir).expanduser() / "kafka" / CLUSTER_FILE).is_file()

    @property
    def bootstrap_servers(self) -> str:
        """Every node's broker address, comma-separated."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def secure(self) -> bool:
        """A local cluster is plaintext on 127.0.0.1 (``--secure`` is for the single broker)."""
        return False

    def connection(self) -> KafkaConnection:
        """How clients reach the cluster: all three brokers as bootstrap servers."""
        return KafkaConnection(self.bootstrap_servers)

    def node(self, node_id: int) -> ClusterNode:
        """The node with ``node_id``."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise LocalKafkaError(f"the local cluster has no broker {node_id}")

    def running(self) -> list[ClusterNode]:
        """The nodes whose JVM is alive."""
        return [node for node in self.nodes if node.is_running()]

    def is_running(self) -> bool:
        """True while any node runs."""
        return any(node.is_running() for node in self.nodes)

    # ------------------------------------------------------------------------ start

    def start(self, timeout: float = 90) -> ClusterStartResult:
        """Start every node that is down (adopting those that run) and wait for them all."""
        began = time.monotonic()
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        with locked(self.kafka_dir / ".start.lock"):
            self._refuse_single_broker()
            if not self.cluster_path.is_file():
                self._write_cluster_file()
            down = [node for node in self.nodes if not node.is_running()]
            launched: list[ClusterNode] = []
            try:
                for node in down:
                    node.launch()
                    launched.append(node)
                deadline = began + timeout
                for node in self.nodes:
                    node.wait_started(deadline)
            except BaseException:
                for node in launched:
                    node.abandon_start()
                raise
        pids = tuple(node.pid or 0 for node in self.nodes)
        return ClusterStartResult(
            self.bootstrap_servers,
            pids,
            already_running=not down,
            seconds=time.monotonic() - began,
            log_path=self.nodes[0].log_path,
        )

    def _refuse_single_broker(self) -> None:
        single = LocalKafka(self.data_dir)
        status = single.status()
        if status is not None:
            raise LocalKafkaError(
                f"the single local broker of {self.data_dir} runs (pid {status.pid}); stop it "
                "with `orderdeck kafka stop` before starting three brokers"
            )

    def _write_cluster_file(self) -> None:
        data = {
            "cluster_id": self.cluster_id,
            "version": KAFKA_VERSION,
            "created_at": time.time(),
            "nodes": [
                {"node_id": n.node_id, "port": n.port, "controller_port": n.controller_port}
                for n in self.nodes
            ],
        }
        _write_atomic(self.cluster_path, json.dumps(data, indent=2) + "\n")

    # ------------------------------------------------------------------------ stop

    def stop(self, timeout: float = 30) -> bool:
        """Stop every node; False when none was running.

        All nodes get SIGTERM at once: stopped one after another, the last ones would wait
        for a controller quorum that is already gone before their controlled shutdown ends.
        With the quorum lost already (two of three killed), the survivors get
        :data:`NO_QUORUM_STOP_S` before SIGKILL; their logs are recovered on the next start.
        """
        running = [(node, node.pid) for node in self.nodes]
        alive = [(node, pid) for node, pid in running if pid is not None]
        if len(alive) <= len(self.nodes) // 2:
            timeout = min(timeout, NO_QUORUM_STOP_S)
        for _, pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for node in self.nodes:
            # Waits for the SIGTERM already sent and escalates if needed; a node that was
            # down already is only reaped (this process may have started it).
            node.stop(timeout)
        return bool(alive)


def local_kafka_for(
    data_dir: Path, port: int = 9092, brokers: int | None = None
) -> LocalKafka | LocalCluster:
    """The local Kafka a command runs on: three brokers when asked for or recorded, else one.

    ``brokers=None`` means "as this data dir was set up": a data dir holding a cluster keeps
    using it. Asking for one broker where a cluster is recorded is refused rather than
    guessed at.
    """
    recorded = LocalCluster.exists(data_dir)
    if brokers is None:
        return LocalCluster(data_dir, port) if recorded else LocalKafka(data_dir, port)
    if brokers == 1:
        if recorded:
            raise LocalKafkaError(
                f"{data_dir} holds a local cluster of {CLUSTER_SIZE} brokers; start it without "
                f"--brokers, or remove {Path(data_dir) / 'kafka'} to start over with one"
            )
        return LocalKafka(data_dir, port)
    if brokers != CLUSTER_SIZE:
        raise LocalKafkaError(f"--brokers takes 1 or {CLUSTER_SIZE}, not {brokers}")
    return LocalCluster(data_dir, port)


# ---------------------------------------------------------------------------- helpers


class EphemeralPortError(LocalKafkaError):
    """A broker port in the ephemeral range: its peers could connect to themselves there."""

    def __init__(self, port: int, low: int, high: int) -> None:
        super().__init__(
            f"port {port} is in this machine's ephemeral port range ({low}-{high}): a broker "
            "of a local cluster there can be reached by a peer's own outgoing socket and fail "
            f"at start-up; choose --port below {low} (the default is 9092)"
        )
        self.port = port


def ephemeral_port_range() -> tuple[int, int] | None:
    """The ports the kernel hands out as source ports, or None where it cannot be read."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def free_cluster_port(size: int = CLUSTER_SIZE) -> int:
    """A ``--port`` for a new cluster of ``size`` nodes on ports free right now, below the
    ephemeral range (tests and benches, which must not collide with a fixed port)."""
    span = ephemeral_port_range()
    top = span[0] if span is not None else 32768
    for _ in range(200):
        port = random.randrange(20000, top - 4 * size)
        try:
            _plan_ports(port, size)
        except LocalKafkaError:
            continue
        return port
    raise LocalKafkaError(f"no {2 * size} free ports found between 20000 and {top}")


def _plan_ports(port: int, size: int) -> list[NodePorts]:
    """Brokers on ``port`` .. ``port+size-1``; controllers on the next free ports above,
    none of them in the ephemeral range (see the module's docstring)."""
    span = ephemeral_port_range()

    def ephemeral(candidate: int) -> bool:
        return span is not None and span[0] <= candidate <= span[1]

    brokers = [port + index for index in range(size)]
    for broker in brokers:
        if span is not None and ephemeral(broker):
            raise EphemeralPortError(broker, *span)
        _check_port_free(broker, "Kafka")
    controllers: list[int] = []
    candidate = port + size
    while len(controllers) < size:
        if span is not None and ephemeral(candidate):
            candidate = span[1] + 1
        if candidate > 65535:
            raise PortInUseError(port, "controller")
        with contextlib.suppress(PortInUseError):
            _check_port_free(candidate, "controller")
            controllers.append(candidate)
        candidate += 1
    return [
        NodePorts(i + 1, b, c) for i, (b, c) in enumerate(zip(brokers, controllers, strict=True))
    ]


def _wait_port_free(port: int, role: str, seconds: float = PORT_RELEASE_S) -> None:
    """Wait until ``port`` can be bound: right after a kill -9 the other nodes' connections
    to the dead node keep its ports busy for a moment."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            _check_port_free(port, role)
            return
        except PortInUseError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _voters(ports: list[NodePorts]) -> str:
    return ",".join(f"{p.node_id}@{_LOOPBACK}:{p.controller_port}" for p in ports)


def _read_cluster_file(path: Path) -> tuple[str, list[NodePorts]] | None:
    try:
        data = json.loads(path.read_text())
        nodes = [
            NodePorts(int(n["node_id"]), int(n["port"]), int(n["controller_port"]))
            for n in data["nodes"]
        ]
        return str(data["cluster_id"]), nodes
    except (OSError, ValueError, KeyError, TypeError):
        return None
