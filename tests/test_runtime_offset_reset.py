"""An offset reset through the runtime: our own consumers stop, the plan applies, they start
again and replay — and the replay changes nothing in the store, as the official tool confirms."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from orderdeck.events import TopicNames
from orderdeck.kafka.offset_reset import ActiveMembersError, ResetTarget
from orderdeck.orders import OrderRequest
from orderdeck.runtime import Runtime
from tests.api.conftest import wait_for
from tests.commands.test_groups_cli import official_describe
from tests.test_runtime import settings_for

#: The tables the services write: a replay that wrote twice would change one of them.
EFFECT_QUERIES = {
    "orders": "SELECT id, status, amount_cents, refunded_cents, history FROM orders ORDER BY id",
    "payments": "SELECT order_id, kind, amount_cents, event_id FROM payments ORDER BY 1, 2",
    "reservations": "SELECT order_id, outcome, items_json, event_id FROM reservations ORDER BY 1",
    "stock": "SELECT * FROM products ORDER BY 1",
    "notifications": "SELECT order_id, type, event_id FROM notifications ORDER BY 1, 2",
}


def effects(db: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in EFFECT_QUERIES.items()}


@pytest.fixture
async def runtime(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> AsyncIterator[Runtime]:
    running = Runtime(settings_for(kafka_bootstrap, topic_names, tmp_path))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_reset_to_earliest_replays_and_changes_nothing(
    runtime: Runtime, kafka_bootstrap: str, tmp_path: Path
) -> None:
    orders = 20
    for i in range(orders):
        await runtime.submit_order(OrderRequest.single(f"c-{i}", "sku-cable", 1))
    await wait_for(
        lambda: (
            sum(runtime.status().status_counts.values()) == orders
            and runtime.status().status_counts.get("confirmed", 0) == orders
        ),
        what="every order confirmed",
    )
    await wait_for(lambda: runtime.status().total_lag == 0, what="the lag to drain")
    group = next(s.group for s in runtime.status().services if s.name == "payment")
    before = effects(tmp_path / "orderdeck.db")
    assert len(before["payments"]) == orders

    plan = await runtime.preview_offset_reset(group, ResetTarget("earliest"))
    assert plan
    assert all(row.new == 0 for row in plan)
    assert sum((row.current or 0) - row.new for row in plan) == orders  # one event per order
    await runtime.apply_offset_reset(group, plan)

    # The service is back, replays every event (its lag drains again) and writes nothing new.
    async def caught_up_again() -> bool:
        (snapshot,) = [s for s in await runtime.group_snapshots() if s.group == group]
        return bool(snapshot.members) and snapshot.total_lag == 0

    await wait_for(caught_up_again, within=60, what="the payment group to catch up again")
    processed = next(s for s in runtime.status().services if s.name == "payment")
    assert processed.duplicates >= orders
    assert effects(tmp_path / "orderdeck.db") == before
    rows, _ = await official_describe(kafka_bootstrap, group)
    assert rows
    assert all(row[2] == "0" for row in rows.values())  # the LAG column


async def test_a_member_of_another_process_is_refused_and_nothing_stops(
    runtime: Runtime, kafka_bootstrap: str
) -> None:
    group = next(s.group for s in runtime.status().services if s.name == "notification")
    stranger = AIOKafkaConsumer(
        group,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        client_id=f"stranger-{uuid.uuid4().hex[:6]}",
    )
    await stranger.start()
    try:

        async def stranger_joined() -> bool:
            await stranger.getmany(timeout_ms=200)
            (snapshot,) = [s for s in await runtime.group_snapshots() if s.group == group]
            return len(snapshot.members) == 2

        await wait_for(stranger_joined, within=30, what="the stranger to join the group")
        with pytest.raises(ActiveMembersError, match="stranger-"):
            await runtime.preview_offset_reset(group, ResetTarget("earliest"))
        with pytest.raises(ActiveMembersError, match="stranger-"):
            await runtime.apply_offset_reset(group, [])
        status = next(s for s in runtime.status().services if s.name == "notification")
        assert status.state == "running"
    finally:
        await stranger.stop()
