"""Default values and environment lookup, free of heavy imports.

The command-line parser needs these before anything else runs; keeping them apart from the
pydantic ``Settings`` lets ``orderdeck launch`` draw its first frame without paying for
pydantic's import first.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 3000
DEFAULT_KAFKA_PORT = 9092
DEFAULT_DATA_DIR = Path("data")
ENV_PREFIX = "ORDERDECK_"


def env_default(name: str, default: str | None = None) -> str | None:
    """Read ``ORDERDECK_<name>`` from the environment, falling back to ``default``."""
    value = os.environ.get(ENV_PREFIX + name)
    return value if value else default
