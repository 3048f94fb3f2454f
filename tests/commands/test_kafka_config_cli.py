"""``--kafka-config FILE``: the commands read a ``kcat -F`` properties file for the cluster."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from orderdeck.events import TopicNames

#: Neither the env nor a stray ORDERDECK_* setting may pick the cluster for these commands.
CLEAN_ENV = {"ORDERDECK_BOOTSTRAP_SERVERS": "", "ORDERDECK_KAFKA_CONFIG": ""}


async def orderdeck(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orderdeck.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **CLEAN_ENV, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def properties(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def produce(bootstrap: str, topic: str, keys: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key in keys:
            await producer.send_and_wait(topic, b'{"k": 1}', key=key.encode())
    finally:
        await producer.stop()


async def test_tail_reads_the_cluster_named_by_a_plaintext_file(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    await produce(kafka_bootstrap, topic_names.orders, ["a", "b", "c"])
    config = properties(
        tmp_path / "client.properties",
        "# as kcat -F reads it",
        f"bootstrap.servers={kafka_bootstrap}",
        "security.protocol=PLAINTEXT",
        "client.id=from-file",
    )
    code, out, err = await orderdeck(
        "tail", topic_names.orders, "--from-beginning", "--exit-at-end", "--json",
        "--kafka-config", str(config), "--data-dir", str(tmp_path / "no-local-kafka"),
    )  # fmt: skip
    assert code == 0, err
    assert sorted(json.loads(line)["key"] for line in out.splitlines()) == ["a", "b", "c"]


async def test_groups_reads_the_file_from_the_env_and_the_flag_overrides_its_address(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = properties(tmp_path / "c.properties", "bootstrap.servers=127.0.0.1:1")
    group = f"nope-{uuid.uuid4().hex}"
    code, out, err = await orderdeck(
        "groups", group, "--bootstrap-servers", kafka_bootstrap,
        env={"ORDERDECK_KAFKA_CONFIG": str(config)},
    )  # fmt: skip
    # The cluster answered (from the flag's address): the group is reported as unknown.
    assert code == 1
    assert out == ""
    assert err == f"orderdeck: error: consumer group {group!r} does not exist\n"


async def test_an_unknown_key_is_one_line_naming_it_and_a_non_zero_exit(tmp_path: Path) -> None:
    config = properties(
        tmp_path / "c.properties",
        "bootstrap.servers=127.0.0.1:1",
        "security.protocol=SASL_SSL",
        "sasl.mechanism=PLAIN",
        "sasl.username=u",
        "sasl.password=do-not-print-this",
        "socket.keepalive.enable=true",
    )
    for command in (["groups"], ["tail", "orders"], ["kafka", "topics"], ["serve"]):
        code, out, err = await orderdeck(*command, "--kafka-config", str(config))
        assert code == 2, (command, err)
        assert out == ""
        assert err.startswith("orderdeck: error: socket.keepalive.enable in "), (command, err)
        assert err.count("\n") == 1, (command, err)
        assert "do-not-print-this" not in err
