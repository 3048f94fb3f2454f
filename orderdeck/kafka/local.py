"""The local Apache Kafka: one KRaft node (broker + controller) under ``<data-dir>/kafka``.

orderdeck never fakes Kafka. Without an external cluster it runs the real broker as a child
JVM: the jars come from :mod:`orderdeck.kafka.install`, the config is written here on every
start (so a changed port simply takes effect), storage is formatted once with a cluster id
kept beside it, and the process is found again through a pid file whose pid is only trusted
while that process's command line (read with psutil, so Linux and macOS alike) still names
this data dir's config — a recycled pid is never signalled.

``--secure`` makes the one data listener SASL_SSL (SCRAM-SHA-512, TLS with a certificate from
:mod:`orderdeck.kafka.tls`): the user is created when storage is formatted, its random password
kept in ``client.properties``, which both orderdeck and ``kcat -F`` read. That file is also the
record that this data dir is secure, so later starts stay secure without the flag. The
controller listener stays plaintext on 127.0.0.1: it is internal to the one JVM.

Layout of ``<data-dir>/kafka``::

    server.properties   written by orderdeck on each start (0600 when secure: it holds
                        the broker's own SCRAM password)
    client.properties   secure only: how clients connect, with the password (0600)
    tls/                secure only: the CA and the broker's certificate and key
    cluster.id          the id storage was formatted with
    logs/               Kafka's log dir (topics and the metadata log)
    kafka.pid           pid of the running JVM
    broker.json         port, version, start time of the running JVM
    server.log          the broker's own log (log4j2, see log4j2.xml)
    kafka.out           the JVM's stdout/stderr (start-up failures before logging works)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from orderdeck.errors import KafkaUnavailableError, OrderdeckError
from orderdeck.kafka.connection import KafkaConnection, parse_properties, render_properties
from orderdeck.kafka.install import (
    KAFKA_VERSION,
    LOG4J_CONFIG,
    cache_dir,
    checked_java,
    libs_dir,
    locked,
)
from orderdeck.kafka.probe import ProbeError, probe, wait_until_ready
from orderdeck.kafka.tls import BrokerTls, ensure_certificates, write_private

__all__ = [
    "KAFKA_VERSION",
    "SCRAM_MECHANISM",
    "SCRAM_USER",
    "SECURE_PERFORMANCE_OPTS",
    "BrokerExitedError",
    "BrokerStatus",
    "ClusterIdMismatchError",
    "LocalKafka",
    "LocalKafkaError",
    "PortInUseError",
    "StartResult",
    "tool_command",
    "wait_until_ready",
]

#: Heap and JIT/GC choices for a laptop or a 2-core CI box: the serial collector and the C1
#: compiler alone start the broker faster and use less memory, and the broker is not the
#: pipeline's ceiling (BENCHMARKS.md, "Local Apache Kafka").
#: KAFKA_HEAP_OPTS / KAFKA_JVM_PERFORMANCE_OPTS override them, as with Kafka's own scripts.
HEAP_OPTS = ("-Xms256m", "-Xmx512m")
PERFORMANCE_OPTS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
#: A SASL_SSL broker keeps C2: only C2 turns AES-GCM into the CPU's AES/GHASH instructions, and
#: C1-compiled TLS costs most of the broker's CPU (BENCHMARKS.md, "SASL_SSL beside plaintext").
SECURE_PERFORMANCE_OPTS = ("-XX:+UseSerialGC",)
COMMON_OPTS = ("-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")
TOOL_OPTS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")

_LOOPBACK = "127.0.0.1"
SCRAM_MECHANISM = "SCRAM-SHA-512"
#: The SASL user ``--secure`` creates; its password is random per data dir.
SCRAM_USER = "orderdeck"
_SECURE_PROTOCOL = "SASL_SSL"
_STALE_DUMP_AGE = 600.0


class LocalKafkaError(OrderdeckError):
    """The local broker could not be started or stopped."""


class PortInUseError(LocalKafkaError):
    """The broker's port (or its controller port) is taken by another process."""

    def __init__(self, port: int, role: str = "Kafka") -> None:
        super().__init__(
            f"port {port} on {_LOOPBACK} is already in use, so the {role} listener cannot "
            "start there; stop whatever holds it, or choose another port (orderdeck kafka "
            "start --port N; launch and serve: ORDERDECK_KAFKA_PORT=N)"
        )
        self.port = port


class ClusterIdMismatchError(LocalKafkaError):
    """The storage under the data dir belongs to another cluster id."""


class BrokerExitedError(LocalKafkaError):
    """The JVM exited before the broker became ready."""


@dataclass(frozen=True)
class StartResult:
    """What ``LocalKafka.start`` did."""

    bootstrap_servers: str
    pid: int
    already_running: bool
    seconds: float
    log_path: Path


@dataclass(frozen=True)
class BrokerStatus:
    """A running local broker, as recorded when it was started."""

    pid: int
    port: int
    bootstrap_servers: str
    version: str
    started_at: float
    data_dir: Path
    log_path: Path
    #: ``PLAINTEXT``, or ``SASL_SSL`` for a broker started with ``--secure``.
    security_protocol: str = "PLAINTEXT"

    @property
    def uptime(self) -> float:
        """Seconds since the JVM was started."""
        return max(0.0, time.time() - self.started_at)


class LocalKafka:
    """A single-node KRaft Kafka whose files live under ``data_dir / "kafka"``.

    ``secure=True`` asks for a SASL_SSL broker; a data dir that was set up secure stays
    secure whatever is asked (see :attr:`secure`).
    """

    #: The JVM's heap unless KAFKA_HEAP_OPTS is set; a node of a local cluster takes less.
    heap_opts: tuple[str, ...] = HEAP_OPTS

    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        *,
        secure: bool = False,
        kafka_dir: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.port = port
        self._secure_requested = secure
        # A node of a local cluster (kafka/local_cluster.py) keeps its files in a directory
        # of its own under <data-dir>/kafka.
        self.kafka_dir = Path(kafka_dir).absolute() if kafka_dir else self.data_dir / "kafka"
        self.config_path = self.kafka_dir / "server.properties"
        self.pid_path = self.kafka_dir / "kafka.pid"
        self.state_path = self.kafka_dir / "broker.json"
        self.cluster_id_path = self.kafka_dir / "cluster.id"
        self.log_dir = self.kafka_dir / "logs"
        self.log_path = self.kafka_dir / "server.log"
        self.out_path = self.kafka_dir / "kafka.out"
        self.client_properties_path = self.kafka_dir / "client.properties"
        self.tls = BrokerTls(self.kafka_dir / "tls")
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offsets: dict[Path, int] = {}

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``: the address clients bootstrap from."""
        return f"{_LOOPBACK}:{self.port}"

    @property
    def secure(self) -> bool:
        """SASL_SSL: asked for, or this data dir was set up so by an earlier ``--secure``.

        A secure data dir is never quietly downgraded: its storage holds the SCRAM user and
        its clients were handed ``client.properties``, so a start without ``--secure`` keeps
        it secure rather than opening a plaintext port on the same data.
        """
        return self._secure_requested or self.client_properties_path.is_file()

    @property
    def security_protocol(self) -> str:
        return _SECURE_PROTOCOL if self.secure else "PLAINTEXT"

    @property
    def performance_opts(self) -> tuple[str, ...]:
        """The JIT/GC options the broker's JVM gets unless KAFKA_JVM_PERFORMANCE_OPTS is set."""
        return SECURE_PERFORMANCE_OPTS if self.secure else PERFORMANCE_OPTS

    def connection(self) -> KafkaConnection:
        """How a client reaches this data dir's broker (plaintext, or SASL_SSL as set up).

        The address is the running broker's port when it runs, else the configured one.
        """
        running = self.status()
        bootstrap = running.bootstrap_servers if running else self.bootstrap_servers
        if not self.secure:
            return KafkaConnection(bootstrap)
        password = self._recorded_password()
        if password is None:
            raise LocalKafkaError(
                f"the secure local Kafka of {self.data_dir} has not been set up yet "
                f"({self.client_properties_path} is missing); run `orderdeck kafka start --secure`"
            )
        return self._secure_connection(bootstrap, password)

    def _secure_connection(self, bootstrap: str, password: str) -> KafkaConnection:
        return KafkaConnection(
            bootstrap,
            security_protocol=_SECURE_PROTOCOL,
            sasl_mechanism=SCRAM_MECHANISM,
            sasl_username=SCRAM_USER,
            sasl_password=password,
            ssl_ca_location=self.tls.ca_path,
            source=self.client_properties_path,
        )

    def _recorded_password(self) -> str | None:
        try:
            values = parse_properties(
                self.client_properties_path.read_text(), self.client_properties_path
            )
        except (OSError, OrderdeckError):
            return None
        return values.get("sasl.password") or None

    # ------------------------------------------------------------------------ install

    def install(self) -> Path:
        """Make sure Kafka's jars are available; returns the libs directory."""
        return libs_dir()

    # ------------------------------------------------------------------------ status

    def status(self) -> BrokerStatus | None:
        """The running broker of this data dir, or None."""
        pid = self._running_pid()
        if pid is None:
            return None
        state = self._read_state()
        port = int(state.get("port", self._configured_port() or self.port))
        return BrokerStatus(
            pid=pid,
            port=port,
            bootstrap_servers=f"{_LOOPBACK}:{port}",
            version=str(state.get("version", KAFKA_VERSION)),
            started_at=float(state.get("started_at", _process_start_time(pid))),
            data_dir=self.data_dir,
            log_path=self.log_path,
            security_protocol=str(state.get("security_protocol", self.security_protocol)),
        )

    def is_running(self) -> bool:
        """True while this data dir's broker JVM is alive."""
        return self._running_pid() is not None

    # ------------------------------------------------------------------------ start

    def start(self, timeout: float = 60) -> StartResult:
        """Start the broker (or adopt the running one) and block until it answers metadata.

        Two starts for the same data dir at once (say ``serve`` and ``kafka start``) take
        turns on a lock file: the second finds the first one's broker and adopts it.
        """
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        with locked(self.kafka_dir / ".start.lock"):
            return self._start(time.monotonic(), timeout)

    def _start(self, began: float, timeout: float) -> StartResult:
        self._check_security_choice()
        running = self.status()
        if running is not None:
            self.port = running.port
            self._wait_ready(None, began + timeout)
            return StartResult(
                running.bootstrap_servers,
                running.pid,
                True,
                time.monotonic() - began,
                self.log_path,
            )
        self._remove_run_files()
        libs = self.install()
        java = checked_java()
        _check_port_free(self.port, "Kafka")
        controller_port = self._pick_controller_port()
        connection = self._prepare_security()
        self._write_config(controller_port, connection)
        self._ensure_formatted(java, libs, connection)
        dump = self._launch(java, libs, controller_port)
        try:
            self._wait_ready(self._proc, began + timeout)
        except BaseException:
            self._kill_after_failed_start(dump)
            raise
        assert self._proc is not None
        return StartResult(
            self.bootstrap_servers,
            self._proc.pid,
            False,
            time.monotonic() - began,
            self.log_path,
        )

    def _check_security_choice(self) -> None:
        """Refuse ``--secure`` for storage that was formatted without its SCRAM user."""
        if not self._secure_requested or self.client_properties_path.is_file():
            return
        if (self.log_dir / "meta.properties").is_file():
            raise LocalKafkaError(
                f"the local Kafka of {self.data_dir} was set up without --secure, so its storage "
                "has no SCRAM user; start it without --secure, or remove "
                f"{self.kafka_dir} to start over secured (this deletes the local broker's data)"
            )

    def _prepare_security(self) -> KafkaConnection:
        """For a secure broker: certificates, the SCRAM password, ``client.properties``."""
        if not self.secure:
            return KafkaConnection(self.bootstrap_servers)
        ensure_certificates(self.tls.directory)
        password = self._recorded_password() or secrets.token_urlsafe(24)
        connection = self._secure_connection(self.bootstrap_servers, password)
        header = (
            "# Written by `orderdeck kafka start --secure`: the local broker's SASL_SSL "
            "client settings\n# (librdkafka names: `kcat -F` reads this file too). Keep it "
            "private: it holds the password.\n"
        )
        text = header + render_properties(connection)
        write_private(self.client_properties_path, text.encode())
        return connection

    def _pick_controller_port(self) -> int:
        """Reuse the recorded controller port, else port+1, else any free port."""
        candidates = [self._configured_controller_port(), self.port + 1]
        for candidate in candidates:
            if candidate and candidate != self.port and candidate <= 65535:
                with contextlib.suppress(PortInUseError):
                    _check_port_free(candidate, "controller")
                    return candidate
        return _free_port()

    def _write_config(self, controller_port: int, connection: KafkaConnection) -> None:
        config = self._config(controller_port, connection)
        lines = ["# Written by `orderdeck kafka start` on every start; edits are overwritten."]
        lines += [f"{key}={value}" for key, value in config.items()]
        text = "\n".join(lines) + "\n"
        if connection.uses_sasl:
            write_private(self.config_path, text.encode())
        else:
            _write_atomic(self.config_path, text)

    def _config(self, controller_port: int, connection: KafkaConnection) -> dict[str, str]:
        """The broker's ``server.properties`` as a dict (a cluster node amends it)."""
        listener = connection.security_protocol
        config = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{_LOOPBACK}:{controller_port}",
            "listeners": f"{listener}://{_LOOPBACK}:{self.port},"
            f"CONTROLLER://{_LOOPBACK}:{controller_port}",
            "advertised.listeners": f"{listener}://{_LOOPBACK}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            # The data listener is the inter-broker one too: no second, plaintext data port.
            # On a single node it carries no replication traffic anyway.
            "inter.broker.listener.name": listener,
            "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{listener}:{listener}",
            **self._security_config(connection),
            "log.dirs": str(self.log_dir),
            "num.partitions": "3",
            "default.replication.factor": "1",
            # orderdeck creates its topics explicitly; a typo in a tool or client must not
            # silently create a stray topic (a metadata request for a missing name would).
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            # Fewer offsets partitions: the first consumer group of a fresh broker waits for
            # all of them to be created and loaded.
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # The 3 s default delays every first rebalance; a demo and the tests would feel it.
            "group.initial.rebalance.delay.ms": "0",
            # The log cleaner grabs 128 MB of heap by default; a laptop broker needs far less.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }
        return config

    def _security_config(self, connection: KafkaConnection) -> dict[str, str]:
        """SASL/SCRAM and TLS settings of the data listener (none for plaintext)."""
        if not connection.uses_sasl:
            return {}
        prefix = f"listener.name.{connection.security_protocol.lower()}"
        mechanism = connection.sasl_mechanism or SCRAM_MECHANISM
        # The broker's own client (inter-broker) logs in as the same user.
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{connection.sasl_username}" password="{connection.sasl_password}";'
        )
        return {
            "sasl.enabled.mechanisms": mechanism,
            "sasl.mechanism.inter.broker.protocol": mechanism,
            f"{prefix}.{mechanism.lower()}.sasl.jaas.config": jaas,
            # PEM straight from orderdeck/kafka/tls.py: Kafka reads it since KIP-651.
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.tls.keystore_path),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.tls.ca_path),
            "ssl.client.auth": "none",
            "ssl.endpoint.identification.algorithm": "https",
        }

    def _ensure_formatted(self, java: str, libs: Path, connection: KafkaConnection) -> str:
        """Format storage once; afterwards check it still belongs to our cluster id."""
        stored = _read_text(self.cluster_id_path)
        formatted = _read_properties(self.log_dir / "meta.properties").get("cluster.id")
        if formatted:
            if stored and stored != formatted:
                raise ClusterIdMismatchError(
                    f"storage in {self.log_dir} is formatted for cluster id {formatted}, but "
                    f"{self.cluster_id_path} says {stored}; remove {self.kafka_dir} to start "
                    "over (this deletes the local broker's data)"
                )
            if not stored:
                _write_atomic(self.cluster_id_path, formatted + "\n")
            return formatted
        cluster_id = stored or _new_cluster_id()
        _write_atomic(self.cluster_id_path, cluster_id + "\n")
        command = [
            *_java_command(java, libs, TOOL_OPTS),
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster_id,
            "--config",
            str(self.config_path),
        ]
        # The SCRAM user goes in through a java @argfile (0600, removed at once) so that its
        # password never shows in the process table.
        argfile = self.kafka_dir / ".format.args"
        if connection.uses_sasl:
            scram = (
                f"{connection.sasl_mechanism}=[name={connection.sasl_username},"
                f"password={connection.sasl_password}]"
            )
            write_private(argfile, f"--add-scram\n{scram}\n".encode())
            command.append(f"@{argfile}")
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        finally:
            argfile.unlink(missing_ok=True)
        if done.returncode != 0:
            said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
            raise LocalKafkaError(
                f"formatting Kafka storage in {self.log_dir} failed: "
                f"{said[-1].strip() if said else f'exit code {done.returncode}'}"
            )
        return cluster_id

    def _launch(self, java: str, libs: Path, controller_port: int) -> Path | None:
        """Start the JVM detached from our session; returns a class-archive dump to finalize."""
        cds_opts, dump = _class_archive_options(java, libs)
        command = [
            java,
            *_env_opts("KAFKA_HEAP_OPTS", self.heap_opts),
            *_env_opts("KAFKA_JVM_PERFORMANCE_OPTS", self.performance_opts),
            *COMMON_OPTS,
            *cds_opts,
            f"-Dkafka.logs.dir={self.kafka_dir}",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            str(libs / "*"),
            "kafka.Kafka",
            str(self.config_path),
        ]
        self._log_offsets = {path: _size(path) for path in (self.log_path, self.out_path)}
        with self.out_path.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting Kafka\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                command,
                cwd=self.kafka_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in our terminal must not kill the broker
                close_fds=True,
            )
        _write_atomic(self.pid_path, f"{self._proc.pid}\n")
        state = {
            "pid": self._proc.pid,
            "port": self.port,
            "controller_port": controller_port,
            "version": KAFKA_VERSION,
            "security_protocol": self.security_protocol,
            "started_at": time.time(),
            "libs": str(libs),
            "class_archive_dump": str(dump) if dump else None,
        }
        _write_atomic(self.state_path, json.dumps(state, indent=2) + "\n")
        return dump

    def _wait_ready(self, proc: subprocess.Popen[bytes] | None, deadline: float) -> None:
        """Poll Metadata until the broker answers, its JVM dies, or the deadline passes.

        A secure broker is asked the way its clients will ask it: over TLS, verifying the
        certificate, after SCRAM authentication (``clients.check_connection``), so
        "ready" also proves the certificate and the user work.
        """
        connection = self.connection() if self.secure else None
        last = ""
        while True:
            if proc is not None and proc.poll() is not None:
                raise self._exited_error(proc.returncode)
            try:
                if self._answers_metadata(connection):
                    return
            except (ProbeError, OrderdeckError) as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                said = f" (last: {last})" if last else ""
                raise KafkaUnavailableError(
                    f"Kafka on {self.bootstrap_servers} did not become ready in time{said}; "
                    f"see {self.log_path}"
                )
            time.sleep(0.1)

    def _answers_metadata(self, connection: KafkaConnection | None) -> bool:
        if connection is None:
            return probe(_LOOPBACK, self.port, timeout=1.0).ready
        from orderdeck.kafka.clients import check_connection_sync

        return check_connection_sync(connection, timeout=2.0).ready

    def _exited_error(self, returncode: int) -> LocalKafkaError:
        lines = _failure_lines(self._log_offsets)
        said = " | ".join(lines) if lines else "it logged nothing"
        text = "\n".join(lines)
        if "Invalid cluster.id" in text or ("cluster ID" in text and "doesn't match" in text):
            return ClusterIdMismatchError(
                f"storage in {self.log_dir} belongs to another cluster: {said}"
            )
        if "Address already in use" in text:
            return PortInUseError(self.port)
        return BrokerExitedError(
            f"Kafka exited during start-up (exit code {returncode}); "
            f"last lines of {self.log_path}: {said}"
        )

    def _kill_after_failed_start(self, dump: Path | None) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        self._proc = None
        self._remove_run_files()
        if dump is not None:
            dump.unlink(missing_ok=True)

    # ------------------------------------------------------------------------ stop

    def stop(self, timeout: float = 30) -> bool:
        """Shut the broker down cleanly; False when it was not running.

        SIGTERM lets Kafka do a controlled shutdown (flush, close the metadata log); only a
        broker still alive after ``timeout`` seconds gets SIGKILL.
        """
        pid = self._running_pid()
        if pid is None:
            self._remove_run_files()
            self._reap()
            return False
        state = self._read_state()
        killed = False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            if self._is_ours(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed = True
            if not self._wait_gone(pid, 10.0):
                raise LocalKafkaError(f"Kafka (pid {pid}) did not exit even after SIGKILL")
        self._reap()
        self._remove_run_files()
        _finish_class_archive(state.get("class_archive_dump"), keep=not killed)
        return True

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._alive(pid):
                return True
            time.sleep(0.05)
        return not self._alive(pid)

    def _alive(self, pid: int) -> bool:
        proc = self._proc
        if proc is not None and proc.pid == pid:
            return proc.poll() is None
        if not _process_alive(pid):
            # A zombie has exited; reap it if it happens to be our child.
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            return False
        return True

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            self._proc = None

    # ------------------------------------------------------------------------ helpers

    def _is_ours(self, pid: int) -> bool:
        """True when ``pid`` is a live java process running this data dir's config."""
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                if process.status() == psutil.STATUS_ZOMBIE:
                    return False
                return self._runs_our_config(process.cmdline())
        except psutil.Error:  # gone, a zombie, or not ours to look at
            return False

    def _runs_our_config(self, args: list[str] | None) -> bool:
        if not args:
            return False
        return os.path.basename(args[0]).startswith("java") and str(self.config_path) in args

    def _running_pid(self) -> int | None:
        text = _read_text(self.pid_path)
        if text and text.isdigit() and self._is_ours(int(text)):
            return int(text)
        return self._find_pid()

    def _find_pid(self) -> int | None:
        """Find our JVM in the process table (the pid file may have been removed)."""
        if not self.config_path.exists():
            return None
        for process in psutil.process_iter(["cmdline"]):
            if self._runs_our_config(process.info["cmdline"]) and self._is_ours(process.pid):
                return process.pid
        return None

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _configured_port(self) -> int | None:
        listeners = _read_properties(self.config_path).get("listeners", "")
        for listener in listeners.split(","):
            if listener.startswith(("PLAINTEXT://", f"{_SECURE_PROTOCOL}://")):
                return int(listener.rsplit(":", 1)[1])
        return None

    def _configured_controller_port(self) -> int | None:
        voters = _read_properties(self.config_path).get("controller.quorum.voters", "")
        tail = voters.rsplit(":", 1)[-1]
        return int(tail) if tail.isdigit() else None

    def _remove_run_files(self) -> None:
        self.pid_path.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)


def tool_command(main_class: str, *args: str) -> list[str]:
    """The command line that runs one of Kafka's own tools, e.g. ``TopicCommand``.

    ``kafka-topics.sh`` is ``org.apache.kafka.tools.TopicCommand`` and
    ``kafka-consumer-groups.sh`` is ``org.apache.kafka.tools.consumer.group.ConsumerGroupCommand``.
    """
    java = checked_java()
    libs = libs_dir()
    cds_opts = _class_archive_options(java, libs, dump_if_missing=False)[0]
    return [*_java_command(java, libs, (*TOOL_OPTS, *cds_opts)), main_class, *args]


def _java_command(java: str, libs: Path, options: tuple[str, ...] | list[str]) -> list[str]:
    return [java, *options, "-cp", str(libs / "*")]


def _env_opts(name: str, default: tuple[str, ...]) -> list[str]:
    value = os.environ.get(name)
    return shlex.split(value) if value else list(default)


# ---------------------------------------------------------------------------- class archive
#
# Most of a broker's start-up is the JVM loading and linking ~10,000 classes. A dynamic CDS
# archive (JDK 13+) made once at the end of the first broker run maps them straight in,
# cutting start-up by about a third and lowering RSS. It is keyed by the java binary and only
# used for the jars orderdeck installed itself; the JVM ignores an archive that no longer
# matches. The archive is written when the first broker exits, into a temporary name, and only
# adopted after a clean SIGTERM shutdown.


def _class_archive_options(
    java: str, libs: Path, *, dump_if_missing: bool = True
) -> tuple[list[str], Path | None]:
    if libs.parent != cache_dir() or os.environ.get("ORDERDECK_KAFKA_CDS") == "0":
        return [], None
    archive = libs.parent / f"broker-{_java_key(java)}.jsa"
    if archive.is_file() and archive.stat().st_size > 0:
        return [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"], None
    if not dump_if_missing:
        return [], None
    _remove_stale_dumps(libs.parent)
    dump = archive.with_name(f"{archive.name}.{uuid.uuid4().hex[:8]}.partial")
    return [f"-XX:ArchiveClassesAtExit={dump}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"], dump


def _java_key(java: str) -> str:
    real = os.path.realpath(java)
    info = os.stat(real)
    return hashlib.sha256(f"{real}:{info.st_size}:{info.st_mtime_ns}".encode()).hexdigest()[:12]


def _remove_stale_dumps(directory: Path) -> None:
    now = time.time()
    for partial in directory.glob("broker-*.jsa.*.partial"):
        with contextlib.suppress(OSError):
            if now - partial.stat().st_mtime > _STALE_DUMP_AGE:
                partial.unlink()


def _finish_class_archive(dump: object, *, keep: bool) -> None:
    if not isinstance(dump, str):
        return
    partial = Path(dump)
    final = partial.with_name(partial.name.split(".jsa.", 1)[0] + ".jsa")
    with contextlib.suppress(OSError):
        if keep and partial.is_file() and partial.stat().st_size > 0:
            partial.replace(final)
        else:
            partial.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- small helpers


def _check_port_free(port: int, role: str) -> None:
    """Raise PortInUseError unless we could listen on 127.0.0.1:``port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the JVM sets on its listeners, so TIME_WAIT leftovers don't count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_LOOPBACK, port))
        except OSError:
            raise PortInUseError(port, role) from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _new_cluster_id() -> str:
    """A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):  # Kafka avoids ids that look like a CLI flag
            return value


def _process_alive(pid: int) -> bool:
    """False when there is no process ``pid`` or it has exited (a zombie)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.AccessDenied:
        return True  # someone else's process, but alive
    except psutil.Error:
        return False


def _process_start_time(pid: int) -> float:
    """When ``pid`` was started (seconds since the epoch), as the kernel recorded it."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return time.time()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _read_properties(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    text = _read_text(path) or ""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


_EXCEPTION_LINE = re.compile(r"^(Caused by: )?[\w.$]+(Exception|Error)(: |$)")
_LOG_PREFIX = re.compile(r"^\[[^\]]*\] ")


def _failure_lines(sources: dict[Path, int], limit: int = 3) -> list[str]:
    """The lines that explain a failed start, read from where each file was at launch."""
    explaining: list[str] = []
    everything: list[str] = []
    for path, offset in sources.items():
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        for line in text.splitlines():
            stripped = line.strip()
            if not stripped or line[0].isspace() or stripped.startswith("---"):
                continue
            everything.append(stripped)
            if " ERROR " in line or " FATAL " in line or _EXCEPTION_LINE.match(stripped):
                explaining.append(_LOG_PREFIX.sub("", stripped))
    lines = list(dict.fromkeys(explaining or everything))[-limit:]
    return [line if len(line) <= 400 else line[:397] + "..." for line in lines]
