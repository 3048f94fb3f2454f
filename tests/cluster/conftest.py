"""A real three-broker Kafka for the tests that need failover, started once per session.

``three_brokers`` is started the way a user starts it — ``orderdeck kafka start --brokers 3``
in a child process, on free ports, in a temporary data dir — the first time a test asks for
it, and stopped with ``orderdeck kafka stop`` at the end of the session (the stop's output is
checked there, and the root conftest checks that no JVM outlived the session). Starting it
costs three JVMs, so only the tests in this directory ask for it.

``cluster`` hands a test the same cluster and heals it afterwards: a test may stop or kill
brokers and leave them down; they are started again and every partition is back in sync
before the next test, so no test sees another's faults.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from orderdeck.errors import OrderdeckError
from orderdeck.kafka.cluster import ClusterReader
from orderdeck.kafka.cluster_model import ClusterView
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.local_cluster import LocalCluster, free_cluster_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0
HEAL_TIMEOUT_S = 90.0


def orderdeck_cli(*args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run ``orderdeck ARGS`` as a child process and return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


class StartedCluster:
    """The session's cluster and what ``kafka start --brokers 3`` printed when it started."""

    def __init__(self, cluster: LocalCluster, start_output: str) -> None:
        self.cluster = cluster
        self.start_output = start_output


@pytest.fixture(scope="session")
def three_brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedCluster]:
    """Three local brokers (``kafka start --brokers 3``) for the whole session."""
    data_dir = tmp_path_factory.mktemp("three-brokers")
    for attempt in range(3):
        started = orderdeck_cli(
            "kafka",
            "start",
            "--brokers",
            "3",
            "--port",
            # Below the ephemeral range: a node there can connect to itself (local_cluster).
            str(free_cluster_port()),
            "--data-dir",
            str(data_dir),
        )
        if started.returncode == 0:
            break
        # Another process took one of the ports between the choice and the bind: plan anew.
        if "already in use" not in started.stderr or attempt == 2:
            raise AssertionError(
                f"kafka start --brokers 3 failed:\n{started.stdout}{started.stderr}"
            )
        (data_dir / "kafka" / "cluster.json").unlink(missing_ok=True)
    cluster = LocalCluster.load(data_dir)
    assert cluster is not None, started.stdout
    try:
        yield StartedCluster(cluster, started.stdout)
    finally:
        stopped = orderdeck_cli("kafka", "stop", "--data-dir", str(data_dir), timeout=120)
        # Reaps the brokers this process restarted (and kills any the CLI left running).
        cluster.stop(timeout=10)
        assert stopped.returncode == 0, stopped.stderr
        for node in cluster.nodes:
            assert f"Stopped broker {node.node_id} " in stopped.stdout, stopped.stdout


@pytest.fixture
async def cluster(three_brokers: StartedCluster) -> AsyncIterator[LocalCluster]:
    """The session's three brokers, all running and in sync; healed again after the test."""
    local = three_brokers.cluster
    await heal(local)
    yield local
    await heal(local)


async def heal(cluster: LocalCluster) -> None:
    """Start every broker that is down and wait until no partition is under-replicated."""
    if len(cluster.running()) < len(cluster.nodes):
        # All down ones at once: a lone node cannot elect a controller, so one started
        # after another would wait for the next.
        await asyncio.to_thread(cluster.start, HEAL_TIMEOUT_S)
    await wait_for_view(
        cluster,
        lambda view: len(view.brokers) == len(cluster.nodes) and view.under_replicated == 0,
        within=HEAL_TIMEOUT_S,
        what="every broker back and every partition in sync",
    )


async def wait_for_view(
    cluster: LocalCluster,
    condition: Callable[[ClusterView], bool],
    *,
    within: float,
    what: str,
) -> ClusterView:
    """Read the cluster (as the Cluster screen does) until ``condition`` holds; return that view."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: ClusterView | None = None
    async with ClusterReader(
        KafkaConnection(cluster.bootstrap_servers), client_suffix="heal"
    ) as reader:
        while True:
            view = await _read(reader)
            if view is not None:
                last = view
                if condition(view):
                    return view
            if loop.time() > deadline:
                pytest.fail(f"timed out after {within} s waiting for {what}; last view: {last}")
            await asyncio.sleep(0.2)


async def _read(reader: ClusterReader) -> ClusterView | None:
    """One view, or None while the broker asked is just going or coming back."""
    try:
        return await reader.describe(metadata_only=True)
    except (KafkaError, OrderdeckError, OSError):
        return None
