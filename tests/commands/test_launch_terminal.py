"""``orderdeck launch`` as a person runs it: the real command in a real 80x24 terminal.

The Pilot tests drive the app inside the test's own event loop; this one runs the command
line itself (``run_app``: uvloop, the heap settled once the screens are built, SIGWINCH, the
terminal's own input) in a pseudo-terminal, against the suite's Kafka. It draws the control
center, takes an order over HTTP and carries it to its final status, redraws for a resized
terminal, and quits on ``q`` with exit code 0.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.serve_process import ROOT
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(180)


class Terminal:
    """A pseudo-terminal whose output is read (and kept) by a thread, as a terminal would."""

    def __init__(self, columns: int, rows: int) -> None:
        self.master, self.slave = pty.openpty()
        self.resize(columns, rows)
        self._output = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def resize(self, columns: int, rows: int) -> None:
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the slave side is gone: the process exited
                return
            if not chunk:
                return
            with self._lock:
                self._output += chunk

    def output_since(self, mark: int) -> bytes:
        with self._lock:
            return bytes(self._output[mark:])

    @property
    def mark(self) -> int:
        with self._lock:
            return len(self._output)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        os.close(self.master)


def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal(80, 24)
    yield term
    term.close()


def healthy(base: str) -> bool:
    try:
        return bool(httpx.get(f"{base}/health", timeout=2).json().get("status") == "ok")
    except (httpx.HTTPError, ValueError):
        return False


def test_launch_in_a_terminal_takes_an_order_redraws_and_quits_on_q(
    terminal: Terminal, kafka_bootstrap: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TERM": "xterm-256color"}
    for name in ("ORDERDECK_BOOTSTRAP_SERVERS", "ORDERDECK_PORT", "ORDERDECK_DATA_DIR"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "orderdeck.cli",
        "launch",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--topic-prefix",
        f"t{uuid.uuid4().hex[:8]}.",
        "--data-dir",
        str(tmp_path),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=terminal.slave,
        stdout=terminal.slave,
        stderr=terminal.slave,
        start_new_session=True,  # the pty becomes its controlling terminal, as in a shell
    )
    try:
        wait_until(lambda: healthy(base) or proc.poll() is not None, 90, "the API healthy")
        assert proc.poll() is None, terminal.output_since(0).decode(errors="replace")[-2000:]
        wait_until(lambda: b"Pipeline" in terminal.output_since(0), 30, "the Pipeline drawn")

        answer = httpx.post(
            f"{base}/api/v1/orders",
            json={"customerId": "terminal", "items": [{"productId": "sku-cable", "quantity": 1}]},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        order_id = answer.json()["event"]["id"]

        def confirmed() -> bool:
            order = httpx.get(f"{base}/api/v1/orders/{order_id}", timeout=5).json()
            return bool(order.get("status") == "confirmed")

        wait_until(confirmed, 30, "the order confirmed")

        mark = terminal.mark
        terminal.resize(120, 36)
        os.killpg(proc.pid, signal.SIGWINCH)  # as a terminal emulator sends on a resize
        wait_until(lambda: len(terminal.output_since(mark)) > 1000, 20, "a redraw at 120x36")

        terminal.type(b"q")
        assert proc.wait(60) == 0, terminal.output_since(0).decode(errors="replace")[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
