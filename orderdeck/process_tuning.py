"""Process-wide settings that make the headless ``orderdeck serve`` processes cheaper and steadier.

Two things, both measured with ``bench/pipeline.py`` (see BENCHMARKS.md):

* **The event loop.** ``serve`` spends much of its CPU in the event loop itself: scheduling
  callbacks, reading and writing sockets for HTTP and for Kafka. uvloop (libuv, the loop under
  Node.js) does that work in C. Where it is not installed (Windows) asyncio's loop is used.
* **The garbage collector.** Objects that live for the whole process (modules, the app,
  Kafka clients) made every full collection walk hundreds of thousands of objects: pauses of
  100+ ms that stalled every request in flight. After start-up they are moved out of the
  collector's sight (``gc.freeze``), and collections are made rarer: the pipeline's own
  garbage is freed by reference counting, and cycles are few.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

#: Allocations (minus frees) between young-generation collections; Python's default is 700.
GC_GEN0_THRESHOLD = 50_000
GC_GEN1_THRESHOLD = 20
GC_GEN2_THRESHOLD = 100


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory for ``asyncio.Runner``: uvloop's loop when available, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency wherever it builds
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def settle_heap() -> None:
    """Freeze what start-up allocated and make collections rarer (call once, when serving)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, GC_GEN1_THRESHOLD, GC_GEN2_THRESHOLD)
