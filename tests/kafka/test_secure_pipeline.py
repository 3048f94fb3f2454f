"""The whole pipeline over SASL_SSL: serve, groups, tail and the control center, secured.

``tests/kafka/test_secure.py`` proves the secured broker, its files and its errors; this module
proves that what users run on top works through it. One ``orderdeck serve --kafka-config``
process (a real child, reading the broker's ``client.properties`` as a user would) takes one
order to ``confirmed`` for the whole module, on topics created beforehand through the client
factory; ``groups`` and ``tail`` then read that run back over SASL_SSL. The Pilot test runs
the control center on the same file. None of them may show the password.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderdeck.app import OrderDeckApp
from orderdeck.events import TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.local import SCRAM_MECHANISM, SCRAM_USER, LocalKafka
from orderdeck.kafka.topics import TopicAdmin
from orderdeck.orders import OrderRequest
from orderdeck.screens.base import DeckScreen
from orderdeck.screens.orders import OrdersScreen
from orderdeck.widgets.row_list import RowList
from tests.api.conftest import wait_for
from tests.api.serve_process import ServeProcess
from tests.kafka.test_secure import password_of, run_cli
from tests.screens.helpers import running_app, until

pytestmark = pytest.mark.timeout(240)

#: What headers and logs say of the secure connection (KafkaConnection.describe()).
DESCRIBED = f"SASL_SSL {SCRAM_MECHANISM} as {SCRAM_USER}"
JOURNEY = ["OrderPlaced", "PaymentRequested", "StockReservationRequested", "OrderConfirmed"]


@dataclass(frozen=True)
class SecureRun:
    """One order taken to ``confirmed`` by ``serve`` over SASL_SSL, for the module's tests."""

    names: TopicNames
    config: Path
    serve: ServeProcess
    order: dict[str, Any]


async def _topics(kafka: KafkaConnection, names: TopicNames, *, create: bool) -> None:
    async with TopicAdmin(kafka, client_suffix="tests") as admin:
        if create:
            await admin.ensure(names.all(), partitions=3)
        else:
            await admin.delete(names.all())


async def _place_and_confirm(url: str) -> dict[str, Any]:
    """POST one order and wait, with a deadline, until it reads ``confirmed``."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        created = await client.post(
            "/api/v1/orders",
            json={"customerId": "secure-alice", "productId": "sku-mouse", "quantity": 1},
        )
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        order: dict[str, Any] = {}

        async def confirmed() -> bool:
            order.update((await client.get(location)).json())
            return bool(order["status"] == "confirmed" and len(order["journey"]) == len(JOURNEY))

        await wait_for(confirmed, within=60, what="the order to be confirmed over SASL_SSL")
        return order


@pytest.fixture(scope="module")
def secure_run(
    secure_kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureRun]:
    """Topics on the secured broker, a serve process on them, and one confirmed order.

    Sync (with its own short event loops) so one serve process can serve the whole module.
    """
    kafka = secure_kafka.connection()
    names = TopicNames(prefix=f"s{uuid.uuid4().hex[:12]}.")
    asyncio.run(_topics(kafka, names, create=True))
    config = secure_kafka.client_properties_path
    serve = ServeProcess(
        tmp_path_factory.mktemp("secure-serve"),
        bootstrap=None,
        prefix=names.prefix,
        extra_args=("--kafka-config", str(config)),
    )
    try:
        serve.wait_serving(timeout=90)
        order = asyncio.run(_place_and_confirm(serve.url))
        yield SecureRun(names, config, serve, order)
        serve.signal(signal.SIGTERM)
        assert serve.wait(30) == 0, serve.log()
    finally:
        serve.close()
        asyncio.run(_topics(kafka, names, create=False))


def test_serve_with_kafka_config_takes_a_post_to_confirmed_over_sasl_ssl(
    secure_run: SecureRun, secure_kafka: LocalKafka
) -> None:
    order = secure_run.order

    assert order["status"] == "confirmed"
    assert [hop["type"] for hop in order["journey"]] == JOURNEY
    assert len({hop["partition"] for hop in order["journey"]}) == 1  # keyed by order id
    assert (order["history"][0]["status"], order["history"][-1]["status"]) == (
        "placed",
        "confirmed",
    )
    health = httpx.get(f"{secure_run.serve.url}/health", timeout=10).json()
    assert health["status"] == "ok"
    assert health["kafka"] == {
        "bootstrapServers": secure_kafka.bootstrap_servers,
        "reachable": True,
    }
    log = secure_run.serve.log()
    assert f"serving: Kafka {secure_kafka.bootstrap_servers} ({DESCRIBED})" in log
    assert password_of(secure_kafka) not in log


def test_groups_json_shows_the_four_groups_with_partitions_and_lag_over_sasl_ssl(
    secure_run: SecureRun, secure_kafka: LocalKafka
) -> None:
    names = secure_run.names
    partition = secure_run.order["journey"][0]["partition"]
    groups: dict[str, dict[str, Any]] = {}

    async def settled() -> bool:
        # Services commit at most every 250 ms: wait until all four have committed the order.
        done = await asyncio.to_thread(
            run_cli, "groups", "--json", "--window", "0", "--kafka-config", str(secure_run.config)
        )
        assert done.returncode == 0, done.stderr
        assert password_of(secure_kafka) not in done.stdout + done.stderr
        ours = {g["group"]: g for g in json.loads(done.stdout) if g["group"] in names.pipeline()}
        groups.clear()
        groups.update(ours)
        return len(ours) == 4 and all(
            p["committed"] == 1
            for g in ours.values()
            for p in g["partitions"]
            if p["partition"] == partition
        )

    asyncio.run(wait_for(settled, within=60, what="the four groups to commit the order"))

    assert sorted(groups) == sorted(names.pipeline())
    for name, group in groups.items():
        assert group["state"] == "Stable", group
        (member,) = group["members"]  # one serve process: one member owning all 3 partitions
        assert sorted(a["partition"] for a in member["assignments"]) == [0, 1, 2]
        assert {a["topic"] for a in member["assignments"]} == {name}  # a group is its inbox
        assert group["totalLag"] == 0
        by_partition = {p["partition"]: p for p in group["partitions"]}
        assert sorted(by_partition) == [0, 1, 2]
        assert {p["topic"] for p in group["partitions"]} == {name}
        ordered = by_partition.pop(partition)  # the one record of the order in this topic
        assert (ordered["committed"], ordered["logEnd"], ordered["lag"]) == (1, 1, 0)
        assert ordered["memberId"] == member["memberId"]
        for empty in by_partition.values():
            assert empty["logEnd"] == 0
            assert empty["lag"] in (0, None)  # never committed: no lag, like the tool's '-'


def test_tail_exit_at_end_prints_the_runs_records_over_sasl_ssl(
    secure_run: SecureRun, secure_kafka: LocalKafka
) -> None:
    names = secure_run.names
    order_id = secure_run.order["id"]

    done = run_cli(
        "tail",
        *names.pipeline(),
        "--from-beginning",
        "--exit-at-end",
        "--json",
        "--kafka-config",
        str(secure_run.config),
    )

    assert done.returncode == 0, done.stderr
    assert password_of(secure_kafka) not in done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    # These topics are the module's own: exactly the order's four events, one per topic.
    assert sorted((line["topic"], line["type"]) for line in lines) == sorted(
        zip(names.pipeline(), JOURNEY, strict=True)
    )
    assert {line["orderId"] for line in lines} == {order_id}
    hops = {hop["type"]: hop for hop in secure_run.order["journey"]}
    for line in lines:
        hop = hops[line["type"]]
        assert (line["partition"], line["offset"]) == (hop["partition"], hop["offset"])

    human = run_cli(
        "tail",
        names.notifications,
        "--from-beginning",
        "--exit-at-end",
        "--kafka-config",
        str(secure_run.config),
    )
    assert human.returncode == 0, human.stderr
    assert f" OrderConfirmed order={order_id}" in human.stdout


# ---------------------------------------------------------------------------- the control center


def screen_text(app: OrderDeckApp) -> str:
    """Every character on the terminal, as the SVG screenshot draws it."""
    svg = app.export_screenshot()
    return html.unescape("".join(re.findall(r"<text[^>]*>(.*?)</text>", svg))).replace("\xa0", " ")


async def test_launch_over_sasl_ssl_runs_the_services_confirms_an_order_and_hides_the_password(
    secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    names = TopicNames(prefix=f"s{uuid.uuid4().hex[:12]}.")
    password = password_of(secure_kafka)
    config = secure_kafka.client_properties_path
    try:
        async with running_app(None, names, tmp_path, kafka_config=config) as (app, pilot, runtime):
            await until(
                pilot,
                lambda: [s.state for s in runtime.supervisor.statuses()] == ["running"] * 4,
                "the four services to run",
                60,
            )
            screen = app.screen
            assert isinstance(screen, DeckScreen)
            await until(
                pilot,
                lambda: "4/4" in screen_text(app),
                "the header to show 4/4 services running",
            )
            header = f"kafka {secure_kafka.bootstrap_servers} {DESCRIBED} ●"
            assert header in screen_text(app)

            request = OrderRequest.single("tui-secure", "sku-cable", 1)
            order_id = (await runtime.submit_order(request)).order_id
            await pilot.press("6")
            orders = app.screen
            assert isinstance(orders, OrdersScreen)
            table = orders.query_one(RowList)

            def confirmed_on_screen() -> bool:
                return order_id in table and "confirmed" in str(table.row(order_id)[2])

            await until(pilot, confirmed_on_screen, "the order to show as confirmed", 60)
            store_view = runtime.store.get_order(order_id)
            assert store_view is not None
            assert [hop.type for hop in store_view.journey] == JOURNEY

            for key in "123456":  # every screen, its header and the log panel
                await pilot.press(key)
                await pilot.pause()
                text = screen_text(app)
                assert header in text, key
                assert password not in text, key
    finally:
        await _topics(secure_kafka.connection(), names, create=False)
