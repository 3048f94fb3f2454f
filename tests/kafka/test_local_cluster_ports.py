"""Where a local three-broker cluster puts its ports: never in the ephemeral range.

A node dialling a peer that does not listen yet, on a port in the range the kernel hands out
as source ports, can be given that very port and connect to itself; Kafka's raft client then
reads its own request back and the JVM exits (seen in the suite as
``CorrelationIdMismatchException`` at start-up). These tests plan clusters without starting
them: planning is where the ports are chosen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orderdeck.kafka import local_cluster
from orderdeck.kafka.local_cluster import (
    EphemeralPortError,
    LocalCluster,
    ephemeral_port_range,
    free_cluster_port,
)


def test_a_port_in_the_ephemeral_range_is_refused_with_the_range_and_a_way_out(
    tmp_path: Path,
) -> None:
    span = ephemeral_port_range()
    if span is None:
        pytest.skip("this machine does not say its ephemeral range")
    low, high = span
    with pytest.raises(EphemeralPortError) as refused:
        LocalCluster(tmp_path, port=low + 100)
    message = str(refused.value)
    assert f"({low}-{high})" in message
    assert f"--port below {low}" in message
    assert not (tmp_path / "kafka" / "cluster.json").exists()


def test_a_free_cluster_port_plans_every_node_outside_the_range(tmp_path: Path) -> None:
    port = free_cluster_port()
    cluster = LocalCluster(tmp_path, port=port)
    span = ephemeral_port_range() or (32768, 60999)
    ports = [p for node in cluster.nodes for p in (node.port, node.controller_port)]
    assert [node.port for node in cluster.nodes] == [port, port + 1, port + 2]
    assert len(set(ports)) == 6
    assert all(not span[0] <= p <= span[1] for p in ports), ports


def test_controllers_jump_over_the_range_when_the_brokers_sit_just_below_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A range that starts right above three free broker ports (a real file, read as /proc is).
    base = free_cluster_port()
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text(f"{base + 3}\t{base + 400}\n")
    monkeypatch.setattr(local_cluster, "EPHEMERAL_RANGE_FILE", range_file)
    cluster = LocalCluster(tmp_path / "data", port=base)
    controllers = [node.controller_port for node in cluster.nodes]
    assert all(p > base + 400 for p in controllers), controllers
