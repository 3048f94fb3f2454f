"""``orderdeck launch``: the whole system in one terminal, watched by the control center.

The command only parses flags and hands over to the Textual app; Kafka, the API and the
services are started by the runtime *inside* the app so the screen appears at once and shows
start-up progress instead of blocking before the first frame.
"""

from __future__ import annotations

import argparse

from orderdeck.commands.api_access import add_api_access_flags
from orderdeck.commands.common import (
    add_api_port_flag,
    add_brokers_flag,
    add_data_dir_flag,
    add_kafka_flags,
    add_store_flag,
    settings_from_args,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``launch`` sub-command."""
    parser = subparsers.add_parser(
        "launch",
        help="run Kafka, the API and the services with the terminal control center",
        description="Start the order pipeline (local Apache Kafka unless --bootstrap-servers "
        "is given, the order API and the four services) inside the Textual control center.",
    )
    add_kafka_flags(parser)
    add_brokers_flag(parser)
    add_api_port_flag(parser)
    add_api_access_flags(parser)
    add_data_dir_flag(parser)
    add_store_flag(parser)
    parser.add_argument(
        "--keep-kafka",
        action="store_true",
        help="leave the local broker running on quit so the next launch reuses it",
    )
    parser.add_argument(
        "--topic-prefix", default="", help=argparse.SUPPRESS
    )  # tests share one broker
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the control center until the user quits; returns the exit code."""
    from orderdeck.startup_checks import LaunchLock, check_port_free

    settings = settings_from_args(args)
    if args.topic_prefix:
        settings = settings.model_copy(update={"topic_prefix": args.topic_prefix})
    # Before the TUI takes the terminal and before Kafka starts: a second launch on this data
    # dir, or a port somebody holds, is one line on stderr and a non-zero exit.
    with LaunchLock(settings.data_dir):
        check_port_free(settings.api_host, settings.api_port)
        # Imported here: Textual and the runtime are heavy and `orderdeck --help` must stay
        # instant.
        from orderdeck.app import run_app

        return run_app(settings, keep_kafka=bool(args.keep_kafka))
