"""Flags and settings shared by the sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from orderdeck.commands.api_access import api_access_values
from orderdeck.defaults import DEFAULT_API_PORT, DEFAULT_DATA_DIR, env_default

if TYPE_CHECKING:
    from orderdeck.config import Settings


def add_bootstrap_flag(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap-servers``: an external cluster; without it orderdeck uses its local broker."""
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        default=env_default("BOOTSTRAP_SERVERS"),
        help="Kafka cluster to use (env ORDERDECK_BOOTSTRAP_SERVERS); "
        "default: the local broker of --data-dir",
    )


def add_data_dir_flag(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``: where the local broker, its logs and the SQLite store live."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env_default("DATA_DIR", str(DEFAULT_DATA_DIR)) or DEFAULT_DATA_DIR),
        help="directory for local state (env ORDERDECK_DATA_DIR; default: data)",
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
    """Build Settings from whichever of the common flags a command defines."""
    from orderdeck.config import Settings  # pydantic is imported only when a command runs

    values: dict[str, object] = {}
    if getattr(args, "bootstrap_servers", None):
        values["bootstrap_servers"] = args.bootstrap_servers
    if getattr(args, "data_dir", None) is not None:
        values["data_dir"] = args.data_dir
    if getattr(args, "port", None) is not None:
        values["api_port"] = args.port
    values.update(api_access_values(args))
    return Settings.model_validate(values)
