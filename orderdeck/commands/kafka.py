"""``orderdeck kafka``: install, start, stop and inspect the local Apache Kafka, list topics.

Every sub-command prints what it did in plain lines; ``start`` ends with the bootstrap
address alone on its last line so scripts can take it with ``tail -n1``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import TYPE_CHECKING

from orderdeck.commands import kafka_describe
from orderdeck.commands.common import (
    add_brokers_flag,
    add_data_dir_flag,
    add_kafka_flags,
    kafka_to_inspect,
)
from orderdeck.defaults import DEFAULT_KAFKA_PORT, env_default
from orderdeck.errors import OrderdeckError

if TYPE_CHECKING:
    from orderdeck.kafka.local import LocalKafka
    from orderdeck.kafka.local_cluster import LocalCluster


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``kafka`` with its sub-commands."""
    parser = subparsers.add_parser(
        "kafka",
        help="manage the local Apache Kafka (install, start, stop, status, topics, describe)",
        description="Run a real single-node Apache Kafka (KRaft) for orderdeck, without Docker.",
    )
    actions = parser.add_subparsers(dest="kafka_command", metavar="ACTION", required=True)

    install = actions.add_parser(
        "install", help="resolve Kafka's jars with Maven into the cache (once)"
    )
    install.set_defaults(func=run_install)

    start = actions.add_parser(
        "start", help="start the broker in the background and create the pipeline topics"
    )
    _add_port_flag(start)
    add_data_dir_flag(start)
    start.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for readiness (default: 90)"
    )
    start.add_argument(
        "--secure",
        action="store_true",
        help="listen with SASL_SSL (SCRAM-SHA-512, a generated CA and certificate) and write "
        "<data-dir>/kafka/client.properties for orderdeck and `kcat -F`; the data dir stays "
        "secure on later starts",
    )
    add_brokers_flag(start)
    start.set_defaults(func=run_start)

    stop = actions.add_parser("stop", help="shut the local broker down cleanly")
    add_data_dir_flag(stop)
    stop.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait after SIGTERM before SIGKILL (default: 30)",
    )
    stop.set_defaults(func=run_stop)

    status = actions.add_parser("status", help="show the local broker (exit 1 if not running)")
    add_data_dir_flag(status)
    status.set_defaults(func=run_status)

    topics = actions.add_parser(
        "topics", help="create (if missing) and list the pipeline topics with end offsets"
    )
    add_kafka_flags(topics)
    add_data_dir_flag(topics)
    topics.set_defaults(func=run_topics)
    kafka_describe.add_parser(actions)


def _add_port_flag(parser: argparse.ArgumentParser) -> None:
    default = int(env_default("KAFKA_PORT", str(DEFAULT_KAFKA_PORT)) or DEFAULT_KAFKA_PORT)
    parser.add_argument(
        "--port",
        type=_port,
        default=default,
        help=f"broker port on 127.0.0.1 (env ORDERDECK_KAFKA_PORT; default: {default})",
    )


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65534:  # the controller may need port + 1
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65534, not {value}")
    return value


def _quiet_client_logs() -> None:
    """Keep aiokafka's connection warnings off the terminal: failures surface as one error."""
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    logging.getLogger("aiokafka").propagate = False


def _local(args: argparse.Namespace) -> LocalKafka:
    from orderdeck.kafka.local import LocalKafka

    return LocalKafka(
        args.data_dir,
        getattr(args, "port", DEFAULT_KAFKA_PORT),
        secure=getattr(args, "secure", False),
    )


def run_install(args: argparse.Namespace) -> int:
    """Install the jars (a no-op when the cache is complete)."""
    from orderdeck.kafka.install import (
        KAFKA_VERSION,
        install,
        is_installed,
        kafka_home_libs,
        libs_dir,
    )

    home = kafka_home_libs()
    if home is not None:
        print(f"Using Apache Kafka from KAFKA_HOME: {home}")
        return 0
    if is_installed():
        print(f"Apache Kafka {KAFKA_VERSION} is already installed: {libs_dir()}")
        return 0
    print(f"Installing Apache Kafka {KAFKA_VERSION} with Maven (first time only)...", flush=True)
    began = time.monotonic()

    def still_working(elapsed: float) -> None:
        print(f"  still resolving the jars with Maven ({elapsed:.0f} s so far)...", flush=True)

    libs = install(progress=still_working)
    print(f"Installed Apache Kafka {KAFKA_VERSION} in {time.monotonic() - began:.1f} s: {libs}")
    return 0


def run_start(args: argparse.Namespace) -> int:
    """Start (or find) the broker, create the topics, print the bootstrap address last."""
    from orderdeck.kafka.install import is_installed
    from orderdeck.kafka.local import KAFKA_VERSION
    from orderdeck.kafka.topics import ensure_topics

    _quiet_client_logs()
    cluster = _cluster(args)
    if cluster is not None:
        return _start_cluster(cluster, args)
    kafka = _local(args)
    if not is_installed() and kafka.status() is None:
        print(f"Installing Apache Kafka {KAFKA_VERSION} with Maven (first time only)...")
    if kafka.secure and not args.secure:
        print(f"{kafka.data_dir} was set up with --secure: starting it secure (SASL_SSL).")
    result = kafka.start(timeout=args.timeout)
    if result.already_running:
        print(f"Kafka is already running for {kafka.data_dir} (pid {result.pid}).")
    else:
        print(
            f"Started Apache Kafka {KAFKA_VERSION} (pid {result.pid}) in {result.seconds:.1f} s; "
            f"log: {result.log_path}"
        )
    connection = kafka.connection()
    if connection.uses_sasl:
        print(f"Security: {connection.describe()}; client settings: {kafka.client_properties_path}")
    report = asyncio.run(ensure_topics(connection))
    if report.created:
        print(f"Created topics: {', '.join(report.created)}")
    print(result.bootstrap_servers)
    return 0


def _cluster(args: argparse.Namespace) -> LocalCluster | None:
    """The data dir's three brokers when asked for (``--brokers 3``) or recorded there."""
    from orderdeck.kafka.local_cluster import LocalCluster, local_kafka_for

    port = getattr(args, "port", DEFAULT_KAFKA_PORT)
    chosen = local_kafka_for(args.data_dir, port, getattr(args, "brokers", None))
    return chosen if isinstance(chosen, LocalCluster) else None


def _start_cluster(cluster: LocalCluster, args: argparse.Namespace) -> int:
    from orderdeck.kafka.local import KAFKA_VERSION
    from orderdeck.kafka.local_cluster import NODE_HEAP_OPTS
    from orderdeck.kafka.topics import ensure_topics

    if args.secure:
        raise OrderdeckError("--secure is for the single local broker, not --brokers 3")
    result = cluster.start(timeout=args.timeout)
    if result.already_running:
        print(f"Kafka's {len(cluster.nodes)} brokers already run for {cluster.data_dir}.")
    else:
        print(
            f"Started Apache Kafka {KAFKA_VERSION} on {len(cluster.nodes)} brokers in "
            f"{result.seconds:.1f} s (heap {' '.join(NODE_HEAP_OPTS)} each):"
        )
    for node in cluster.nodes:
        print(
            f"  broker {node.node_id}: {node.bootstrap} (controller port "
            f"{node.controller_port}, pid {node.pid}); log: {node.log_path}"
        )
    report = asyncio.run(ensure_topics(cluster.connection()))
    if report.created:
        print(
            f"Created topics (replication factor 3, min.insync.replicas=2): "
            f"{', '.join(report.created)}"
        )
    print(result.bootstrap_servers)
    return 0


def run_stop(args: argparse.Namespace) -> int:
    """Stop this data dir's broker (or every broker of its cluster) if it runs."""
    cluster = _cluster(args)
    if cluster is not None:
        pids = [(node, node.pid) for node in cluster.nodes]
        if not cluster.stop(timeout=args.timeout):
            print(f"Kafka is not running for {cluster.data_dir}.")
            return 0
        for node, pid in pids:
            if pid is not None:
                print(f"Stopped broker {node.node_id} (pid {pid}) on {node.bootstrap}.")
        return 0
    kafka = _local(args)
    status = kafka.status()
    if status is None or not kafka.stop(timeout=args.timeout):
        print(f"Kafka is not running for {kafka.data_dir}.")
        return 0
    print(f"Stopped Kafka (pid {status.pid}) on {status.bootstrap_servers}.")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print the broker's address, pid, version and uptime; exit 1 when it is not running.

    For a cluster: a line per broker; exit 1 when none runs (some down is still a cluster).
    """
    cluster = _cluster(args)
    if cluster is not None:
        return _cluster_status(cluster)
    kafka = _local(args)
    status = kafka.status()
    if status is None:
        print(f"not running ({kafka.data_dir})")
        return 1
    print(f"bootstrap: {status.bootstrap_servers}")
    print(f"security:  {_security_line(kafka, status.security_protocol)}")
    print(f"pid:       {status.pid}")
    print(f"version:   Apache Kafka {status.version}")
    print(f"uptime:    {_duration(status.uptime)}")
    print(f"data dir:  {status.data_dir}")
    print(f"log:       {status.log_path}")
    return 0


def _cluster_status(cluster: LocalCluster) -> int:
    running = 0
    print(f"bootstrap: {cluster.bootstrap_servers}")
    print(f"data dir:  {cluster.data_dir} (cluster id {cluster.cluster_id})")
    for node in cluster.nodes:
        status = node.status()
        if status is None:
            print(f"broker {node.node_id}:  {node.bootstrap}  down")
            continue
        running += 1
        print(
            f"broker {node.node_id}:  {node.bootstrap}  pid {status.pid}  "
            f"Apache Kafka {status.version}  up {_duration(status.uptime)}  log {node.log_path}"
        )
    print(f"running:   {running} of {len(cluster.nodes)} brokers")
    return 0 if running else 1


def run_topics(args: argparse.Namespace) -> int:
    """Create missing pipeline topics, then list every pipeline topic with end offsets."""
    from orderdeck.kafka.clients import check_connection
    from orderdeck.kafka.topics import describe_topics, ensure_topics

    _quiet_client_logs()
    kafka = kafka_to_inspect(args)

    async def work() -> list[tuple[str, int, list[int]]]:
        await check_connection(kafka)  # a bad password or TLS setting: one line within 15 s
        report = await ensure_topics(kafka)
        infos = await describe_topics(kafka, report.topics)
        return [(info.name, info.partitions, list(info.end_offsets)) for info in infos]

    rows = asyncio.run(work())
    width = max(len(name) for name, _, _ in rows)
    print(f"{'TOPIC':<{width}}  PARTITIONS  END OFFSETS")
    for name, partitions, offsets in rows:
        detail = " ".join(f"{p}:{o}" for p, o in enumerate(offsets))
        print(f"{name:<{width}}  {partitions:>10}  {sum(offsets)} ({detail})")
    return 0


def _security_line(kafka: LocalKafka, protocol: str) -> str:
    """``PLAINTEXT``, or the protocol, mechanism, user and the client settings file."""
    if protocol == "PLAINTEXT":
        return protocol
    from orderdeck.kafka.local import SCRAM_MECHANISM, SCRAM_USER

    return (
        f"{protocol} {SCRAM_MECHANISM} as {SCRAM_USER} "
        f"(client settings: {kafka.client_properties_path})"
    )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
