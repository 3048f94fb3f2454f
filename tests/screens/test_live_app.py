"""The control center against the real Kafka and the embedded API, driven like a user would.

Each test starts the whole runtime (topics, API on a free port, the four services) on the
session broker under its own topic prefix, drives the app with keys through Textual's Pilot
and waits for what the screens show, with deadlines. Quitting with ``q`` ends every test,
so each one also exercises the real shutdown path.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from textual.widgets import DataTable, Input, Select, TextArea

from orderdeck.events import FINAL_STATUSES, TopicNames, dlq_topic, headers_for
from orderdeck.orders import OrderRequest
from orderdeck.runtime import Runtime
from orderdeck.screens.dead_letters import ConfirmScreen, DeadLettersScreen, EditValueScreen
from orderdeck.screens.groups import GroupsScreen
from orderdeck.screens.orders import OrdersScreen
from orderdeck.screens.services import ServicesScreen
from orderdeck.screens.submit import SubmitScreen
from orderdeck.screens.topics import TopicsScreen
from orderdeck.widgets.journey import JourneyView
from orderdeck.widgets.live_static import LiveStatic
from orderdeck.widgets.record_view import RecordView
from orderdeck.widgets.row_list import RowList
from tests.screens.helpers import running_app, until
from tests.services.conftest import order_placed


async def place(runtime: Runtime, count: int, customer: str = "load") -> list[str]:
    """Place ``count`` one-unit orders through the same path as the API."""
    ids = []
    for n in range(count):
        request = OrderRequest.single(f"{customer}-{n}", "sku-cable", 1)
        ids.append((await runtime.submit_order(request)).order_id)
    return ids


async def test_order_typed_into_form_reaches_confirmed_on_orders_screen(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    async with running_app(kafka_bootstrap, topic_names, tmp_path) as (app, pilot, _):
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, SubmitScreen)
        await pilot.press("tab")
        assert app.focused is screen.query_one("#customer", Input)
        await pilot.press("shift+home", *"tuialice7")
        await pilot.press("tab", "enter", "down", "enter")  # pick the catalog's 2nd product
        product = screen.query_one("#product", Select).value
        assert product == "sku-desk-mat"
        await pilot.press("tab", "shift+home", "2", "enter")
        await until(pilot, lambda: bool(screen.results), "the form's order to be sent")
        sent = screen.results[-1]
        assert (sent.customer_id, sent.product_id, sent.quantity) == ("tuialice7", product, 2)
        assert sent.order_id is not None
        assert not sent.error

        await pilot.press("ctrl+r", "enter")  # the result's journey, on the Orders screen
        orders = app.screen
        assert isinstance(orders, OrdersScreen)
        table = orders.query_one(RowList)
        journey = orders.query_one(JourneyView)

        order_id = sent.order_id

        def confirmed_on_screen() -> bool:
            if order_id not in table:
                return False
            status = table.row(order_id)[2]
            return (
                "confirmed" in str(status)
                and journey.order is not None
                and (journey.order.status == "confirmed")
            )

        await until(pilot, confirmed_on_screen, "the order to show as confirmed", 60)
        assert journey.order is not None
        assert [hop.type for hop in journey.order.journey] == [
            "OrderPlaced",
            "PaymentRequested",
            "StockReservationRequested",
            "OrderConfirmed",
        ]


async def test_order_posted_with_httpx_appears_in_order_events_tail(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    async with running_app(kafka_bootstrap, topic_names, tmp_path) as (app, pilot, runtime):
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, TopicsScreen)
        assert screen.topic == topic_names.orders
        await until(pilot, lambda: screen.tail_ready, "the tail to be positioned")
        async with httpx.AsyncClient(base_url=runtime.api_url, timeout=10) as client:
            response = await client.post(
                "/api/v1/orders",
                json={"customerId": "curl-bob", "productId": "sku-mouse", "quantity": 1},
            )
        assert response.status_code == 201, response.text
        order_id = response.json()["event"]["id"]
        view = screen.query_one(RecordView)

        def tailed() -> bool:
            return any(r.order_id == order_id for r in view.records())

        await until(pilot, tailed, "the POSTed order in the order-events tail")
        record = next(r for r in view.records() if r.order_id == order_id)
        assert record.topic == topic_names.orders
        assert record.event_type == "OrderPlaced"
        assert record.key == order_id
        assert view.selected is record  # following: the newest record is shown in full
        assert '"customerId": "curl-bob"' in record.pretty_json()


async def test_pausing_payment_grows_its_lag_and_resuming_drains_it(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    async with running_app(kafka_bootstrap, topic_names, tmp_path) as (app, pilot, runtime):
        payment_group = topic_names.payments

        def committed_everywhere() -> bool:
            snap = app.live.snapshots.get(payment_group)
            return (
                snap is not None
                and len(snap.partitions) == 3
                and all(p.committed is not None for p in snap.partitions)
            )

        # Lag is log-end minus *committed*: first let payment commit on every partition.
        for _ in range(10):
            await place(runtime, 6, "warmup")
            try:
                await until(pilot, committed_everywhere, "payment commits on 3 partitions", 8)
                break
            except AssertionError:
                continue
        assert committed_everywhere()

        await pilot.press("5", "down", "p")
        services = app.screen
        assert isinstance(services, ServicesScreen)
        assert services.selected() == "payment"
        await until(
            pilot,
            lambda: runtime.supervisor.statuses()[1].state == "paused",
            "payment to be paused",
        )
        await place(runtime, 15, "while-paused")

        await pilot.press("4")
        groups = app.screen
        assert isinstance(groups, GroupsScreen)
        panel = groups.panel("payment-events")

        def shown_lag() -> int:
            snap = panel.snapshot
            return snap.total_lag if snap is not None else 0

        await until(pilot, lambda: shown_lag() >= 10, "payment lag to grow on screen", 60)
        line = panel.query_one(".group-line", LiveStatic)
        assert f"total lag {shown_lag():,}" in str(line.render())

        await pilot.press("5", "p")
        await until(
            pilot,
            lambda: runtime.supervisor.statuses()[1].state == "running",
            "payment to resume",
        )
        await pilot.press("4")
        await until(
            pilot,
            lambda: (
                panel.snapshot is not None
                and panel.snapshot.total_lag == 0
                and all(p.lag == 0 for p in panel.snapshot.partitions)
            ),
            "payment lag to drain to 0",
            60,
        )
        assert max(app.live.lag_history[payment_group]) >= 10


async def test_scaling_a_service_to_three_shows_three_members_with_a_partition_each(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    async with running_app(kafka_bootstrap, topic_names, tmp_path) as (app, pilot, runtime):
        await pilot.press("5", "down", "down", "plus", "plus")
        await until(
            pilot,
            lambda: runtime.supervisor.statuses()[2].instances == 3,
            "inventory to run 3 consumers",
        )
        await pilot.press("4")
        groups = app.screen
        assert isinstance(groups, GroupsScreen)
        panel = groups.panel("inventory-events")

        def three_members_one_partition_each() -> bool:
            snap = panel.snapshot
            return (
                snap is not None
                and len(snap.members) == 3
                and sorted(len(m.assignments) for m in snap.members) == [1, 1, 1]
            )

        await until(pilot, three_members_one_partition_each, "3 members, 1 partition each", 60)
        snap = panel.snapshot
        assert snap is not None
        owned = sorted(p for m in snap.members for _, p in m.assignments)
        assert owned == [0, 1, 2]
        assert len({m.client_id for m in snap.members}) == 3
        rows = str(panel.query_one(".group-rows", LiveStatic).render())
        for member in snap.members:
            assert member.client_id in rows


async def test_burst_generator_sends_each_kind_and_they_end_as_planned(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    async with running_app(kafka_bootstrap, topic_names, tmp_path) as (app, pilot, _):
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, SubmitScreen)
        for field, value in (("#burst-n", "12"), ("#burst-rate", "100")):
            screen.query_one(field, Input).value = value
        await pilot.press("ctrl+b")
        await until(
            pilot,
            lambda: not screen.bursting and screen.burst_sent + screen.burst_failed == 12,
            "the burst to be sent",
        )
        assert screen.burst_failed == 0
        await until(
            pilot,
            lambda: all(r.status in FINAL_STATUSES for r in screen.results),
            "every burst order to reach a final status",
            60,
        )
        outcome: dict[str, set[str]] = {r.kind: set() for r in screen.results}
        for result in screen.results:
            outcome[result.kind].add(result.status)
        assert outcome["good"] == {"confirmed"}
        assert outcome["declined"] == {"payment_declined"}
        assert outcome["out-of-stock"] == {"cancelled"}  # paid, then refunded, from the first


async def test_the_form_says_the_catalog_loaded_and_drops_a_fixed_fields_message(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    async with running_app(kafka_bootstrap, topic_names, tmp_path) as (app, pilot, _):
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, SubmitScreen)
        select = screen.query_one("#product", Select)
        await until(pilot, lambda: str(select.value).startswith("sku-"), "the catalog to load")
        assert select.prompt != "loading catalog…"
        quantity = screen.query_one("#quantity", Input)
        error = screen.query_one("#quantity-error")
        quantity.value = "0"
        screen.action_submit()
        await until(pilot, lambda: error.display, "the quantity's message")
        assert "at least 1" in str(error.render())
        quantity.value = "3"  # the field changes: its message is about the old value
        await until(pilot, lambda: not error.display, "the message to clear")


async def test_a_poison_order_fixed_and_redriven_from_the_dead_letters_screen_ends_final(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    async with running_app(kafka_bootstrap, topic_names, tmp_path) as (app, pilot, runtime):
        fixed = order_placed("poppy", [("sku-cable", 1)])
        poison = json.loads(fixed.model_dump_json())
        poison["payload"]["items"][0]["quantity"] = 5000  # more than one order may ask for
        await runtime.producer.send_many(
            [
                (
                    topic_names.orders,
                    fixed.orderId.encode(),
                    json.dumps(poison).encode(),
                    list(headers_for(fixed)),
                )
            ]
        )
        dlq = dlq_topic(topic_names.orders)
        deadline = asyncio.get_running_loop().time() + 30
        while len(await runtime.dead_letters(dlq)) != 1:
            assert asyncio.get_running_loop().time() < deadline, "the poison never reached its DLQ"
            await pilot.pause(0.2)

        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TopicsScreen), "the Topics screen")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DeadLettersScreen), "Dead letters")
        screen = app.screen
        assert isinstance(screen, DeadLettersScreen)
        await until(pilot, lambda: screen.loaded and len(screen.letters) >= 1, "the letters")
        [row] = [i for i, d in enumerate(screen.letters) if d.dlq == dlq]
        screen.query_one(DataTable).move_cursor(row=row)
        await pilot.press("space", "e")
        await until(pilot, lambda: isinstance(app.screen, EditValueScreen), "the edit modal")
        app.screen.query_one(TextArea).load_text(fixed.model_dump_json())
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen, "the edit modal to close")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: screen.message == "redriven 1", "the redrive", 30)

        def final() -> bool:
            order = runtime.store.get_order(fixed.orderId)
            return order is not None and order.status in FINAL_STATUSES

        await until(pilot, final, "the redriven order to reach a final state", 60)
        await until(
            pilot,
            lambda: any(d.redriven for d in screen.letters if d.dlq == dlq),
            "the table to say the record was redriven",
        )
