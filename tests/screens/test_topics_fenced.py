"""A record the API fenced after a 503 reads ``✗ fenced`` in the Topics tail, not as an order.

The fake-runtime test pins the row and the record panel; the real one takes a private broker
away with SIGSTOP (its sockets stay open, so the produce request waits inside it), POSTs an
order that is answered 503, resumes the broker and waits for the dead attempt's record, which
the idempotent producer still delivers, to arrive in the tail marked as fenced.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from orderdeck.app import OrderDeckApp
from orderdeck.config import Settings
from orderdeck.kafka.local import LocalKafka
from orderdeck.kafka.tail import TailRecord
from orderdeck.runtime import Runtime
from orderdeck.screens.topics import TopicsScreen
from orderdeck.widgets.record_view import FENCED_MARK, RecordView
from orderdeck.widgets.runtime_link import RuntimeHooks
from tests.conftest import free_port
from tests.screens.fake_runtime import FakeRuntime, order_id
from tests.screens.helpers import SIZE, until, until_ready
from tests.screens.test_snapshots import deck

ACK_TIMEOUT_S = 2.0


def drawn(view: RecordView, record: TailRecord) -> str:
    """The text of ``record``'s line as the view draws it (it must be on screen)."""
    index = view.records().index(record)
    y = index - int(view.scroll_offset.y)
    assert 0 <= y < view.size.height, f"record {index} is not on screen"
    return view.render_line(y).text


async def topics_screen(pilot: Pilot[Any]) -> TopicsScreen:
    await pilot.press("3")
    await until(pilot, lambda: isinstance(pilot.app.screen, TopicsScreen), "the Topics screen")
    screen = pilot.app.screen
    assert isinstance(screen, TopicsScreen)
    await until(pilot, lambda: screen.tail_ready, "the tail to be positioned")
    return screen


async def test_a_fenced_record_is_marked_in_its_row_and_its_panel() -> None:
    runtime = FakeRuntime()
    # Record 30 (the newest, so on screen and selected) is an attempt the desk fenced.
    runtime.fenced.add("0a0b0c0d-0000-4000-8000-000000000030", order_id(30))
    # Another attempt at order 29 was fenced; record 29 itself is a different event.
    runtime.fenced.add("0a0b0c0d-0000-4000-8000-999999999999", order_id(29))
    app = deck(runtime)
    async with app.run_test(size=SIZE) as pilot:
        await until_ready(pilot)
        screen = await topics_screen(pilot)
        view = screen.query_one(RecordView)
        await until(pilot, lambda: view.shown == 30, "the fake tail's records")
        records = view.records()
        assert FENCED_MARK in drawn(view, records[-1])
        assert FENCED_MARK not in drawn(view, records[-2])
        assert FENCED_MARK not in drawn(view, records[-3])
        panel = screen.query_one("#record-json", Static)
        await until(pilot, lambda: "fenced" in str(panel.render()), "the record panel")
        assert "no order was made" in str(panel.render())
        await pilot.press("up")
        await until(pilot, lambda: "fenced" not in str(panel.render()), "the next record")


@pytest.mark.timeout(240)
async def test_an_order_refused_with_503_shows_fenced_when_its_record_arrives_late(
    extra_kafka: LocalKafka, tmp_path: Path
) -> None:
    status = extra_kafka.status()
    assert status is not None
    hooks = RuntimeHooks()
    settings = Settings(
        bootstrap_servers=extra_kafka.bootstrap_servers,
        data_dir=tmp_path / "data",
        api_port=free_port(),
    )
    runtime = Runtime(
        settings,
        log_handler=hooks.log_buffer,
        on_progress=hooks.on_progress,
        on_change=hooks.on_change,
        ack_timeout=ACK_TIMEOUT_S,
    )
    app = OrderDeckApp(runtime, hooks=hooks)
    async with app.run_test(size=SIZE) as pilot:
        await until_ready(pilot, within=90)
        screen = await topics_screen(pilot)
        view = screen.query_one(RecordView)
        async with httpx.AsyncClient(base_url=runtime.api_url, timeout=30) as client:
            os.kill(status.pid, signal.SIGSTOP)
            try:
                refused = await client.post(
                    "/api/v1/orders",
                    json={"customerId": "ghost", "productId": "sku-mouse", "quantity": 1},
                )
            finally:
                os.kill(status.pid, signal.SIGCONT)
            assert refused.status_code == 503, refused.text
            assert len(runtime.fenced) == 1

            def ghost() -> TailRecord | None:
                for record in view.records():
                    if b'"ghost"' in record.value:
                        return record
                return None

            await until(pilot, lambda: ghost() is not None, "the fenced record in the tail", 90)
            accepted = await client.post(
                "/api/v1/orders",
                json={"customerId": "alive", "productId": "sku-mouse", "quantity": 1},
            )
            assert accepted.status_code == 201, accepted.text
            alive_id = accepted.json()["event"]["id"]
            await until(
                pilot,
                lambda: any(r.order_id == alive_id for r in view.records()),
                "the accepted order in the tail",
            )
        dead = ghost()
        assert dead is not None
        assert runtime.fenced.has_event(json.loads(dead.value)["eventId"])
        alive = next(r for r in view.records() if r.order_id == alive_id)
        assert FENCED_MARK in drawn(view, dead)
        assert FENCED_MARK not in drawn(view, alive)
        assert await runtime.store.run(runtime.store.get_order, dead.order_id or "") is None
        await pilot.press("q")
