"""The cost curve: CPU per order and latency of the pipeline from a trickle to saturation.

    .venv/bin/python bench/cost_curve.py [--runs 1] [--rates 20,100,300,500] [--seconds 15]
        [--variant before=../before18/.venv/bin/python --variant after=.venv/bin/python]
        [--broker-opts c2=-XX:+UseSerialGC] [--broker-threads net1io2=1,2]
        [--broker-config noop5s=metadata.max.idle.interval.ms=5000]
        [--launch-rates 20,100] [--profile]

Why a curve: a pipeline's cost per order has a fixed part per batch, per poll and per request,
so at low rates (batches of one record) an order costs many times what it costs flat out. One
run measures, for every variant:

- **steady rates** (``--rates``, open loop, ``--warmup`` seconds first, then ``--seconds``
  measured): cores of the API process, of the services processes (``serve --processes``'s
  children) and of the broker (psutil, user+system), the CPU per order of all of them, the
  API latency (POST to 201) p50/p99 and accepted → final p50/p99 (the 201 to the store's
  final status, same clock);
- **saturation**: ``--saturation-orders`` orders at ``--concurrency`` connections, orders/s
  from the first POST until the last order is final, and the CPU per order;
- **launch** (``--launch-rates``): ``orderdeck launch`` (TUI, API and services in one
  process) in a detached tmux pane against the same broker, at steady rates, its cores and
  latencies the same way, plus the TUI's key → screen latency while the load runs (a screen
  switch key typed into the pane, polled with ``tmux capture-pane`` every 5 ms until the new
  screen shows: an upper bound, the poll included).

The load generator is a child process of this script (``cost_curve.py load``, the minimal
keep-alive client and open-loop schedule of ``bench/pipeline.py``) so its CPU is its own and
is reported as a column. Variants (``--variant LABEL=PYTHON``: another checkout's interpreter;
``--broker-opts LABEL=OPTS``: one more broker whose JVM gets other JIT/GC options;
``--broker-threads LABEL=NETWORK,IO``: one more broker with other request thread counts,
Kafka's defaults being 3,8; ``--broker-config LABEL=KEY=VALUE[,KEY=VALUE]``: one more broker
with other server.properties) are measured interleaved: run i of every variant at a
rate before run i of the next rate, and every run before run i+1. ``--profile`` attaches py-spy
(``pip install py-spy``, not a dependency of orderdeck) to each Python process of the steady
runs during their measured window and prints the top entries by own time and by inclusive time;
the sampling costs CPU itself, so a profiling run's cost figures are marked as such. Results:
bench/results/cost_curve.md (and cost_profile-*.txt with ``--profile``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

import launch as launch_bench
import pipeline
from pipeline import BENCH_STOCK, PRODUCTS, Pool, Serve, Variant, percentile

from orderdeck.process_tuning import event_loop_factory
from orderdeck.store import open_store

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY_SPY = Path(sys.executable).parent / "py-spy"
#: The issue's goals (issue 18), checked in the report.
GOAL_CORES = {100.0: 0.35, 500.0: 1.2}
GOAL_API_P99 = {100.0: 10.0, 500.0: 25.0}
GOAL_FINAL_P99 = {100.0: 100.0, 500.0: 250.0}
GOAL_SATURATION = 1176.0


# ----------------------------------------------------------------------------- load child


async def load_main(args: argparse.Namespace) -> None:
    """The load generator's process: prints ``measuring`` when the measured window opens and
    ``sent`` when it closes, then one JSON line of what it measured."""
    pool = Pool(args.port)
    sent: list[pipeline.Sent] = []
    try:
        if args.orders:
            next_index = 0

            async def worker() -> None:
                nonlocal next_index
                while next_index < args.orders:
                    i = next_index
                    next_index += 1
                    sent.append(await pool.post(i, args.run))

            print("measuring", flush=True)
            cpu, began = time.process_time(), time.monotonic()
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        else:
            began = time.monotonic()
            warm = int(args.rate * args.warmup)
            warming = await pipeline.open_loop(pool, args.run, args.rate, warm, 1_000_000, began)
            print("measuring", flush=True)
            cpu, measured_from = time.process_time(), began + warm / args.rate
            total = int(args.rate * args.seconds)
            tasks = await pipeline.open_loop(pool, args.run, args.rate, total, 0, measured_from)
            sent = list(await asyncio.gather(*tasks))
            began = measured_from
        window = time.monotonic() - began
        cpu = time.process_time() - cpu
        print("sent", flush=True)
        if not args.orders:
            await asyncio.gather(*warming)
    finally:
        pool.close()
    out = {
        "sent": [[s.order_id, s.latency, s.accepted_at] for s in sent],
        "client_cores": cpu / window,
        "achieved": len(sent) / window,
    }
    print(json.dumps(out), flush=True)


# ----------------------------------------------------------------------------- measuring


def cpu_of(procs: dict[str, list[psutil.Process]]) -> dict[str, float]:
    """User+system CPU seconds so far of each group of processes."""
    out: dict[str, float] = {}
    for name, group in procs.items():
        total = 0.0
        for proc in group:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
        out[name] = total
    return out


@dataclass
class Target:
    """What a run loads: serve or launch, its API port, its store, its processes by role."""

    port: int
    finals: Any  # () -> int
    final_times: Any  # () -> dict[str, float]
    procs: dict[str, list[psutil.Process]]
    pane: launch_bench.Pane | None = None


@dataclass
class Profiler:
    """py-spy attached to each Python process of a run for its measured window."""

    out_dir: Path
    label: str
    running: list[tuple[str, Path, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, procs: dict[str, list[psutil.Process]], seconds: float) -> None:
        for role, group in procs.items():
            if role == "broker":
                continue
            for n, proc in enumerate(group):
                path = self.out_dir / f"{self.label}-{role}{n}.raw"
                cmd = [str(PY_SPY), "record", "-p", str(proc.pid), "-d", f"{seconds:.0f}"]
                cmd += ["-r", "50", "-f", "raw", "--nolineno", "--nonblocking", "-o", str(path)]
                spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.running.append((f"{role}{n}", path, spy))

    def finish(self) -> list[tuple[str, Path]]:
        done = []
        for role, path, spy in self.running:
            spy.wait(60)
            if path.exists():
                done.append((role, path))
        return done


def short_frame(frame: str) -> str:
    """``function (/long/path/file.py)`` -> ``function (file.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1]}" if where else name


def top_entries(path: Path, count: int = 12) -> str:
    """The top functions of a py-spy raw (collapsed) profile, by own and by inclusive time."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [short_frame(f) for f in stack.split(";")[1:]]
        if not frames:
            continue
        total += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            inclusive[frame] += int(n)
    if not total:
        return "(no samples)"
    lines = [f"{total} samples; own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(count)]
    lines.append("inclusive:")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(count)]
    return "\n".join(lines)


async def drive(
    target: Target,
    run: str,
    *,
    rate: float = 0.0,
    orders: int = 0,
    seconds: float,
    warmup: float,
    concurrency: int,
    profiler: Profiler | None = None,
    keys: bool = False,
) -> dict[str, float]:
    """One measured run against a started target; the load comes from a child process."""
    pool = Pool(target.port)
    try:
        await pool.post(-1, run)  # the first order: every code path and connection warm
        await pipeline.wait_final(target, 1)  # type: ignore[arg-type]
    finally:
        pool.close()
    cmd = [sys.executable, __file__, "load", str(target.port), "--run", run]
    cmd += ["--rate", str(rate), "--seconds", str(seconds), "--warmup", str(warmup)]
    cmd += ["--orders", str(orders), "--concurrency", str(concurrency)]
    child = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, limit=1 << 26)
    assert child.stdout is not None
    line = await child.stdout.readline()
    if line.strip() != b"measuring":
        raise SystemExit(f"the load generator failed: {line!r}")
    before, began = cpu_of(target.procs), time.monotonic()
    if profiler is not None:
        profiler.start(target.procs, seconds)
    key_task = asyncio.create_task(key_latencies(target.pane, seconds)) if keys else None
    await child.stdout.readline()  # "sent"
    sent_at = time.monotonic()
    after = cpu_of(target.procs)
    result = json.loads(await child.stdout.readline())
    await child.wait()
    expected = len(result["sent"]) + 1 + (0 if orders else int(rate * warmup))
    ended = await pipeline.wait_final(target, expected)  # type: ignore[arg-type]
    figures: dict[str, float] = {}
    if orders:
        # Saturation: the window runs until the last order is final.
        after = cpu_of(target.procs)
        figures["orders_per_s"] = orders / (ended - began)
        window = ended - began
    else:
        window = sent_at - began
    finals = await asyncio.to_thread(target.final_times)
    api = [s[1] * 1000 for s in result["sent"]]
    to_final = [max(0.0, (finals[s[0]] - s[2]) * 1000) for s in result["sent"]]
    count = orders or len(result["sent"])
    cores = {role: (after[role] - before[role]) / window for role in after}
    figures |= {f"{role}_cores": c for role, c in cores.items()}
    total = sum(cores.values())
    figures |= {
        "achieved": result["achieved"] if not orders else figures["orders_per_s"],
        "total_cores": total,
        "ms_per_order": total * window * 1000 / count,
        "client_cores": result["client_cores"],
        "api_p50": percentile(api, 0.5),
        "api_p99": percentile(api, 0.99),
        "final_p50": percentile(to_final, 0.5),
        "final_p99": percentile(to_final, 0.99),
    }
    if key_task is not None:
        lat = await key_task
        figures["key_p50"] = percentile(lat, 0.5)
        figures["key_p99"] = percentile(lat, 0.99)
    return figures


#: Keys that switch screens (README's Keys table) and the name the header then starts with.
KEY_SCREENS = (("6", "Orders"), ("1", "Pipeline"))


async def key_latencies(pane: launch_bench.Pane | None, seconds: float) -> list[float]:
    """Type screen-switch keys into the pane while the load runs; ms until each shows."""
    assert pane is not None
    out: list[float] = []
    deadline = time.monotonic() + seconds - 1
    i = 0
    while time.monotonic() < deadline:
        key, marker = KEY_SCREENS[i % len(KEY_SCREENS)]
        i += 1
        began = time.monotonic()
        await asyncio.to_thread(pane.keys, key)
        while time.monotonic() - began < 5:
            text = await asyncio.to_thread(pane.capture)
            lines = text.splitlines()
            if lines and lines[0].lstrip().startswith(marker):
                out.append((time.monotonic() - began) * 1000)
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)
    return out


# ----------------------------------------------------------------------------- targets


def serve_target(serve: Serve) -> Target:
    api = psutil.Process(serve.proc.pid)
    procs = {"api": [api], "services": api.children(), "broker": []}
    if serve.variant.broker_pid:
        procs["broker"] = [psutil.Process(serve.variant.broker_pid)]
    return Target(serve.port, serve.finals, serve.final_times, procs)


class Launch:
    """``orderdeck launch`` of a variant's checkout in a tmux pane, on a fresh data dir."""

    def __init__(self, variant: Variant, workdir: Path, bootstrap: str) -> None:
        self.data_dir = workdir / f"launch-{uuid.uuid4().hex[:8]}"
        self.data_dir.mkdir(parents=True)
        self.store = open_store(self.data_dir / "orderdeck.db")
        for product in PRODUCTS:
            self.store.set_stock(product, BENCH_STOCK)
        command = launch_bench.launch_command(self.data_dir, bootstrap, variant.cwd)
        self.port = int(command[command.index("--port") + 1])
        self.pane = launch_bench.Pane(command, variant.cwd)
        self.pane.start()
        try:
            self.pane.wait_for(launch_bench.pipeline_green, 120, every=0.1)
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{self.port}/health"
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if json.load(answer).get("status") == "ok":
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("launch's API never became healthy:\n" + self.pane.capture())

    # The store reads of Serve work on any object with a ``store``.
    finals = Serve.finals
    final_times = Serve.final_times

    def target(self, broker_pid: int | None) -> Target:
        assert self.pane.pid is not None
        procs = {"launch": [psutil.Process(self.pane.pid)], "broker": []}
        if broker_pid:
            procs["broker"] = [psutil.Process(broker_pid)]
        return Target(self.port, self.finals, self.final_times, procs, self.pane)

    def stop(self) -> None:
        with contextlib.suppress(TimeoutError, RuntimeError):
            self.pane.quit(30)
        self.pane.close()
        self.store.close()


# ----------------------------------------------------------------------------- report

COLUMNS = (
    ("orders/s", "achieved", "{:.0f}"),
    ("API", "api_cores", "{:.2f}"),
    ("services", "services_cores", "{:.2f}"),
    ("launch", "launch_cores", "{:.2f}"),
    ("broker", "broker_cores", "{:.2f}"),
    ("total cores", "total_cores", "{:.2f}"),
    ("CPU ms/order", "ms_per_order", "{:.2f}"),
    ("API p50/p99 ms", "api_p50/api_p99", "{:.1f}"),
    ("final p50/p99 ms", "final_p50/final_p99", "{:.0f}"),
    ("key p50/p99 ms", "key_p50/key_p99", "{:.0f}"),
    ("load gen cores", "client_cores", "{:.2f}"),
)


def cell(runs: list[dict[str, float]], keys: str, fmt: str) -> str:
    parts = []
    for key in keys.split("/"):
        values = [r[key] for r in runs if key in r]
        if not values:
            return ""
        parts.append(fmt.format(statistics.median(values)))
    return "/".join(parts)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def goals(label: str, rows: dict[tuple[str, str], list[dict[str, float]]]) -> list[str]:
    """One line per goal of the issue for a variant: met or missed, with the figure."""
    out = []

    def runs(load: str) -> list[dict[str, float]]:
        return rows.get((load, label), [])

    for rate, limit in GOAL_CORES.items():
        if r := runs(f"serve {rate:.0f}/s"):
            v = statistics.median(x["total_cores"] for x in r)
            out.append(
                f"{'met' if v <= limit else 'MISSED'}: {rate:.0f}/s ≤ {limit} cores ({v:.2f})"
            )
    low, sat = runs("serve 100/s"), runs("serve saturation")
    if low and sat:
        ratio = statistics.median(x["ms_per_order"] for x in low) / statistics.median(
            x["ms_per_order"] for x in sat
        )
        out.append(f"{verdict(ratio <= 2)}: CPU/order at 100/s ≤ 2x saturation's ({ratio:.1f}x)")
    for rate in GOAL_API_P99:
        if r := runs(f"serve {rate:.0f}/s"):
            good = sum(
                x["api_p99"] <= GOAL_API_P99[rate] and x["final_p99"] <= GOAL_FINAL_P99[rate]
                for x in r
            )
            out.append(
                f"{'met' if good >= 0.9 * len(r) else 'MISSED'}: {rate:.0f}/s API p99 ≤ "
                f"{GOAL_API_P99[rate]:.0f} ms and final p99 ≤ {GOAL_FINAL_P99[rate]:.0f} ms "
                f"in {good}/{len(r)} runs"
            )
    if sat:
        v = statistics.median(x["orders_per_s"] for x in sat)
        out.append(f"{'met' if v >= GOAL_SATURATION else 'MISSED'}: saturation ≥ 1,176/s ({v:.0f})")
    if r := runs("launch 100/s"):
        v = statistics.median(x.get("key_p99", float("nan")) for x in r)
        out.append(f"{verdict(v <= 100)}: launch at 100/s key → screen p99 ≤ 100 ms ({v:.0f})")
    return [f"- {label}: {line}" for line in out]


def report(
    args: argparse.Namespace, rows: dict[tuple[str, str], list[dict[str, float]]], labels: list[str]
) -> str:
    load = f"load average {args.load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Cost curve",
        "",
        f"Command: `python bench/cost_curve.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}; {load}  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; medians of {args.runs} run(s), "
        f"{args.seconds:.0f} s measured after {args.warmup:.0f} s at the same rate; "
        f"variants interleaved run by run."
        + (
            " py-spy sampled every Python process (its cost is in the figures)."
            if args.profile
            else ""
        ),
        "",
    ]
    used = [c for c in COLUMNS if any(cell(r, c[1], c[2]) for r in rows.values())]
    lines.append("| load | variant | " + " | ".join(c[0] for c in used) + " |")
    lines.append("|---|---|" + "---:|" * len(used))
    for (load_name, label), runs in rows.items():
        cells = [cell(runs, keys, fmt) for _, keys, fmt in used]
        lines.append(f"| {load_name} | {label} | " + " | ".join(cells) + " |")
    lines += ["", "Goals (issue 18):"]
    for label in labels:
        lines += goals(label, rows)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="orderdeck-cost-"))
    brokers: list[Any] = []
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    launch_rates = [float(r) for r in args.launch_rates.split(",") if r.strip()]
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    profile_dir = RESULTS / "profiles"
    if args.profile:
        profile_dir.mkdir(parents=True, exist_ok=True)
    try:
        broker_for: dict[str, tuple[tuple[str, ...], int]] = {}
        kinds: list[tuple[str, str | None, dict[str, str] | None]] = [("", None, None)]
        kinds += [(label, opts, None) for label, opts in pipeline.split_labels(args.broker_opts)]
        for label, counts in pipeline.split_labels(args.broker_threads):
            network, io = counts.split(",")
            kinds.append((label, None, {"num.network.threads": network, "num.io.threads": io}))
        for label, pairs in pipeline.split_labels(args.broker_config):
            kinds.append((label, None, dict(pair.split("=", 1) for pair in pairs.split(","))))
        for name, opts, config in kinds:
            broker, kafka_args, pid = await pipeline.start_broker(workdir, False, opts, config)
            brokers.append(broker)
            broker_for[name] = (kafka_args, pid)
        pythons = pipeline.split_labels(args.variant) or [("this", sys.executable)]
        variants = [
            Variant(label if not bname else f"{label}/{bname}", python, *broker_for[bname])
            for label, python in pythons
            for bname in broker_for
        ]
        labels = [v.label for v in variants]
        for variant in variants:
            # A fresh broker (and interpreter caches) runs slower for its first orders.
            if args.warmup_orders:
                serve = Serve(variant, workdir, args.processes)
                try:
                    warm = await drive(
                        serve_target(serve), uuid.uuid4().hex[:6], orders=args.warmup_orders,
                        seconds=0, warmup=0, concurrency=args.concurrency,
                    )  # fmt: skip
                    print(f"warm-up of {variant.label}: {warm['orders_per_s']:.0f}/s", flush=True)
                finally:
                    serve.stop()
        loads: list[tuple[str, float, bool]] = [(f"serve {r:.0f}/s", r, False) for r in rates]
        if args.saturation_orders:
            loads.append(("serve saturation", 0.0, False))
        loads += [(f"launch {r:.0f}/s", r, True) for r in launch_rates]
        for n in range(args.runs):
            for load_name, rate, in_launch in loads:
                for variant in variants:
                    label = variant.label
                    tag = f"{label}-{load_name.replace(' ', '-').replace('/', '')}".replace(
                        "/", "_"
                    )
                    profiler = Profiler(profile_dir, tag) if args.profile and rate else None
                    runner: Any
                    if in_launch:
                        runner = Launch(variant, workdir, variant.kafka_args[1])
                        target = runner.target(variant.broker_pid)
                    else:
                        runner = Serve(variant, workdir, args.processes)
                        target = serve_target(runner)
                    try:
                        figures = await drive(
                            target,
                            uuid.uuid4().hex[:6],
                            rate=rate,
                            orders=0 if rate else args.saturation_orders,
                            seconds=args.seconds,
                            warmup=args.warmup,
                            concurrency=args.concurrency,
                            profiler=profiler,
                            keys=in_launch,
                        )
                    finally:
                        await asyncio.to_thread(runner.stop)
                    rows.setdefault((load_name, label), []).append(figures)
                    shown = {k: round(v, 3) for k, v in figures.items()}
                    print(f"run {n + 1} {load_name} {label}: {shown}", flush=True)
                    if profiler is not None:
                        for role, path in profiler.finish():
                            text = f"## {label} {load_name} {role}\n{top_entries(path)}\n"
                            print(text, flush=True)
                            (profile_dir / f"{tag}-{role}.txt").write_text(text)
        text = report(args, rows, labels)
        print(text)
        if not args.no_save:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / "cost_curve.md").write_text(text)
    finally:
        for broker in brokers:
            await asyncio.to_thread(broker.stop)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    if sys.argv[1:2] == ["load"]:
        parser = argparse.ArgumentParser(prog="cost_curve.py load")
        parser.add_argument("port", type=int)
        parser.add_argument("--run", required=True)
        parser.add_argument("--rate", type=float, default=0.0)
        parser.add_argument("--seconds", type=float, default=15.0)
        parser.add_argument("--warmup", type=float, default=3.0)
        parser.add_argument("--orders", type=int, default=0)
        parser.add_argument("--concurrency", type=int, default=64)
        load_args = parser.parse_args(sys.argv[2:])
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(load_main(load_args))
        return
    if sys.argv[1:2] == ["top"]:
        for path in sys.argv[2:]:
            print(f"## {path}\n{top_entries(Path(path))}")
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rates", default="20,100,300,500", help="steady orders/s, comma list")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--saturation-orders", type=int, default=6000, help="0: no saturation")
    parser.add_argument("--concurrency", type=int, default=64, help="connections at saturation")
    parser.add_argument("--warmup-orders", type=int, default=6000, help="per variant, uncounted")
    parser.add_argument("--launch-rates", default="20,100", help="orderdeck launch rates; '' none")
    parser.add_argument("--processes", type=int, default=3, help="orderdeck serve --processes")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL=PYTHON")
    parser.add_argument("--broker-opts", action="append", default=[], metavar="LABEL=OPTS")
    parser.add_argument("--broker-threads", action="append", default=[], metavar="LABEL=NETWORK,IO")
    parser.add_argument(
        "--broker-config", action="append", default=[], metavar="LABEL=KEY=VALUE[,KEY=VALUE]"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the steady runs")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main_async(args))


if __name__ == "__main__":
    main()
