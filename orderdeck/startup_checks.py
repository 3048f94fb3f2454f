"""Checks made before anything starts, so a start that cannot succeed fails at once and says why.

Starting Kafka takes seconds and the TUI takes the terminal; a port somebody else holds, or a
second ``orderdeck launch`` on the same data dir, would otherwise be found only after both.
Both checks give one line naming the cause (the port and ``--port``; the other launch's pid).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

import psutil

from orderdeck.errors import OrderdeckError

LOCK_NAME = "orderdeck-launch.pid"


class PortTakenError(OrderdeckError):
    """The API port is held by another process."""


class AlreadyRunningError(OrderdeckError):
    """Another ``orderdeck launch`` runs on the same data dir."""


def check_port_free(host: str, port: int) -> None:
    """Raise PortTakenError when ``host:port`` cannot be bound now (port 0 always can).

    Bound with SO_REUSEADDR, as uvicorn binds, so a port left in TIME_WAIT by the last run is
    not mistaken for a taken one.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortTakenError(
                    f"port {port} on {host} is already in use; choose another with --port"
                ) from None
            raise OrderdeckError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def lock_holder(data_dir: Path) -> int | None:
    """The pid of the live ``orderdeck launch`` recorded in ``data_dir``'s lock file, if any."""
    try:
        text = (data_dir / LOCK_NAME).read_text().strip()
    except OSError:
        return None
    if not text.isdigit() or int(text) == os.getpid():
        return None
    pid = int(text)
    return pid if _alive(pid) else None


class LaunchLock:
    """``<data dir>/orderdeck-launch.pid``: one ``orderdeck launch`` per data dir.

    The file holds the pid of the launch that owns the data dir and is locked with ``flock``
    while it runs. The kernel drops the lock when the process dies, even by ``kill -9``, so a
    stale file never blocks a new launch; the pid is read back (and checked alive with psutil)
    only to name the other launch in the message.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunningError naming the pid that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = lock_holder(self.path.parent)
            who = f" (pid {pid})" if pid is not None else ""
            raise AlreadyRunningError(
                f"another orderdeck launch is running on {self.path.parent}{who}; "
                "quit it first, or use another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Remove the pid and drop the lock; safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)

    def __enter__(self) -> LaunchLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
