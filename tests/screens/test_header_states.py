"""The header's services summary names the worst state a service is in, ``waiting`` included
(a service stuck behind the database or cut off from Kafka is not ``degraded`` in general)."""

from __future__ import annotations

from dataclasses import replace

from tests.screens.fake_runtime import FakeRuntime
from tests.screens.helpers import until_ready
from tests.screens.test_snapshots import deck


def _set(runtime: FakeRuntime, name: str, state: str) -> None:
    statuses = runtime.supervisor._statuses
    statuses[name] = replace(statuses[name], state=state)


async def test_the_header_names_the_worst_service_state() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        header = app.header_info()
        assert header is not None
        assert header.services == "running 4/4"
        _set(runtime, "payment", "waiting")
        header = app.header_info()
        assert header is not None
        assert header.services == "waiting 3/4"
        _set(runtime, "order", "failed")
        header = app.header_info()
        assert header is not None
        assert header.services == "failed 2/4"
