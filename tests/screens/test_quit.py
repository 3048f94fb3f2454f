"""Quitting the control center leaves nothing behind: no asyncio task and no child process.

The app starts the local Apache Kafka itself here (no bootstrap servers given), as
``orderdeck launch`` does on a laptop, so quitting must also stop that JVM.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from orderdeck.app import OrderDeckApp
from orderdeck.config import Settings
from orderdeck.kafka.local import LocalKafka
from orderdeck.runtime import Runtime
from orderdeck.widgets.runtime_link import RuntimeHooks
from tests.conftest import free_port, java_processes_under
from tests.screens.helpers import until, until_ready


def live_children() -> set[int]:
    """Pids of this process's children that have not exited (zombies excluded)."""
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry.name))
    return found


async def test_quit_stops_the_kafka_it_started_and_leaves_no_task_or_process(
    tmp_path: Path,
) -> None:
    before = live_children()
    hooks = RuntimeHooks()
    kafka_port = free_port()
    settings = Settings(data_dir=tmp_path, kafka_port=kafka_port, api_port=free_port())
    runtime = Runtime(
        settings,
        log_handler=hooks.log_buffer,
        on_progress=hooks.on_progress,
        on_change=hooks.on_change,
    )
    app = OrderDeckApp(runtime, hooks=hooks)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await until_ready(pilot, within=150)
            assert app.runtime.status().kafka == "running"
            assert java_processes_under(tmp_path), "the app should run its own broker"
            assert live_children() - before, "the broker is a child of this process"
            await pilot.press("3")  # a live tail is one more consumer that must close
            await pilot.pause(0.5)
            await pilot.press("q")
            await until(pilot, lambda: app.return_code is not None, "the app to quit", 60)
        assert app.return_code == 0
        assert not LocalKafka(tmp_path, port=kafka_port).is_running()
        assert not java_processes_under(tmp_path)
        assert live_children() <= before
        await asyncio.sleep(0)
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not leftovers, leftovers
    finally:
        await runtime.stop()


async def test_quit_during_start_up_still_stops_the_broker_being_started(tmp_path: Path) -> None:
    hooks = RuntimeHooks()
    kafka_port = free_port()
    settings = Settings(data_dir=tmp_path, kafka_port=kafka_port, api_port=free_port())
    runtime = Runtime(
        settings,
        log_handler=hooks.log_buffer,
        on_progress=hooks.on_progress,
        on_change=hooks.on_change,
    )
    app = OrderDeckApp(runtime, hooks=hooks)
    try:
        async with app.run_test(size=(120, 36)) as pilot:

            def kafka_starting() -> bool:
                steps = getattr(app.screen, "steps", {})
                return "kafka" in steps and steps["kafka"].state == "running"

            await until(pilot, kafka_starting, "the local Kafka to be starting", 30)
            await pilot.press("q")  # the JVM is booting in a thread right now
            await until(pilot, lambda: app.return_code is not None, "the app to quit", 150)
        assert not app.ready
        assert not LocalKafka(tmp_path, port=kafka_port).is_running()
        assert not java_processes_under(tmp_path)
    finally:
        await runtime.stop()
