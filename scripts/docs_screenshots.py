"""Regenerate docs/screenshots/*.svg from the real control center with real data.

    .venv/bin/python scripts/docs_screenshots.py            # its own local broker
    .venv/bin/python scripts/docs_screenshots.py --bootstrap-servers 127.0.0.1:9092

Why a script and not the snapshot baselines: those run on a fake runtime with fixed numbers
(so a test can compare them), while the README should show what a user sees: the app on a
real runtime (a private broker in a temporary directory unless ``--bootstrap-servers`` is
given), after the Submit screen's burst generator and a few records the services cannot
decode, so every screen has orders, lag figures, journeys and dead letters to show. Each
screen is waited for (its data on display, with a deadline), then saved through the app's
own screenshot path (``OrderDeckApp.export_screenshot``), headless, at 120x36.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orderdeck.app import OrderDeckApp  # noqa: E402
from orderdeck.config import Settings  # noqa: E402
from orderdeck.defaults import DEFAULT_API_PORT  # noqa: E402
from orderdeck.kafka.connection import KafkaConnection  # noqa: E402
from orderdeck.kafka.local import LocalKafka  # noqa: E402
from orderdeck.kafka.producer import EventProducer  # noqa: E402
from orderdeck.runtime import Runtime  # noqa: E402
from orderdeck.screens.dead_letters import DeadLettersScreen  # noqa: E402
from orderdeck.screens.startup import StartupScreen  # noqa: E402
from orderdeck.widgets.runtime_link import RuntimeHooks  # noqa: E402

SIZE = (120, 36)
#: Records no service can decode: they end in the dead-letter topics (and Recent failures).
POISON = (
    ("order-events", b"{not json"),
    ("payment-events", b'{"type": "Teleport"}'),
)


def free_port(preferred: int) -> int:
    """``preferred`` (the default a user sees) if nobody listens there, else any free port."""
    for wanted in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", wanted))
            except OSError:
                continue
            port: int = sock.getsockname()[1]
            return port
    raise SystemExit("docs_screenshots: no free port")


async def until(pilot: Pilot[Any], condition: Callable[[], bool], what: str, within: float) -> None:
    """Let the app run until ``condition()`` holds; give up naming ``what`` after ``within``."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"docs_screenshots: timed out waiting for {what}")
        await pilot.pause(0.3)


def shows(app: OrderDeckApp, text: str) -> Callable[[], bool]:
    """Whether the screen on display reads ``text`` somewhere (its SVG holds every cell)."""
    return lambda: text in app.export_screenshot()


async def capture(app: OrderDeckApp, pilot: Pilot[Any], out: Path) -> None:
    async def save(name: str, wait_for: str, within: float = 30.0) -> None:
        await until(pilot, shows(app, wait_for), f"{name}: {wait_for}", within)
        await pilot.pause(1.5)  # one more refresh: rates and sparklines settle
        app.save_screenshot(f"{name}.svg", str(out))
        print(f"saved {out / (name + '.svg')}")

    await pilot.press("2")
    await pilot.press("ctrl+b")  # the burst generator: 100 orders, good, declined, no stock
    await until(pilot, shows(app, "100/100"), "the burst to be sent", 60)
    await save("submit", "confirmed")
    await pilot.press("1")
    await save("pipeline", "Recent")
    await pilot.press("3")
    await pilot.press("e")  # from the earliest record, so the tail has rows
    await pilot.press("g", "j")  # the first order (the first record is a poison one)
    await save("topics", "OrderPlaced")
    await pilot.press("d")
    await until(pilot, lambda: isinstance(app.screen, DeadLettersScreen), "Dead letters", 10)
    await save("dead-letters", "JSON")
    await pilot.press("escape")
    await pilot.press("4")
    await save("groups", "LAG-TIME", 60)
    await pilot.press("5")
    await save("services", "REPLAYED")
    await pilot.press("6")
    await save("orders", "Journey")
    await pilot.press("7")
    await save("cluster", "LOG-END")
    await pilot.press("8")
    await until(pilot, shows(app, "poison"), "the chaos actions", 30)
    await pilot.press("enter", "y")  # the first action: crash the order service
    await save("chaos", "recovered", 90)


async def main(bootstrap: str | None, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="orderdeck-docs-") as scratch:
        work = Path(scratch)
        broker = None
        if bootstrap is None:
            broker = LocalKafka(work / "kafka", port=free_port(9092))
            await asyncio.to_thread(broker.start)
            bootstrap = broker.bootstrap_servers
        try:
            hooks = RuntimeHooks()
            settings = Settings(
                bootstrap_servers=bootstrap,
                data_dir=work / "data",
                api_port=free_port(DEFAULT_API_PORT),
            )
            runtime = Runtime(
                settings,
                log_handler=hooks.log_buffer,
                on_progress=hooks.on_progress,
                on_change=hooks.on_change,
            )
            app = OrderDeckApp(runtime, hooks=hooks, data_dir=work / "data")
            try:
                async with app.run_test(size=SIZE) as pilot:
                    await until(
                        pilot,
                        lambda: app.ready and not isinstance(app.screen, StartupScreen),
                        "the runtime to start",
                        120,
                    )
                    if app.start_error:
                        raise SystemExit(f"docs_screenshots: start-up failed: {app.start_error}")
                    producer = EventProducer(KafkaConnection(bootstrap))
                    await producer.start()
                    try:
                        await producer.send_many([(t, b"poison", v, []) for t, v in POISON])
                    finally:
                        await producer.stop()
                    await capture(app, pilot, out)
                    await pilot.press("q")
                    await until(pilot, lambda: app.return_code is not None, "the app to quit", 30)
            finally:
                await runtime.stop()
        finally:
            if broker is not None:
                await asyncio.to_thread(broker.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", help="a running Kafka (default: a private one)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(args.bootstrap_servers, args.out))
