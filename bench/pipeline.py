"""Benchmark the order pipeline end to end: a real ``orderdeck serve`` under HTTP load.

    .venv/bin/python bench/pipeline.py [--runs 3] [--orders 5000] [--rate 500,200] [--seconds 10]
        [--variant before=../before/.venv/bin/python --variant after=.venv/bin/python]
        [--kafka plaintext,sasl_ssl] [--broker-opts sasl_ssl:c2='-XX:+UseSerialGC']
        [--store sqlite,postgres]

Figures (medians of ``--runs`` runs), printed as a markdown table and saved to
bench/results/pipeline.md:

- **throughput**: ``--orders`` orders POSTed as fast as ``--concurrency`` connections allow;
  orders/s from the first POST until the last order reached a final state (through all four
  services), plus the CPU per order of serve, the broker and this process over that window.
  An uncounted run of ``--warmup-orders`` comes first: a fresh broker runs much slower
  until its JIT has compiled the hot paths (the secure broker's C2 takes some 10,000 orders).
- **latency at a steady rate**: ``--rate`` orders/s (a comma list runs each rate) for
  ``--seconds`` seconds, open loop (each request is sent at its scheduled time, whatever the
  previous ones did): the API's latency (POST to 201) p50/p99, and accepted→final-state
  latency p50/p99 (the 201 to the moment the store recorded the final status, same clock).
  ``--warmup`` seconds at the same rate come first and are not measured, so the figures are
  those of the steady state. A rate above the sustained throughput only measures a growing
  queue.
- ``--hops`` also prints, per latency run, where the accepted→final time went: for each
  record of a confirmed order, the time from its Kafka timestamp until a service applied it,
  and from that transaction to the next record's timestamp (p50/p99 per stage).

The load comes from this process (a minimal keep-alive HTTP client, see Connection, on
uvloop like serve: on a machine shared with the server, the client's own CPU and scheduling
delays are part of every latency it measures); the server is a separate ``orderdeck serve
--processes N`` child (``--processes``, default 3) with a fresh data dir and topic prefix per
run, against a local Apache Kafka this script starts on free ports (or ``--bootstrap-servers``).
Variants are measured interleaved, run by run, and reported side by side with their ratio to
the first: ``--variant LABEL=PYTHON`` serves with another checkout's interpreter (the same
script, broker and load, different code: before and after a change), and ``--kafka
plaintext,sasl_ssl`` runs each variant against a plaintext local broker and against a second,
``--secure`` one (SASL_SSL with SCRAM-SHA-512), both started here and both running throughout;
``--broker-opts KIND:LABEL=OPTS`` adds one more broker of that kind whose JVM runs with other
JIT/GC options (a variant ``KIND:LABEL``), so broker settings are compared in one run too.
``--store sqlite,postgres`` runs each variant on a SQLite file in the run's data dir and on a
fresh database of a PostgreSQL server this script starts for the whole bench (the test suite's
:class:`tests.postgres_server.PostgresServer`, on the same cores), passed to serve through
``ORDERDECK_STORE`` so its password is never on a command line.

The order mix: 10% declined customers, the rest confirmed. Each run's store is given
:data:`BENCH_STOCK` of every product the mix orders before serve starts, so no order takes the
out-of-stock path (a refund, one hop more) part-way through a run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orderdeck.events import FINAL_STATUSES
from orderdeck.process_tuning import event_loop_factory
from orderdeck.store import StoreBackend, open_store

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test suite's PostgreSQL server (tests/postgres_server.py)

from tests.postgres_server import PostgresCluster, PostgresServer  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "pipeline.md"
PRODUCTS = (
    "sku-cable",
    "sku-keyboard",
    "sku-mouse",
    "sku-desk-mat",
    "sku-usb-hub",
    "sku-laptop-stand",
    "sku-headset",
)
FINAL_TIMEOUT_S = 120.0
#: Stock of each product in PRODUCTS for a run: more than any run orders.
BENCH_STOCK = 1_000_000


@dataclass(frozen=True)
class Variant:
    """One way of running serve that a run measures: whose code, and which Kafka connection.

    Several variants are measured interleaved (each run goes through every variant in turn),
    so a difference between them is not a difference between two moments of a shared machine.
    """

    label: str
    #: The interpreter whose ``orderdeck`` package serves (another checkout's virtualenv
    #: compares code before and after a change).
    python: str
    #: ``--bootstrap-servers``/``--kafka-config`` arguments for serve.
    kafka_args: tuple[str, ...]
    #: The broker's pid when this script started it (its CPU is reported too).
    broker_pid: int | None
    #: The PostgreSQL server to store in (a fresh database per run), or None for SQLite.
    postgres: PostgresCluster | None = None

    @property
    def cwd(self) -> Path:
        """The checkout the interpreter belongs to (``<checkout>/.venv/bin/python``)."""
        path = Path(self.python).absolute()
        return path.parents[2] if path.parent.parent.name == ".venv" else ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def order_body(i: int, run: str) -> dict[str, Any]:
    customer = f"declined-{run}-{i}" if i % 10 == 0 else f"c-{run}-{i}"
    return {"customerId": customer, "productId": PRODUCTS[i % len(PRODUCTS)], "quantity": 1}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def proc_stat(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, parent pid, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process (and its reaped children) from /proc."""
    fields = proc_stat(pid)
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(f) for f in fields[11:15]) / ticks


def tree_cpu_seconds(pid: int) -> float:
    """cpu_seconds of a process plus those of its live children (``serve --processes``)."""
    total = cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(proc_stat(entry.name)[1]) == pid:
                total += cpu_seconds(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far by serve (all its processes), by its first process (the API's
    with ``--processes``), by the broker (nan unless this script started it) and by this
    load generator; ``at`` is when they were read (monotonic). Subtract two for the usage
    in between."""

    serve: float
    api: float
    broker: float
    client: float
    at: float

    @classmethod
    def take(cls, pid: int, broker_pid: int | None) -> CpuSample:
        return cls(
            serve=tree_cpu_seconds(pid),
            api=cpu_seconds(pid),
            broker=cpu_seconds(broker_pid) if broker_pid else float("nan"),
            client=time.process_time(),
            at=time.monotonic(),
        )

    def __sub__(self, earlier: CpuSample) -> CpuSample:
        return CpuSample(
            serve=self.serve - earlier.serve,
            api=self.api - earlier.api,
            broker=self.broker - earlier.broker,
            client=self.client - earlier.client,
            at=self.at - earlier.at,
        )


class Serve:
    """An ``orderdeck serve`` child with its own data dir and topic prefix."""

    def __init__(self, variant: Variant, workdir: Path, processes: int) -> None:
        self.variant = variant
        self.data_dir = workdir / f"run-{uuid.uuid4().hex[:8]}"
        self.data_dir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / "serve.log"
        # Created (and seeded from the catalog) before serve starts; see BENCH_STOCK.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._database: contextlib.AbstractContextManager[str] | None = None
        if variant.postgres is not None:
            self._database = variant.postgres.fresh_database()
            env["ORDERDECK_STORE"] = self._database.__enter__()
            self.store: StoreBackend = open_store(env["ORDERDECK_STORE"], data_dir=self.data_dir)
        else:
            env.pop("ORDERDECK_STORE", None)
            self.store = open_store(self.data_dir / "orderdeck.db")
        for product in PRODUCTS:
            self.store.set_stock(product, BENCH_STOCK)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                variant.python,
                "-m",
                "orderdeck.cli",
                "serve",
                *variant.kafka_args,
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                "--topic-prefix",
                f"b{uuid.uuid4().hex[:8]}.",
                "--processes",
                str(processes),
            ],
            cwd=variant.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        # With --processes the children log "serving:" too, once each has joined.
        while self.log_path.read_text(errors="replace").count("serving:") < processes:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"serve did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def cpu(self) -> CpuSample:
        return CpuSample.take(self.proc.pid, self.variant.broker_pid)

    def finals(self) -> int:
        counts = self.store.status_counts()
        return sum(n for status, n in counts.items() if status in FINAL_STATUSES)

    def final_times(self) -> dict[str, float]:
        """Order id -> epoch seconds of its final status, for every final order."""
        out: dict[str, float] = {}
        cursor: str | None = None
        while True:
            page, cursor = self.store.list_orders(limit=1000, cursor=cursor)
            for order in page:
                if order.status in FINAL_STATUSES:
                    out[order.id] = order.updatedAt.timestamp()
            if cursor is None:
                return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "store"):
            self.store.close()
        if self._database is not None:
            self._database.__exit__(None, None, None)
            self._database = None
        self._log.close()


@dataclass
class Sent:
    order_id: str
    latency: float  # seconds, POST to 201
    accepted_at: float  # epoch seconds of the 201


async def wait_final(serve: Serve, count: int) -> float:
    """Block until ``count`` orders are final; returns the monotonic time it happened."""
    deadline = time.monotonic() + FINAL_TIMEOUT_S
    while True:
        done = await asyncio.to_thread(serve.finals)
        if done >= count:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise SystemExit(f"only {done}/{count} orders final after {FINAL_TIMEOUT_S} s")
        await asyncio.sleep(0.02)


class Connection:
    """A minimal HTTP/1.1 keep-alive client connection.

    The load generator shares two cores with the server and Kafka; httpx spends far more CPU
    per request than the server it measures (and reconnects under load), so the benchmark
    speaks just enough HTTP itself: one request at a time, Content-Length bodies.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int
    ) -> None:
        self.reader, self.writer = reader, writer
        # The API answers only for the Host names it serves (DNS-rebinding guard).
        self.host = b"127.0.0.1:%d" % port

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, port)

    async def post_json(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), self.host, len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Idle connections handed out one request at a time (opened on demand).

    uvicorn closes a keep-alive connection idle for 5 s, so connections idle for longer than
    IDLE_LIMIT_S are dropped instead of reused.
    """

    IDLE_LIMIT_S = 4.0

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[float, Connection]] = []

    async def _connection(self) -> Connection:
        while self.idle:
            since, conn = self.idle.pop()
            if time.monotonic() - since < self.IDLE_LIMIT_S and not conn.reader.at_eof():
                return conn
            conn.close()
        return await Connection.open(self.port)

    async def post(self, i: int, run: str) -> Sent:
        conn = await self._connection()
        body = json.dumps(order_body(i, run)).encode()
        began = time.perf_counter()
        status, answer = await conn.post_json("/api/v1/orders", body)
        latency = time.perf_counter() - began
        if status != 201:
            raise SystemExit(f"POST answered {status}: {answer.decode(errors='replace')}")
        self.idle.append((time.monotonic(), conn))
        return Sent(json.loads(answer)["event"]["id"], latency, time.time())

    def close(self) -> None:
        for _, conn in self.idle:
            conn.close()
        self.idle.clear()


async def throughput_run(
    variant: Variant, workdir: Path, orders: int, concurrency: int, processes: int
) -> dict[str, float]:
    serve = Serve(variant, workdir, processes)
    run = uuid.uuid4().hex[:6]
    pool = Pool(serve.port)
    try:
        await pool.post(-1, run)  # warm the code paths
        await wait_final(serve, 1)
        next_index = 0

        async def worker() -> None:
            nonlocal next_index
            while next_index < orders:
                i = next_index
                next_index += 1
                await pool.post(i, run)

        before = serve.cpu()
        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        posted = time.monotonic()
        ended = await wait_final(serve, orders + 1)
        used = serve.cpu() - before
        elapsed = ended - began
        return {
            "orders_per_s": orders / elapsed,
            "post_rate": orders / (posted - began),
            "serve_cpu": used.serve / elapsed,
            # CPU the server spent per order: hardly moved by other load on the machine.
            "cpu_ms_per_order": used.serve * 1000 / orders,
            # With --processes > 1 the first process serves the API and the rest the services.
            "api_cpu_ms_per_order": used.api * 1000 / orders,
            "broker_cpu_ms_per_order": used.broker * 1000 / orders,
            "client_cpu_ms_per_order": used.client * 1000 / orders,
        }
    finally:
        pool.close()
        serve.stop()


async def open_loop(
    pool: Pool, run: str, rate: float, count: int, first: int, began: float
) -> list[asyncio.Task[Sent]]:
    """Send ``count`` orders at ``rate``/s from ``began``, each at its scheduled time whatever
    the others did (open loop); returns their tasks."""
    tasks: list[asyncio.Task[Sent]] = []
    for i in range(count):
        delay = began + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(pool.post(first + i, run)))
    return tasks


async def latency_run(
    variant: Variant,
    workdir: Path,
    rate: float,
    seconds: float,
    processes: int,
    warmup: float,
    hops: bool = False,
) -> dict[str, float]:
    serve = Serve(variant, workdir, processes)
    run = uuid.uuid4().hex[:6]
    total = int(rate * seconds)
    warm = int(rate * warmup)
    pool = Pool(serve.port)
    try:
        await pool.post(-1, run)
        await wait_final(serve, 1)
        # The same rate for ``warmup`` seconds first, not measured: the pipeline reaches its
        # steady state (connections opened, batches at their usual size, code paths warm).
        began = time.monotonic()
        warming = await open_loop(pool, run, rate, warm, 1_000_000, began)
        measured_from = began + warm / rate
        # CPU while the measured orders arrive: where the machine's two cores go at this rate.
        before = serve.cpu()
        tasks = await open_loop(pool, run, rate, total, 0, measured_from)
        sent = await asyncio.gather(*tasks)
        achieved = total / (time.monotonic() - measured_from)
        used = serve.cpu() - before
        await asyncio.gather(*warming)
        await wait_final(serve, total + warm + 1)
        finals = await asyncio.to_thread(serve.final_times)
        if hops:
            print(await asyncio.to_thread(hop_breakdown, serve, sent), flush=True)
        api = [s.latency * 1000 for s in sent]
        to_final = [max(0.0, (finals[s.order_id] - s.accepted_at) * 1000) for s in sent]
        return {
            "achieved_rate": achieved,
            "api_p50": percentile(api, 0.50),
            "api_p99": percentile(api, 0.99),
            "final_p50": percentile(to_final, 0.50),
            "final_p99": percentile(to_final, 0.99),
            "api_cores": used.api / used.at,
            "services_cores": (used.serve - used.api) / used.at,
            "broker_cores": used.broker / used.at,
            "client_cores": used.client / used.at,
        }
    finally:
        pool.close()
        serve.stop()


def hop_breakdown(serve: Serve, sent: list[Sent], sample: int = 1000) -> str:
    """Where an order's accepted→final time goes, stage by stage (p50/p99 in ms) for up to
    ``sample`` confirmed orders: each record's wait from its Kafka timestamp until a service
    applied it, the time from that transaction to the next record's timestamp, and from the
    last transaction to the final status."""
    stages: dict[str, list[float]] = {}
    step = max(1, len(sent) // sample)
    for s in sent[::step]:
        order = serve.store.get_order(s.order_id)
        if order is None or order.status != "confirmed":
            continue
        hops = [h for h in order.journey if h.processedAt is not None]
        marks: list[tuple[str, float]] = [("accepted", s.accepted_at)]
        for h in hops:
            marks.append((f"{h.type} record", h.timestamp / 1000))
            marks.append((f"{h.type} applied by {h.service}", h.processedAt.timestamp()))
        marks.append(("final", order.updatedAt.timestamp()))
        for (a, ta), (b, tb) in itertools.pairwise(marks):
            stages.setdefault(f"{a} → {b}", []).append((tb - ta) * 1000)
    lines = [f"{'stage':<80} {'p50':>8} {'p99':>8}"]
    for name, values in stages.items():
        lines.append(f"{name:<80} {percentile(values, 0.5):8.1f} {percentile(values, 0.99):8.1f}")
    return "\n".join(lines)


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def figure_rows(rates: list[float]) -> list[tuple[str, float | None, str, str]]:
    """(label, rate or None for the throughput runs, key, format) of every reported figure."""
    rows: list[tuple[str, float | None, str, str]] = [
        ("sustained orders/s, POST → final state (goal ≥ 1,000)", None, "orders_per_s", "{:.0f}"),
        ("POST rate the client achieved in that run", None, "post_rate", "{:.0f}"),
        ("serve CPU during that run (cores)", None, "serve_cpu", "{:.2f}"),
        ("serve CPU per order (ms)", None, "cpu_ms_per_order", "{:.2f}"),
        ("… of which the API process (ms)", None, "api_cpu_ms_per_order", "{:.2f}"),
        ("Kafka broker CPU per order (ms)", None, "broker_cpu_ms_per_order", "{:.2f}"),
        ("load generator CPU per order (ms)", None, "client_cpu_ms_per_order", "{:.2f}"),
    ]
    for rate in rates:
        at = f"at {rate:.0f}/s"
        rows += [
            (f"API latency p50 {at} (ms)", rate, "api_p50", "{:.1f}"),
            (f"API latency p99 {at} (ms, goal ≤ 25 at 500/s)", rate, "api_p99", "{:.1f}"),
            (f"accepted → final p50 {at} (ms)", rate, "final_p50", "{:.0f}"),
            (f"accepted → final p99 {at} (ms, goal ≤ 250 at 500/s)", rate, "final_p99", "{:.0f}"),
            (f"API process CPU {at} (cores)", rate, "api_cores", "{:.2f}"),
            (f"services processes' CPU {at} (cores)", rate, "services_cores", "{:.2f}"),
            (f"Kafka broker CPU {at} (cores)", rate, "broker_cores", "{:.2f}"),
            (f"load generator CPU {at} (cores)", rate, "client_cores", "{:.2f}"),
            (
                f"rate the open-loop client achieved {at} (orders/s)",
                rate,
                "achieved_rate",
                "{:.0f}",
            ),
        ]
    return rows


@dataclass
class Results:
    """Every run's figures of one variant."""

    tput: list[dict[str, float]]
    lat: dict[float, list[dict[str, float]]]

    def runs(self, rate: float | None) -> list[dict[str, float]]:
        return self.tput if rate is None else self.lat[rate]


def report(args: argparse.Namespace, results: dict[str, Results], rates: list[float]) -> str:
    command = "python bench/pipeline.py " + " ".join(sys.argv[1:])
    cpu = platform.processor() or platform.machine()
    machine = f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"
    # Other work on the machine shows in every figure; say how busy it was.
    load = f"load average {args.load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    labels = list(results)
    shown = ", ".join(f"{r:.0f}" for r in rates)
    lines = [
        "# Order pipeline benchmark",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}; {load}  ",
        f"Date: {date}; medians of {args.runs} runs; "
        f"throughput runs of {args.orders} orders at {args.concurrency} connections; "
        f"latency runs of {args.seconds:.0f} s at {shown} orders/s (open loop, after "
        f"{args.warmup:.0f} s at the same rate)"
        + (f"; variants {', '.join(labels)} interleaved run by run." if len(labels) > 1 else "."),
        "",
    ]
    if len(labels) == 1:
        lines += ["| figure | median | runs |", "|---|---:|---|"]
    else:
        ratios = " | ".join(f"{label} / {labels[0]}" for label in labels[1:])
        lines += [
            f"| figure | {' | '.join(labels)} | {ratios} |",
            "|---|" + "---:|" * (2 * len(labels) - 1),
        ]
    for label, rate, key, fmt in figure_rows(rates):
        if not all(results[v].runs(rate) for v in labels):
            continue
        medians = [median(results[v].runs(rate), key) for v in labels]
        if len(labels) == 1:
            each = ", ".join(fmt.format(r[key]) for r in results[labels[0]].runs(rate))
            lines.append(f"| {label} | {fmt.format(medians[0])} | {each} |")
            continue
        cells = [
            f"{fmt.format(m)} ({', '.join(fmt.format(r[key]) for r in results[v].runs(rate))})"
            for v, m in zip(labels, medians, strict=True)
        ]
        ratios = [f"{m / medians[0]:.2f}" if medians[0] else "n/a" for m in medians[1:]]
        lines.append(f"| {label} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    return "\n".join(lines) + "\n"


def split_labels(values: list[str]) -> list[tuple[str, str]]:
    """``LABEL=VALUE`` options as (label, value) pairs."""
    pairs = []
    for value in values:
        label, sep, rest = value.partition("=")
        if not sep or not label:
            raise SystemExit(f"{value!r}: expected LABEL=VALUE")
        pairs.append((label, rest))
    return pairs


async def start_broker(
    workdir: Path,
    secure: bool,
    jvm_opts: str | None = None,
    config: dict[str, str] | None = None,
) -> tuple[Any, tuple[str, ...], int]:
    """A local broker on free ports: (the LocalKafka, serve's Kafka arguments, its pid).

    ``jvm_opts`` replaces the broker's JIT/GC options (KAFKA_JVM_PERFORMANCE_OPTS, read when
    the JVM is launched) for this broker only; ``config`` adds to (or overrides) orderdeck's
    server.properties, e.g. ``num.network.threads`` and ``num.io.threads`` (Kafka's defaults
    are 3 and 8).
    """
    from orderdeck.kafka.clients import wait_until_ready
    from orderdeck.kafka.local import LocalKafka

    name = f"kafka-{uuid.uuid4().hex[:6]}"
    if config is None:
        broker = LocalKafka(workdir / name, port=free_port(), secure=secure)
    else:
        extra: dict[str, str] = config  # narrowed for the class below

        class ConfiguredKafka(LocalKafka):
            """A bench-only variant: orderdeck's broker settings plus ``config``."""

            def _config(self, controller_port: int, connection: Any) -> dict[str, str]:
                return {**super()._config(controller_port, connection), **extra}

        broker = ConfiguredKafka(workdir / name, port=free_port(), secure=secure)
    saved = os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS")
    if jvm_opts is not None:
        os.environ["KAFKA_JVM_PERFORMANCE_OPTS"] = jvm_opts
    try:
        started = await asyncio.to_thread(broker.start)
    finally:
        if saved is None:
            os.environ.pop("KAFKA_JVM_PERFORMANCE_OPTS", None)
        else:
            os.environ["KAFKA_JVM_PERFORMANCE_OPTS"] = saved
    kafka = broker.connection()
    await wait_until_ready(kafka, 60)
    kafka_args: tuple[str, ...] = ("--bootstrap-servers", kafka.bootstrap_servers)
    if secure:
        kafka_args += ("--kafka-config", str(broker.client_properties_path))
    return broker, kafka_args, started.pid


def parse_brokers(args: argparse.Namespace) -> dict[str, tuple[bool, str | None]]:
    """Broker name -> (secure, JVM options or None for the default) of --kafka and
    --broker-opts: ``plaintext``, ``sasl_ssl``, and ``KIND:LABEL`` for every
    ``--broker-opts KIND:LABEL=OPTS`` (one more broker of that kind, started with OPTS)."""
    brokers: dict[str, tuple[bool, str | None]] = {}
    for kind in (k.strip() for k in args.kafka.split(",")):
        if kind and kind not in ("plaintext", "sasl_ssl"):
            raise SystemExit(f"--kafka {kind}: use plaintext or sasl_ssl")
        if kind:
            brokers[kind] = (kind == "sasl_ssl", None)
    for spec in args.broker_opts:
        name, sep, opts = spec.partition("=")
        kind, colon, label = name.partition(":")
        if not sep or not colon or not label or kind not in ("plaintext", "sasl_ssl"):
            raise SystemExit(
                f"--broker-opts {spec}: use KIND:LABEL=OPTS, KIND plaintext or sasl_ssl"
            )
        brokers[name] = (kind == "sasl_ssl", opts)
    return brokers


def parse_variants(args: argparse.Namespace, brokers: list[str]) -> list[tuple[str, str, str, str]]:
    """(label, python, broker name, store engine) for every combination of --variant, broker
    (--kafka and --broker-opts) and --store."""
    pythons = split_labels(args.variant) or [("this", sys.executable)]
    engines = [e.strip() for e in args.store.split(",") if e.strip()]
    for engine in engines:
        if engine not in ("sqlite", "postgres"):
            raise SystemExit(f"--store {engine}: use sqlite or postgres")
    combos = []
    for label, python in pythons:
        for kind in brokers:
            for engine in engines:
                parts = [
                    label if len(pythons) > 1 else "",
                    kind if len(brokers) > 1 else "",
                    engine if len(engines) > 1 else "",
                ]
                combos.append(("/".join(p for p in parts if p) or label, python, kind, engine))
    return combos


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="orderdeck-bench-"))
    brokers: list[Any] = []
    postgres: PostgresServer | None = None
    rates = [float(r) for r in args.rate.split(",") if r.strip()]
    try:
        kafka_for: dict[str, tuple[tuple[str, ...], int | None]] = {}
        kinds = parse_brokers(args)
        combos = parse_variants(args, list(kinds))
        cluster: PostgresCluster | None = None
        if any(engine == "postgres" for *_, engine in combos):
            postgres = PostgresServer()
            await asyncio.to_thread(postgres.start)
            cluster = postgres.cluster()
        for kind, (secure, jvm_opts) in kinds.items():
            if args.bootstrap_servers and kind == "plaintext":
                kafka_for[kind] = (("--bootstrap-servers", args.bootstrap_servers), None)
                continue
            broker, kafka_args, pid = await start_broker(workdir, secure, jvm_opts)
            brokers.append(broker)
            kafka_for[kind] = (kafka_args, pid)
        variants = [
            Variant(label, python, *kafka_for[kind], cluster if engine == "postgres" else None)
            for label, python, kind, engine in combos
        ]
        results = {v.label: Results([], {rate: [] for rate in rates}) for v in variants}
        if args.warmup_orders and not args.skip_throughput:
            # A fresh broker compiles its hot paths during the first thousands of records;
            # sustained throughput is measured once that is done (this run is not counted).
            for variant in variants:
                warm = await throughput_run(
                    variant, workdir, args.warmup_orders, args.concurrency, args.processes
                )
                print(f"warm-up run of {variant.label} (not counted): {warm}", flush=True)
        for n in range(args.runs):
            # Variants take turns in every run, so a drift of the machine hits them alike.
            for variant in [] if args.skip_throughput else variants:
                figures = await throughput_run(
                    variant, workdir, args.orders, args.concurrency, args.processes
                )
                results[variant.label].tput.append(figures)
                print(f"throughput run {n + 1} of {variant.label}: {figures}", flush=True)
            for rate in [] if args.skip_latency else rates:
                for variant in variants:
                    figures = await latency_run(
                        variant,
                        workdir,
                        rate,
                        args.seconds,
                        args.processes,
                        args.warmup,
                        args.hops,
                    )
                    results[variant.label].lat[rate].append(figures)
                    print(
                        f"latency run {n + 1} of {variant.label} at {rate:.0f}/s: {figures}",
                        flush=True,
                    )
        text = report(args, results, [] if args.skip_latency else rates)
        print(text)
        if not args.no_save:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(text)
    finally:
        for broker in brokers:
            await asyncio.to_thread(broker.stop)
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)
            postgres.remove()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--orders", type=int, default=5000, help="orders per throughput run")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="connections in throughput runs"
    )
    parser.add_argument(
        "--rate", default="500", help="orders/s of the latency runs; several: 500,200"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of a latency run")
    parser.add_argument(
        "--warmup-orders",
        type=int,
        default=20000,
        help="orders of an uncounted throughput run first (warms the brokers' JIT; C2, which "
        "the secure broker runs, takes some 10,000)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds at the same rate before a latency run is measured",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=3,
        help="orderdeck serve --processes (1: API and services in one process)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=PYTHON",
        help="serve with another checkout's interpreter (repeat to compare, interleaved); "
        "default: this one",
    )
    parser.add_argument(
        "--kafka",
        default="plaintext",
        help="plaintext, sasl_ssl, or both (plaintext,sasl_ssl: interleaved): the local "
        "broker's listener serve connects to",
    )
    parser.add_argument(
        "--store",
        default="sqlite",
        help="sqlite, postgres, or both (sqlite,postgres: interleaved): the engine serve stores "
        "in; postgres is a server this script starts",
    )
    parser.add_argument(
        "--bootstrap-servers", help="use this (plaintext) Kafka instead of starting one"
    )
    parser.add_argument(
        "--broker-opts",
        action="append",
        default=[],
        metavar="KIND:LABEL=OPTS",
        help="one more local broker of KIND (plaintext or sasl_ssl) whose JVM runs with OPTS "
        "instead of its JIT/GC defaults (KAFKA_JVM_PERFORMANCE_OPTS), measured as variant "
        "KIND:LABEL; repeat to compare several",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--hops", action="store_true", help="print each latency run's stage-by-stage breakdown"
    )
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main_async(args))


if __name__ == "__main__":
    main()
