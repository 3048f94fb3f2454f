"""Process-wide settings that make the headless ``orderdeck serve`` processes cheaper and steadier.

Three things, all measured with ``bench/pipeline.py`` (see BENCHMARKS.md):

* **The event loop.** ``serve`` spends much of its CPU in the event loop itself: scheduling
  callbacks, reading and writing sockets for HTTP and for Kafka. uvloop (libuv, the loop under
  Node.js) does that work in C. Where it is not installed (Windows) asyncio's loop is used.
* **The garbage collector.** Objects that live for the whole process (modules, the app,
  Kafka clients) made every full collection walk hundreds of thousands of objects: pauses of
  100+ ms that stalled every request in flight. After start-up they are moved out of the
  collector's sight (``gc.freeze``), and collections are made rarer: the pipeline's own
  garbage is freed by reference counting, and cycles are few.
* **CPU priority.** With ``serve --processes N`` the services run in child processes at the
  lowest priority (nice 19); the API's process keeps the default. When the machine is busy,
  the kernel runs the API (and the Kafka broker it waits on) as soon as a request arrives,
  and the services take the CPU that is left: their work waits in Kafka meanwhile, so a busy
  machine slows order processing, never order taking, and loses nothing. Slower services
  also mean larger batches, which cost less per order. (BENCHMARKS.md, "CPU priority of the
  services children", has the interleaved runs behind nice 19.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import Callable

#: Allocations (minus frees) between young-generation collections; Python's default is 700.
GC_GEN0_THRESHOLD = 50_000
GC_GEN1_THRESHOLD = 20
GC_GEN2_THRESHOLD = 100
#: How much lower the services processes of ``serve --processes`` run than the API's
#: (19 is the lowest priority Linux has; it is capped there).
SERVICES_NICENESS = 19


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


def lower_priority(increment: int) -> None:
    """Make this process yield the CPU to normal-priority ones (call it before any thread
    starts: Linux applies the niceness per thread, and new threads inherit it)."""
    with contextlib.suppress(OSError, AttributeError):  # not on Windows; harmless to skip
        os.nice(increment)
