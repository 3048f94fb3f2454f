"""Benchmark the local three-broker Kafka: start-up, memory, and a leader's kill -9 under load.

    .venv/bin/python bench/three_brokers.py [--starts 3] [--runs 3] [--rate 200]

Figures (medians), printed as a markdown table and saved to bench/results/three_brokers.md:

- ``orderdeck kafka start --brokers 3`` to ready (all three answer metadata, the eight topics
  created with replication factor 3): a fresh data dir (three storage formats, the controller
  quorum's first election) and a restart of the existing one.
- the resident memory (VmRSS) of the three brokers together, idle 5 s after start, and again
  after the failover runs (page cache of the logs and grown heaps).
- under a steady open-loop client of ``--rate`` POSTs a second against ``orderdeck serve``
  (a child process, SQLite store): the broker leading ``order-events`` partition 0 gets
  ``kill -9``; measured are the longest gap between two 201s over all orders and among the
  orders keyed to the killed leader's partition, the 503s (fenced, so no order), and the time
  from the kill until every order accepted before it is final (confirmed, rejected, declined
  or cancelled) — the pipeline caught up through the failover of all four topics.

The killed broker is started again and every partition is back in sync before the next run.
Runs its own cluster on free ports in a temporary directory and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pipeline import Connection  # the same minimal HTTP client (bench/ is on sys.path)

from orderdeck.kafka.cluster import ClusterReader
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.local import KAFKA_VERSION
from orderdeck.kafka.local_cluster import ClusterNode, LocalCluster, free_cluster_port
from orderdeck.kafka.producer import PARTITIONER
from orderdeck.store import StoreBackend, StoreURL, open_store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "three_brokers.md"
FINAL = {"confirmed", "rejected", "payment_declined", "cancelled"}
WARM_S = 6.0
AFTER_KILL_S = 15.0
ORDER = {"customerId": "c-bench", "productId": "sku-mouse", "quantity": 1}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def new_cluster(data_dir: Path) -> LocalCluster:
    """A cluster planned on free ports below the ephemeral range (see local_cluster)."""
    return LocalCluster(data_dir, port=free_cluster_port())


def free_run() -> str:
    """A ``--port`` for ``kafka start --brokers 3`` whose cluster's ports are all free."""
    return str(free_cluster_port())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cluster_rss(cluster: LocalCluster) -> float:
    return sum(rss_mb(node.pid) for node in cluster.nodes if node.pid is not None)


def time_starts(count: int, root: Path) -> tuple[list[float], list[float]]:
    """Wall-clock seconds of ``kafka start --brokers 3``: a fresh data dir, then a restart."""
    fresh: list[float] = []
    restart: list[float] = []
    for i in range(count):
        data_dir = str(root / f"start-{i}")
        port = free_run()
        began = time.monotonic()
        cli("kafka", "start", "--brokers", "3", "--port", port, "--data-dir", data_dir)
        fresh.append(time.monotonic() - began)
        cli("kafka", "stop", "--data-dir", data_dir)
        began = time.monotonic()
        cli("kafka", "start", "--data-dir", data_dir)
        restart.append(time.monotonic() - began)
        cli("kafka", "stop", "--data-dir", data_dir)
    return fresh, restart


@dataclass
class Run:
    """What one failover run saw."""

    kill_at: float = 0.0
    killed: asyncio.Event = field(default_factory=asyncio.Event)  # set at kill_at
    accepted: list[tuple[float, str]] = field(default_factory=list)  # (answered at, order id)
    refused: int = 0
    errors: int = 0
    gap_all: float = 0.0
    gap_partition: float = 0.0
    final_after: float = 0.0


async def read_leaders(cluster: LocalCluster, topic: str) -> dict[int, int]:
    """``topic``'s partition -> leader, as the Cluster screen reads it."""
    async with ClusterReader(KafkaConnection(cluster.bootstrap_servers)) as reader:
        view = await reader.describe([topic], metadata_only=True)
    return {p.partition: p.leader for p in view.topics[0].partitions}


async def wait_in_sync(cluster: LocalCluster, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    async with ClusterReader(KafkaConnection(cluster.bootstrap_servers)) as reader:
        while time.monotonic() < deadline:
            try:
                view = await reader.describe(metadata_only=True)
                if len(view.brokers) == 3 and view.under_replicated == 0:
                    return
            except Exception:  # a broker coming back; ask again
                await asyncio.sleep(0.2)
                continue
            await asyncio.sleep(0.2)
    raise SystemExit("the cluster did not get back in sync in time")


def longest_gap(times: list[float], start: float, end: float) -> float:
    points = sorted([start, *(t for t in times if start <= t <= end), end])
    return max(b - a for a, b in itertools.pairwise(points))


def spawn_serve(
    bootstrap: str, data_dir: Path, port: int, prefix: str, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """``orderdeck serve`` on the cluster, as a deployment runs it (its own process)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orderdeck.cli",
            "serve",
            "--bootstrap-servers",
            bootstrap,
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--topic-prefix",
            prefix,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def failover_run(cluster: LocalCluster, index: int, root: Path, rate: float) -> Run:
    prefix = f"r{index}."
    data_dir = root / f"serve-{index}"
    data_dir.mkdir()
    port = free_port()
    log = (data_dir / "serve.log").open("wb")
    serve = spawn_serve(cluster.bootstrap_servers, data_dir, port, prefix, log)
    run = Run()
    try:
        deadline = time.monotonic() + 90
        while b"serving:" not in (data_dir / "serve.log").read_bytes():
            if serve.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((data_dir / "serve.log").read_text())
            await asyncio.sleep(0.1)
        store = open_store(StoreURL.sqlite(data_dir / "orderdeck.db"))
        store.set_stock("sku-mouse", 1_000_000)
        leaders = await read_leaders(cluster, f"{prefix}order-events")
        victim = cluster.node(leaders[0])
        # Watched while the client still sends: waited for after it, the figure could
        # never be shorter than the client's window after the kill.
        finals = asyncio.create_task(watch_final(run, store))
        await client_with_kill(run, port, rate, victim)
        await finals
        store.close()
        window_end = run.kill_at + AFTER_KILL_S
        times = [at for at, _ in run.accepted]
        run.gap_all = longest_gap(times, run.kill_at - 1.0, window_end)
        mine = [
            at for at, oid in run.accepted if PARTITIONER(oid.encode(), [0, 1, 2], [0, 1, 2]) == 0
        ]
        run.gap_partition = longest_gap(mine, run.kill_at - 1.0, window_end)
    finally:
        serve.terminate()
        serve.wait(30)
        log.close()
    await asyncio.to_thread(victim.start, 120)
    await wait_in_sync(cluster)
    return run


class Posts:
    """Keep-alive connections for the open-loop client, one request on each at a time.

    httpx spent ~5 ms of CPU per POST here: at 200/s the client alone wanted a core of the
    two, so it — not serve — capped the pace at 25 to 90 answers a second. This speaks just
    enough HTTP/1.1 (bench/pipeline.py's Connection) and keeps each connection only while
    uvicorn would (it closes one idle for 5 s).
    """

    IDLE_LIMIT_S = 4.0

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[float, Connection]] = []

    async def post(self, customer: str) -> tuple[int, bytes]:
        conn: Connection | None = None
        while self.idle:
            since, candidate = self.idle.pop()
            if time.monotonic() - since < self.IDLE_LIMIT_S and not candidate.reader.at_eof():
                conn = candidate
                break
            candidate.close()
        if conn is None:
            conn = await Connection.open(self.port)
        body = json.dumps({**ORDER, "customerId": customer}).encode()
        try:
            answer = await conn.post_json("/api/v1/orders", body)
        except BaseException:
            conn.close()
            raise
        self.idle.append((time.monotonic(), conn))
        return answer

    def close(self) -> None:
        for _, conn in self.idle:
            conn.close()
        self.idle.clear()


async def watch_final(run: Run, store: StoreBackend) -> None:
    """Set ``run.final_after``: the kill until every order accepted before it is final."""
    await run.killed.wait()
    before = [oid for at, oid in run.accepted if at < run.kill_at]
    while True:
        statuses = store.order_statuses(before)
        if len(statuses) == len(before) and set(statuses.values()) <= FINAL:
            run.final_after = time.monotonic() - run.kill_at
            return
        if time.monotonic() - run.kill_at > 180:
            run.final_after = float("nan")
            return
        await asyncio.sleep(0.2)


async def client_with_kill(run: Run, port: int, rate: float, victim: ClusterNode) -> None:
    """Open loop: a POST every 1/rate s whatever the answers; kill -9 after WARM_S."""
    posts = Posts(port)
    tasks: set[asyncio.Task[None]] = set()

    async def post(customer: str) -> None:
        try:
            status, answer = await asyncio.wait_for(posts.post(customer), 30)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            run.errors += 1
            return
        if status == 201:
            run.accepted.append((time.monotonic(), json.loads(answer)["event"]["id"]))
        else:
            run.refused += 1

    began = time.monotonic()
    sent = 0
    killing: asyncio.Task[bool] | None = None
    end = began + WARM_S + AFTER_KILL_S
    try:
        while time.monotonic() < end:
            due = began + sent / rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            # Many customers, as a shop has: one customer's credit limit would decline most.
            task = asyncio.create_task(post(f"c-bench-{sent % 1000}"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            if killing is None and time.monotonic() - began >= WARM_S:
                # In a task of its own: the sends go on at their pace while the JVM dies.
                run.kill_at = time.monotonic()
                run.killed.set()
                killing = asyncio.create_task(asyncio.to_thread(victim.kill))
        await asyncio.gather(*tasks)
        if killing is not None:
            await killing
    finally:
        posts.close()


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    java_line = java.splitlines()[0] if java else "java ?"
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python "
        f"{platform.python_version()}, {java_line}, Apache Kafka {KAFKA_VERSION}"
    )


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()

    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="orderdeck-bench-3b-") as tmp:
        root = Path(tmp)
        fresh, restart = time_starts(args.starts, root) if args.starts else ([], [])
        cluster = new_cluster(root / "cluster")
        cluster.start()
        try:
            cli("kafka", "topics", "--data-dir", str(cluster.data_dir))
            time.sleep(5)
            idle_rss = cluster_rss(cluster)
            runs = [
                asyncio.run(failover_run(cluster, i, root, args.rate)) for i in range(args.runs)
            ]
            loaded_rss = cluster_rss(cluster)
        finally:
            cluster.stop()

    def med(values: list[float]) -> float:
        return statistics.median(values)

    def listed(values: list[float], fmt: str = "{:.2f}") -> str:
        return f"median of {len(values)}: " + ", ".join(fmt.format(v) for v in values)

    gaps = [r.gap_all for r in runs]
    partition_gaps = [r.gap_partition for r in runs]
    finals = [r.final_after for r in runs]
    refused = [float(r.refused) for r in runs]
    accepted = [float(len(r.accepted)) for r in runs]
    # The pace before the kill says whether serve kept up with --rate at all: if not, the
    # gap and time-to-final rows measure a queue, not the failover.
    paced = [sum(1 for at, _ in r.accepted if at < r.kill_at) / WARM_S for r in runs]
    starts = (
        [
            (
                "`kafka start --brokers 3` to ready, fresh data dir",
                f"{med(fresh):.2f} s",
                listed(fresh),
            ),
            ("`kafka start` to ready, existing data dir", f"{med(restart):.2f} s", listed(restart)),
        ]
        if fresh
        else []
    )
    rows = [
        *starts,
        ("RSS of the three brokers, idle 5 s after start", f"{idle_rss:.0f} MB", "VmRSS summed"),
        ("RSS of the three brokers after the failover runs", f"{loaded_rss:.0f} MB", ""),
        (
            f"longest gap between 201s, all orders, {args.rate:.0f}/s, leader kill -9",
            f"{med(gaps):.2f} s",
            listed(gaps),
        ),
        (
            "longest gap between 201s, orders of the killed leader's partition",
            f"{med(partition_gaps):.2f} s",
            listed(partition_gaps),
        ),
        (
            "kill -9 → every order accepted before it final",
            f"{med(finals):.2f} s",
            listed(finals),
        ),
        ("503s per run (fenced: no order)", f"{med(refused):.0f}", listed(refused, "{:.0f}")),
        ("201s per run", f"{med(accepted):.0f}", listed(accepted, "{:.0f}")),
        ("201s a second before the kill", f"{med(paced):.0f}", listed(paced, "{:.0f}")),
    ]
    lines = [
        "# Three local brokers: start-up, memory, a leader's kill -9 under load",
        "",
        f"Command: `.venv/bin/python bench/three_brokers.py --starts {args.starts} --runs "
        f"{args.runs} --rate {args.rate:.0f}` — {datetime.now(UTC):%Y-%m-%d}",
        "",
        f"Machine: {machine()}",
        "",
        f"1-minute load average before / after the run: {load_before} / {load_average()}",
        "",
        "| figure | value | runs |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
    ]
    text = "\n".join(lines)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
