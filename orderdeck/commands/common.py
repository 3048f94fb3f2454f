"""Flags and settings shared by the sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from orderdeck.commands.api_access import api_access_values
from orderdeck.defaults import DEFAULT_API_PORT, DEFAULT_DATA_DIR, env_default
from orderdeck.errors import OrderdeckError

if TYPE_CHECKING:
    from orderdeck.config import Settings
    from orderdeck.kafka.connection import KafkaConnection


def add_kafka_flags(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap-servers`` and ``--kafka-config``: an external cluster and how to reach it;
    without either orderdeck uses its local broker."""
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        default=env_default("BOOTSTRAP_SERVERS"),
        help="Kafka cluster to use (env ORDERDECK_BOOTSTRAP_SERVERS; overrides the "
        "--kafka-config file's bootstrap.servers); default: the local broker of --data-dir",
    )
    config = env_default("KAFKA_CONFIG")
    parser.add_argument(
        "--kafka-config",
        type=Path,
        metavar="FILE",
        default=Path(config) if config else None,
        help="client properties file with librdkafka's names, as for `kcat -F` "
        "(security.protocol, sasl.*, ssl.*; env ORDERDECK_KAFKA_CONFIG)",
    )


def add_brokers_flag(parser: argparse.ArgumentParser) -> None:
    """``--brokers 1|3``: how many local brokers to run (only without an external cluster)."""
    parser.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        default=None,
        help="local brokers to run: 3 is a real three-broker KRaft cluster (replication "
        "factor 3, min.insync.replicas=2); default: as the data dir was set up, else 1",
    )


def kafka_to_inspect(args: argparse.Namespace) -> KafkaConnection:
    """The flags' cluster, else the data dir's local broker if it is running.

    Inspection commands never start a broker: watching must not change what is watched. A
    secure local broker is reached with its ``client.properties`` (SASL_SSL).
    """
    from orderdeck.kafka.connection import KafkaConnection, load_properties

    if getattr(args, "kafka_config", None) is not None:
        return load_properties(args.kafka_config, getattr(args, "bootstrap_servers", None))
    if getattr(args, "bootstrap_servers", None):
        return KafkaConnection(str(args.bootstrap_servers))
    from orderdeck.kafka.local import LocalKafka
    from orderdeck.kafka.local_cluster import LocalCluster

    cluster = LocalCluster.load(args.data_dir)
    if cluster is not None and cluster.is_running():
        return cluster.connection()
    local = LocalKafka(args.data_dir)
    if local.status() is None:
        raise OrderdeckError(
            "local Kafka is not running; start it with `orderdeck kafka start` "
            "or pass --bootstrap-servers"
        )
    return local.connection()  # the port it really listens on, and its security


def add_data_dir_flag(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``: where the local broker, its logs and (by default) the SQLite store live."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env_default("DATA_DIR", str(DEFAULT_DATA_DIR)) or DEFAULT_DATA_DIR),
        help="directory for local state (env ORDERDECK_DATA_DIR; default: data)",
    )


def add_store_flag(parser: argparse.ArgumentParser) -> None:
    """``--store URL``: where the state lives (default: the data dir's SQLite file)."""
    parser.add_argument(
        "--store",
        metavar="URL",
        default=env_default("STORE"),
        help="the store: sqlite:///path or postgresql://user:password@host:port/db "
        "(env ORDERDECK_STORE, the place for a password; default: <data-dir>/orderdeck.db)",
    )


def add_api_port_flag(parser: argparse.ArgumentParser) -> None:
    """``--port``: the order API's TCP port (on ``--host``)."""
    parser.add_argument(
        "--port",
        type=int,
        default=int(env_default("PORT", str(DEFAULT_API_PORT)) or DEFAULT_API_PORT),
        help="order API port (env ORDERDECK_PORT; default: 3000)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Build Settings from whichever of the common flags a command defines.

    A Kafka config file is read here once, so a bad one is reported before anything starts.
    """
    from orderdeck.config import Settings  # pydantic is imported only when a command runs

    values: dict[str, object] = {}
    if getattr(args, "bootstrap_servers", None):
        values["bootstrap_servers"] = args.bootstrap_servers
    if getattr(args, "kafka_config", None) is not None:
        values["kafka_config"] = args.kafka_config
    if getattr(args, "data_dir", None) is not None:
        values["data_dir"] = args.data_dir
    if getattr(args, "brokers", None) is not None:
        values["local_brokers"] = args.brokers
    if getattr(args, "port", None) is not None:
        values["api_port"] = args.port
    kafka_port = env_default("KAFKA_PORT")
    if kafka_port is not None:  # the local broker's port, as for ``orderdeck kafka start``
        if not kafka_port.isdigit() or not 0 < int(kafka_port) < 65536:
            raise OrderdeckError(f"ORDERDECK_KAFKA_PORT must be a port number, not {kafka_port!r}")
        values["kafka_port"] = int(kafka_port)
    if getattr(args, "store", None):
        from orderdeck.store import check_backend, parse_store_url

        store = parse_store_url(args.store)
        check_backend(store)  # a missing backend is one line now, not after Kafka started
        values["store"] = store
    values.update(api_access_values(args))
    settings = Settings.model_validate(values)
    settings.kafka_connection()
    if hasattr(args, "store"):
        from orderdeck.store import check_reachable

        check_reachable(settings.store_url)  # no server or a wrong password: one line, first
    return settings
