"""One log line when Kafka becomes unreachable and one when it answers again.

While a broker is down every aiokafka client of the process (producer, consumers, admin)
retries its connection and logs each failure: thousands of ``Unable connect to node`` lines
in a minute, which bury everything else in the log panel or on stderr. ``KafkaOutageLog`` is
a logging filter put on the handlers orderdeck logs through. aiokafka's warnings and errors
are held back (counted) from the first connection error it sees until a probe gives its
verdict: a failed probe (reported by the runtime) starts an outage, logged as one line, and
the probe that reaches Kafka again ends it with one line and the count.

A connection error alone is only a suspicion: on a three-broker cluster with one broker down
every client logs ``Unable connect to node`` for that broker while the cluster answers and
the pipeline goes on. Logging "unreachable" then (and "answers again" a second later, over
and over) would cry wolf; so the suspicion ends quietly when the probe reaches the cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("orderdeck.kafka")

#: Words of aiokafka's messages that mean "the cluster cannot be reached".
_CONNECTION_WORDS = (
    "unable connect",
    "unable to update metadata",
    "connect call failed",
    "connection refused",
    "kafkaconnectionerror",
    "nodenotready",
    "coordinator dead",
    "connection error",
    "unable to request metadata",
)


def _is_connection_error(record: logging.LogRecord) -> bool:
    try:
        text = record.getMessage().lower()
    except Exception:  # a record whose arguments do not format: not ours to judge
        return False
    return any(word in text for word in _CONNECTION_WORDS)


class KafkaOutageLog(logging.Filter):
    """Turns an outage's flood of aiokafka errors into a start line and an end line.

    Thread-safe: records may come from any thread. ``on_outage`` is called (once per outage,
    from the logging thread) so a process without its own probe can start one.
    """

    def __init__(self, bootstrap_servers: str, on_outage: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.bootstrap_servers = bootstrap_servers
        self.on_outage = on_outage
        self._guard = threading.Lock()
        self._down_since: float | None = None
        #: When a connection error was seen that no probe has judged yet (see the docstring).
        self._suspected_since: float | None = None
        self.held_back = 0

    @property
    def in_outage(self) -> bool:
        """True between an outage's start line and its end line."""
        return self._down_since is not None

    @property
    def awaiting_probe(self) -> bool:
        """True while a probe's verdict is wanted: an outage is on, or one is suspected."""
        return self._down_since is not None or self._suspected_since is not None

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka") or record.levelno < logging.WARNING:
            return True
        with self._guard:
            if self._down_since is not None or self._suspected_since is not None:
                self.held_back += 1
                return False
            if not _is_connection_error(record):
                return True
            self._suspected_since = time.monotonic()
            self.held_back += 1
        if self.on_outage is not None:  # the probe that gives the verdict
            self.on_outage()
        return False

    def unreachable(self, reason: str) -> None:
        """A probe found Kafka unreachable: start an outage unless one is on."""
        self._start(reason)

    def reachable(self) -> None:
        """A probe (or a client) reached Kafka: end the outage, if one is on, with one line;
        a suspected one ends without a line (one broker of several was down, say)."""
        with self._guard:
            since, self._down_since = self._down_since, None
            suspected, self._suspected_since = self._suspected_since, None
            held, self.held_back = self.held_back, 0
        if since is None and suspected is not None:
            log.debug("Kafka answers; %d connection errors to some broker held back", held)
        if since is not None:
            log.warning(
                "Kafka at %s answers again after %.1f s (%d connection errors held back)",
                self.bootstrap_servers,
                time.monotonic() - since,
                held,
            )

    def _start(self, reason: str) -> None:
        with self._guard:
            if self._down_since is not None:
                return
            suspected, self._suspected_since = self._suspected_since, None
            # The outage began with the first connection error, not with the probe's verdict.
            self._down_since = suspected if suspected is not None else time.monotonic()
            already_called = suspected is not None
        log.warning(
            "Kafka at %s is unreachable (%s); its clients keep retrying, and their "
            "connection errors are held back until it answers again",
            self.bootstrap_servers,
            reason,
        )
        if self.on_outage is not None and not already_called:
            self.on_outage()
