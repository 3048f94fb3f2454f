"""Benchmarks of the control center: start-up, tail throughput, idle CPU, memory; screenshots.

Run from the repository root with the project's venv::

    .venv/bin/python bench/launch.py all            # every figure -> bench/results/launch.md
    .venv/bin/python bench/launch.py startup        # launch -> interactive, Kafka running
    .venv/bin/python bench/launch.py cold           # launch with a cold local Kafka -> green
    .venv/bin/python bench/launch.py tail           # tail throughput, key latency, memory
    .venv/bin/python bench/launch.py idle           # CPU of an idle, running launch
    .venv/bin/python bench/launch.py screenshots    # docs/screenshots/*.svg
    .venv/bin/python bench/launch.py bigstore       # 1,000,000 orders + 2,000/s tail: start, keys

How each figure is measured:

* **startup / cold**: ``orderdeck launch`` runs in a detached tmux pane of 120x36 (a real
  terminal, real process start); the bench polls ``tmux capture-pane`` every 10 ms.
  *First frame* is the first capture showing the header (``Pipeline`` on its first line)
  and the footer (``^p Commands``): the app draws, and answers keys, from then on.
  *Green* is the first capture with ``services ● 4/4`` in the header and the start-up
  view gone. With Kafka running, the broker is one this bench started, passed as
  ``--bootstrap-servers``. Cold: a fresh ``--data-dir``, so ``launch`` formats and boots
  its own local Kafka.
* **tail**: in-process, headless Textual at 120x36 with rendering on (``App.run_test``), the
  Topics screen following a topic that a *separate process* floods at a fixed rate.
  Throughput = records the view received per second; key latency = from posting a key event
  to the record view's cursor action running, sampled every 100 ms during the flood; memory
  = the process's RSS after 100,000 records went through the tail.
* **bigstore**: a store of 1,000,000 orders (bulk-inserted by the bench straight into
  SQLite, kept in ``--big-dir`` between runs) while another process produces 2,000 events/s
  into the orders topic. *Launch → interactive*: a real ``orderdeck launch`` on that data
  dir in a tmux pane, to its first frame and to the pipeline green. *Key → screen*: a
  headless app (rendering on, no services, no API) on the same store: a few hundred keys
  across the screens (switches, Orders filters and journeys, Topics cursor); each latency
  runs from posting the key to the first frame written that shows the key's result (the
  list of the new filter, the highlighted order's journey, the new screen): the result's
  check runs as each frame is written, so a frame drawn at once counts as early as it came.
  ``--root`` runs the same figures against another checkout (``before`` vs this one),
  interleaved run by run.
* **idle**: CPU time (utime+stime from /proc) of the launch process over 30 s once green,
  with no orders flowing; the process includes the API and the four services' consumers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# ``bigstore`` measures another checkout (``--root``) by running this file with its venv.
ROOT = Path(os.environ.get("ORDERDECK_BENCH_ROOT") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "launch.md"
SCREENSHOTS = ROOT / "docs" / "screenshots"
ORDERDECK = ROOT / ".venv" / "bin" / "orderdeck"
PYTHON = ROOT / ".venv" / "bin" / "python"
SIZE = (120, 36)
HEADER = "Pipeline"
FOOTER = "^p Commands"
GREEN = re.compile(r"services ● 4/4")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> str:
    """One line about the machine the figures come from."""
    cpus = os.cpu_count() or 0
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = platform.python_version()
    return f"{platform.system()} {platform.machine()}, {cpus} cores {model}, Python {python}"


# ----------------------------------------------------------------------------- tmux


class Pane:
    """One command in a detached tmux pane on a private server socket."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        self.socket = f"orderdeck-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.command = command
        self.cwd = cwd
        self.pid: int | None = None
        self.socket_path = ""

    def _tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> float:
        """Start the command; returns the time.monotonic() just before tmux was asked."""
        script = "exec " + " ".join(_quote(a) for a in self.command)
        began = time.monotonic()
        self._tmux(
            "new-session", "-d", "-s", "b", "-x", str(SIZE[0]), "-y", str(SIZE[1]),
            "-c", str(self.cwd), script,
        )  # fmt: skip
        self._tmux("set-option", "-t", "b", "remain-on-exit", "on")
        self.pid = int(self._tmux("display-message", "-p", "-t", "b", "#{pane_pid}").strip())
        self.socket_path = self._tmux("display-message", "-p", "#{socket_path}").strip()
        return began

    def capture(self) -> str:
        """The pane's text now."""
        return self._tmux("capture-pane", "-p", "-t", "b", check=False)

    def keys(self, *keys: str) -> None:
        """Type keys into the pane."""
        self._tmux("send-keys", "-t", "b", *keys)

    def exited(self) -> bool:
        """True once the command has exited."""
        return (
            self._tmux("display-message", "-p", "-t", "b", "#{pane_dead}", check=False).strip()
            == "1"
        )

    def wait_for(self, check: Callable[[str], bool], timeout: float, every: float = 0.01) -> float:
        """Poll the pane until ``check(text)``; returns the monotonic time it first held."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self.capture()):
                return time.monotonic()
            if self.exited():
                raise RuntimeError("the app exited early:\n" + self.capture())
            time.sleep(every)
        raise TimeoutError(f"pane never matched within {timeout:g} s:\n{self.capture()}")

    def quit(self, timeout: float = 60) -> float:
        """Press q and wait for the process to exit; returns seconds it took."""
        began = time.monotonic()
        self.keys("q")
        deadline = began + timeout
        while not self.exited():
            if time.monotonic() > deadline:
                raise TimeoutError("the app did not exit after q:\n" + self.capture())
            time.sleep(0.05)
        return time.monotonic() - began

    def close(self) -> None:
        """Kill the tmux server (and with it anything still in the pane)."""
        self._tmux("kill-server", check=False)
        if self.socket_path:
            Path(self.socket_path).unlink(missing_ok=True)


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w./:=@-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def first_frame(text: str) -> bool:
    """Header and footer on screen: a complete, interactive frame."""
    lines = text.splitlines()
    return bool(lines) and HEADER in lines[0] and FOOTER in text


def pipeline_green(text: str) -> bool:
    """All four services running and the start-up view dismissed."""
    return bool(GREEN.search(text)) and "Starting orderdeck" not in text


# ----------------------------------------------------------------------------- brokers


@contextmanager
def running_broker() -> Iterator[str]:
    """A local Kafka started by the bench (so ``launch`` finds Kafka already running)."""
    from orderdeck.kafka.local import LocalKafka

    data = Path(tempfile.mkdtemp(prefix="orderdeck-bench-kafka-"))
    kafka = LocalKafka(data, port=free_port())
    kafka.start(timeout=120)
    try:
        yield kafka.bootstrap_servers
    finally:
        kafka.stop()
        shutil.rmtree(data, ignore_errors=True)


def launch_command(data_dir: Path, bootstrap: str | None, root: Path = ROOT) -> list[str]:
    """``orderdeck launch`` on a free API port."""
    orderdeck = root / ".venv" / "bin" / "orderdeck"
    command = [str(orderdeck), "launch", "--data-dir", str(data_dir), "--port", str(free_port())]
    if bootstrap:
        command += ["--bootstrap-servers", bootstrap]
    return command


# ----------------------------------------------------------------------------- figures


def _spread(values: list[float]) -> str:
    median = statistics.median(values)
    return f"{median:.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


@dataclass
class Figures:
    """Everything measured in one run, rendered to bench/results/launch.md."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def load(self, what: str) -> None:
        """Note the machine's load average (other work on 2 cores skews timings)."""
        one, five, _ = os.getloadavg()
        self.notes.append(f"- load average at the start of `{what}`: {one:.2f} (5 min {five:.2f})")

    def add(self, figure: str, value: str, goal: str, how: str) -> None:
        self.rows.append((figure, value, goal, how))
        print(f"{figure}: {value}  (goal {goal})", flush=True)


def bench_startup(figures: Figures, runs: int) -> None:
    """Launch -> first frame and -> green, with Kafka already running."""
    frames: list[float] = []
    cpus: list[float] = []
    greens: list[float] = []
    quits: list[float] = []
    tick = os.sysconf("SC_CLK_TCK")
    with running_broker() as bootstrap:
        figures.load("startup")
        for _ in range(runs):
            data = Path(tempfile.mkdtemp(prefix="orderdeck-bench-launch-"))
            pane = Pane(launch_command(data, bootstrap), ROOT)
            try:
                began = pane.start()
                frames.append(pane.wait_for(first_frame, 30) - began)
                assert pane.pid is not None
                cpus.append(_cpu_seconds(pane.pid, tick))
                greens.append(pane.wait_for(pipeline_green, 60) - began)
                quits.append(pane.quit())
            finally:
                pane.close()
                shutil.rmtree(data, ignore_errors=True)
    figures.add(
        "launch → first interactive frame (Kafka running)",
        _spread(frames),
        "≤ 1.5 s",
        "tmux pane 120x36, capture-pane polled every 10 ms",
    )
    figures.add(
        "CPU time the launch process used until its first frame",
        f"{statistics.median(cpus):.2f} s (n={runs})",
        "-",
        "utime+stime from /proc at first frame: the part a loaded machine cannot inflate",
    )
    figures.add(
        "launch → pipeline green (Kafka running)",
        f"{statistics.median(greens):.2f} s (n={runs})",
        "-",
        "topics ensured, API listening, 4 services joined their groups",
    )
    figures.add(
        "q → process exited (services commit, API drains)",
        f"{statistics.median(quits):.2f} s (n={runs})",
        "-",
        "external Kafka, so no broker to stop",
    )


def bench_cold(figures: Figures, runs: int) -> None:
    """Launch with a fresh data dir: the app formats and boots its own Kafka."""
    greens: list[float] = []
    frames: list[float] = []
    quits: list[float] = []
    figures.load("cold")
    for _ in range(runs):
        data = Path(tempfile.mkdtemp(prefix="orderdeck-bench-cold-"))
        pane = Pane(launch_command(data, None), ROOT)
        try:
            began = pane.start()
            frames.append(pane.wait_for(first_frame, 30) - began)
            greens.append(pane.wait_for(pipeline_green, 180) - began)
            quits.append(pane.quit())
        finally:
            pane.close()
            shutil.rmtree(data, ignore_errors=True)
    figures.add(
        "launch → pipeline green, cold local Kafka",
        _spread(greens),
        "-",
        "fresh --data-dir: format storage, start the JVM, then topics, API, services",
    )
    figures.add(
        "launch → first frame, cold local Kafka",
        f"{statistics.median(frames):.2f} s (n={runs})",
        "≤ 1.5 s",
        "the start-up view shows progress while the JVM boots",
    )
    figures.add(
        "q → exited, local Kafka stopped",
        f"{statistics.median(quits):.2f} s (n={runs})",
        "-",
        "includes the broker's controlled shutdown",
    )


def bench_idle(figures: Figures, seconds: float = 30.0) -> None:
    """CPU of a running, idle launch (API + 4 services + the TUI)."""
    with running_broker() as bootstrap:
        data = Path(tempfile.mkdtemp(prefix="orderdeck-bench-idle-"))
        pane = Pane(launch_command(data, bootstrap), ROOT)
        try:
            pane.start()
            pane.wait_for(pipeline_green, 60)
            time.sleep(5)  # let start-up work (group joins, first polls) settle
            figures.load("idle")
            assert pane.pid is not None
            tick = os.sysconf("SC_CLK_TCK")
            cpu0, t0 = _cpu_seconds(pane.pid, tick), time.monotonic()
            time.sleep(seconds)
            cpu1, t1 = _cpu_seconds(pane.pid, tick), time.monotonic()
            rss = _rss_mb(pane.pid)
            pane.quit()
        finally:
            pane.close()
            shutil.rmtree(data, ignore_errors=True)
        serve = _serve_idle(bootstrap, seconds)
    share = 100 * (cpu1 - cpu0) / (t1 - t0)
    figures.add(
        "idle CPU of a running launch",
        f"{share:.1f} % of one core (same services without the TUI, `orderdeck serve`: "
        f"{serve:.1f} %)",
        "≤ 5 %",
        f"utime+stime over {seconds:g} s, Pipeline screen, no traffic (RSS {rss:.0f} MB)",
    )


def _serve_idle(bootstrap: str, seconds: float) -> float:
    """CPU share of ``orderdeck serve`` (API + services, no TUI) on the same broker."""
    data = Path(tempfile.mkdtemp(prefix="orderdeck-bench-serve-"))
    command = [str(ORDERDECK), "serve", "--bootstrap-servers", bootstrap]
    command += ["--data-dir", str(data), "--port", str(free_port())]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(10)  # started and joined, like the launch above
        tick = os.sysconf("SC_CLK_TCK")
        cpu0, t0 = _cpu_seconds(proc.pid, tick), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = _cpu_seconds(proc.pid, tick), time.monotonic()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        shutil.rmtree(data, ignore_errors=True)
    return 100 * (cpu1 - cpu0) / (t1 - t0)


def _cpu_seconds(pid: int, tick: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def _rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


FLOODER = r"""
import asyncio, json, sys, time, uuid
from aiokafka import AIOKafkaProducer

async def main(bootstrap, topic, rate, total):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    started = time.monotonic()
    sent = 0
    try:
        while sent < total:
            due = int((time.monotonic() - started) * rate) + 1
            batch = min(due, total) - sent
            for _ in range(batch):
                oid = str(uuid.uuid4())
                value = json.dumps({"eventId": str(uuid.uuid4()), "type": "OrderPlaced",
                    "orderId": oid, "occurredAt": "2025-01-15T12:00:00Z", "schemaVersion": 1,
                    "correlationId": oid, "payload": {"customerId": "flood",
                    "items": [{"productId": "sku-cable", "quantity": 1}]}}).encode()
                await producer.send(topic, value, key=oid.encode(),
                                    headers=[("event-type", b"OrderPlaced")])
            sent += batch
            await asyncio.sleep(0.01)
        await producer.flush()
    finally:
        await producer.stop()
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - started}), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
"""


def bench_tail(figures: Figures, rate: float, total: int) -> None:
    """Flood a topic from another process; follow it on the Topics screen."""
    asyncio.run(_tail(figures, rate, total))


async def _tail(figures: Figures, rate: float, total: int) -> None:
    from textual import events

    from orderdeck.app import OrderDeckApp
    from orderdeck.config import Settings
    from orderdeck.events import TopicNames
    from orderdeck.kafka.connection import KafkaConnection
    from orderdeck.kafka.topics import ensure_topics
    from orderdeck.runtime import Runtime
    from orderdeck.screens.topics import TopicsScreen
    from orderdeck.widgets.record_view import RecordView
    from orderdeck.widgets.runtime_link import RuntimeHooks

    with running_broker() as bootstrap:
        names = TopicNames(prefix=f"bench{uuid.uuid4().hex[:8]}.")
        await ensure_topics(KafkaConnection(bootstrap), names)
        data = Path(tempfile.mkdtemp(prefix="orderdeck-bench-tail-"))
        hooks = RuntimeHooks()
        settings = Settings(bootstrap_servers=bootstrap, topic_prefix=names.prefix, data_dir=data)
        # No services and no API: the figure is the TUI's, not the pipeline's.
        runtime = Runtime(settings, services=(), with_api=False, log_handler=hooks.log_buffer)
        app = OrderDeckApp(runtime, hooks=hooks)
        latencies: list[float] = []
        pressed: list[float] = []
        original = RecordView.action_cursor

        def timed_cursor(view: RecordView, delta: int) -> None:
            if pressed:
                latencies.append(time.perf_counter() - pressed.pop())
            original(view, delta)

        RecordView.action_cursor = timed_cursor  # type: ignore[method-assign,assignment]
        try:
            async with app.run_test(size=SIZE) as pilot:
                while not app.ready:
                    await pilot.pause(0.05)
                await pilot.press("3")
                screen = app.screen
                assert isinstance(screen, TopicsScreen)
                while not screen.tail_ready:
                    await pilot.pause(0.05)
                view = screen.query_one(RecordView)
                rss_before = _rss_mb()
                figures.load("tail")
                flood = await asyncio.create_subprocess_exec(
                    str(PYTHON), "-c", FLOODER, bootstrap, names.orders, str(rate), str(total),
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                began = time.monotonic()
                samples: list[tuple[float, int]] = []
                key = "down"
                while view.received < total and time.monotonic() - began < total / rate + 60:
                    pressed.append(time.perf_counter())
                    app.post_message(events.Key(key, None))
                    key = "up" if key == "down" else "down"
                    await asyncio.sleep(0.1)
                    samples.append((time.monotonic(), view.received))
                out, _ = await flood.communicate()
                produced = json.loads(out)
                finished = time.monotonic()
                rss_after = _rss_mb()
                kept = view.kept
                await pilot.press("q")
                while app.return_code is None:
                    await pilot.pause(0.05)
        finally:
            RecordView.action_cursor = original  # type: ignore[method-assign]
            await runtime.stop()
            shutil.rmtree(data, ignore_errors=True)

    # Throughput while the flood ran at full speed (skip the first second of warm-up).
    steady = [(t, n) for t, n in samples if t - began >= 1.0]
    through = (
        (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0]) if len(steady) > 1 else 0
    )
    flood_rate = produced["sent"] / produced["seconds"]
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
    figures.add(
        "tail throughput (Topics screen following a flooded topic)",
        f"{through:,.0f} records/s received; flood {flood_rate:,.0f}/s; "
        f"all {total:,} shown {finished - began:.1f} s after start",
        "≥ 2,000/s",
        f"another process produces {rate:,.0f}/s to one 3-partition topic",
    )
    figures.add(
        "key latency during the flood",
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1] * 1000:.1f} ms "
        f"(n={len(latencies)})",
        "< 100 ms",
        "key event posted → RecordView cursor action ran",
    )
    figures.add(
        f"memory after {total:,} tailed records",
        f"RSS {rss_after:.0f} MB ({rss_after - rss_before:+.0f} MB during the tail; "
        f"ring keeps {kept:,})",
        "bounded",
        "whole process (Textual, aiokafka, runtime without services)",
    )


# ----------------------------------------------------------------------------- bigstore

BIG_ORDERS = 1_000_000
BIG_RATE = 2000.0
#: Final statuses of the generated orders, in proportion; the newest few are still in flight.
BIG_MIX = ("confirmed",) * 16 + ("payment_declined", "payment_declined", "cancelled", "rejected")
BIG_IN_FLIGHT = ("placed", "pending", "paid")
BIG_JOURNEYS = 5000
KEYS_CYCLE = ("6", "s", "s", "j", "j", "k", "s", "a", "3", "down", "up", "down", "1", "4", "5",
              "2", "6", "j")  # fmt: skip


def build_big_store(directory: Path, orders: int) -> Path:
    """A data dir whose store holds ``orders`` orders (reused when already built).

    Rows go straight into SQLite in large transactions (minutes through Kafka, seconds this
    way); the schema and catalog come from the project's own ``open_store``.
    """
    import sqlite3

    from orderdeck.store import open_store
    from orderdeck.store.url import default_store_url

    done = directory / f"built-{orders}"
    if done.exists():
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    open_store(default_store_url(directory)).close()
    began = time.monotonic()
    conn = sqlite3.connect(directory / "orderdeck.db", isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("DROP INDEX orders_status")  # built once at the end: faster than row by row
    base = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

    def iso(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"

    chunk = 50_000
    for start in range(0, orders, chunk):
        rows = []
        items = []
        for n in range(start, min(orders, start + chunk)):
            oid = f"{n:08d}-0000-7000-8000-{uuid.UUID(int=n).hex[-12:]}"
            status = BIG_IN_FLIGHT[n % 3] if n >= orders - 30 else BIG_MIX[n % len(BIG_MIX)]
            at = iso(base + n * 0.05)
            history = json.dumps([["placed", at], [status, at]])
            amount = 1999 * (1 + n % 3)
            rows.append((oid, f"cust-{n % 5000}", status, amount, "api", oid, history, at, at))
            items.append((oid, 0, "sku-mouse", 1 + n % 3, 1999))
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO orders (id, customer_id, status, amount_cents, source,"
            " placed_event_id, history, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?, ?)", items)
        conn.execute("COMMIT")
    hops = []
    for n in range(orders - BIG_JOURNEYS, orders):
        oid = f"{n:08d}-0000-7000-8000-{uuid.UUID(int=n).hex[-12:]}"
        for k, (kind, topic, service) in enumerate(
            (("OrderPlaced", "orders", "order"), ("OrderPriced", "payments", "payment"))
        ):
            hops.append((f"{oid}-{k}", oid, kind, topic, 0, n, int((base + n) * 1000), service,
                         iso(base + n * 0.05)))  # fmt: skip
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO journey VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", hops)
    conn.execute("COMMIT")
    conn.execute("CREATE INDEX orders_status ON orders (status, seq)")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    done.write_text(f"{orders} orders built in {time.monotonic() - began:.0f} s\n")
    print(done.read_text().strip(), flush=True)
    return directory


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q`` of them at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def _keys(
    big_dir: Path, bootstrap: str, prefix: str, cycles: int, settle: float = 0.0
) -> dict[str, object]:
    """Key → screen latencies of a headless app on the big store (one variant, one run).

    ``settle`` > 0: the keys start once the app has built every screen ahead (a checkout
    that builds none waits the whole ``settle`` seconds), as for a person who reads the
    first screen before the first key; 0: right after start-up."""
    from textual import events

    from orderdeck.app import OrderDeckApp
    from orderdeck.config import Settings
    from orderdeck.runtime import Runtime
    from orderdeck.screens.orders import OrdersScreen
    from orderdeck.screens.startup import StartupScreen
    from orderdeck.screens.topics import TopicsScreen
    from orderdeck.widgets.journey import JourneyView
    from orderdeck.widgets.record_view import RecordView
    from orderdeck.widgets.runtime_link import RuntimeHooks

    hooks = RuntimeHooks()
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=prefix, data_dir=big_dir)
    runtime = Runtime(settings, services=(), with_api=False, log_handler=hooks.log_buffer)
    app = OrderDeckApp(runtime, hooks=hooks)
    #: (check, shown): while a key is pending, each frame written runs its check, and the
    #: first frame that holds its result notes the time.
    watching: list[tuple[Callable[[], bool], list[float]]] = []
    cursor_moves: list[float] = []
    original_cursor = RecordView.action_cursor

    def timed_cursor(view: RecordView, delta: int) -> None:
        original_cursor(view, delta)
        cursor_moves.append(time.perf_counter())

    RecordView.action_cursor = timed_cursor  # type: ignore[method-assign,assignment]
    screens = {"1": "PipelineScreen", "2": "SubmitScreen", "3": "TopicsScreen",
               "4": "GroupsScreen", "5": "ServicesScreen", "6": "OrdersScreen"}  # fmt: skip
    latencies: dict[str, list[float]] = {}
    timed_out: list[str] = []
    shown_screens = {"PipelineScreen", "TopicsScreen"}  # shown before the keys start
    began = time.perf_counter()
    try:
        async with app.run_test(size=SIZE) as pilot:
            display = app._display

            def timed_display(screen: object, renderable: object) -> None:
                # A frame is one the app writes: of the screen on display, outside a batch
                # (switch_mode's pause holds frames back by returning early here).
                written = renderable is not None and screen is app.screen and not app._batch_count
                display(screen, renderable)  # type: ignore[arg-type]
                if written and watching and not watching[0][1] and _holds(watching[0][0]):
                    watching[0][1].append(time.perf_counter())

            app._display = timed_display  # type: ignore[method-assign]
            await _poll(lambda: app.ready and not isinstance(app.screen, StartupScreen), 120)
            ready = time.perf_counter() - began
            await pilot.press("3")
            while not (isinstance(app.screen, TopicsScreen) and app.screen.tail_ready):
                await pilot.pause(0.05)
            if settle > 0:
                stacks = getattr(app, "_screen_stacks", {})
                await _poll(lambda: all(mode in stacks for mode in app.MODES), settle)

            for _ in range(cycles):
                for key in KEYS_CYCLE:
                    if screens.get(key) == type(app.screen).__name__:
                        continue  # the screen on display already: the key draws nothing
                    check = _key_done(app, key, screens, cursor_moves, OrdersScreen, JourneyView)
                    char = key if len(key) == 1 else None
                    shown: list[float] = []
                    watching[:] = [(check, shown)]
                    pressed = time.perf_counter()
                    app.post_message(events.Key(key, char))
                    await _poll(lambda: bool(shown), 10)  # noqa: B023
                    watching.clear()
                    if not shown:
                        timeouts = latencies.setdefault("timeouts", [])
                        timeouts.append(float(key in screens))
                        timed_out.append(f"{type(app.screen).__name__}:{key}")
                        if len(timeouts) >= 10:
                            break  # this checkout does not show what the key asked for
                        continue
                    frame = shown[0]
                    group = key
                    if key in screens:
                        # A screen's first showing composes it: apart from the other switches.
                        group = "switch" if screens[key] in shown_screens else "first show"
                        shown_screens.add(screens[key])
                    latencies.setdefault(group, []).append(frame - pressed)
                    await asyncio.sleep(0.02)  # a person's pace, roughly: not a key storm
            await pilot.press("q")
            while app.return_code is None:
                await pilot.pause(0.05)
    finally:
        RecordView.action_cursor = original_cursor  # type: ignore[method-assign]
        await runtime.stop()
    return {"ready_s": ready, "latencies": latencies, "timed_out": timed_out}


def _holds(check: Callable[[], bool]) -> bool:
    """``check()``, False if it raises (a frame must never fail because of the bench)."""
    try:
        return check()
    except Exception:
        return False


async def _poll(condition: Callable[[], bool], within: float) -> bool:
    """Check ``condition`` every millisecond (the measuring granularity) up to ``within`` s."""
    deadline = time.perf_counter() + within
    while not condition():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.001)
    return True


STATUS_CYCLE = (None, "confirmed", "payment_declined", "cancelled", "rejected", "placed",
                "pending", "paid")  # fmt: skip


def _key_done(
    app: object,
    key: str,
    screens: dict[str, str],
    cursor_moves: list[float],
    orders_screen: type,
    journey_view: type,
) -> Callable[[], bool]:
    """What on screen says ``key`` (about to be pressed) has done its work; works on any
    checkout, since it looks only at the widgets (not at how the screen reads the store)."""
    from textual.css.query import NoMatches

    screen = app.screen  # type: ignore[attr-defined]

    def row0_status() -> str | None:
        try:
            table = app.screen.query_one("#orders-table")  # type: ignore[attr-defined]
        except NoMatches:  # the Orders screen, built on its first show, is not composed yet
            return None
        if not table.row_count:
            return None
        return str(getattr(_row_at(table, 0)[2], "plain", ""))

    if key in screens:
        wanted = screens[key]

        def switched() -> bool:
            shown = app.screen  # type: ignore[attr-defined]
            if type(shown).__name__ != wanted:
                return False
            return key != "6" or row0_status() is not None

        return switched
    if isinstance(screen, orders_screen) and key in "sa":
        current = screen.status_filter  # type: ignore[attr-defined]
        target = None if key == "a" else STATUS_CYCLE[(STATUS_CYCLE.index(current) + 1) % 8]

        def filtered() -> bool:
            row = row0_status()
            if row is None:
                return False
            if target is None:
                return _all_statuses_mixed(screen)
            return row.endswith(target)

        return filtered
    if isinstance(screen, orders_screen):

        def journey_shown() -> bool:
            order = screen.query_one(journey_view).order
            return order is not None and order.id == screen.selected_id  # type: ignore[attr-defined]

        return journey_shown
    moves = len(cursor_moves)
    return lambda: len(cursor_moves) > moves


def _row_at(table: Any, index: int) -> Any:
    """Row ``index`` of the Orders list: a ``RowList`` now, a ``DataTable`` in older checkouts."""
    return table.row_at(index) if hasattr(table, "row_at") else table.get_row_at(index)


def _all_statuses_mixed(screen: object) -> bool:
    """The unfiltered list is on screen: its 100 rows hold more than one status."""
    table = screen.query_one("#orders-table")  # type: ignore[attr-defined]
    seen = {str(getattr(_row_at(table, i)[2], "plain", "")) for i in range(table.row_count)}
    return len(seen) > 1


FLOOD_SECONDS = 1200


def bench_bigstore(
    figures: Figures,
    runs: int,
    big_dir: Path,
    roots: list[Path],
    cycles: int,
    orders: int,
    settle: float = 0.0,
) -> None:
    """Launch and key latency on a 1,000,000-order store under a 2,000 events/s tail."""
    build_big_store(big_dir, orders)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    results: dict[Path, dict[str, list[float]]] = {root: {} for root in roots}
    with running_broker() as bootstrap:
        from orderdeck.events import TopicNames
        from orderdeck.kafka.connection import KafkaConnection
        from orderdeck.kafka.topics import ensure_topics

        asyncio.run(ensure_topics(KafkaConnection(bootstrap), TopicNames(prefix=prefix)))
        flood = subprocess.Popen(
            [
                str(PYTHON),
                "-c",
                FLOODER,
                bootstrap,
                TopicNames(prefix=prefix).orders,
                str(BIG_RATE),
                str(int(BIG_RATE * FLOOD_SECONDS)),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(2)  # the flood reaches its rate before the first figure
            figures.load("bigstore")
            for run in range(runs):
                for root in roots:
                    got = results[root]
                    pane = Pane(launch_command(big_dir, bootstrap, root), ROOT)
                    try:
                        start = pane.start()
                        got.setdefault("frame", []).append(pane.wait_for(first_frame, 30) - start)
                        got.setdefault("green", []).append(
                            pane.wait_for(pipeline_green, 90) - start
                        )
                        pane.quit()
                    finally:
                        pane.close()
                    child = subprocess.run(
                        [
                            str(root / ".venv" / "bin" / "python"),
                            str(Path(__file__).resolve()),
                            "_keys",
                            "--big-dir",
                            str(big_dir),
                            "--bootstrap",
                            bootstrap,
                            "--prefix",
                            prefix,
                            "--cycles",
                            str(cycles),
                            "--settle",
                            str(settle),
                        ],
                        env={**os.environ, "ORDERDECK_BENCH_ROOT": str(root)},
                        capture_output=True,
                        text=True,
                    )
                    if child.returncode:
                        print(child.stderr[-4000:], file=sys.stderr, flush=True)
                        child.check_returncode()
                    measured = json.loads(child.stdout.strip().splitlines()[-1])
                    got.setdefault("ready", []).append(measured["ready_s"])
                    for group, values in measured["latencies"].items():
                        got.setdefault(f"key:{group}", []).extend(values)
                    print(
                        f"run {run + 1} {root.name}: frame {got['frame'][-1]:.2f} s, "
                        f"ready {measured['ready_s']:.2f} s, "
                        f"timed out: {' '.join(measured.get('timed_out', [])) or 'none'}",
                        flush=True,
                    )
        finally:
            flood.terminate()
            flood.wait(10)
    for root in roots:
        got = results[root]
        every = [
            v for k, vs in got.items() if k.startswith("key:") and k != "key:timeouts" for v in vs
        ]
        label = f"`{root.name}`" + (f" (keys after {settle:g} s settle)" if settle else "")
        figures.add(
            f"{label} launch → first frame (1M orders, 2,000/s tail)",
            _spread(got["frame"]),
            "≤ 1.5 s",
            "real `orderdeck launch` in tmux on the 1M-order data dir",
        )
        figures.add(
            f"{label} launch → pipeline green (1M orders)",
            _spread(got["green"]),
            "-",
            "services ● 4/4 in the header",
        )
        figures.add(
            f"{label} headless app → ready (1M orders)",
            _spread(got["ready"]),
            "-",
            "runtime started (store opened, counts read), start-up screen gone",
        )
        figures.add(
            f"{label} key → screen, all keys (1M orders, 2,000/s tail)",
            f"p50 {statistics.median(every) * 1000:.1f} ms, "
            f"p99 {_percentile(every, 0.99) * 1000:.1f} ms, max {max(every) * 1000:.1f} ms "
            f"(n={len(every)}, timeouts {len(got.get('key:timeouts', []))})",
            "p99 ≤ 100 ms",
            "key posted → first frame written after its result is on screen",
        )
        shown_before = [
            v
            for k, vs in got.items()
            if k.startswith("key:") and k not in ("key:timeouts", "key:first show")
            for v in vs
        ]
        figures.add(
            f"{label} key → screen, all keys but first showings",
            f"p50 {statistics.median(shown_before) * 1000:.1f} ms, "
            f"p99 {_percentile(shown_before, 0.99) * 1000:.1f} ms (n={len(shown_before)})",
            "-",
            "every screen already composed once",
        )
        for group in sorted(k for k in got if k.startswith("key:") and k != "key:timeouts"):
            values = got[group]
            figures.add(
                f"{label} key → screen, {group[4:]}",
                f"p50 {statistics.median(values) * 1000:.1f} ms, "
                f"p99 {_percentile(values, 0.99) * 1000:.1f} ms (n={len(values)})",
                "-",
                {
                    "switch": "F-key/digit to another screen (Orders: its list drawn)",
                    "first show": "a screen's first showing (composed on that key)",
                    "s": "Orders: next status filter's newest matches drawn",
                    "a": "Orders: all statuses again",
                    "j": "Orders: next order's journey drawn",
                    "k": "Orders: previous order's journey drawn",
                }.get(group[4:], "Topics: record cursor moved"),
            )


# ----------------------------------------------------------------------------- screenshots


def screenshots() -> None:
    """Save an SVG of every screen with real data (real Kafka, API, services, a burst)."""
    asyncio.run(_screenshots())


async def _screenshots() -> None:
    import httpx

    from orderdeck.app import SCREENS, OrderDeckApp
    from orderdeck.config import Settings
    from orderdeck.events import FINAL_STATUSES
    from orderdeck.runtime import Runtime
    from orderdeck.screens.submit import SubmitScreen
    from orderdeck.widgets.runtime_link import RuntimeHooks

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_broker() as bootstrap:
        data = Path(tempfile.mkdtemp(prefix="orderdeck-bench-shots-"))
        hooks = RuntimeHooks()
        settings = Settings(
            bootstrap_servers=bootstrap, topic_prefix="", data_dir=data, api_port=free_port()
        )
        runtime = Runtime(
            settings,
            log_handler=hooks.log_buffer,
            on_progress=hooks.on_progress,
            on_change=hooks.on_change,
        )
        app = OrderDeckApp(runtime, hooks=hooks)
        try:
            async with app.run_test(size=SIZE) as pilot:
                while not app.ready:
                    await pilot.pause(0.05)
                await pilot.press("3")  # the tail follows order-events from now on
                await pilot.pause(1.0)
                await pilot.press("2")
                screen = app.screen
                assert isinstance(screen, SubmitScreen)
                async with httpx.AsyncClient(base_url=runtime.api_url) as client:
                    await client.post(
                        "/api/v1/orders",
                        json={"customerId": "curl-demo", "productId": "sku-mouse", "quantity": 2},
                    )
                await pilot.press("ctrl+b")  # 100 orders at 50/s, 80/10/10
                await pilot.pause(1.5)
                await runtime.supervisor.pause("inventory")
                await pilot.pause(1.5)
                await runtime.supervisor.resume("inventory")
                while screen.bursting:
                    await pilot.pause(0.2)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not all(
                    r.status in FINAL_STATUSES for r in screen.results
                ):
                    await pilot.pause(0.2)
                await runtime.supervisor.scale("payment", 3)
                await pilot.pause(6)
                await runtime.supervisor.pause("notification")
                await pilot.pause(2.5)
                for mode, key, _ in SCREENS:
                    await pilot.press(key)
                    if mode == "orders":
                        await pilot.press("down", "down")
                    await pilot.pause(1.2)
                    app.clear_notifications()
                    await pilot.pause(0.2)
                    app.save_screenshot(filename=f"{mode}.svg", path=str(SCREENSHOTS))
                    print(f"saved {SCREENSHOTS / (mode + '.svg')}", flush=True)
                await runtime.supervisor.resume("notification")
                await pilot.press("q")
                while app.return_code is None:
                    await pilot.pause(0.05)
        finally:
            await runtime.stop()
            shutil.rmtree(data, ignore_errors=True)


# ----------------------------------------------------------------------------- report


def write_report(figures: Figures, started: float) -> None:
    """Write bench/results/launch.md (a table, plus method and machine)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Control center benchmarks (`bench/launch.py`)",
        "",
        f"Machine: {machine()}. Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        f"Run took {time.monotonic() - started:.0f} s. Textual 8, Apache Kafka 4.4 (local KRaft).",
        "",
        "| figure | value | goal | how |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in figures.rows),
        "",
        "Method (see the module docstring of `bench/launch.py`): start-up figures come from a real",
        "`orderdeck launch` process in a detached 120x36 tmux pane, its text polled every 10 ms;",
        "the tail figures from a headless Textual session (rendering on) following a topic that",
        "another process floods; idle CPU from /proc of a running launch over 30 s.",
        *(["", *figures.notes] if figures.notes else []),
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "what",
        choices=("all", "startup", "cold", "tail", "idle", "screenshots", "bigstore", "_keys"),
        default="all",
    )
    parser.add_argument(
        "--big-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "orderdeck-bench-1m",
        help="bigstore: where the 1,000,000-order data dir is built and kept",
    )
    parser.add_argument(
        "--root",
        type=Path,
        action="append",
        help="bigstore: a checkout to measure (repeat; default this one), interleaved",
    )
    parser.add_argument("--cycles", type=int, default=20, help="bigstore: key cycles per run")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="bigstore: start the keys once every screen is built ahead, waiting at most "
        "this many seconds (0: right after start-up)",
    )
    parser.add_argument(
        "--orders", type=int, default=BIG_ORDERS, help="bigstore: orders in the store"
    )
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=5, help="start-up runs (median reported)")
    parser.add_argument("--rate", type=float, default=2500, help="tail flood rate, records/s")
    parser.add_argument("--total", type=int, default=100_000, help="records in the tail flood")
    args = parser.parse_args(argv)
    if shutil.which("tmux") is None and args.what in ("all", "startup", "cold", "idle", "bigstore"):
        print("bench/launch.py: tmux is needed for the start-up and idle figures", file=sys.stderr)
        return 2
    if args.what == "_keys":
        measured = asyncio.run(
            _keys(args.big_dir, args.bootstrap, args.prefix, args.cycles, args.settle)
        )
        print(json.dumps(measured), flush=True)
        return 0
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    figures = Figures()
    started = time.monotonic()
    if args.what in ("all", "startup"):
        bench_startup(figures, args.runs)
    if args.what in ("all", "cold"):
        bench_cold(figures, max(1, args.runs // 2))
    if args.what in ("all", "idle"):
        bench_idle(figures)
    if args.what in ("all", "tail"):
        bench_tail(figures, args.rate, args.total)
    if args.what == "screenshots":
        screenshots()
        return 0
    if args.what == "bigstore":
        roots = [r.resolve() for r in args.root] if args.root else [ROOT]
        bench_bigstore(
            figures, args.runs, args.big_dir, roots, args.cycles, args.orders, args.settle
        )
        for figure, value, goal, how in figures.rows:
            print(f"| {figure} | {value} | {goal} | {how} |")
        print(*figures.notes, sep="\n")
        return 0
    if args.what == "all":
        write_report(figures, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
