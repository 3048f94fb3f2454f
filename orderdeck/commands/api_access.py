"""Flags for where the order API listens and who may use it: ``--host``, the token, hosts.

``orderdeck orders`` takes the same token flags, to send the token to a guarded API.

A token given as ``--api-token`` is visible to every user of the machine in ``ps``; the
environment (``ORDERDECK_API_TOKEN``) or a file (``--api-token-file``, readable by its owner
only) keeps it private. The flags win over the environment. The token is never printed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from orderdeck.defaults import DEFAULT_API_HOST, ENV_PREFIX, env_default


def add_api_access_flags(parser: argparse.ArgumentParser) -> None:
    """``--host``, ``--api-token``, ``--api-token-file`` and ``--allowed-hosts``."""
    parser.add_argument(
        "--host",
        metavar="ADDR",
        default=env_default("HOST", DEFAULT_API_HOST),
        help="address the order API listens on (env ORDERDECK_HOST; default: 127.0.0.1); "
        "any other than loopback needs an API token",
    )
    add_api_token_flags(parser)
    parser.add_argument(
        "--allowed-hosts",
        metavar="LIST",
        default=env_default("ALLOWED_HOSTS", ""),
        help="comma-separated Host header values the API answers besides 127.0.0.1, "
        "localhost, [::1] and --host, with or without :port; * answers any "
        "(env ORDERDECK_ALLOWED_HOSTS)",
    )


def add_api_token_flags(parser: argparse.ArgumentParser) -> None:
    """``--api-token-file`` and ``--api-token`` (one of them; env ORDERDECK_API_TOKEN)."""
    token = parser.add_mutually_exclusive_group()
    token.add_argument(
        "--api-token-file",
        metavar="FILE",
        type=Path,
        help="file whose first line is the bearer token every API route but GET /health "
        "requires (env ORDERDECK_API_TOKEN_FILE)",
    )
    token.add_argument(
        "--api-token",
        metavar="TOKEN",
        help="the API token itself; visible to other users in ps: prefer the env "
        "ORDERDECK_API_TOKEN or --api-token-file",
    )


def api_token_from_args(args: argparse.Namespace) -> str | None:
    """The token of ``--api-token``, ``--api-token-file`` or the environment, checked."""
    from orderdeck.api_guard import check_token, read_token_file

    token: str | None = None
    if args.api_token is not None:
        token = args.api_token
    elif args.api_token_file is not None:
        token = read_token_file(args.api_token_file)
    elif os.environ.get(ENV_PREFIX + "API_TOKEN"):
        token = os.environ[ENV_PREFIX + "API_TOKEN"]
    elif os.environ.get(ENV_PREFIX + "API_TOKEN_FILE"):
        token = read_token_file(Path(os.environ[ENV_PREFIX + "API_TOKEN_FILE"]))
    return None if token is None else check_token(token)


def api_access_values(args: argparse.Namespace) -> dict[str, object]:
    """The Settings fields these flags set (none when a command does not define them).

    Refuses (ApiAccessError) an API beyond loopback without a token before anything starts.
    """
    from orderdeck.api_guard import require_token

    if not hasattr(args, "host"):
        return {}
    host = args.host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # uvicorn binds the bare IPv6 address
    token = api_token_from_args(args)
    if not getattr(args, "no_api", False):
        require_token(host, token)
    hosts = tuple(h.strip() for h in args.allowed_hosts.split(",") if h.strip())
    return {"api_host": host, "api_token": token, "allowed_hosts": hosts}
