"""``orderdeck launch`` start-up failures: fast, one line naming the cause, a non-zero exit.

Real processes and real sockets: a port held by a listening socket, a data dir locked by
another live process (then the same after that process is killed with SIGKILL), and a start
that fails inside the control center, whose exit code must say so.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderdeck.app import OrderDeckApp
from orderdeck.config import Settings
from orderdeck.runtime import Runtime
from orderdeck.startup_checks import LOCK_NAME, LaunchLock
from tests.api.conftest import wait_for
from tests.api.serve_process import ROOT

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other socket listens on for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def orderdeck(
    *args: str, timeout: float = 30.0, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real command line; no Kafka flags, so it would start a local broker."""
    env = {**os.environ}
    for name in ("ORDERDECK_BOOTSTRAP_SERVERS", "ORDERDECK_PORT", "ORDERDECK_DATA_DIR"):
        env.pop(name, None)
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def assert_kafka_never_started(data_dir: Path) -> None:
    assert not (data_dir / "kafka").exists(), list(data_dir.iterdir())


@pytest.mark.parametrize("command", ["launch", "serve"])
def test_a_taken_port_is_one_line_naming_it_before_kafka_starts(
    command: str, tmp_path: Path, taken_port: int
) -> None:
    began = time.monotonic()
    done = orderdeck(command, "--data-dir", str(tmp_path), "--port", str(taken_port))
    assert done.returncode != 0, done
    lines = [line for line in done.stderr.splitlines() if "error" in line]
    assert lines == [
        f"orderdeck: error: port {taken_port} on 127.0.0.1 is already in use; "
        "choose another with --port"
    ], done.stderr
    assert time.monotonic() - began < 20
    assert_kafka_never_started(tmp_path)


def test_a_taken_kafka_port_names_the_setting_that_moves_the_local_broker(
    tmp_path: Path, taken_port: int
) -> None:
    """launch and serve start their local broker on ORDERDECK_KAFKA_PORT (as ``kafka start``
    does); when that port is taken, the one line says how to pick another, not ``--port``
    (which is the API's)."""
    done = orderdeck(
        "serve", "--data-dir", str(tmp_path), "--port", "0",
        extra_env={"ORDERDECK_KAFKA_PORT": str(taken_port)},
    )  # fmt: skip
    assert done.returncode != 0, done
    [line] = [line for line in done.stderr.splitlines() if line.startswith("orderdeck: error")]
    assert f"port {taken_port} on 127.0.0.1 is already in use" in line, done.stderr
    assert "ORDERDECK_KAFKA_PORT=N" in line, line


def _hold_lock(data_dir: Path) -> subprocess.Popen[str]:
    """Another process that holds the data dir's launch lock until it is killed."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from orderdeck.startup_checks import LaunchLock\n"
        "LaunchLock(Path(sys.argv[1])).acquire()\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _kill(holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)  # kill -9: the holder cannot clean up after itself
    holder.wait(10)
    assert holder.stdout is not None
    holder.stdout.close()


def test_a_second_launch_on_the_data_dir_names_the_running_one(tmp_path: Path) -> None:
    holder = _hold_lock(tmp_path)
    try:
        done = orderdeck("launch", "--data-dir", str(tmp_path), "--port", "0")
    finally:
        _kill(holder)
    assert done.returncode != 0, done
    assert done.stderr.strip() == (
        f"orderdeck: error: another orderdeck launch is running on {tmp_path} "
        f"(pid {holder.pid}); quit it first, or use another --data-dir"
    ), done.stderr
    assert_kafka_never_started(tmp_path)


def test_a_lock_left_by_a_killed_launch_does_not_block_the_next(
    tmp_path: Path, taken_port: int
) -> None:
    holder = _hold_lock(tmp_path)
    _kill(holder)
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(holder.pid)  # stale, not removed
    # Past the lock, the launch stops at the taken port: proof it was not refused as running.
    done = orderdeck("launch", "--data-dir", str(tmp_path), "--port", str(taken_port))
    assert done.returncode != 0
    assert f"port {taken_port} on 127.0.0.1 is already in use" in done.stderr, done.stderr
    assert "another orderdeck launch" not in done.stderr


def test_the_lock_is_released_and_retaken(tmp_path: Path) -> None:
    with LaunchLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    with LaunchLock(tmp_path):  # the same process again, after release: no refusal
        pass
    assert (tmp_path / LOCK_NAME).read_text() == ""


async def test_a_failed_start_in_the_control_center_exits_non_zero(
    tmp_path: Path, taken_port: int
) -> None:
    settings = Settings(data_dir=tmp_path, api_port=taken_port)
    app = OrderDeckApp(runtime=Runtime(settings))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(lambda: app.start_error is not None, within=20, what="the start to fail")
        assert app.start_error is not None
        assert f"port {taken_port}" in app.start_error
        await pilot.press("q")
        await wait_for(lambda: not app.is_running, within=20, what="the app to exit")
    assert app.return_code == 1
    assert_kafka_never_started(tmp_path)
