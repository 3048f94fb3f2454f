"""What does a Topics tail cost while another screen is shown? (issue 14 item 5, hidden screen)

    .venv/bin/python bench/topics_hidden_cpu.py [--rate 2000] [--seconds 10] [--runs 2]
        [--root CHECKOUT ...]

A headless control center (Textual's ``run_test``, rendering on) over the test suite's fake
runtime, whose tail hands over ``--rate`` records per second (fresh offsets and timestamps,
the fake's 330-byte OrderPlaced values), so only the UI's share is measured: no broker, no
services. Each batch comes partition after partition (as ``getmany`` returns them) with the
records' times interleaved across partitions, which the view's merge by time has to sort out.
Three states, each for ``--seconds``, in a fresh child process per state and run
(so every ``--root`` checkout imports its own code), interleaved run by run:

- **shown**: the Topics screen follows the tail;
- **hidden**: the Pipeline screen is shown while the tail keeps pulling; afterwards the
  Topics screen is shown again (a key posted as a terminal would) and the time until it is
  the current screen and its view holds the newest record is taken (the catch-up);
- **idle**: the Pipeline screen with no tail traffic (rate 0), the floor.

Printed: the child's CPU time (``time.process_time``) over the measured seconds as a share of
one core, records received, and the catch-up time. ``--root`` names other checkouts (e.g. an
export of ``main`` before the change) to compare; the default is this one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATES = ("shown", "hidden", "idle")


def child(root: Path, state: str, rate: int, seconds: float) -> dict[str, Any]:
    """One measurement inside this process, with ``root``'s code (see the module docstring)."""
    sys.path.insert(0, str(root))
    from orderdeck.screens.topics import TopicsScreen
    from orderdeck.widgets.record_view import RecordView
    from tests.screens.fake_runtime import FakeRuntime, FakeTail, _record
    from tests.screens.helpers import until, until_ready
    from tests.screens.test_snapshots import deck

    class RateTail(FakeTail):
        """Hands over ``rate`` records per second, each with its own offset and time."""

        def __init__(self, topics: Any, count: int) -> None:
            super().__init__(topics, 0)
            self._pool = [_record(topics[0], n) for n in range(1, 301)]
            self._next = 0
            self._began = time.monotonic()
            self._began_ms = int(time.time() * 1000)

        async def next_batch(self, max_records: int = 500, timeout_ms: int = 200) -> list[Any]:
            await asyncio.sleep(0.02)
            if rate == 0:
                return []
            due = int((time.monotonic() - self._began) * rate)
            count = min(max_records, due - self._next)
            batch = []
            for _ in range(count):
                n = self._next
                template = self._pool[n % len(self._pool)]
                at = self._began_ms + n * 1000 // rate
                batch.append(replace(template, offset=n, timestamp_ms=at, partition=n % 3))
                self._next += 1
            # As a consumer's getmany hands them over: partition after partition.
            return sorted(batch, key=lambda record: record.partition)

    class RateRuntime(FakeRuntime):
        def open_tail(self, topics: Any, from_beginning: bool) -> Any:
            tail = RateTail(topics, 0)
            self.tails.append(tail)
            return tail

    async def measure() -> dict[str, Any]:
        app = deck(RateRuntime())
        async with app.run_test(size=(120, 36)) as pilot:
            await until_ready(pilot)
            await pilot.press("3")
            await until(pilot, lambda: isinstance(app.screen, TopicsScreen), "Topics")
            topics = app.screen
            assert isinstance(topics, TopicsScreen)
            view = topics.query_one(RecordView)
            await until(pilot, lambda: topics.tail_ready, "the tail")
            if state != "shown":
                await pilot.press("1")
                await until(pilot, lambda: not topics.is_current, "the Pipeline screen")
            await asyncio.sleep(1.0)  # settle
            tail = app.runtime.tails[-1]  # type: ignore[attr-defined]
            first = tail._next
            cpu, wall = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            received = tail._next - first
            catch_up_ms = None
            if state == "hidden":
                began = time.monotonic()
                newest = tail._next - 1
                # Posted like a terminal's key (Pilot.press would also wait for the app to
                # go idle, which a 2,000/s tail never lets it do before its 2 s limit).
                app.simulate_key("3")
                deadline = began + 30
                while True:
                    shown = topics.is_current and view.records()
                    if shown and view.records()[-1].offset >= newest:
                        break
                    if time.monotonic() > deadline:
                        raise AssertionError("the view did not catch up within 30 s")
                    await asyncio.sleep(0.001)
                catch_up_ms = (time.monotonic() - began) * 1000
            import orderdeck

            return {
                "code": str(Path(orderdeck.__file__).parent),
                "state": state,
                "cpu_share": cpu / wall,
                "received_per_s": received / wall,
                "catch_up_ms": catch_up_ms,
            }

    return asyncio.run(measure())


def run_child(python: str, root: Path, state: str, rate: int, seconds: float) -> dict[str, Any]:
    command = [
        python,
        str(Path(__file__).resolve()),
        "--child",
        state,
        "--root",
        str(root),
        "--rate",
        str(0 if state == "idle" else rate),
        "--seconds",
        str(seconds),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=root)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--root", type=Path, action="append", help="checkouts to compare")
    parser.add_argument("--states", nargs="+", choices=STATES, default=list(STATES))
    parser.add_argument("--child", choices=STATES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    roots: list[Path] = args.root or [ROOT]
    if args.child:
        print(json.dumps(child(roots[0], args.child, args.rate, args.seconds)))
        return 0
    python = sys.executable
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.runs):
        for state in args.states:
            for root in roots:
                result = run_child(python, root, state, args.rate, args.seconds)
                results.setdefault((root.name, state), []).append(result)
                print(f"{root.name:>12} {state:>6}: {result}", file=sys.stderr)
    print(f"\n{args.rate} records/s, {args.seconds:g} s per state, n={args.runs} (median)\n")
    print("| checkout | state | CPU, share of a core | received/s | catch-up on showing |")
    print("|---|---|---:|---:|---:|")
    for (name, state), runs in results.items():
        cpu = statistics.median(r["cpu_share"] for r in runs)
        got = statistics.median(r["received_per_s"] for r in runs)
        catch = [r["catch_up_ms"] for r in runs if r["catch_up_ms"] is not None]
        catch_text = f"{statistics.median(catch):.0f} ms" if catch else ""
        print(f"| {name} | {state} | {cpu:.1%} | {got:,.0f} | {catch_text} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
