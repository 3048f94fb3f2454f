"""KafkaOutageLog's verdicts: a connection error is a suspicion until a probe judges it.

Pure logging (no Kafka): aiokafka's records are made as aiokafka makes them, and the lines the
filter lets through or writes itself are collected from the ``orderdeck.kafka`` logger.
"""

from __future__ import annotations

import logging

import pytest

from orderdeck.kafka.outage_log import KafkaOutageLog

BOOTSTRAP = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"


def _aiokafka_error(message: str) -> logging.LogRecord:
    return logging.LogRecord("aiokafka.conn", logging.ERROR, __file__, 1, message, None, None)


def test_one_broker_of_three_down_logs_no_outage(caplog: pytest.LogCaptureFixture) -> None:
    probes: list[str] = []
    outage = KafkaOutageLog(BOOTSTRAP, on_outage=lambda: probes.append("probe"))
    caplog.set_level(logging.DEBUG, logger="orderdeck.kafka")
    for _ in range(3):  # a broker stays down: suspected, probed, cleared, again and again
        assert not outage.filter(_aiokafka_error("Unable connect to node with id 3"))
        assert not outage.filter(_aiokafka_error("Unable connect to node with id 3"))
        assert outage.awaiting_probe
        assert not outage.in_outage
        outage.reachable()  # the probe: the other two brokers answer
        assert not outage.awaiting_probe
    assert probes == ["probe"] * 3  # one probe asked for per suspicion, not per line
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []


def test_a_real_outage_logs_one_line_each_way(caplog: pytest.LogCaptureFixture) -> None:
    probes: list[str] = []
    outage = KafkaOutageLog(BOOTSTRAP, on_outage=lambda: probes.append("probe"))
    caplog.set_level(logging.WARNING, logger="orderdeck.kafka")
    assert not outage.filter(_aiokafka_error("Unable connect to node with id 1"))
    outage.unreachable("no answer to a probe")
    outage.unreachable("no answer to a probe")
    for _ in range(5):
        assert not outage.filter(_aiokafka_error("Unable connect to node with id 2"))
    outage.reachable()
    lines = [r.getMessage() for r in caplog.records if r.name == "orderdeck.kafka"]
    assert len(lines) == 2, lines
    assert "is unreachable (no answer to a probe)" in lines[0]
    assert "answers again" in lines[1]
    assert "(6 connection errors held back)" in lines[1]
    assert probes == ["probe"]
    # Other aiokafka warnings pass again once the outage is over.
    assert outage.filter(_aiokafka_error("Topic p.orders not found in cluster metadata"))
