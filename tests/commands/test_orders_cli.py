"""``orderdeck orders submit|show`` against a running API, and without one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orderdeck.cli import main
from orderdeck.config import Settings
from orderdeck.events import TopicNames
from orderdeck.runtime import Runtime
from tests.api.conftest import wait_for
from tests.api.serve_process import free_port


@pytest.fixture
async def runtime(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> AsyncIterator[Runtime]:
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        api_port=0,
        data_dir=tmp_path,
        topic_prefix=topic_names.prefix,
    )
    rt = Runtime(settings)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


async def cli(*args: str) -> int:
    # The command is synchronous (httpx.Client); run it off the loop that serves the API.
    return await asyncio.to_thread(main, list(args))


async def test_submit_then_show(runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    url = runtime.api_url
    code = await cli(
        "orders", "--api-url", url, "submit", "--customer", "c-1", "--product", "sku-mouse",
        "--quantity", "2", "--json",
    )  # fmt: skip
    assert code == 0
    created = json.loads(capsys.readouterr().out)
    order_id = created["event"]["id"]
    assert created["status"] == "placed"
    await wait_for(
        lambda: (o := runtime.store.get_order(order_id)) is not None and o.status == "confirmed",
        what="the order to be confirmed",
    )
    assert await cli("orders", "--api-url", url, "show", order_id) == 0
    shown = capsys.readouterr().out
    assert "confirmed" in shown
    assert "OrderConfirmed" in shown
    assert "59.98" in shown  # 2 x 29.99


async def test_bad_input_and_unknown_order_are_one_line_errors(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    url = runtime.api_url
    code = await cli(
        "orders", "--api-url", url, "submit", "--customer", "c", "--product", "nope",
        "--quantity", "0",
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("orderdeck: error: 422")
    assert "quantity: must be at least 1" in err
    assert "\n" not in err
    assert await cli("orders", "--api-url", url, "show", "no-such-id") == 1
    assert "404" in capsys.readouterr().err


def test_unreachable_api_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["orders", "--api-url", url, "show", "x"]) == 1
    err = capsys.readouterr().err
    assert "not reachable" in err
    assert "Traceback" not in err
