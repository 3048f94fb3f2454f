"""``serve`` and ``launch`` beyond loopback: no token, no start; with a token file, curl works.

The server may bind 0.0.0.0 here, but every request goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from orderdeck.api_guard import ApiAccessError
from orderdeck.cli import main
from orderdeck.config import Settings
from orderdeck.events import TopicNames
from orderdeck.runtime import Runtime
from tests.api.conftest import wait_for
from tests.api.serve_process import ROOT, ServeProcess

pytestmark = pytest.mark.timeout(180)

TOKEN = "serve-token-3f1b9c0e7d2a4c68"
#: Refusing needs no Kafka and no store: it is decided before anything starts.
REFUSAL_WITHIN_S = 15.0


def _orderdeck(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORDERDECK_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", *args, "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=REFUSAL_WITHIN_S,
        check=False,
    )


@pytest.mark.parametrize("command", ["serve", "launch"])
@pytest.mark.parametrize("how", [["--host", "0.0.0.0"], ["--host", "::"], ["--host", "myhost"]])
def test_beyond_loopback_without_a_token_refuses_to_start_in_one_line(
    tmp_path: Path, command: str, how: list[str]
) -> None:
    done = _orderdeck([command, *how], tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("orderdeck: error: the API would listen on")
    assert "ORDERDECK_API_TOKEN" in lines[0]
    assert "--api-token-file" in lines[0]
    assert not (tmp_path / "kafka").exists()  # nothing was started


def test_the_host_comes_from_the_environment_too(tmp_path: Path) -> None:
    done = _orderdeck(["serve"], tmp_path, ORDERDECK_HOST="0.0.0.0")
    assert done.returncode == 2
    assert "beyond loopback" in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--api-token", "too-short"], {}, "at least 16"),
        (["--api-token-file", "missing-token-file"], {}, "cannot read the API token file"),
        ([], {"ORDERDECK_API_TOKEN": "too-short"}, "at least 16"),
        (["--api-token", TOKEN + " x"], {}, "printable ASCII"),
    ],
)
def test_an_unusable_token_is_one_line_that_does_not_show_it(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    done = _orderdeck(["serve", "--host", "0.0.0.0", *args], tmp_path, **env)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert message in done.stderr
    assert "too-short" not in done.stderr
    assert TOKEN not in done.stderr


def _curl(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "10", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    body, _, code = done.stdout.rpartition("\n")
    return int(code), body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_serve_on_every_address_with_a_token_file_serves_curl_with_the_token(
    tmp_path: Path, kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    serve = ServeProcess(
        tmp_path,
        bootstrap=kafka_bootstrap,
        prefix=topic_names.prefix,
        extra_args=("--host", "0.0.0.0", "--api-token-file", str(token_file)),
    )
    try:
        serve.wait_serving()
        url = serve.url  # 127.0.0.1: the test sends nothing beyond loopback
        bearer = f"Authorization: Bearer {TOKEN}"
        assert _curl(f"{url}/health")[0] == 200
        assert _curl(f"{url}/api/v1/products")[0] == 401
        order = json.dumps({"customerId": "cust-curl", "productId": "sku-mouse", "quantity": 1})
        json_type = "Content-Type: application/json"
        code, body = _curl("-H", bearer, "-H", json_type, "-d", order, f"{url}/api/v1/orders")
        assert code == 201, body
        order_id = json.loads(body)["event"]["id"]
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        ) as client:

            async def confirmed() -> bool:
                answer = await client.get(f"/api/v1/orders/{order_id}")
                return bool(answer.json()["status"] == "confirmed")

            await wait_for(confirmed, what="the curl order to be confirmed")
        code, _ = _curl("-H", "Host: elsewhere.example", "-H", bearer, f"{url}/api/v1/products")
        assert code == 400
        log = serve.log()
        assert f"API at http://0.0.0.0:{serve.port} (bearer token required)" in log
        assert TOKEN not in log
    finally:
        serve.signal()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(serve.wait, 10)
        serve.close()


async def test_the_runtime_refuses_an_exposed_api_without_a_token(tmp_path: Path) -> None:
    runtime = Runtime(Settings(api_host="0.0.0.0", data_dir=tmp_path, bootstrap_servers="x:1"))
    with pytest.raises(ApiAccessError, match="beyond loopback"):
        await runtime.start()
    assert not (tmp_path / "orderdeck.db").exists()


def test_the_token_stays_out_of_settings_repr_dump_and_url() -> None:
    settings = Settings(api_host="0.0.0.0", api_token=TOKEN)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.model_dump())
    assert TOKEN not in settings.api_url
    assert Settings(api_host="::1", api_port=3000).api_url == "http://[::1]:3000"


async def test_orders_cli_sends_the_token(
    kafka_bootstrap: str,
    topic_names: TopicNames,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        api_port=0,
        api_token=TOKEN,
        data_dir=tmp_path,
        topic_prefix=topic_names.prefix,
    )
    runtime = Runtime(settings, services=())
    await runtime.start()
    try:
        submit = ["--api-url", runtime.api_url, "submit", "--customer", "c-1"]
        submit += ["--product", "sku-mouse", "--quantity", "1"]
        monkeypatch.delenv("ORDERDECK_API_TOKEN", raising=False)
        assert await asyncio.to_thread(main, ["orders", *submit]) == 1
        assert "401" in capsys.readouterr().err
        monkeypatch.setenv("ORDERDECK_API_TOKEN", TOKEN)
        assert await asyncio.to_thread(main, ["orders", *submit]) == 0
        assert " placed " in capsys.readouterr().out
    finally:
        await runtime.stop()
