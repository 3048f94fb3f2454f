"""While Kafka is away: two log lines (start, end) instead of a flood, and no green lies.

Its own broker (stopped and started again under the test), a real Runtime with the services
and the API, and a real logging handler collecting what a terminal or the log panel would get.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from orderdeck.config import Settings
from orderdeck.kafka.local import LocalKafka
from orderdeck.runtime import Runtime
from tests.api.conftest import wait_for
from tests.api.serve_process import free_port

pytestmark = pytest.mark.timeout(240)


class Collected(logging.Handler):
    """Every record that got through the handler's filters."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, text: str) -> list[str]:
        return [r.getMessage() for r in self.records if text in r.getMessage()]


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[LocalKafka]:
    kafka = LocalKafka(tmp_path / "broker", port=free_port())
    await asyncio.to_thread(kafka.start)
    try:
        yield kafka
    finally:
        await asyncio.to_thread(kafka.stop)


async def test_an_outage_logs_one_line_each_way_and_shows_no_green_services(
    broker: LocalKafka, tmp_path: Path
) -> None:
    collected = Collected()
    settings = Settings(
        bootstrap_servers=broker.bootstrap_servers, api_port=0, data_dir=tmp_path / "data"
    )
    runtime = Runtime(settings, log_handler=collected)
    await runtime.start()
    try:
        await wait_for(
            lambda: runtime.status().total_lag == 0, within=20, what="a first lag figure"
        )
        await asyncio.to_thread(broker.stop)
        await wait_for(
            lambda: runtime.status().kafka == "unreachable",
            within=20,
            what="the runtime to notice the outage",
        )
        status = runtime.status()
        assert status.total_lag is None
        assert {s.state for s in status.services} == {"waiting"}, status.services
        async with httpx.AsyncClient(base_url=runtime.api_url, timeout=10) as client:
            health = (await client.get("/health")).json()
        assert health["status"] == "degraded"
        assert {s["state"] for s in health["services"]} == {"waiting"}
        assert {s["lag"] for s in health["services"]} == {None}
        assert health["totalDeadLetters"] is None
        # Let the clients retry for a while: that is when aiokafka floods.
        await asyncio.sleep(8)
        await asyncio.to_thread(broker.start)
        await wait_for(
            lambda: runtime.status().kafka == "running", within=60, what="Kafka to answer again"
        )
        await wait_for(
            lambda: {s.state for s in runtime.status().services} == {"running"},
            within=60,
            what="the services to run again",
        )
    finally:
        await runtime.stop()
    assert len(collected.lines("is unreachable")) == 1, collected.lines("Kafka")
    [ended] = collected.lines("answers again after")
    held = int(re.search(r"\((\d+) connection errors held back\)", ended).group(1))  # type: ignore[union-attr]
    assert held > 0, ended  # there was a flood to hold back
    leaked = [r for r in collected.records if r.name.startswith("aiokafka")]
    assert len(leaked) <= 3, [r.getMessage() for r in leaked]
