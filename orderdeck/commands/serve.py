"""``orderdeck serve``: the API and the services without the TUI, for shells and deployments.

Several ``serve`` processes on one machine (or many) share the consumer groups, so Kafka
splits the partitions between them; ``--services`` lets a process run only some of them, and
``--processes N`` does the splitting itself: the API here, the services in N-1 children (see
``orderdeck/service_processes.py``).
SIGTERM and SIGINT stop everything cleanly (services commit, the API drains) within seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from orderdeck.commands.api_access import add_api_access_flags
from orderdeck.commands.common import (
    add_api_port_flag,
    add_brokers_flag,
    add_data_dir_flag,
    add_kafka_flags,
    add_store_flag,
    settings_from_args,
)
from orderdeck.errors import OrderdeckError
from orderdeck.process_tuning import (
    SERVICES_NICENESS,
    event_loop_factory,
    lower_priority,
    settle_heap,
)

ALL_SERVICES = ("order", "payment", "inventory", "notification")
#: How long a stop may take before we give up on politeness (the issue asks for <= 5 s).
STOP_DEADLINE_S = 4.5
SUMMARY_EVERY_S = 10.0

log = logging.getLogger("orderdeck.serve")


def register(subparsers: Any) -> None:
    """Add ``serve`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the order API and the services without the TUI",
        description="Run the order API and the four services (or a subset). Without "
        "--bootstrap-servers the local Apache Kafka under --data-dir is started.",
    )
    parser.add_argument(
        "--services",
        type=_service_list,
        default=ALL_SERVICES,
        metavar="LIST",
        help="comma-separated services to run (default: order,payment,inventory,notification)",
    )
    parser.add_argument("--no-api", action="store_true", help="do not serve the order API")
    parser.add_argument(
        "--processes",
        type=_process_count,
        default=1,
        metavar="N",
        help="use N processes: this one serves the API and N-1 run the services "
        "(default: 1, everything in this process; 3 is fastest on 2 cores)",
    )
    parser.add_argument(
        "--exit-with-parent", action="store_true", help=argparse.SUPPRESS
    )  # set on the children of --processes: stop when stdin closes
    parser.add_argument(
        "--events-fd", type=int, default=None, help=argparse.SUPPRESS
    )  # the children of --processes report their service events to the parent on this pipe
    parser.add_argument(
        "--keep-kafka",
        action="store_true",
        help="leave the local Kafka running on exit (the next start reuses it)",
    )
    parser.add_argument(
        "--topic-prefix", default="", help=argparse.SUPPRESS
    )  # tests share one broker
    add_api_port_flag(parser)
    add_api_access_flags(parser)
    add_kafka_flags(parser)
    add_brokers_flag(parser)
    add_data_dir_flag(parser)
    add_store_flag(parser)
    parser.set_defaults(func=run)


class _Narrator:
    """Turns the runtime's change notifications into log lines worth reading.

    Service state changes are logged as they happen (crashes and dead letters are logged by
    the services themselves); order throughput is summarised every SUMMARY_EVERY_S seconds
    while something is happening, instead of a line per order.
    """

    def __init__(self) -> None:
        self.runtime: Any = None
        self._states: dict[str, str] = {}
        self._last_total = 0
        self._last_at = time.monotonic()
        self._last_counts: dict[str, int] | None = None

    def __call__(self) -> None:
        if self.runtime is None or not self.runtime.running:
            return
        status = self.runtime.status()
        for service in status.services:
            before = self._states.get(service.name)
            if before is not None and before != service.state:
                level = logging.WARNING if service.state == "failed" else logging.INFO
                why = f" ({service.last_error})" if service.state == "failed" else ""
                log.log(level, "service %s: %s -> %s%s", service.name, before, service.state, why)
            self._states[service.name] = service.state
        now = time.monotonic()
        if self._last_counts is None:  # what was there before this process started
            self._last_counts = dict(status.status_counts)
            self._last_total = sum(self._last_counts.values())
            return
        if now - self._last_at < SUMMARY_EVERY_S or status.status_counts == self._last_counts:
            return
        total = sum(status.status_counts.values())
        counts = ", ".join(f"{k} {v}" for k, v in sorted(status.status_counts.items()))
        log.info(
            "orders: %d new in %.0f s (%.1f/s); %s; lag %s",
            total - self._last_total,
            now - self._last_at,
            (total - self._last_total) / (now - self._last_at),
            counts,
            "?" if status.total_lag is None else status.total_lag,
        )
        self._last_total, self._last_at = total, now
        self._last_counts = dict(status.status_counts)


def _process_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1 + len(ALL_SERVICES):
        raise argparse.ArgumentTypeError(f"must be an integer in 1..{1 + len(ALL_SERVICES)}")
    return int(text)


def _service_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in ALL_SERVICES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown service {', '.join(unknown)} (choose from {', '.join(ALL_SERVICES)})"
        )
    return tuple(dict.fromkeys(names))


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # aiokafka narrates every rebalance and reconnect at INFO; keep those for -v style debugging.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    if args.exit_with_parent:
        # A services child of ``--processes``: the API process answers clients first.
        lower_priority(SERVICES_NICENESS)
    settings = settings_from_args(args)
    if args.topic_prefix:
        settings = settings.model_copy(update={"topic_prefix": args.topic_prefix})
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(
                _serve(
                    settings,
                    args.services,
                    not args.no_api,
                    args.keep_kafka,
                    handler,
                    processes=args.processes,
                    exit_with_parent=args.exit_with_parent,
                    events_fd=args.events_fd,
                )
            )
    finally:
        root.removeHandler(handler)


async def _serve(
    settings: Any,
    services: Sequence[str],
    with_api: bool,
    keep_kafka: bool,
    handler: logging.Handler,
    *,
    processes: int = 1,
    exit_with_parent: bool = False,
    events_fd: int | None = None,
) -> int:
    from orderdeck.metrics import relay_service_events
    from orderdeck.runtime import Runtime, StartupStep
    from orderdeck.service_processes import ServiceProcesses, split_services, watch_parent

    def progress(step: StartupStep) -> None:
        if step.state in ("done", "failed"):
            level = logging.INFO if step.state == "done" else logging.ERROR
            log.log(level, "%s %s: %s", step.name, step.state, step.message)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if exit_with_parent:
        watch_parent(stop)
    shares = split_services(services, processes - 1) if processes > 1 else []
    narrator = _Narrator()
    runtime = Runtime(
        settings,
        services=() if shares else services,
        monitor=not exit_with_parent,
        # Without the API (``--no-api``, the children of ``--processes``) nothing in the
        # process needs the event loop to stay responsive while a batch commits.
        store_on_loop=not with_api,
        with_api=with_api,
        keep_kafka=keep_kafka,
        log_handler=handler,
        on_progress=progress,
        on_change=narrator,
    )
    narrator.runtime = runtime
    children: ServiceProcesses | None = None
    relay: asyncio.Task[None] | None = None
    try:
        starting = asyncio.create_task(runtime.start())
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting in done:
            starting.result()  # raises a start-up failure
            settle_heap()
            if events_fd is not None:
                relay = asyncio.create_task(
                    relay_service_events(
                        events_fd, runtime.service_events, states=runtime.service_states
                    )
                )
            if shares:
                children = ServiceProcesses(
                    shares,
                    kafka=runtime.kafka,
                    data_dir=settings.data_dir,
                    store=settings.store,
                    topic_prefix=settings.topic_prefix,
                )
                runtime.external_services = children.states
                runtime.external_service_events = children.events.totals
                await children.start()
            api = f", API {runtime.api_url}" if with_api else ""
            log.info(
                "serving: Kafka %s (%s), store %s, services %s%s",
                runtime.bootstrap_servers,
                runtime.kafka.describe(),
                runtime.store.url,  # redacted: the password never shows
                ",".join(services) or "none",
                api,
            )
            await stopping
        else:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        log.info("stopping")
        stopping.cancel()
        return 0
    except OrderdeckError:
        raise
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if children is not None:
            # Before the runtime: the children need Kafka (maybe ours) to commit and leave.
            await children.stop()
        try:
            await asyncio.wait_for(runtime.stop(), STOP_DEADLINE_S)
        except TimeoutError:
            log.error("stop took longer than %.1f s; exiting anyway", STOP_DEADLINE_S)
        if relay is not None:  # after the services stopped: its last report is final
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
        log.info("stopped")
