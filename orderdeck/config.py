"""Settings shared by every command: where Kafka is, where the API listens, where state lives.

Values come from command-line flags first, then ``ORDERDECK_*`` environment variables, then
the defaults below. Everything binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from orderdeck.defaults import (
    DEFAULT_API_HOST,
    DEFAULT_API_PORT,
    DEFAULT_DATA_DIR,
    DEFAULT_KAFKA_PORT,
    ENV_PREFIX,
    env_default,
)
from orderdeck.kafka.connection import KafkaConnection, load_properties
from orderdeck.store.url import StoreURL, default_store_url

__all__ = [
    "DEFAULT_API_HOST",
    "DEFAULT_API_PORT",
    "DEFAULT_DATA_DIR",
    "DEFAULT_KAFKA_PORT",
    "ENV_PREFIX",
    "Settings",
    "env_default",
]


class Settings(BaseModel):
    """Resolved configuration for one orderdeck process."""

    model_config = ConfigDict(frozen=True)

    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers; None means the local broker under data_dir "
        "(or the kafka_config file's bootstrap.servers). Overrides the file's.",
    )
    kafka_config: Path | None = Field(
        default=None,
        description="A client properties file (librdkafka names, as for kcat -F): the "
        "external cluster's address, security protocol and credentials.",
    )
    api_host: str = DEFAULT_API_HOST
    api_port: int = Field(default=DEFAULT_API_PORT, ge=0, le=65535)
    api_token: str | None = Field(
        default=None,
        repr=False,
        exclude=True,
        description="Bearer token every API route but GET /health requires; None: no token.",
    )
    allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="Host header values served besides the loopback names and api_host.",
    )
    data_dir: Path = DEFAULT_DATA_DIR
    store: StoreURL | None = Field(
        default=None,
        exclude=True,  # may carry a password: never part of a dump
        description="Where the state lives (--store); None means <data_dir>/orderdeck.db.",
    )
    kafka_port: int = Field(default=DEFAULT_KAFKA_PORT, ge=1, le=65535)
    partitions: int = Field(default=3, ge=1)
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="Copies of each new topic's partitions; None: 3 on three brokers or more "
        "(with min.insync.replicas=2), else the broker count.",
    )
    local_brokers: int | None = Field(
        default=None,
        description="Brokers of the local Kafka (1 or 3, --brokers); None: as the data dir "
        "was set up (a recorded three-broker cluster keeps being used).",
    )
    topic_prefix: str = Field(
        default="",
        description="Prefix for every topic and group name (tests use it to share a broker).",
    )

    @property
    def uses_local_kafka(self) -> bool:
        """True when orderdeck runs the broker itself (no external cluster was named)."""
        return self.bootstrap_servers is None and self.kafka_config is None

    def kafka_connection(self) -> KafkaConnection:
        """How to reach the cluster: the properties file (``--bootstrap-servers`` overriding
        its address), the named bootstrap servers, or the local broker's port.

        Reads the file on every call; raises KafkaConfigError for a file orderdeck cannot use.
        """
        if self.kafka_config is not None:
            return load_properties(self.kafka_config, self.bootstrap_servers)
        return KafkaConnection(self.bootstrap_servers or f"127.0.0.1:{self.kafka_port}")

    @property
    def store_url(self) -> StoreURL:
        """The store shared by the API and the services: ``--store``, else the data dir's
        SQLite file."""
        return self.store if self.store is not None else default_store_url(self.data_dir)

    @property
    def db_path(self) -> Path:
        """The data dir's default SQLite file (whether or not ``--store`` names another)."""
        return self.data_dir / "orderdeck.db"

    @property
    def api_url(self) -> str:
        """Base URL of the order API (never with the token in it)."""
        return self.api_url_on(self.api_port)

    def api_url_on(self, port: int) -> str:
        """Base URL of the order API on ``port`` (the one bound when api_port is 0)."""
        host = self.api_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address
        return f"http://{host}:{port}"
