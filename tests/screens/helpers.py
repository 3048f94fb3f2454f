"""Pilot test helpers: the app on a real runtime, and waits with a deadline (never
sleep-and-hope)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from orderdeck.app import OrderDeckApp
from orderdeck.config import Settings
from orderdeck.events import TopicNames
from orderdeck.faults import BrokerControl
from orderdeck.runtime import Runtime
from orderdeck.screens.startup import StartupScreen
from orderdeck.widgets.runtime_link import RuntimeHooks
from tests.conftest import free_port

SIZE = (120, 36)


async def until(
    pilot: Pilot[Any], condition: Callable[[], bool], what: str, within: float = 30.0
) -> None:
    """Let the app run until ``condition()`` holds; fail naming ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await pilot.pause(0.05)


async def until_ready(pilot: Pilot[Any], within: float = 60.0) -> None:
    """Wait until the runtime started and the start-up screen is gone."""
    app = pilot.app
    assert isinstance(app, OrderDeckApp)
    await until(
        pilot,
        lambda: app.ready and not isinstance(app.screen, StartupScreen),
        "the runtime to start",
        within,
    )
    if app.start_error:
        raise AssertionError(f"start-up failed: {app.start_error}")


@asynccontextmanager
async def running_app(
    kafka_bootstrap: str | None,
    names: TopicNames,
    data_dir: Path,
    *,
    kafka_config: Path | None = None,
    broker_control: BrokerControl | None = None,
) -> AsyncIterator[tuple[OrderDeckApp, Pilot[int], Runtime]]:
    """The app with a real runtime, started; quits it with ``q`` at the end.

    ``kafka_config`` is a client properties file, as ``launch --kafka-config`` takes (pass
    ``kafka_bootstrap=None`` to use the file's address).
    """
    hooks = RuntimeHooks()
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        kafka_config=kafka_config,
        topic_prefix=names.prefix,
        data_dir=data_dir,
        api_port=free_port(),
    )
    runtime = Runtime(
        settings,
        log_handler=hooks.log_buffer,
        on_progress=hooks.on_progress,
        on_change=hooks.on_change,
        broker_control=broker_control,
    )
    app = OrderDeckApp(runtime, hooks=hooks)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until_ready(pilot, within=90)
            yield app, pilot, runtime
            await pilot.press("q")
            await until(pilot, lambda: app.return_code is not None, "the app to quit", 30)
    except BaseException:
        # What the log panel showed: the first thing to read when a test here fails.
        print("\n".join(line.text for line in hooks.log_buffer.since(0)))
        raise
    finally:
        await runtime.stop()  # a no-op after a clean quit; cleans up after a failure


async def reads_settled(pilot: Pilot[Any], within: float = 10.0) -> None:
    """Wait until no store read of any screen is under way and its answer was shown."""
    app = pilot.app

    def idle() -> bool:
        return not any(w.group.startswith("store-read-") and not w.is_finished for w in app.workers)

    await until(pilot, idle, "the screens' store reads", within)
    await pilot.pause()
