"""The API's HTTP server: one uvicorn configuration, and the protocol it serves connections with.

Every API server orderdeck runs is built by :func:`build_server`. Two things differ from a
plain ``uvicorn.Server``:

* :class:`EmbeddedServer` installs no signal handlers: the process that embeds it (``serve``,
  the TUI, a test) owns SIGINT/SIGTERM.
* :class:`ApiHttpProtocol`, uvicorn's httptools protocol subclassed, adds two things.

  **Connection limits.** uvicorn closes a keep-alive connection that stays idle after a
  response, but it waits forever for a request head: a connection that never sends a byte, or
  one that sends a byte a second (slowloris), holds a socket and a protocol object as long as
  the client likes. Here each connection must deliver a complete request head within
  ``head_timeout_s`` of opening (or of the first byte of its next request) and its body within
  ``body_timeout_s`` of the head, heads are capped in size, and the number of open connections
  is capped, so that a few hundred stuck clients cannot starve the ones that send orders.
  uvicorn's own ``limit_concurrency`` answers 503 beyond that many connections or requests in
  flight.

  **Every complete request is answered before the bad bytes that follow it.** httptools parses
  everything a ``recv`` brought at once; when a valid request is followed (pipelined) by
  garbage, the parser fails on the garbage while the valid request's ASGI task is still
  running, and uvicorn's protocol then writes its 400 and closes the connection at once. The
  first request still runs — an order is placed — but its 201 is written to a closed
  transport: the client only sees the 400 and retries an order that exists. (uvicorn's h11
  protocol does not parse ahead of the request in progress, so it does not have this problem,
  but it costs more CPU per request.) Here the 400 waits until the requests before it have been
  answered, and nothing more is read meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

log = logging.getLogger("orderdeck.http")

#: How often, at most, refused connections are logged (a flood must not flood the log too).
_WARN_EVERY_S = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    """How long and how many connections the API server tolerates."""

    #: A request head (request line and headers) must be complete this soon after the
    #: connection opened or its first byte arrived; 408 and close otherwise.
    head_timeout_s: float = 5.0
    #: The body must be complete this soon after the head; the connection is closed otherwise.
    body_timeout_s: float = 10.0
    #: An idle keep-alive connection is closed after this many seconds.
    keep_alive_s: int = 5
    #: Largest request head (URL plus header names and values) in bytes.
    max_head_bytes: int = 64 * 1024
    #: Beyond this many open connections or requests in flight, requests are answered 503.
    limit_concurrency: int = 1000
    #: Beyond this many open connections, new ones are closed at once.
    max_connections: int = 2000


class _HeadTooLargeError(Exception):
    """Raised from a parser callback: the protocol answers 400 and closes the connection."""


class ApiHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines for each request's head and body, a head
    size cap, a connection cap, and its 400 held back behind unanswered requests.

    The head's deadline is armed when the connection opens and again when the first byte of
    a later request arrives; the body's when the head is complete; both end when the whole
    request has arrived. Idle time between requests is uvicorn's keep-alive timeout.
    Subclassed per server by :func:`protocol_for`.
    """

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    _last_warned: ClassVar[float] = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_started = False
        self._head_bytes = 0
        self._running: RequestResponseCycle | None = None
        self._held_400: str | None = None

    # -------------------------------------------------------------- connection limits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._warn(f"more than {self.limits.max_connections} connections; closing new ones")
            transport.close()
            return
        self._arm_deadline(self.limits.head_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        self._head_bytes = 0
        if self._deadline is None:
            self._arm_deadline(self.limits.head_timeout_s)

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_deadline()
        self._head_started = False
        self._arm_deadline(self.limits.body_timeout_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm_deadline()
        super().on_message_complete()

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_head_bytes:
            self._warn(f"a request head exceeded {self.limits.max_head_bytes} bytes")
            raise _HeadTooLargeError

    def _arm_deadline(self, seconds: float) -> None:
        self._deadline = self.loop.call_later(seconds, self._timed_out)

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        # A request in flight (its body late, or pipelined before this head) has a task
        # that may still answer: only closing is safe then.
        answering = self.cycle is not None and not self.cycle.response_complete
        if self._head_started and not answering:
            self.transport.write(_timeout_answer())
        self.transport.close()

    @classmethod
    def _warn(cls, message: str) -> None:
        now = time.monotonic()
        if now - cls._last_warned >= _WARN_EVERY_S:
            cls._last_warned = now
            log.warning("%s", message)

    # ------------------------------------------------- the 400 after pipelined requests

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def send_400_response(self, msg: str) -> None:
        broken = self.cycle
        if broken is not None and broken.more_body:
            # The bad bytes are inside this request: it gets the 400, not an answer.
            queued = next((entry for entry in self.pipeline if entry[0] is broken), None)
            if queued is None:
                # Its ASGI task runs and waits for the rest of the body: closing tells it so.
                super().send_400_response(msg)
                return
            self.pipeline.remove(queued)
        if self._all_answered():
            super().send_400_response(msg)
            return
        self._held_400 = msg
        self.flow.pause_reading()
        # Nothing more is read, and the requests before the bad bytes are bounded by the
        # app: a head deadline firing now would only cut off their answers.
        self._disarm_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._held_400 is None or self.transport.is_closing() or not self._all_answered():
            return
        msg, self._held_400 = self._held_400, None
        self._unset_keepalive_if_required()
        super().send_400_response(msg)

    def _all_answered(self) -> bool:
        running = self._running
        return not self.pipeline and (running is None or running.response_complete)


def protocol_for(limits: ConnectionLimits) -> type[ApiHttpProtocol]:
    """An :class:`ApiHttpProtocol` bound to ``limits`` (uvicorn instantiates the class)."""
    return type("ApiHttpProtocol", (ApiHttpProtocol,), {"limits": limits})


def _timeout_answer() -> bytes:
    body = json.dumps(
        {"error": {"status": 408, "message": "the request head took too long", "fields": []}},
        separators=(",", ":"),
    ).encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


class EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handling: the process that embeds it owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn releases call this instead
        return None


def build_server(
    app: ASGIApp, host: str, port: int, limits: ConnectionLimits | None = None
) -> EmbeddedServer:
    """The API server for ``app`` on ``host:port``: started with ``await server.serve()``,
    stopped with ``server.should_exit = True``; it logs only through the ``uvicorn`` loggers.
    """
    limits = limits or ConnectionLimits()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_for(limits),
        ws="none",  # the API has no WebSocket routes
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=limits.keep_alive_s,
        limit_concurrency=limits.limit_concurrency,
        server_header=False,
        # No proxy sits in front of it by default: skip the X-Forwarded-* rewriting layer.
        proxy_headers=False,
    )
    return EmbeddedServer(config)
