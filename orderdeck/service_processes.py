"""Pipeline services in child processes: how ``orderdeck serve --processes N`` uses more cores.

One Python process runs Python code on one core at a time, and the API plus four services
is more work per order than one core can do at the rates Kafka allows. With ``--processes
N`` the process started by the user serves the API (and starts the local Kafka when there is
one) and runs the services in N-1 child ``orderdeck serve --no-api`` processes, each with a
contiguous share of the pipeline (two children: order+payment and inventory+notification).
They need no channel to each other: like any two ``serve`` processes, they meet only in
Kafka (their consumer groups) and in the shared store.

The parent keeps them running: a child that exits is started again after a back-off, and on
stop each gets SIGTERM (it commits and leaves its groups) and, if it lingers, SIGKILL. A
child's stdin is a pipe from the parent and the child stops when it reads end-of-file, so a
``kill -9`` of the parent takes the children with it instead of leaving them orphaned.

A child reaches Kafka as its parent does, told on its command line how — by the properties
file's path, never by its contents, since a command line is visible to every local user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from orderdeck.backoff import Backoff
from orderdeck.defaults import ENV_PREFIX
from orderdeck.kafka.connection import DEFAULT_CLIENT_ID, KafkaConfigError, KafkaConnection
from orderdeck.metrics import ChildEventTotals
from orderdeck.store.url import StoreURL

log = logging.getLogger(__name__)

#: How long a stopping child may take before it is killed (it normally takes about 1 s).
CHILD_STOP_GRACE_S = 3.5
#: Restart delays of a child that keeps exiting; 0.5 s after one that ran STABLE_AFTER_S.
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)
#: A child that ran this long before exiting is restarted without back-off.
STABLE_AFTER_S = 30.0
#: A live child whose last report is this old is not known to run its services (stopped,
#: or its event loop stuck): its services read ``unknown``. It reports once a second.
SILENT_AFTER_S = 10.0


def split_services(services: Sequence[str], processes: int) -> list[tuple[str, ...]]:
    """Contiguous, as even as possible shares of ``services`` for ``processes`` children."""
    count = max(1, min(processes, len(services)))
    size, extra = divmod(len(services), count)
    shares: list[tuple[str, ...]] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        shares.append(tuple(services[start:end]))
        start = end
    return [s for s in shares if s]


def kafka_arguments(kafka: KafkaConnection) -> list[str]:
    """The ``serve`` flags that give a child process the same connection, secrets left out.

    A connection read from a file is passed as that file (the child reads the credentials
    itself) plus the bootstrap servers in use, which may differ from the file's (an override,
    or the local broker's actual port). Anything else can only be plaintext with the default
    client id, because no flag could carry more without putting a secret on a command line.
    """
    arguments = ["--bootstrap-servers", kafka.bootstrap_servers]
    if kafka.source is not None:
        return ["--kafka-config", str(kafka.source), *arguments]
    if not kafka.is_plaintext or kafka.client_id != DEFAULT_CLIENT_ID:
        raise KafkaConfigError(
            f"a {kafka.describe()} connection needs a client properties file "
            "(--kafka-config) to be handed to --processes children"
        )
    return arguments


@dataclass
class _Child:
    services: tuple[str, ...]
    process: asyncio.subprocess.Process | None = None
    state: str = "starting"
    restarts: int = 0
    started_at: float = 0.0
    events_fd: int | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ServiceProcesses:
    """Start, watch, restart and stop child ``serve`` processes running pipeline services."""

    def __init__(
        self,
        shares: Sequence[tuple[str, ...]],
        *,
        kafka: KafkaConnection,
        data_dir: Path,
        store: StoreURL | None = None,
        topic_prefix: str = "",
    ) -> None:
        """``store``: the parent's ``--store`` (None: the data dir's SQLite file). Children
        get it in their environment (ORDERDECK_STORE), never on their command line, where
        ``ps`` would show its password."""
        self._children = [_Child(tuple(share)) for share in shares if share]
        self._kafka_arguments = kafka_arguments(kafka)
        self._data_dir = data_dir
        self._store = store
        self._prefix = topic_prefix
        self._stopping = False
        #: The children's service events (each reports its totals over a pipe; see metrics.py).
        self.events = ChildEventTotals()

    def command(self, services: Sequence[str]) -> list[str]:
        """The command line of the child that runs ``services``."""
        command = [
            sys.executable,
            "-m",
            "orderdeck.cli",
            "serve",
            "--no-api",
            "--exit-with-parent",
            "--services",
            ",".join(services),
            *self._kafka_arguments,
            "--data-dir",
            str(self._data_dir),
        ]
        if self._prefix:
            command += ["--topic-prefix", self._prefix]
        return command

    def environment(self) -> dict[str, str]:
        """The children's environment: this one's, with ORDERDECK_STORE set to our store."""
        env = dict(os.environ)
        if self._store is not None:
            env[ENV_PREFIX + "STORE"] = self._store.connection_url()
        else:
            env.pop(ENV_PREFIX + "STORE", None)  # the children use --data-dir's, as we do
        return env

    def states(self) -> list[tuple[str, str]]:
        """(service, state) for every service run by a child.

        While the child is alive and reporting (it reports once its own start-up is over),
        each service's state is the one the child last reported for it: a service task
        that crashed inside a live child reads ``restarting`` or ``failed`` here too.
        Otherwise the child's own state: ``starting`` from its spawn to its first report,
        ``restarting`` as soon as it has exited, even before the watcher has noticed,
        ``unknown`` while it is alive but has not reported for SILENT_AFTER_S.
        """
        states = []
        for child in self._children:
            state = self._state(child)
            reported = (
                self.events.states(child.events_fd)
                if state == "running" and child.events_fd is not None
                else {}
            )
            states += [(name, reported.get(name, state)) for name in child.services]
        return states

    def _state(self, child: _Child) -> str:
        if child.state != "running":
            return child.state
        if child.process is None or child.process.returncode is not None:
            return "restarting"
        if not _process_alive(child.process.pid):
            return "restarting"  # killed; asyncio has not reaped it yet
        if child.events_fd is None or not self.events.reporting(child.events_fd):
            return "starting"
        age = self.events.report_age(child.events_fd)
        if age is not None and age > SILENT_AFTER_S:
            return "unknown"
        return "running"

    def pids(self) -> list[int]:
        """Process ids of the children alive now."""
        return [
            c.process.pid
            for c in self._children
            if c.process is not None and c.process.returncode is None
        ]

    async def start(self) -> None:
        """Start every child and keep each running until :meth:`stop`."""
        for child in self._children:
            await self._spawn(child)
            child.task = asyncio.create_task(
                self._watch(child), name=f"orderdeck-child-{'+'.join(child.services)}"
            )

    async def _spawn(self, child: _Child) -> None:
        # stdout/stderr are inherited: a child's log lines appear among the parent's.
        read_fd, write_fd = os.pipe()
        try:
            child.process = await asyncio.create_subprocess_exec(
                *self.command(child.services),
                "--events-fd",
                str(write_fd),
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
                env=self.environment(),
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.events.follow(read_fd)
        child.events_fd = read_fd
        child.started_at = time.monotonic()
        child.state = "running"
        log.info("services %s: process %d", ",".join(child.services), child.process.pid)

    async def _watch(self, child: _Child) -> None:
        backoff = Backoff(RESTART_BACKOFF_S)
        while True:
            assert child.process is not None
            code = await child.process.wait()
            if self._stopping:
                child.state = "stopped"
                return
            ran = time.monotonic() - child.started_at
            if ran >= STABLE_AFTER_S:
                backoff.reset()
            else:
                backoff.grow()
            delay = backoff.delay
            child.state = "restarting"
            log.warning(
                "services %s: process exited with %s after %.0f s; restarting in %.1f s",
                ",".join(child.services),
                code,
                ran,
                delay,
            )
            await asyncio.sleep(delay)
            if self._stopping:
                child.state = "stopped"
                return
            child.restarts += 1
            await self._spawn(child)

    async def stop(self) -> None:
        """SIGTERM every child, wait up to CHILD_STOP_GRACE_S, then SIGKILL what is left."""
        self._stopping = True
        alive = [c.process for c in self._children if c.process and c.process.returncode is None]
        for process in alive:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waiting = [asyncio.ensure_future(p.wait()) for p in alive]
        if waiting:
            _, pending = await asyncio.wait(waiting, timeout=CHILD_STOP_GRACE_S)
            for process in alive:
                if process.returncode is None:
                    log.warning("services process %d did not stop; killing it", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        self.events.close()
        for child in self._children:
            if child.task is not None:
                child.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child.task
            child.state = "stopped"


def _process_alive(pid: int) -> bool:
    """False for a process that is gone or a zombie (dead, not yet reaped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def watch_parent(stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin (a pipe from the parent process) reaches end-of-file."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            log.warning("the parent process is gone; stopping")
            stop.set()

    loop.add_reader(fd, readable)
