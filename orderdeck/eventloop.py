"""Which asyncio event loop the headless processes run on.

``orderdeck serve`` spends much of its CPU in the event loop itself: scheduling callbacks,
reading and writing sockets for HTTP and for Kafka. uvloop (libuv, the loop under Node.js)
does that work in C, so the same pipeline needs noticeably less CPU per order. Where uvloop
is not installed (Windows) the standard loop is used; nothing else depends on the choice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory for ``asyncio.Runner``: uvloop's loop when available, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency wherever it builds
        return asyncio.new_event_loop
    return uvloop.new_event_loop
