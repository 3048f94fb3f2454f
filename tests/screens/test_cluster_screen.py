"""The Cluster screen (key 7) over the fake runtime's three brokers, read as a person would:
what the rows say, what ``i`` changes, and what a lost broker looks like on the next read."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Static

from orderdeck.app import OrderDeckApp
from orderdeck.events import TopicNames
from orderdeck.kafka.local import tool_command
from orderdeck.runtime import RuntimeStatus
from orderdeck.screens.cluster import ClusterScreen
from orderdeck.screens.pipeline import PipelineScreen
from tests.commands.test_kafka_describe import TOPIC_COMMAND, official_partitions
from tests.screens.fake_runtime import FakeRuntime
from tests.screens.helpers import running_app, until, until_ready
from tests.screens.test_snapshots import deck

LEADER, REPLICAS, ISR, FLAGS = 1, 2, 3, 4


def grid(app: OrderDeckApp) -> DataTable[Any]:
    return app.screen.query_one("#cluster-partitions", DataTable)


def rows(app: OrderDeckApp) -> dict[str, list[str]]:
    """The partition table as ``topic/partition`` -> its cells' text."""
    table = grid(app)
    return {str(key.value): [str(cell) for cell in table.get_row(key)] for key in table.rows}


def text_of(app: OrderDeckApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def test_key_7_shows_brokers_partitions_and_a_lost_broker() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    names = runtime.names
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("7")
        await until(pilot, lambda: isinstance(app.screen, ClusterScreen), "the Cluster screen")
        screen = app.screen
        assert isinstance(screen, ClusterScreen)
        await until(pilot, lambda: screen.view is not None, "the first cluster read")

        brokers = text_of(app, "#cluster-brokers")
        assert "1 127.0.0.1:9092 (controller)" in brokers
        assert "2 127.0.0.1:9093" in brokers
        table = rows(app)
        assert len(table) == 8 * 3  # internal topics hidden at first
        assert table[f"{names.payments}/1"][0] == f"{names.payments}-1"
        assert not any(key.startswith("__") for key in table)
        assert all(cells[FLAGS] == "-" for cells in table.values())
        assert all(cells[REPLICAS] == cells[ISR] for cells in table.values())

        await pilot.press("i")
        assert len(rows(app)) == 9 * 3
        assert "internal shown" in text_of(app, "#cluster-summary")

        # Broker 2 goes away: the next read flags what it held and highlights moved leaders.
        screen.refresh_cluster()
        await until(pilot, lambda: "2 127.0.0.1" not in text_of(app, "#cluster-brokers"), "2 gone")
        table = rows(app)
        before = runtime.cluster_for(0)
        for topic in before.topics:
            for p in topic.partitions:
                key = f"{topic.name}/{p.partition}"
                leader = grid(app).get_row(key)[LEADER]
                if key == f"{names.payments}.dlq/2":
                    assert table[key][LEADER] == "none"
                    assert table[key][FLAGS] == "offline"
                elif p.leader == 2:
                    assert table[key][LEADER] != "2"
                    assert "reverse" in str(leader.spans)  # highlighted: the leader moved
                    assert table[key][FLAGS] == "under-replicated"
                else:
                    assert table[key][LEADER] == str(p.leader)
                    assert not leader.spans
                    held_by_2 = 2 in p.replicas
                    assert table[key][FLAGS] == ("under-replicated" if held_by_2 else "-")
        summary = text_of(app, "#cluster-summary")
        after = runtime.cluster_for(1)
        assert f"{after.under_replicated} under-replicated" in summary
        assert after.under_replicated == 18
        assert "1 offline" in summary


async def test_on_a_real_broker_the_rows_are_what_kafka_topics_describes(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    async with running_app(kafka_bootstrap, topic_names, tmp_path) as (app, pilot, _):
        await pilot.press("7")
        await until(pilot, lambda: isinstance(app.screen, ClusterScreen), "the Cluster screen")
        screen = app.screen
        assert isinstance(screen, ClusterScreen)
        await until(pilot, lambda: screen.view is not None, "the first cluster read")
        shown = {
            (key.rpartition("/")[0], int(key.rpartition("/")[2])): (
                cells[LEADER],
                cells[REPLICAS],
                cells[ISR],
            )
            for key, cells in rows(app).items()
            if key.rpartition("/")[0] in topic_names.all()
        }
        command = tool_command(
            TOPIC_COMMAND,
            "--bootstrap-server",
            kafka_bootstrap,
            "--describe",
            "--topic",
            ",".join(topic_names.all()),
        )
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        official = official_partitions(done.stdout)
        assert len(shown) == 8 * 3
        assert shown == official


class DegradedRuntime(FakeRuntime):
    """The fake runtime with three under-replicated partitions and one offline."""

    def status(self) -> RuntimeStatus:
        return replace(super().status(), under_replicated=3, offline_partitions=1)


async def test_the_pipeline_warns_of_under_replicated_partitions_only_while_there_are_some() -> (
    None
):
    healthy = deck()
    async with healthy.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        screen = healthy.screen
        assert isinstance(screen, PipelineScreen)
        screen.refresh_live(full=True)  # a status with nothing under-replicated drawn
        assert not screen.query_one("#replication").display

    degraded = deck(DegradedRuntime())
    async with degraded.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        line = degraded.screen.query_one("#replication", Static)
        await until(pilot, lambda: bool(line.display), "the replication warning")
        assert str(line.render()) == ("3 under-replicated · 1 offline partitions: see Cluster (7)")
        await pilot.pause()
        # In sight without scrolling, on the smallest terminal the deck is made for.
        assert line.region.height == 1
        assert line.region.bottom <= 24


async def test_a_refresh_keeps_the_cursor_on_the_partition_the_reader_chose() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        await pilot.press("7")
        await until(pilot, lambda: isinstance(app.screen, ClusterScreen), "the Cluster screen")
        screen = app.screen
        assert isinstance(screen, ClusterScreen)
        await until(pilot, lambda: screen.view is not None, "the first cluster read")
        await pilot.press("G")  # the last row, far below the first screenful
        table = grid(app)

        def cursor_key() -> object:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

        last = table.row_count - 1
        assert table.cursor_row == last
        assert cursor_key() == f"{runtime.names.payments}.dlq/2"

        screen.refresh_cluster()
        await until(
            pilot, lambda: "2 127.0.0.1" not in text_of(app, "#cluster-brokers"), "broker 2 gone"
        )
        assert rows(app)[f"{runtime.names.payments}.dlq/2"][FLAGS] == "offline"
        assert table.cursor_row == last
        assert table.scroll_y > 0

        await pilot.press("i")  # rows above it appear: the cursor stays on its partition
        assert len(rows(app)) == 9 * 3
        assert cursor_key() == f"{runtime.names.payments}.dlq/2"
