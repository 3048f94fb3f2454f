"""Errors that orderdeck expects and reports as one clear line instead of a traceback."""

from __future__ import annotations


class OrderdeckError(Exception):
    """An expected failure with a message meant for the person at the terminal."""

    exit_code = 1


class KafkaUnavailableError(OrderdeckError):
    """Kafka did not answer within the time we allow."""
