"""Run ``orderdeck serve`` as a real child process for the serve tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServeProcess:
    """One ``orderdeck serve`` child with its log in a file."""

    def __init__(
        self,
        data_dir: Path,
        *,
        bootstrap: str | None,
        prefix: str = "",
        port: int | None = None,
        services: str | None = None,
        no_api: bool = False,
        log_name: str = "serve",
        processes: int = 1,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / f"{log_name}.log"
        args = [sys.executable, "-m", "orderdeck.cli", "serve", "--data-dir", str(data_dir)]
        args += ["--port", str(self.port)]
        if bootstrap:
            args += ["--bootstrap-servers", bootstrap]
        if prefix:
            args += ["--topic-prefix", prefix]
        if services is not None:
            args += ["--services", services]
        if no_api:
            args.append("--no-api")
        if processes != 1:
            args += ["--processes", str(processes)]
        args += extra_args
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("ORDERDECK_BOOTSTRAP_SERVERS", None)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_serving(self, timeout: float = 60.0, processes: int = 1) -> None:
        """Block until the log says the process is serving (API up and services joined).

        With ``serve --processes N`` each of the N processes says so once.
        """
        deadline = time.monotonic() + timeout
        while self.log().count("serving:") < processes:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not start within {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def health(self) -> int:
        """The /health status code (raises if the API does not answer)."""
        return httpx.get(f"{self.url}/health", timeout=5).status_code

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Send a signal to the process."""
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the exit code."""
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Make sure the child is gone (SIGKILL if it is still there) and reaped."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._log.close()
