"""The Chaos screen on three real brokers, driven through Pilot as a person would: each fault
picked, confirmed with ``y``, and its recovery read off the timeline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual.widgets import DataTable

from orderdeck.app import OrderDeckApp
from orderdeck.events import TopicNames, dlq_topic
from orderdeck.faults import local_broker_control
from orderdeck.kafka.local_cluster import LocalCluster
from orderdeck.orders import OrderRequest
from orderdeck.runtime import Runtime
from orderdeck.screens.chaos import ConfirmScreen
from tests.screens.helpers import running_app, until

RECOVERY_S = 90.0


def actions(app: OrderDeckApp) -> list[str]:
    table = app.screen.query_one("#chaos-actions", DataTable)
    return [str(key.value) for key in table.rows]


def timeline(app: OrderDeckApp) -> list[tuple[str, str]]:
    """(fault number, event) of every timeline line."""
    table: DataTable[Any] = app.screen.query_one("#chaos-timeline", DataTable)
    return [
        (str(table.get_row_at(i)[1]), str(table.get_row_at(i)[3])) for i in range(table.row_count)
    ]


def lines_of(app: OrderDeckApp, fault: str) -> list[str]:
    return [text for number, text in timeline(app) if number == fault]


async def cause(pilot: Any, key: str) -> None:
    """Pick the action ``key``, confirm it in the modal, and wait until it was done."""
    app = pilot.app
    await until(pilot, lambda: key in actions(app), f"the action {key}", 30)
    screen = app.screen
    table = screen.query_one("#chaos-actions", DataTable)
    table.focus()
    table.move_cursor(row=actions(app).index(key))
    await pilot.pause()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm modal")
    await pilot.press("y")
    await until(pilot, lambda: key in screen.done, f"{key} done", RECOVERY_S)


async def recovered(pilot: Any, fault: str) -> list[str]:
    app = pilot.app
    await until(
        pilot,
        lambda: any(t.startswith("recovered in") for t in lines_of(app, fault)),
        f"fault {fault}'s recovery on the timeline",
        RECOVERY_S,
    )
    return lines_of(app, fault)


async def place(runtime: Runtime, count: int) -> None:
    request = OrderRequest.single("c-chaos", "sku-mouse", 1)
    for _ in range(count):
        await runtime.submit_order(request)


async def test_every_fault_from_the_chaos_screen_recovers_on_the_timeline(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    names = TopicNames(prefix=f"c{time.monotonic_ns() % 10**9}.")
    async with running_app(
        cluster.bootstrap_servers, names, tmp_path, broker_control=local_broker_control(cluster)
    ) as (app, pilot, runtime):
        await pilot.press("8")
        view = await runtime.cluster_view()
        (orders,) = [t for t in view.topics if t.name == names.orders]
        leader = orders.partitions[0].leader
        await place(runtime, 20)

        # kill -9 the broker leading order-events' partition 0, then start it again.
        await cause(pilot, f"kill_broker:{leader}")
        await until(
            pilot,
            lambda: any(t.startswith("leader of") for t in lines_of(app, "#1")),
            "the leaders to move",
            RECOVERY_S,
        )
        await cause(pilot, f"start_broker:{leader}")
        await recovered(pilot, "#1")
        # The replicas catch up after the pipeline did: a step after the recovery.
        await until(pilot, lambda: "ISR back to full" in lines_of(app, "#1"), "the ISR", RECOVERY_S)
        steps = lines_of(app, "#1")
        for step in (
            f"broker {leader} process gone",
            f"broker {leader} gone from the cluster",
            f"start broker {leader} asked",
            f"broker {leader} process running",
            f"broker {leader} back",
            "ISR back to full",
            "lag 0",
            "every order from before the fault final",
        ):
            assert step in steps, (step, steps)
        assert any(t.startswith("ISR shrank") for t in steps), steps

        await cause(pilot, "crash:payment")
        steps = await recovered(pilot, "#2")
        assert "payment running again" in steps

        await cause(pilot, "slow:inventory")
        await place(runtime, 20)
        await until(
            pilot,
            lambda: any(t.startswith("lag building") for t in lines_of(app, "#3")),
            "inventory's lag to build",
            RECOVERY_S,
        )
        await cause(pilot, "unslow:inventory")
        steps = await recovered(pilot, "#3")
        assert steps.index("inventory back to full speed") < steps.index("lag 0")

        await cause(pilot, f"poison:{names.payments}")
        steps = await recovered(pilot, "#4")
        assert f"poison record in {dlq_topic(names.payments)} (1)" in steps
